"""Real Seamless on a real Slurm: the launcher starts our wrapper with ``dask_jobqueue::SLURMCluster``;
workers are batch jobs that the Seamless adaptive target asks for; transformations run in their pool.

Cores 1 per job (one Seamless worker, one ``S`` slot per Dask worker): the configuration in which a
``seamless-run`` inside a transformation used to wait forever for the slot its parent holds (issue 13,
a seamless-dask mechanism, on any backend; ``bench/seamless_defects.py``). Our worker plugin leaves
``SEAMLESS_DASK_SCHEDULER`` empty, so the inner ``seamless-run`` runs in the outer one's job.

The daskserver's ``--timeout`` is short (20 s): once the second user process left, the wrapper stops
and its jobs end, although seamless-dask's client inside each job's Dask worker stays connected (on
a batch system that client kept the jobs, and the allocation, until their walltime).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_real_seamless import run_driver, workload
from tests.support.seamless_stack import (
    SeamlessHome,
    job_logs,
    job_pool_processes,
    make_home,
    missing_stack,
    service_log,
    service_pids,
    status_file,
    stop_services,
    wait_gone,
    wrapper_script,
)
from tests.support.slurm import PARTITION, squeue_job_ids

VENV_BIN = Path(sys.executable).parent
TIMEOUT = 20  # the daskserver's --timeout

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(600)]

if missing_stack(VENV_BIN):
    pytest.skip(f"the real Seamless stack is not installed (missing {', '.join(missing_stack(VENV_BIN))})",
                allow_module_level=True)


@dataclass
class Session:
    home: SeamlessHome
    script: str | None  # the seamless-dask-wrapper the launcher ran
    report: dict[str, Any]
    rerun: dict[str, Any]
    jobs: set[str]
    pool: dict[int, bool]
    stopped_after: float | None  # seconds from the last client's exit to the wrapper's and its jobs' end
    jobs_left: set[str]
    status_file_left: bool


@pytest.fixture(scope="module")
def session(slurm: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    root = tmp_path_factory.mktemp("seamless-slurm")
    root.chmod(0o777)
    home = make_home(root, VENV_BIN, cores=1, maximum_jobs=2, slurm_partition=PARTITION)
    before = squeue_job_ids()
    timeout = {"DASKSERVER_TIMEOUT": str(TIMEOUT)}
    try:
        report = run_driver(home, "simple", "parallel", "nested", "seamless_run", "seamless_run_parallel",
                            **timeout)
        jobs = squeue_job_ids() - before
        pool = job_pool_processes(jobs)
        script = wrapper_script(home)
        rerun = run_driver(home, "rerun", **timeout)  # a new process, well within the timeout
        left = time.monotonic()
        wrapper = service_pids(home)["daskserver"]
        deadline = left + TIMEOUT + 30
        stopped = wait_gone(wrapper, deadline)
        while (squeue_job_ids() & jobs) and time.monotonic() < deadline:
            time.sleep(0.5)
        jobs_left = squeue_job_ids() & jobs
        stopped_after = time.monotonic() - left if stopped and not jobs_left else None
        yield Session(home, script, report, rerun, jobs, pool, stopped_after, jobs_left,
                      status_file(home, "daskserver") is not None)
    finally:
        stop_services(home)
        print(service_log(home, "daskserver")[-8000:], job_logs(home)[-5000:])  # shown when a test failed


def test_the_launcher_starts_our_wrapper_and_slurm_jobs_run_the_work(session: Session) -> None:
    script = session.script
    assert script is not None and "seamless_dask_runtime.launcher.wrapper.cli" in Path(script).read_text(), script
    assert session.jobs, "no Slurm job ran the work"
    assert workload(session.report, "parallel")["transitions"] > 0


def test_simple_parallel_and_nested_transformations(session: Session) -> None:
    report = session.report
    assert workload(report, "simple")["result"] == 42
    assert workload(report, "parallel")["result"] == sum(i * i for i in range(20))
    assert workload(report, "nested")["result"] == [0, 10, 20]


def test_seamless_run_inside_a_transformation_with_one_seamless_worker_per_job(session: Session) -> None:
    report = session.report
    result = workload(report, "seamless_run")["result"]
    assert isinstance(result, str) and result.splitlines()[-1] == "nested-run-ok", result
    both = workload(report, "seamless_run_parallel")["result"]
    assert [out.splitlines()[-1] if isinstance(out, str) else out for out in both] == [
        "nested-run-0-ok", "nested-run-1-ok"], both


def test_every_pool_process_in_the_jobs_started_with_the_remote_clients(session: Session) -> None:
    pool = session.pool
    assert pool, "no Seamless pool process under the jobs' Dask workers"
    assert all(pool.values()), f"pool processes without SEAMLESS_REMOTE_CLIENTS: {pool}"


def test_seamless_asks_its_own_permission_manager_never_ours(session: Session) -> None:
    throttles = session.report["throttles"]
    # seamless-dask's manager in each job's Dask worker: throttle 3 x 1 Seamless worker.
    assert throttles["seamless"] and set(throttles["seamless"]) == {3}, throttles
    ours = throttles["ours"]
    assert ours["granted_total"] == ours["denied_total"] == ours["in_flight"] == 0, ours


def test_the_logs_tell_what_happened(session: Session) -> None:
    home = session.home
    log = service_log(home, "daskserver")
    for line in ("Seamless adaptive target active", "adaptive target",
                 "distributed.scheduler - INFO - Register worker",  # dask-jobqueue silenced these
                 "seamless-dask-wrapper INFO running: scheduler"):
        assert line in log, f"{line!r} missing from the wrapper's log:\n{log[-3000:]}"
    jobs = job_logs(home)
    for line in ("Seamless environment set in Dask worker", "Set remote clients inside Dask worker",
                 "Spawned Seamless workers inside Dask worker"):
        assert line in jobs, f"{line!r} missing from the jobs' logs:\n{jobs[-3000:]}"
    assert "Run out-of-band function" not in log + jobs, "seamless-dask's cancel polls drown the logs"


def test_a_new_process_is_served_from_cache_without_dask_tasks(session: Session) -> None:
    rerun = workload(session.rerun, "rerun")
    assert rerun["result"] == [42, sum(i * i for i in range(20)), [0, 10, 20]]
    assert rerun["transitions"] == 0, f"the scheduler ran tasks for cached work: {rerun}"


def test_the_jobs_end_once_the_last_client_left(session: Session) -> None:
    assert session.stopped_after is not None, (
        f"{TIMEOUT + 30} s after the last client left (--timeout {TIMEOUT}) the wrapper or Slurm jobs "
        f"{sorted(session.jobs_left)} still run:\n{service_log(session.home, 'daskserver')[-3000:]}")
    assert not session.status_file_left
    assert f"shutting down: idle for {TIMEOUT} s" in service_log(session.home, "daskserver")
    print(f"wrapper and jobs gone {session.stopped_after:.1f} s after the last client left (--timeout {TIMEOUT})")
