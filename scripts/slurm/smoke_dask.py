"""Smoke test: dask-jobqueue SLURMCluster against the local test Slurm.

Usage (after scripts/slurm/up.sh):
    /work/venv/bin/python scripts/slurm/smoke_dask.py [LOG_DIR]

Starts a SLURMCluster, scales to one worker job, computes on it, checks the
job is visible in squeue while running, and that close() removes it.
Prints timings. Exit code 0 on success.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dask_jobqueue import SLURMCluster
from distributed import Client


def squeue_ids() -> set[str]:
    """Return the ids of all jobs currently known to squeue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def main() -> int:
    """Run the smoke test; return a process exit code."""
    log_dir = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="sdo-slurm-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_dir.chmod(0o777)  # the job's user must be able to write here
    t0 = time.monotonic()
    cluster = SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        interface="lo",
        python=sys.executable,
        queue="debug",
        log_directory=str(log_dir),
        walltime="00:10:00",
    )
    print(cluster.job_script())
    try:
        with Client(cluster) as client:
            t1 = time.monotonic()
            cluster.scale(1)
            client.wait_for_workers(1, timeout=120)
            t2 = time.monotonic()
            jobs = set(cluster.workers)  # job names; map to slurm ids below
            slurm_ids = {w.job_id for w in cluster.workers.values()}
            running = squeue_ids()
            assert slurm_ids <= running, f"jobs {slurm_ids} not in squeue {running}"
            result = client.submit(lambda x: x + 1, 41).result(timeout=60)
            assert result == 42, result
            print(f"worker jobs {jobs} slurm ids {slurm_ids}; result={result}")
            print(f"cluster start {t1 - t0:.2f}s, worker join {t2 - t1:.2f}s")
    finally:
        t3 = time.monotonic()
        cluster.close()
        print(f"close {time.monotonic() - t3:.2f}s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and slurm_ids & squeue_ids():
        time.sleep(0.5)
    left = slurm_ids & squeue_ids()
    assert not left, f"jobs still queued after close(): {left}"
    print("OK: jobs cancelled on close()")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
