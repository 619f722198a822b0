"""Parameters that would give a status file's author power they must not have, through the real wrapper.

Text with a line break would have become lines of a batch job script (item 8 of
issue 21); ``maximum_jobs: 10**6`` on the local backend would have tried to
start a million processes and stayed ``starting`` for ever (item 7). Each is a
``failed`` status naming the field, at once, with nothing started.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from seamless_dask_runtime.launcher.localcluster import LOCAL_WORKERS_PER_CPU
from seamless_dask_runtime.model.identity import MAX_WORKERS
from tests.support.wrapper import output, start_wrapper, stop, wait_for_exit, wait_for_status, write_launcher_status

WITHIN = 60  # seconds; Dask's imports alone take a few on a busy machine


def _fails_naming(path: Path, cluster: str, *needles: str) -> str:
    proc = start_wrapper(path, cluster)
    started = time.monotonic()
    try:
        status = wait_for_status(path, proc, timeout=WITHIN)
        assert wait_for_exit(proc, WITHIN) == 2
    finally:
        stop(proc)
    print(f"\nfailed after {time.monotonic() - started:.1f} s: {status.get('error')}")
    assert status["status"] == "failed", status
    for needle in needles:
        assert needle in status["error"], status["error"]
    text = output(proc)
    assert "Traceback" not in text
    assert "Start Nanny" not in text and "Scheduler at" not in text, "something was started"
    return status["error"]


@pytest.mark.parametrize(("key", "value"), [
    ("partition", "all\n#SBATCH --qos=top"),
    ("project", "acct\r\n#SBATCH -w node7"),
    ("tmpdir", "/scratch\nrm -rf ~"),
    ("job_extra_directives", ["--exclusive", "--qos=a\n#SBATCH --qos=top"]),
])
def test_line_break_in_job_text_fails_naming_the_field(tmp_path: Path, key: str, value: object) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "memory": "1GB", "walltime": "00:10:00", key: value})
    _fails_naming(path, "dask_jobqueue::SLURMCluster", f"parameters.{key}: ", "contains a", "(U+000")


def test_a_million_local_workers_fail_at_once(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "pure_dask": True, "maximum_jobs": 10**6})
    _fails_naming(path, "distributed::LocalCluster", "parameters.maximum_jobs", f"must be at most {MAX_WORKERS}")


def test_more_local_workers_than_the_machine_starts_fail_at_once(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    limit = LOCAL_WORKERS_PER_CPU * cpus
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "pure_dask": True, "maximum_jobs": min(limit + 1, MAX_WORKERS)})
    if limit + 1 > MAX_WORKERS:
        pytest.skip(f"{cpus} CPUs: the local limit {limit} is above the model's {MAX_WORKERS}")
    _fails_naming(path, "distributed::LocalCluster", "parameters.maximum_jobs",
                  f"offers {cpus} CPUs: at most {limit} ({LOCAL_WORKERS_PER_CPU} per CPU)")
