"""Repros of two Seamless-side defects, on our wrapper and on the original (both show them).

1. Parallel nested transformations hang: N outer transformations started at
   once, each running 3 nested ones of its own, on one Dask worker with
   cores 2 (2 Seamless workers x throttle 3 = 6 threads). N = 8 finished in
   ~1-2 s every time; N = 9..12 hung (no result in 60 s) in most runs, on
   both wrappers, and sometimes finished: a race, not a fixed limit.
2. Two outer transformations nesting the *same* inner transformation at the
   same time: one fails with "Delegated transformation cancelled" (or
   "FutureCancelledError").

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
CASES = [("8 outer, own inner", {"NESTED_OUTER": "8"}), ("12 outer, own inner", {"NESTED_OUTER": "12"}),
         ("2 outer, shared inner", {"NESTED_OUTER": "2", "NESTED_SHARED": "1"})]


def run(venv_bin: Path, extra_env: dict[str, str], timeout: float) -> str:
    home = make_home(Path(tempfile.mkdtemp(prefix="seamless-defect-")), venv_bin)
    env = {**home.environment(), "PYTHONPATH": str(ROOT), **extra_env}
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "tests.support.seamless_driver", "nested_parallel"],
                              cwd=home.project, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no result after {time.monotonic() - started:.0f} s (hangs)"
    finally:
        stop_services(home)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return f"driver failed: {done.stderr[-300:]}"
    result = json.loads(lines[-1])["workloads"]["nested_parallel"]
    if result["error"]:
        return "error: " + result["error"].strip().splitlines()[-1]
    return f"ok in {result['seconds']:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    for case, extra_env in CASES:
        for name, venv_bin in WRAPPERS.items():
            os.environ.pop("NESTED_SHARED", None)
            print(f"{case:24s} {name:9s} {run(venv_bin, extra_env, args.timeout)}", flush=True)


if __name__ == "__main__":
    main()
