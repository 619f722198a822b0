"""Seed 002's two SLURM job scripts are golden: same parameters, same script."""

from __future__ import annotations

from pathlib import Path

import pytest

from seamless_dask_runtime.launcher.jobqueue import BATCH_SYSTEMS, render_job_script
from seamless_dask_runtime.model.parameters import ParameterError, from_status_parameters

GOLDEN = Path(__file__).parent.parent / "golden"

# The status-file parameters exactly as seed 002 gives them.
SEED_PURE_DASK = {
    "pure_dask": True,
    "cores": 24,
    "memory": "54000MB",
    "walltime": "01:00:00",
    "partition": "all",
    "maximum_jobs": 4,
}
SEED_SEAMLESS = {
    "cores": 24,
    "memory": "54000MB",
    "walltime": "01:00:00",
    "partition": "all",
    "maximum_jobs": 10,
    "interactive": True,
    "tmpdir": "/tmp",
}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("parameters", "golden"),
    [(SEED_PURE_DASK, "slurm_pure_dask.sh"), (SEED_SEAMLESS, "slurm_seamless.sh")],
)
def test_seed_slurm_job_script_line_for_line(parameters: dict, golden: str) -> None:
    script = render_job_script(from_status_parameters(parameters), "slurm")
    assert _lines(script) == _lines((GOLDEN / golden).read_text())


def test_real_scheduler_address_replaces_placeholder() -> None:
    script = render_job_script(from_status_parameters(SEED_SEAMLESS), "slurm", "tcp://10.0.0.5:8786")
    assert _lines(script)[-1] == "tcp://10.0.0.5:8786"


def test_flags_appear_once() -> None:
    # The original wrapper emitted --nthreads and --name twice.
    script = render_job_script(from_status_parameters(SEED_SEAMLESS), "slurm")
    assert script.count("--nthreads") == 1
    assert script.count("--name") == 1


@pytest.mark.parametrize("system", BATCH_SYSTEMS)
def test_every_system_exports_the_throttle_environment(system: str) -> None:
    params = from_status_parameters({**SEED_SEAMLESS, "memory_per_core_property_name": "memcore"})
    script = render_job_script(params, system)
    assert "SEAMLESS_WORKER_TRANSFORMATION_THROTTLE=3" in script
    assert "--nthreads 72" in script
    assert "dask worker" in script


@pytest.mark.parametrize("system", BATCH_SYSTEMS)
def test_pure_dask_exports_no_seamless_variable(system: str) -> None:
    params = from_status_parameters({**SEED_PURE_DASK, "memory_per_core_property_name": "memcore"})
    script = render_job_script(params, system)
    assert "SEAMLESS_" not in script
    assert "--nthreads 2" in script


def test_internal_port_range_reaches_flags_and_config() -> None:
    params = from_status_parameters({**SEED_SEAMLESS, "internal-port-range": "60000:60100"})
    script = render_job_script(params, "slurm")
    assert "--worker-port 60000:60100" in script
    assert "--nanny-port 60000:60100" in script
    assert "export DASK_DISTRIBUTED__WORKER__PORT=60000:60100" in script


def test_extra_directives_string_or_list_and_project() -> None:
    one = render_job_script(
        from_status_parameters({**SEED_SEAMLESS, "job_extra_directives": "--gres=gpu:1", "project": "p1"}), "slurm"
    )
    assert "#SBATCH --gres=gpu:1" in one
    assert "#SBATCH --account=p1" in one
    many = render_job_script(
        from_status_parameters({**SEED_SEAMLESS, "job_extra_directives": ["--gres=gpu:1", "--qos=high"]}), "slurm"
    )
    directives = [line for line in _lines(many) if line.startswith("#SBATCH")]
    assert directives[-2:] == ["#SBATCH --gres=gpu:1", "#SBATCH --qos=high"]


def test_exclusive_mode_one_thread_and_s_resource() -> None:
    params = from_status_parameters({"exclusive": True, "memory": "4GB", "walltime": "00:30:00", "maximum_jobs": 2})
    script = render_job_script(params, "slurm")
    assert "--nthreads 1" in script
    assert "export SEAMLESS_DASK_QUEUE_EXCLUSIVE=1" in script
    assert "export DASK_DISTRIBUTED__WORKER__RESOURCES='{\"S\": 1.0}'" in script
    assert "export SLURM_CPUS_PER_TASK=$SLURM_JOB_CPUS_PER_NODE" in script
    # The nanny environ must expand the CPU count in the job, so it is double-quoted.
    assert '"{\\"OMP_NUM_THREADS\\": \\"$SLURM_JOB_CPUS_PER_NODE\\"' in script


# -- no parameter adds a line to a job script (issue 21, item 8) ---------------------------------------------------

# A value of each free-text field that reaches the job script, and where it shows there.
REACHES_THE_SCRIPT = {
    "partition": ("q1", {"slurm", "pbs", "sge", "lsf", "oar"}),
    "project": ("acct1", {"slurm", "pbs", "sge", "lsf", "oar"}),
    "tmpdir": ("/scratch/x", set(BATCH_SYSTEMS)),
    "resource_spec": ("nodes=1", {"pbs", "sge", "oar"}),
    "memory_per_core_property_name": ("memcore", {"oar"}),
    "job_extra_directives": (["--qos=q1"], {"slurm", "pbs", "sge", "lsf", "oar"}),
    "extra_dask_config": ({"distributed.worker.marker-key": "v1"}, set(BATCH_SYSTEMS)),
}
BASE = {**SEED_SEAMLESS, "memory_per_core_property_name": "memcore"}
INJECTED = "\n#SBATCH --qos=top"


def _with_injection(value: object) -> object:
    if isinstance(value, list):
        return [value[0] + INJECTED]
    if isinstance(value, dict):
        [(key, text)] = value.items()
        return {key: text + INJECTED}
    return f"{value}{INJECTED}"


# HTCondor's extra directives are a mapping in dask-jobqueue: a list is its own error there.
CASES = [(key, system) for key in sorted(REACHES_THE_SCRIPT) for system in BATCH_SYSTEMS
         if (key, system) != ("job_extra_directives", "htcondor")]


@pytest.mark.parametrize(("key", "system"), CASES)
def test_text_reaching_the_script_cannot_add_a_line(key: str, system: str) -> None:
    value, systems = REACHES_THE_SCRIPT[key]
    script = render_job_script(from_status_parameters({**BASE, key: value}), system)
    shown = str(value[0] if isinstance(value, list) else value).strip("{}").split(": ")[-1].strip("'")
    assert (shown in script) == (system in systems), script  # the field really reaches this script
    with pytest.raises(ParameterError) as info:
        render_job_script(from_status_parameters({**BASE, key: _with_injection(value)}), system)
    assert [e.field for e in info.value.errors] == [f"parameters.{key}"]
    assert "newline (U+000A)" in info.value.errors[0].message
