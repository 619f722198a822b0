"""A SeamlessDaskCluster naming a batch system: its scheduler pod runs the wrapper, so the jobs are the wrapper's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from distributed import Client
from seamless_dask_operator.builders import ClusterRef, scheduler_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.launcher.jobqueue import render_job_script
from seamless_dask_runtime.model.identity import PARAMETERS_VARIABLE
from seamless_dask_runtime.model.parameters import from_status_parameters
from tests.support.pods import container_env, start_container, stop_process
from tests.support.ports import free_port
from tests.support.slurm import squeue_job_ids

GOLDEN = Path(__file__).parent.parent / "golden"
REF = ClusterRef("hpc", "science", "uid-hpc")


def _scheduler_container(spec: dict) -> dict:
    return scheduler_pod(REF, parse_spec(spec))["spec"]["containers"][0]


def test_scheduler_pod_for_slurm_spec_makes_the_seed_job_script() -> None:
    container = _scheduler_container({
        "cluster": "dask_jobqueue::SLURMCluster", "cores": 24, "memory": "54000MB", "walltime": "01:00:00",
        "partition": "all", "interactive": True, "tmpdir": "/tmp", "workers": {"maximum": 10},
    })
    assert container["args"][:2] == ["seamless-dask-wrapper", "dask_jobqueue::SLURMCluster"]
    assert "--parameters-from-env" in container["args"]
    parameters = json.loads(container_env(container, "pod")[PARAMETERS_VARIABLE])
    script = render_job_script(from_status_parameters(parameters), "slurm")
    golden = (GOLDEN / "slurm_seamless.sh").read_text()
    assert [line for line in script.splitlines() if line.strip()] == \
        [line for line in golden.splitlines() if line.strip()]



@pytest.mark.slurm
def test_scheduler_pod_command_submits_real_slurm_jobs(slurm: None, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    container = _scheduler_container({
        "cluster": "dask_jobqueue::SLURMCluster", "cores": 1, "memory": "1GB", "walltime": "00:10:00",
        "partition": "debug", "interactive": True, "tmpdir": str(tmp_path), "workers": {"maximum": 1},
    })
    comm, dashboard = free_port(), free_port()
    status = tmp_path / "status.json"
    before = squeue_job_ids()
    # What a kubelet would run, on this host: same args and env, local ports and paths.
    proc = start_container(container, "hpc-scheduler-0",
                           {"8786": str(comm), "8787": str(dashboard), "0.0.0.0": "127.0.0.1",
                            "/run/seamless-dask/status.json": str(status)}, str(tmp_path / "scheduler.log"))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and json.loads(status.read_text() if status.exists() else "{}").get(
                "status") != "running":
            assert proc.poll() is None, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.2)
        assert json.loads(status.read_text())["port"] == comm
        with Client(f"tcp://127.0.0.1:{comm}", timeout=30) as client:
            client.wait_for_workers(1, timeout=90)
            jobs = squeue_job_ids() - before
            assert [w["name"] for w in client.scheduler_info()["workers"].values()] == [f"worker-{j}" for j in jobs]
            assert client.submit(pow, 2, 10).result() == 1024
    finally:
        stop_process(proc)
    deadline = time.monotonic() + 30
    while squeue_job_ids() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not squeue_job_ids() - before, "jobs left behind after the scheduler pod stopped"
