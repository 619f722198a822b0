"""Repros of Seamless-side defects, on our wrapper and on the original (1 and 2: both show them).

1. Parallel nested transformations hang: N outer transformations started at
   once, each running 3 nested ones of its own, on one Dask worker with
   cores 2 (2 Seamless workers x throttle 3 = 6 threads). N = 8 finished in
   ~1-2 s every time; N = 9..12 hung (no result in 60 s) in most runs, on
   both wrappers, and sometimes finished: a race, not a fixed limit.
2. Two outer transformations nesting the *same* inner transformation at the
   same time: one fails with "Delegated transformation cancelled" (or
   "FutureCancelledError").
3. A ``seamless-run`` inside a transformation waits forever once outer
   ``seamless-run`` transformations hold every ``S`` slot (issue 13). A
   Dask worker has one ``S`` per Seamless worker (cores); a ``seamless-run``
   started inside a transformation finds ``SEAMLESS_DASK_SCHEDULER`` (set by
   seamless-dask's worker plugin, inherited by the pool), connects as a new
   client and submits its task with ``resources={"S": 1}``; only nested
   transformations delegated through the pool raise the worker's ``S``
   (seamless-dask's permission manager), a new client never does. The
   scheduler assigns the task to the worker anyway ("processing"), so
   adaptive scaling does not add one either. Cores 1: one outer
   ``seamless-run`` suffices; cores 2: two at once. The original hangs;
   ours finishes because its worker plugin sets ``SEAMLESS_DASK_SCHEDULER``
   empty before seamless-dask's ``setdefault``, so the inner ``seamless-run``
   runs in the outer one's job (``worker_process_environment``).

    bash bench/setup-original.sh
    .venv/bin/python bench/seamless_defects.py [--timeout 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.seamless_stack import make_home, stop_services  # noqa: E402

WRAPPERS = {"ours": ROOT / ".venv" / "bin", "original": ROOT / ".bench" / "original" / "bin"}
# (label, driver workload, cores per Dask worker, extra environment)
CASES = [("8 outer, own inner", "nested_parallel", 2, {"NESTED_OUTER": "8"}),
         ("12 outer, own inner", "nested_parallel", 2, {"NESTED_OUTER": "12"}),
         ("2 outer, shared inner", "nested_parallel", 2, {"NESTED_OUTER": "2", "NESTED_SHARED": "1"}),
         ("seamless-run in seamless-run, cores 1", "seamless_run_parallel", 1, {"SEAMLESS_RUN_OUTER": "1"}),
         ("2 of them at once, cores 2", "seamless_run_parallel", 2, {"SEAMLESS_RUN_OUTER": "2"})]


def run(venv_bin: Path, workload: str, cores: int, extra_env: dict[str, str], timeout: float) -> str:
    home = make_home(Path(tempfile.mkdtemp(prefix="seamless-defect-")), venv_bin, cores=cores)
    env = {**home.environment(), "PYTHONPATH": str(ROOT), **extra_env}
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "tests.support.seamless_driver", workload],
                              cwd=home.project, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no result after {time.monotonic() - started:.0f} s (hangs)"
    finally:
        stop_services(home)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return f"driver failed: {done.stderr[-300:]}"
    result = json.loads(lines[-1])["workloads"][workload]
    if result["error"]:
        return "error: " + result["error"].strip().splitlines()[-1]
    failed = [item for item in result["result"] or [] if isinstance(item, dict)]  # seamless-run's exits
    if failed:
        return f"failed: {failed[0]}"[:300]
    return f"ok in {result['seconds']:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", default="", help="run the cases whose label contains this")
    args = parser.parse_args()
    for case, workload, cores, extra_env in CASES:
        if args.only not in case:
            continue
        for name, venv_bin in WRAPPERS.items():
            os.environ.pop("NESTED_SHARED", None)
            outcome = run(venv_bin, workload, cores, extra_env, args.timeout)
            print(f"{case:38s} {name:9s} {outcome}", flush=True)


if __name__ == "__main__":
    main()
