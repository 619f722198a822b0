"""Benchmark: one cluster scaled 0 -> 500 -> 2,000 workers by our operator (not a timed test).

One control plane with the simulated fleet (PODS ARE SIMULATED; ``bench/session.py``; 50 nodes of 128
CPU: 2,000 one-CPU workers fit), our operator, one SeamlessDaskCluster created with ``workers.replicas``
0 and ``maximum`` 2,000 (the chart's default ``maxWorkersPerCluster``). Once it is Running, its
``replicas`` is set to each step's target (as ``kubectl scale`` does) and the bench follows its pods and
its status until ``.status`` says ``workersReady`` = ``workersDesired`` = the target.

Per step: seconds until every worker pod exists, until every one is Ready, until the status says so;
pod creates the operator sent (each worker once: creates = new workers, 409s 0, no pod name with two
uids, no delete), its other requests, its CPU seconds, the schedulers' HTTP calls, and the status at
the end (phase, workersReady/Desired, the WorkersReady condition).

Run: ``.venv/bin/python bench/scale.py [--steps 500 2000]``.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.session import (  # noqa: E402
    NAMESPACE,
    SIMULATED,
    Options,
    Session,
    code,
    cpu_seconds,
    fmt_counter,
    is_duplicate_create,
    load,
    memory_mb,
    operators,
    ours_body,
    tally,
)
from tests.support import control_plane  # noqa: E402

CLUSTER = "big"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 2000], help="worker targets in turn")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per step")
    parser.add_argument("--kube-up",
                        default=os.environ.get(control_plane.ENV_UP_SCRIPT) or str(REPO.parent / "shared/kube/up.sh"))
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--operator-command", default=None, help="our operator's executable (as in its image)")
    args = parser.parse_args(argv)
    os.environ[control_plane.ENV_UP_SCRIPT] = args.kube_up
    op = operators(args.operator_command)["ours"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-scale-", dir="/tmp"))
    print(SIMULATED)
    print(f"scratch: {scratch}; steps 0 -> {' -> '.join(map(str, args.steps))}; {load()}", flush=True)
    t_start = time.monotonic()
    maximum = max(args.steps)
    try:
        with Session(op, scratch / "run", Options(fleet=True, ours_command=args.operator_command)) as session:
            session.start_operator()
            assert session.proc is not None
            pid = session.proc.pid
            co = k8s.CustomObjectsApi(session.api)
            t0 = time.time()
            session.create([CLUSTER], body=lambda name: ours_body(name, replicas=0, maximum=maximum))
            while time.time() - t0 < args.timeout:
                with session.ns.lock:
                    status = (session.ns.primary.get(CLUSTER) or {}).get("status") or {}
                if status.get("phase") == "Running":
                    break
                time.sleep(0.2)
            print(f"cluster {CLUSTER} Running with 0 workers {time.time() - t0:.1f} s after its create", flush=True)
            previous = 0
            for target in args.steps:
                time.sleep(3.0)
                cpu0, calls0, t1 = cpu_seconds(pid), session.scheduler_calls(), time.time()
                co.patch_namespaced_custom_object(op.group, op.version, NAMESPACE, op.plural, CLUSTER,
                                                  {"spec": {"workers": {"replicas": target}}})
                while time.time() - t1 < args.timeout:
                    with session.ns.lock:
                        status = dict((session.ns.primary.get(CLUSTER) or {}).get("status") or {})
                    if status.get("workersReady") == target and status.get("workersDesired") == target:
                        break
                    time.sleep(0.2)
                t_status = time.time() - t1
                cpu = cpu_seconds(pid) - cpu0
                calls = session.scheduler_calls() - calls0
                with session.ns.lock:
                    workers = session.ns.pods_of(CLUSTER, "worker")
                    names = [n for n, p in session.ns.pods.items() if p.cluster == CLUSTER and p.component == "worker"]
                    created = [session.ns.seen_at[n] - t1 for n in names if session.ns.seen_at[n] >= t1]
                    ready = [session.ns.ready_at[n] - t1 for n in names if session.ns.ready_at.get(n, 0) >= t1]
                    twice = sum(1 for n in names if len(session.ns.pod_uids[n]) > 1)
                requests = [(ts, e) for ts, e in session.requests() if ts >= t1]
                window = tally(requests, t1, time.time())
                posts = window[("create", "pods")]
                dup = tally(requests, t1, time.time(), only=is_duplicate_create)
                errors = collections.Counter(code(e) for _, e in requests if code(e) >= 400)
                conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
                print(f"\n-- {previous} -> {target} workers ({load()}):", flush=True)
                print(f"   every worker pod exists {max(created, default=float('nan')):.1f} s after the scale, "
                      f"all Ready {max(ready, default=float('nan')):.1f} s, "
                      f"status workersReady={status.get('workersReady')} workersDesired={status.get('workersDesired')} "
                      f"phase={status.get('phase')} "
                      f"WorkersReady={conditions.get('WorkersReady')} at {t_status:.1f} s")
                print(f"   worker pods {len(workers)}; created by the operator {posts} (new workers "
                      f"{target - previous}); duplicate creates {sum(dup.values())}; pod names with two uids {twice}; "
                      f"deletes {window[('delete', 'pods')]}; error answers {dict(errors) or 0}")
                print(f"   operator requests {sum(window.values())}: {fmt_counter(window)}")
                print(f"   operator CPU {cpu:.1f} s, peak RSS {memory_mb(pid):.0f} MB; scheduler HTTP calls {calls}")
                previous = target
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
