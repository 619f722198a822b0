"""seamless-dask-wrapper on a real Slurm: jobs are submitted, workers connect back, compute, scancel."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from distributed import Client

from tests.support.slurm import squeue_job_ids
from tests.support.wrapper import start_wrapper, stop, wait_for_exit, wait_for_status, write_launcher_status

pytestmark = pytest.mark.slurm


def _job_ids_after(before: set[str], timeout: float = 30) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = squeue_job_ids() - before
        if new:
            return new
        time.sleep(0.2)
    return set()


def test_slurm_jobs_run_seamless_workers(slurm: None, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    path = tmp_path / "status.json"
    write_launcher_status(path, {
        "cores": 1, "memory": "1GB", "walltime": "00:10:00", "partition": "debug",
        "maximum_jobs": 2, "interactive": True, "tmpdir": str(tmp_path),
    })
    before = squeue_job_ids()
    proc = start_wrapper(path, cluster="dask_jobqueue::SLURMCluster")
    try:
        status = wait_for_status(path, proc, timeout=120)
        assert status["status"] == "running", status.get("error")
        jobs = _job_ids_after(before)
        assert len(jobs) == 1  # interactive: one worker job at once
        with Client(f"tcp://127.0.0.1:{status['port']}", timeout=30) as client:
            client.wait_for_workers(1, timeout=90)
            info = client.scheduler_info()["workers"]
            names = {w["name"] for w in info.values()}
            assert names == {f"worker-{next(iter(jobs))}"}  # seed 002's worker-$SLURM_JOB_ID
            assert {w["nthreads"] for w in info.values()} == {3}  # cores x throttle
            throttle = client.run(lambda: __import__("os").environ.get("SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"))
            assert set(throttle.values()) == {"3"}
            assert client.submit(sum, [20, 22]).result() == 42
            script = subprocess.run(["scontrol", "write", "batch_script", next(iter(jobs)), "-"],
                                    capture_output=True, text=True).stdout
            assert "#SBATCH --cpus-per-task=3" in script and "--name worker-$SLURM_JOB_ID" in script
        proc.send_signal(signal.SIGTERM)
        assert wait_for_exit(proc, 90) == 0
        assert not path.exists()
        deadline = time.monotonic() + 30
        while jobs & squeue_job_ids() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not jobs & squeue_job_ids(), "worker job still queued after shutdown"
    finally:
        stop(proc)
        for job in squeue_job_ids() - before:
            subprocess.run(["scancel", job], check=False)


def test_missing_memory_for_slurm_is_a_named_error(slurm: None, tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "walltime": "00:10:00"})
    proc = start_wrapper(path, cluster="dask_jobqueue::SLURMCluster")
    try:
        status = wait_for_status(path, proc, timeout=60)
        assert status["status"] == "failed"
        assert "parameters.memory" in status["error"]
        assert wait_for_exit(proc) == 2
        assert json.loads(path.read_text())["parameters"] == {"cores": 1, "walltime": "00:10:00"}
    finally:
        stop(proc)


@pytest.mark.parametrize(("walltime", "limit"), [("55m", "55:00"), (3600, "1:00:00"), ("1h", "1:00:00")])
def test_walltime_spellings_reach_slurm_as_the_same_duration(slurm: None, tmp_path: Path, walltime: object,
                                                            limit: str) -> None:
    """sbatch rejects --time=55m and reads a bare 3600 as minutes: the wrapper converts both."""
    tmp_path.chmod(0o777)
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "memory": "1GB", "walltime": walltime, "interactive": True,
                                 "maximum_jobs": 2, "tmpdir": str(tmp_path)})
    before = squeue_job_ids()
    proc = start_wrapper(path, cluster="dask_jobqueue::SLURMCluster")
    try:
        status = wait_for_status(path, proc, timeout=120)
        assert status["status"] == "running", status.get("error")
        jobs = _job_ids_after(before)
        assert len(jobs) == 1
        shown = subprocess.run(["squeue", "-h", "-j", next(iter(jobs)), "-o", "%l"], capture_output=True,
                               text=True, check=True).stdout.strip()
        assert shown == limit
        proc.send_signal(signal.SIGTERM)
        assert wait_for_exit(proc, 90) == 0
    finally:
        stop(proc)
        for job in squeue_job_ids() - before:
            subprocess.run(["scancel", job], check=False)
