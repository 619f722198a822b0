"""Real Seamless on a real Slurm: the launcher starts our wrapper with ``dask_jobqueue::SLURMCluster``;
workers are batch jobs that the Seamless adaptive target asks for; transformations run in their pool."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.integration.test_real_seamless import run_driver, workload
from tests.support.seamless_stack import make_home, missing_stack, service_log, stop_services, wrapper_script
from tests.support.slurm import PARTITION, squeue_job_ids

VENV_BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(600)]

# Open defect (issue 13): inside a Slurm job the Seamless pool gets its remote clients and spawns, but the
# first transformation's task never returns (worker log: execute('base-...') until the job is cancelled).
# Opt in to reproduce it; the default suite must not spend 4 minutes on a known hang.
if os.environ.get("SDO_SEAMLESS_SLURM") != "1":
    pytest.skip("known hang of Seamless transformations in Slurm worker jobs (issue 13); "
                "SDO_SEAMLESS_SLURM=1 runs it", allow_module_level=True)

if missing_stack(VENV_BIN):
    pytest.skip(f"the real Seamless stack is not installed (missing {', '.join(missing_stack(VENV_BIN))})",
                allow_module_level=True)


def test_seamless_transformations_on_slurm_jobs(slurm: None, tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    home = make_home(tmp_path, VENV_BIN, cores=2, maximum_jobs=2, slurm_partition=PARTITION)
    before = squeue_job_ids()
    try:
        report = run_driver(home, "simple", "parallel", "nested", "seamless_run")
        script = wrapper_script(home)
        assert script is not None and "seamless_dask_runtime.wrapper.cli" in Path(script).read_text()
        assert workload(report, "simple")["result"] == 42
        assert workload(report, "parallel")["result"] == sum(i * i for i in range(20))
        assert workload(report, "nested")["result"] == [0, 10, 20]
        assert workload(report, "seamless_run")["result"].splitlines()[-1] == "nested-run-ok"
        assert squeue_job_ids() - before, "no Slurm job ran the work"
        log = service_log(home, "daskserver")
        assert "Seamless adaptive target active" in log and "adaptive target" in log
        rerun = workload(run_driver(home, "rerun"), "rerun")
        assert rerun["transitions"] == 0, rerun
    finally:
        stop_services(home)
