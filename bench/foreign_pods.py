"""Benchmark: what pods that are not ours cost our operator (not a timed test).

One control plane with the simulated fleet (PODS ARE SIMULATED; ``bench/session.py``), our operator
cluster-wide, K SeamlessDaskClusters converged in namespace ``bench``. Then ``--pods`` pods that are not
the operator's go into the same (watched) namespace and through their whole start (scheduled, Running,
Ready: every step is a pod event the API server could stream): most are plain pods (``app: foreign``), a
tenth carry dask-kubernetes' labels (``dask.org/cluster-name``, ``dask.org/component``) but not our
``app.kubernetes.io/managed-by``.

Printed: the operator's resident memory (VmRSS) and peak (VmHWM) before and after, its CPU seconds in
the window from the first create until every foreign pod is Ready against what its baseline rate (the
same K clusters, nothing else happening, measured before and after) predicts for that window, and its
API requests in the window.

Run: ``.venv/bin/python bench/foreign_pods.py [--pods 10000] [--clusters 20]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.reconcile import names_for  # noqa: E402
from bench.session import (  # noqa: E402
    NAMESPACE,
    SIMULATED,
    Options,
    Session,
    cpu_seconds,
    fmt_counter,
    load,
    memory_mb,
    operators,
    tally,
)
from tests.support import control_plane  # noqa: E402


def foreign_pod(i: int) -> dict[str, Any]:
    labels = {"app": "foreign"}
    if i % 10 == 0:  # like dask-kubernetes' pods: our cluster and component labels, not our managed-by
        labels.update({"dask.org/cluster-name": f"theirs-{i // 10:04d}", "dask.org/component": "worker"})
    return {"metadata": {"name": f"foreign-{i:05d}", "labels": labels},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def baseline(pid: int, seconds: float) -> float:
    """The operator's CPU seconds per second over ``seconds`` of nothing happening."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=10_000, help="foreign pods (default 10000)")
    parser.add_argument("--clusters", type=int, default=20, help="our clusters (default 20)")
    parser.add_argument("--baseline", type=float, default=60, help="seconds of each baseline window (default 60)")
    parser.add_argument("--threads", type=int, default=16, help="creating threads (default 16)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--kube-up",
                        default=os.environ.get(control_plane.ENV_UP_SCRIPT) or str(REPO.parent / "shared/kube/up.sh"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--operator-command", default=None, help="our operator's executable (as in its image)")
    args = parser.parse_args(argv)
    os.environ[control_plane.ENV_UP_SCRIPT] = args.kube_up
    op = operators(args.operator_command)["ours"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-foreign-", dir="/tmp"))
    print(SIMULATED)
    print(f"scratch: {scratch}; {args.pods} foreign pods, {args.clusters} clusters; {load()}", flush=True)
    t_start = time.monotonic()
    try:
        with Session(op, scratch / "run", Options(fleet=True, ours_command=args.operator_command)) as session:
            session.start_operator()
            assert session.proc is not None
            pid = session.proc.pid
            names = names_for(args.clusters)
            t0 = time.time()
            session.create(names)
            done, _ = session.wait_converged(names, t0, args.timeout, ready=True)
            print(f"{len(done)}/{args.clusters} clusters converged (Running, worker Ready) in "
                  f"{max(done.values(), default=0):.1f} s", flush=True)
            time.sleep(10)
            rate0 = baseline(pid, args.baseline)
            rss0, hwm0 = memory_mb(pid, "VmRSS"), memory_mb(pid)
            print(f"before: VmRSS {rss0:.1f} MB, VmHWM {hwm0:.1f} MB; baseline CPU {rate0 * 60:.2f} s/min; {load()}",
                  flush=True)

            core = k8s.CoreV1Api(session.api)
            cpu0, t1 = cpu_seconds(pid), time.time()

            def create(i: int) -> None:
                core.create_namespaced_pod(NAMESPACE, foreign_pod(i), _preload_content=False).drain_conn()

            with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(create, range(args.pods)))
            created = time.time() - t1
            while time.time() - t1 < args.timeout:
                with session.ns.lock:
                    ready = sum(1 for name in session.ns.ready_at if name.startswith("foreign-"))
                if ready >= args.pods:
                    break
                time.sleep(1.0)
            t2 = time.time()
            cpu = cpu_seconds(pid) - cpu0
            rss1, hwm1 = memory_mb(pid, "VmRSS"), memory_mb(pid)
            print(f"{args.pods} foreign pods created in {created:.0f} s, {ready} Ready after {t2 - t1:.0f} s; {load()}",
                  flush=True)
            rate1 = baseline(pid, args.baseline)
            rss2 = memory_mb(pid, "VmRSS")
            window = t2 - t1
            expected = window * (rate0 + rate1) / 2
            requests = tally(session.requests(), t1, t2)
            print(f"\noperator memory: VmRSS {rss0:.1f} -> {rss1:.1f} MB ({rss1 - rss0:+.1f}), "
                  f"{rss2:.1f} MB after the second baseline ({rss2 - rss0:+.1f}); VmHWM {hwm0:.1f} -> {hwm1:.1f} MB "
                  f"({hwm1 - hwm0:+.1f})")
            print(f"operator CPU in the {window:.0f} s window: {cpu:.2f} s; its baseline rate ({rate0 * 60:.2f} and "
                  f"{rate1 * 60:.2f} s/min before and after) predicts {expected:.2f} s: {cpu - expected:+.2f} s "
                  f"({(cpu - expected) / args.pods * 1e6:+.0f} us per foreign pod)")
            print(f"operator API requests in the window: {sum(requests.values())} {fmt_counter(requests)}")
            stats = session.fleet.stats() if session.fleet is not None else {}
            print(f"fleet: {stats.get('start')} pods started by the stand-in, {stats.get('watch_events')} pod events "
                  "it watched (the API server streamed as many to any unfiltered pod watch)")
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
