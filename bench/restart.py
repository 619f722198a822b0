"""Benchmark: stopping and restarting our operator with N converged clusters, and failed starts (not a timed test).

One control plane with the simulated fleet (PODS ARE SIMULATED; ``bench/session.py``) and N
SeamlessDaskClusters that have converged (Running, worker Ready). The operator runs as in its chart:
``SEAMLESS_DASK_OPERATOR_POD_NAMESPACE`` and ``SEAMLESS_DASK_OPERATOR_DEPLOYMENT`` name a Deployment the
bench makes (its pod never runs), whose ``replicas`` says whether another replica follows:

1. SIGTERM while the Deployment wants 1 replica (a rollout, a drained node): seconds to exit, exit code,
   finalizers kept (they should be: another replica serves the clusters);
2. start again: requests and writes per cluster until it has resumed every cluster and gone quiet, and
   how long that took ("resynced");
3. SIGTERM after the Deployment was scaled to 0 (uninstall, scale-down): seconds to exit (the chart's
   grace period is 60 s) and finalizers released;
4. start again: the same figures as 2 (the finalizers are added back);
5. failed starts: the metrics port busy, the health port busy: exit code, seconds to exit, the reason.

Run: ``.venv/bin/python bench/restart.py [--n 1000] [--operator-command VENV/bin/seamless-dask-operator]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.reconcile import names_for  # noqa: E402
from bench.session import (  # noqa: E402
    NAMESPACE,
    OPERATOR_NS,
    SIMULATED,
    Options,
    Session,
    code,
    cpu_seconds,
    fmt_counter,
    is_write,
    load,
    memory_mb,
    operators,
    py_spy,
    tally,
)
from tests.support import control_plane  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

DEPLOYMENT = "seamless-dask-operator"
FOLLOW_ENV = {"SEAMLESS_DASK_OPERATOR_POD_NAMESPACE": OPERATOR_NS, "SEAMLESS_DASK_OPERATOR_DEPLOYMENT": DEPLOYMENT}
GRACE_PERIOD = 60  # the chart's terminationGracePeriodSeconds
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+)\]")


def make_deployment(api: k8s.ApiClient, replicas: int) -> None:
    """The operator's Deployment as the chart names it; its pod is never placed (no node matches)."""
    body = {"metadata": {"name": DEPLOYMENT}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": DEPLOYMENT}},
        "template": {"metadata": {"labels": {"app": DEPLOYMENT}}, "spec": {
            "nodeSelector": {"bench.seamless.dask.org/nowhere": "true"},
            "containers": [{"name": "operator", "image": "seamless-dask-operator:bench"}]}}}}
    k8s.AppsV1Api(api).create_namespaced_deployment(OPERATOR_NS, body)


def scale_deployment(api: k8s.ApiClient, replicas: int) -> None:
    k8s.AppsV1Api(api).patch_namespaced_deployment(DEPLOYMENT, OPERATOR_NS, {"spec": {"replicas": replicas}})


def finalizers_left(session: Session) -> int:
    """Clusters that still carry a finalizer, as the bench's watch shows them now."""
    time.sleep(1.0)  # the watch lags the last patches
    with session.ns.lock:
        return sum(1 for r in session.ns.primary.values() if r["finalizers"])


def resumed_at(log: Path, since: float) -> list[float]:
    """Times (epoch) of kopf's "Resuming is processed" lines written after ``since``."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if "Resuming is processed" not in line:
            continue
        match = LOG_TIME.match(line)
        if match:
            stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp >= since:
                out.append(stamp)
    return out


@dataclasses.dataclass
class Stop:
    what: str
    exit_code: int | None
    seconds: float
    finalizers_left: int
    requests: collections.Counter[tuple[str, str]]
    errors: collections.Counter[int]


@dataclasses.dataclass
class Resync:
    what: str
    n: int
    watching_s: float
    resumed: int
    resumed_s: float
    quiet_s: float  # the last request before the operator went quiet, from its start
    requests: collections.Counter[tuple[str, str]]
    writes: collections.Counter[tuple[str, str]]
    errors: collections.Counter[int]
    cpu: float
    rss_mb: float


def stop(session: Session, what: str) -> Stop:
    t0 = time.time()
    exit_code, seconds = session.stop_operator(timeout=GRACE_PERIOD + 60)
    requests = session.requests()
    window = [(ts, e) for ts, e in requests if ts >= t0]
    return Stop(what, exit_code, seconds, finalizers_left(session), tally(window, t0, time.time()),
                collections.Counter(code(e) for _, e in window if code(e) >= 400))


def restart(session: Session, what: str, n: int, quiet: float, timeout: float, profile: Path | None) -> Resync:
    """Start the operator; until it resumed every cluster and made no request for ``quiet`` s."""
    t0 = time.time()
    session.start_operator(FOLLOW_ENV, wait=False)
    assert session.proc is not None
    pid = session.proc.pid
    spy = py_spy(pid, profile) if profile else contextlib.nullcontext()
    with spy:
        watching = session.wait_watching()
        cpu0 = cpu_seconds(pid)  # after the imports: what resyncing costs
        while time.time() - t0 < timeout:
            time.sleep(2.0)
            resumed = resumed_at(session.log, t0)
            requests = [ts for ts, _ in session.requests() if ts >= t0]
            last = max(requests, default=t0)
            if len(resumed) >= n and time.time() - last >= quiet:
                break
        cpu = cpu_seconds(pid) - cpu0
    window = [(ts, e) for ts, e in session.requests() if ts >= t0]
    resumed = resumed_at(session.log, t0)
    return Resync(what, n, watching, len(resumed), max(resumed, default=float("nan")) - t0,
                  max((ts for ts, _ in window), default=t0) - t0, tally(window, t0, time.time()),
                  tally(window, t0, time.time(), only=is_write),
                  collections.Counter(code(e) for _, e in window if code(e) >= 400), cpu, memory_mb(pid))


def failed_start(session: Session, what: str, command: tuple[str, ...], env: dict[str, str],
                 timeout: float = 120) -> str:
    """Start the operator expecting it to fail; its exit code, seconds and the last line it wrote."""
    log = session.workdir / f"failed-start-{what.replace(' ', '-')}.log"
    t0 = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen(command, env=session.operator_env({**FOLLOW_ENV, **env}), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=session.workdir)
    try:
        exit_code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        exit_code = None
        proc.kill()
        proc.wait(10)
    seconds = time.monotonic() - t0
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1][:300] if lines else "(nothing)"
    state = f"exit {exit_code}" if exit_code is not None else f"STILL RUNNING after {timeout:g} s (killed)"
    return f"{what}: {state} in {seconds:.1f} s; last line: {last}"


def print_stop(s: Stop, n: int) -> None:
    inside = "inside" if s.seconds <= GRACE_PERIOD else "OUTSIDE"
    print(f"\n-- SIGTERM, {s.what}: exit {s.exit_code} in {s.seconds:.1f} s ({inside} the chart's {GRACE_PERIOD} s "
          f"grace period); finalizers left {s.finalizers_left}/{n}; requests {sum(s.requests.values())}: "
          f"{fmt_counter(s.requests)}; error answers {dict(s.errors) or 0}", flush=True)


def print_resync(r: Resync) -> None:
    writes = sum(r.writes.values())
    print(f"\n-- restart, {r.what}: watching in {r.watching_s:.1f} s; resumed {r.resumed}/{r.n} clusters, the last "
          f"{r.resumed_s:.1f} s after the start; last request at {r.quiet_s:.1f} s (then quiet)", flush=True)
    print(f"   requests {sum(r.requests.values())} ({sum(r.requests.values()) / r.n:.2f}/cluster): "
          f"{fmt_counter(r.requests)}")
    print(f"   writes {writes} ({writes / r.n:.2f}/cluster): {fmt_counter(r.writes) or 'none'}; error answers "
          f"{dict(r.errors) or 0}; CPU {r.cpu:.1f} s after the watches started; peak RSS {r.rss_mb:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="clusters (default 1000)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed to converge or resync")
    parser.add_argument("--quiet", type=float, default=30, help="seconds without a request that end a resync")
    parser.add_argument("--profile", action="store_true", help="py-spy record the first restart (CPU)")
    parser.add_argument("--kube-up",
                        default=os.environ.get(control_plane.ENV_UP_SCRIPT) or str(REPO.parent / "shared/kube/up.sh"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, audit)")
    parser.add_argument("--operator-command", default=None, help="our operator's executable (as in its image)")
    args = parser.parse_args(argv)
    os.environ[control_plane.ENV_UP_SCRIPT] = args.kube_up
    op = operators(args.operator_command)["ours"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-restart-", dir="/tmp"))
    print(SIMULATED)
    print(f"scratch: {scratch}; N={args.n}; {load()}", flush=True)
    t_start = time.monotonic()
    try:
        with Session(op, scratch / "run", Options(fleet=True, ours_command=args.operator_command)) as session:
            make_deployment(session.api, 1)
            session.start_operator(FOLLOW_ENV)
            assert session.proc is not None
            names = names_for(args.n)
            cpu0, t0 = cpu_seconds(session.proc.pid), time.time()
            session.create(names)
            done, missing = session.wait_converged(names, t0, args.timeout, ready=True)
            requests = session.requests()
            window = tally(requests, t0, time.time())
            print(f"\n-- {len(done)}/{args.n} converged (Running, worker Ready) in "
                  f"{max(done.values(), default=0):.1f} s; {sum(window.values()) / args.n:.2f} requests/cluster; "
                  f"operator CPU "
                  f"{cpu_seconds(session.proc.pid) - cpu0:.1f} s, peak RSS {memory_mb(session.proc.pid):.0f} MB; "
                  f"{load()}", flush=True)
            if missing:
                print(f"   NOT converged: {collections.Counter(missing.values()).most_common(5)}")
            time.sleep(args.quiet)

            print_stop(stop(session, "a replica follows (Deployment replicas 1)"), args.n)
            resync = restart(session, "finalizers kept", args.n, args.quiet, args.timeout,
                             scratch / "profile-restart.txt" if args.profile else None)
            print_resync(resync)
            scale_deployment(session.api, 0)
            print_stop(stop(session, "no replica follows (Deployment scaled to 0)"), args.n)
            print_resync(restart(session, "finalizers released before", args.n, args.quiet, args.timeout, None))
            scale_deployment(session.api, 1)
            print(f"\n-- failed starts ({load()})", flush=True)
            with socket.socket() as busy:
                busy.bind(("0.0.0.0", 0))
                busy.listen()
                port = busy.getsockname()[1]
                print("   " + failed_start(session, "metrics port busy", op.command,
                                          {"SEAMLESS_DASK_OPERATOR_METRICS_PORT": str(port)}))
                print("   " + failed_start(session, "health port busy", (op.command[0], "--liveness-port", str(port)),
                                          {"SEAMLESS_DASK_OPERATOR_METRICS_PORT": str(free_port())}))
            clusters_left = len(session.ns.primary)
            print(f"   (clusters in {NAMESPACE}: {clusters_left})")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\ntotal bench time {time.monotonic() - t_start:.0f} s; {load()}")
    print(SIMULATED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
