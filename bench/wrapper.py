"""Status file -> "running" latency: our seamless-dask-wrapper against the original, side by side.

Each round writes a fresh launcher status file (LocalCluster parameters),
starts one wrapper, and records (a) seconds until the file says running,
(b) seconds until a client got its first result, then stops it with SIGTERM.
Rounds alternate ours/original so machine drift hits both; the ratio is taken
pair by pair and its median printed.

    bench/setup-original.sh            # once: the original in .bench/original
    .venv/bin/python bench/wrapper.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client

ROOT = Path(__file__).resolve().parent.parent
PARAMETERS = {"cores": 1, "memory": "1GB", "maximum_jobs": 1, "walltime": "01:00:00"}


def one_round(command: str, cluster: str, parameters: dict) -> tuple[float, float]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-wrapper-"))
    status = workdir / "status.json"
    status.write_text(json.dumps({"workdir": str(workdir), "status": "starting", "parameters": parameters}))
    started = time.monotonic()
    proc = subprocess.Popen([command, cluster, "--port-range", "42000", "42999", "--host", "127.0.0.1",
                             "--status-file", str(status)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while True:
            try:
                contents = json.loads(status.read_text())
            except (json.JSONDecodeError, FileNotFoundError):
                contents = {}
            if contents.get("status") in ("running", "failed") or proc.poll() is not None:
                break
            time.sleep(0.01)
        running = time.monotonic() - started
        if contents.get("status") != "running":
            raise RuntimeError(f"{command}: {contents}")
        with Client(f"tcp://127.0.0.1:{contents['port']}", timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            client.submit(sum, [1, 2]).result()
        first_result = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return running, first_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ours", default=str(Path(sys.executable).parent / "seamless-dask-wrapper"))
    parser.add_argument("--original", default=str(ROOT / ".bench/original/bin/seamless-dask-wrapper"))
    parser.add_argument("--cluster", default="distributed::LocalCluster")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pure-dask", action="store_true", help="plain Dask workers on both sides")
    args = parser.parse_args()
    parameters = {**PARAMETERS, **({"pure_dask": True} if args.pure_dask else {})}
    if not Path(args.original).exists():
        print(f"original wrapper not found at {args.original}: run bench/setup-original.sh", file=sys.stderr)
        return 2
    one_round(args.ours, args.cluster, parameters)  # warm-up: imports and .pyc files
    one_round(args.original, args.cluster, parameters)
    ours, original = [], []
    for _ in range(args.rounds):
        ours.append(one_round(args.ours, args.cluster, parameters))
        original.append(one_round(args.original, args.cluster, parameters))
    print(f"wrapper latency, {args.cluster}, parameters {json.dumps(parameters)}, {args.rounds} rounds "
          f"alternating (seconds; median [min-max])")
    for label, index in (("status -> running", 0), ("first result", 1)):
        a = [r[index] for r in ours]
        b = [r[index] for r in original]
        ratio = [x / y for x, y in zip(a, b, strict=True)]
        print(f"  {label:18s} ours {statistics.median(a):6.2f} [{min(a):.2f}-{max(a):.2f}]   "
              f"original {statistics.median(b):6.2f} [{min(b):.2f}-{max(b):.2f}]   "
              f"ours/original median {statistics.median(ratio):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
