"""Benchmark: N clusters created at once, our operator vs the dask-kubernetes operator (not a timed test).

For each (operator, N) a fresh control plane (``shared/kube/up.sh``: etcd, kube-apiserver with an audit
log of the operator's requests, kube-controller-manager) is started, the operator's CRDs are installed,
and the operator runs as a separate process under a ServiceAccount of its own (cluster-admin), cluster-wide
and standalone (``bench/session.py``). Once its watches are set up, N custom resources are created at once
into one namespace from a thread pool, and the bench's watches follow until every cluster has converged:

* ``ours`` (``seamless-dask-operator --liveness-port 0``, ``spec.workers: {replicas: 1, maximum: 2}``):
  scheduler pod, Service, 1 worker pod, ``.status.phase`` Starting or Running, ``workersDesired`` 1;
* ``dask-kubernetes`` (``kopf run -m dask_kubernetes.operator.controller``, ``make_cluster_spec(name,
  n_workers=1)``): scheduler Deployment and pod, Service, DaskWorkerGroup, worker Deployment and pod,
  ``.status.phase`` Pending or Running.

Without ``--fleet`` there is no kubelet: pods stay Pending. With ``--fleet`` (PODS ARE SIMULATED) the
real kube-scheduler places them on fake nodes and a kubelet stand-in makes them Running and Ready and
answers the schedulers' HTTP API (``tests/support/fleet.py``); converged then also means: ours says
Running with ``workersReady`` 1, theirs says Running and its scheduler and worker pods are Ready.

Per run: wall time to the last converged cluster (and the median one), operator CPU seconds and peak RSS
(VmHWM), requests per cluster in the create window (all; writes; by verb/resource for the median cluster
and on average), duplicate creates (a create answered 409), error answers by code, the Events it posted
(a DriftRestored is false here: the bench deletes nothing), requests before the first create (setup),
and in an idle window after convergence: requests, writes, CPU and the schedulers' HTTP calls per cluster
per minute. Then a table, the per-cluster cost curve and the ours/theirs ratios.

Run: ``.venv/bin/python bench/reconcile.py [--n 20 100 300 1000] [--only ours|dask-kubernetes|both] [--fleet]``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.session import (  # noqa: E402
    SIMULATED,
    Operator,
    Options,
    Session,
    cpu_seconds,
    fmt_counter,
    is_duplicate_create,
    is_write,
    kube_events,
    load,
    memory_mb,
    operators,
    py_spy,
    tally,
)
from tests.support import control_plane  # noqa: E402


@dataclasses.dataclass
class Result:
    operator: str
    n: int
    fleet: bool = False
    converged: int = 0
    wall: float = float("nan")
    median_s: float = float("nan")
    cpu: float = float("nan")
    rss_mb: float = float("nan")
    rss_idle_mb: float = float("nan")
    startup_s: float = float("nan")
    apply_s: float = float("nan")
    last_write_s: float = float("nan")
    load_start: str = ""
    load_end: str = ""
    one_name: str = ""
    window: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    writes: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    one: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    setup: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    idle: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    duplicates: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    errors: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    events: collections.Counter[tuple[str, str]] = dataclasses.field(default_factory=collections.Counter)
    missing: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    idle_s: float = float("nan")
    idle_cpu: float = float("nan")
    idle_scheduler_calls: int = 0
    # The idle window's last minute (when it is longer than one): steady clusters are asked less often the longer
    # they stay steady (operator/.../decide/pacing.py), so this is the operator's settled cost.
    settled_s: float = float("nan")
    settled_cpu: float = float("nan")
    settled_scheduler_calls: int = 0
    after_requests: int = 0  # between convergence and the end of the idle window
    pod_names_reused: int = 0  # pod names that had more than one uid (a pod made twice)
    note: str = ""

    @property
    def requests(self) -> int:
        return sum(self.window.values())

    @property
    def per_cluster(self) -> float:
        return self.requests / self.n

    def per_cluster_min(self, count: float) -> float:
        return count / self.n / self.idle_s * 60 if self.idle_s else float("nan")


SETTLED = 60.0


def names_for(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"bench-{i:0{width}d}" for i in range(n)]


def run_one(op: Operator, n: int, scratch: Path, options: Options, timeout: float, idle: float,
            profile: bool) -> Result:
    result = Result(op.name, n, fleet=options.fleet, load_start=load())
    workdir = scratch / f"{op.name}-{n}{'-fleet' if options.fleet else ''}"
    with Session(op, workdir, options) as session:
        result.startup_s = session.start_operator()
        assert session.proc is not None
        pid = session.proc.pid
        names = names_for(n)
        spy = py_spy(pid, workdir / f"profile-{op.name}-{n}.txt") if profile else contextlib.nullcontext()
        with spy:
            cpu0 = cpu_seconds(pid)
            t_apply = time.time()
            result.apply_s = session.create(names)
            done, missing = session.wait_converged(names, t_apply, timeout, ready=options.fleet)
            t_conv = time.time()
            result.cpu = cpu_seconds(pid) - cpu0
            result.rss_mb = memory_mb(pid)
            result.converged = len(done)
            result.wall = max(done.values()) if len(done) == n else t_conv - t_apply
            result.median_s = statistics.median(done.values()) if done else float("nan")
            for what in missing.values():
                for part in what.split(", "):
                    result.missing[part] += 1
            if session.proc.poll() is not None:
                result.note = f"operator exited ({session.proc.returncode}) during the run"

            # Idle: nothing changes; what does the operator still do?
            t_idle0, cpu_i0, calls0 = time.time(), cpu_seconds(pid), session.scheduler_calls()
            settled = SETTLED if idle > SETTLED else 0.0
            time.sleep(idle - settled)
            t_settled, cpu_s0, calls_s0 = time.time(), cpu_seconds(pid), session.scheduler_calls()
            time.sleep(settled)
            t_idle1, cpu_i1, calls1 = time.time(), cpu_seconds(pid), session.scheduler_calls()
        result.idle_s, result.idle_cpu = t_idle1 - t_idle0, cpu_i1 - cpu_i0
        result.idle_scheduler_calls = calls1 - calls0
        if settled:
            result.settled_s, result.settled_cpu = t_idle1 - t_settled, cpu_i1 - cpu_s0
            result.settled_scheduler_calls = calls1 - calls_s0
        result.rss_idle_mb = memory_mb(pid, "VmRSS")
        result.rss_mb = max(result.rss_mb, memory_mb(pid))
        result.events = kube_events(session.api)
        with session.ns.lock:
            result.pod_names_reused = sum(1 for uids in session.ns.pod_uids.values() if len(uids) > 1)
        result.load_end = load()
        session.stop_operator()
        requests = session.requests()

    t_conv = t_apply + result.wall
    result.window = tally(requests, t_apply, t_conv)
    result.writes = tally(requests, t_apply, t_conv, only=is_write)
    ordered = sorted(done, key=done.__getitem__)
    result.one_name = ordered[len(ordered) // 2] if ordered else names[0]
    result.one = tally(requests, t_apply, t_conv, result.one_name)
    writes = [ts for ts, e in requests if t_apply <= ts <= t_idle1 and is_write(e)]
    result.last_write_s = max(writes) - t_apply if writes else float("nan")
    result.setup = tally(requests, 0, t_apply)
    result.idle = tally(requests, t_idle0, t_idle1)
    result.after_requests = sum(tally(requests, t_conv, t_idle1).values())
    result.duplicates = tally(requests, t_apply, t_idle1, only=is_duplicate_create)
    result.errors = collections.Counter(int((e.get("responseStatus") or {}).get("code") or 0)
                                        for ts, e in requests if t_apply <= ts <= t_idle1
                                        and int((e.get("responseStatus") or {}).get("code") or 0) >= 400)
    with contextlib.suppress(OSError):
        if "Traceback" in session.log.read_text(errors="replace"):
            result.note = (result.note + "; " if result.note else "") + f"Traceback in {session.log}"
    return result


def print_details(r: Result) -> None:
    print(f"\n== {r.operator}, N={r.n}{' (fleet: pods simulated)' if r.fleet else ''}: {r.converged}/{r.n} converged "
          f"in {r.wall:.2f} s (median cluster {r.median_s:.2f} s; operator's last write at {r.last_write_s:.2f} s; "
          f"creates sent in {r.apply_s:.2f} s; operator up in {r.startup_s:.1f} s)", flush=True)
    print(f"   {r.load_start} at the start, {r.load_end} at the end")
    if r.missing:
        print(f"   NOT converged: {dict(r.missing)}")
    print(f"   operator: {r.cpu:.2f} CPU s to converge; memory peak {r.rss_mb:.1f} MB, {r.rss_idle_mb:.1f} MB after "
          "the idle window")
    writes = sum(r.writes.values())
    print(f"   requests in the create window: {r.requests} ({r.per_cluster:.2f}/cluster; writes {writes / r.n:.2f}"
          f"/cluster: {fmt_counter(r.writes, r.n)})")
    print(f"   median cluster {r.one_name} (requests naming it): {sum(r.one.values())}: {fmt_counter(r.one)}")
    print(f"   window average per cluster: {fmt_counter(r.window, r.n)}")
    print(f"   duplicate creates (409): {sum(r.duplicates.values())} {fmt_counter(r.duplicates)}; "
          f"pod names made twice: {r.pod_names_reused}; error answers: {dict(r.errors) or 0}")
    print(f"   Events posted (type reason count): {fmt_counter(r.events) or 'none'}; DriftRestored (false: nothing was "
          f"deleted): {sum(c for (_, reason), c in r.events.items() if reason == 'DriftRestored')}")
    print(f"   setup before the first create: {sum(r.setup.values())}: {fmt_counter(r.setup)}")
    print(f"   idle {r.idle_s:.0f} s after convergence: {r.per_cluster_min(sum(r.idle.values())):.2f} "
          f"requests/cluster/min ({fmt_counter(r.idle) or 'none'}); CPU {r.idle_cpu / r.idle_s * 60:.2f} s/min; "
          f"scheduler HTTP calls {r.per_cluster_min(r.idle_scheduler_calls):.2f}/cluster/min; "
          f"requests after convergence {r.after_requests}")
    if r.settled_s == r.settled_s:  # not NaN: the idle window was longer than its last minute
        print(f"   settled (the idle window's last {r.settled_s:.0f} s): CPU {r.settled_cpu / r.settled_s * 60:.2f} "
              f"s/min; scheduler HTTP calls {r.settled_scheduler_calls / r.n / r.settled_s * 60:.2f}/cluster/min")
    if r.note:
        print(f"   note: {r.note}")


def print_table(results: list[Result]) -> None:
    print("\n    N  operator          fleet  converged  wall_s  median_s  cpu_s  rss_MB  req/cluster  writes/cl  "
          "dup_creates  drift_events  idle req/cl/min  idle cpu s/min")
    for r in results:
        drift = sum(c for (_, reason), c in r.events.items() if reason == "DriftRestored")
        print(f"{r.n:5d}  {r.operator:16s}  {'yes' if r.fleet else 'no':5s}  {r.converged:4d}/{r.n:<4d}  "
              f"{r.wall:6.2f}  {r.median_s:8.2f}  {r.cpu:5.2f}  {r.rss_mb:6.1f}  {r.per_cluster:11.2f}  "
              f"{sum(r.writes.values()) / r.n:9.2f}  {sum(r.duplicates.values()):11d}  {drift:12d}  "
              f"{r.per_cluster_min(sum(r.idle.values())):15.2f}  {r.idle_cpu / r.idle_s * 60:14.2f}")
    ours = sorted((r for r in results if r.operator == "ours"), key=lambda r: (r.fleet, r.n))
    if len(ours) > 1:
        print("\nper-cluster cost curve (ours): " + "; ".join(
            f"N={r.n}{'/fleet' if r.fleet else ''}: {r.per_cluster:.2f} req, {1000 * r.cpu / r.n:.1f} ms CPU, "
            f"{1000 * r.wall / r.n:.0f} ms wall" for r in ours))
    by = {(r.operator, r.n, r.fleet): r for r in results}
    for (name, n, fleet), theirs in sorted(by.items()):
        mine = by.get(("ours", n, fleet))
        if name != "dask-kubernetes" or mine is None:
            continue

        def q(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b else "n/a"

        print(f"{n:5d}{' fleet' if fleet else ''}  ours/theirs: wall {q(mine.wall, theirs.wall)}, cpu "
              f"{q(mine.cpu, theirs.cpu)}, rss {q(mine.rss_mb, theirs.rss_mb)}, req/cluster "
              f"{q(mine.per_cluster, theirs.per_cluster)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20, 100], help="clusters per run (default: 20 100)")
    parser.add_argument("--only", choices=("ours", "dask-kubernetes", "both"), default="both")
    parser.add_argument("--fleet", action="store_true",
                        help="run a simulated fleet (pods simulated): pods become Ready, schedulers answer")
    parser.add_argument("--nodes", type=int, default=50, help="fake nodes with --fleet (default 50)")
    parser.add_argument("--busy", action="store_true",
                        help="with --fleet: every scheduler has a client connected (busy, never idle)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run to converge (default 600)")
    parser.add_argument("--idle", type=float, default=30, help="seconds watched after convergence (default 30)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy record our operator (collapsed stacks, CPU) from the creates to the idle end")
    parser.add_argument("--kube-up",
                        default=os.environ.get(control_plane.ENV_UP_SCRIPT) or str(REPO.parent / "shared/kube/up.sh"),
                        help="up.sh of the local control plane")
    parser.add_argument("--census", action="store_true",
                        help="run our operator under bench/operator_census.py: its memory census every 10 s, "
                             "written to census.jsonl in the run's directory (use with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, audit, profiles)")
    parser.add_argument("--operator-command", default=None,
                        help="our operator's executable, e.g. from a venv with only '.[operator]' installed "
                             "(as in its image); default: this venv's seamless-dask-operator")
    parser.add_argument("--operator-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of our operator (repeatable); an empty value unsets the variable")
    args = parser.parse_args(argv)
    os.environ[control_plane.ENV_UP_SCRIPT] = args.kube_up  # always a fresh control plane, never $KUBECONFIG's
    options = Options(fleet=args.fleet, nodes=args.nodes, busy=args.busy, ours_command=args.operator_command,
                      operator_env=dict(item.split("=", 1) for item in args.operator_env))
    ops = operators(args.operator_command)
    if args.census:
        python = Path(ops["ours"].command[0]).parent / "python"
        ops["ours"] = dataclasses.replace(ops["ours"], command=(
            str(python), str(REPO / "bench/operator_census.py"), "census.jsonl", *ops["ours"].command[1:]))
    kinds = ["ours", "dask-kubernetes"] if args.only == "both" else [args.only]
    scratch = Path(tempfile.mkdtemp(prefix="bench-reconcile-", dir="/tmp"))
    if args.fleet:
        print(SIMULATED)
    print(f"scratch: {scratch}; runs: {[(k, n) for n in args.n for k in kinds]}; {load()}", flush=True)
    results = []
    t0 = time.monotonic()
    try:
        for n in args.n:
            for kind in kinds:
                result = run_one(ops[kind], n, scratch, options, args.timeout, args.idle,
                                 profile=args.profile and kind == "ours")
                print_details(result)
                results.append(result)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}")
    print_table(results)
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s; {load()}")
    if args.fleet:
        print(SIMULATED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
