"""From the cluster model to ``JobQueueCluster`` keyword arguments and job scripts.

Pure: no scheduler is started and nothing is submitted. The golden tests call
:func:`render_job_script`; the wrapper passes :func:`jobqueue_arguments` to
the real dask-jobqueue cluster class.
"""

from __future__ import annotations

from typing import Any

from ...model import sizing
from ...model.commands import worker_arguments
from ...model.parameters import ClusterParameters, FieldError, ParameterError
from ...model.worker_environment import export_lines, worker_environment
from .jobs import JOB_CLASSES
from .walltime import batch_walltime

BATCH_SYSTEMS = tuple(JOB_CLASSES)
PLACEHOLDER_SCHEDULER = "tcp://<scheduler_ip>:<scheduler_port>"

# The batch system's own variable for the CPUs a job got (seed 002: SLURM only).
_CPU_COUNT = {"slurm": "$SLURM_JOB_CPUS_PER_NODE"}
# dask-jobqueue renamed project → account for these; the others still say project.
_ACCOUNT_KEYWORD = {"slurm": "account", "pbs": "account"}


def system_of(cluster_class: type) -> str:
    """``SLURMCluster`` → ``"slurm"``, from the class's own job class."""
    job_cls = getattr(cluster_class, "job_cls", None)
    name = getattr(job_cls, "config_name", None)
    if not isinstance(name, str) or name not in JOB_CLASSES:
        raise ValueError(f"{cluster_class.__name__} is not a dask-jobqueue cluster this wrapper knows")
    return name


def job_script_prologue(params: ClusterParameters, system: str) -> list[str]:
    """User prologue lines, then the worker environment as ``export`` lines."""
    cpu_count = _CPU_COUNT.get(system)
    lines = list(params.job_script_prologue)
    lines += export_lines(worker_environment(params, cpu_count=cpu_count))
    if system == "slurm" and params.exclusive:
        lines.append("export SLURM_CPUS_PER_TASK=$SLURM_JOB_CPUS_PER_NODE")
    return lines


def jobqueue_arguments(params: ClusterParameters, system: str) -> dict[str, Any]:
    """Keyword arguments for ``dask_jobqueue.<System>Cluster`` (job part only)."""
    if system not in JOB_CLASSES:
        raise ValueError(f"unknown batch system {system!r}; known: {', '.join(BATCH_SYSTEMS)}")
    missing = []
    if params.memory is None:
        missing.append(FieldError("parameters.memory", None, f"is required for {system}; set it, e.g. '4GB'"))
    if system == "oar" and params.memory_per_core_property_name is None:
        missing.append(
            FieldError(
                "parameters.memory_per_core_property_name",
                None,
                "is required for OAR; set it to your site's memory property, e.g. 'memcore'",
            )
        )
    if missing:
        raise ParameterError(missing)
    assert params.memory is not None
    kwargs: dict[str, Any] = {
        "job_cls": JOB_CLASSES[system],
        "cores": sizing.job_cores(params),
        "memory": params.memory,
        "processes": sizing.worker_processes(params),
        "job_script_prologue": job_script_prologue(params, system),
        "seamless_worker_args": worker_arguments(params),
    }
    if system == "htcondor":
        # HTCondor has no walltime/queue directives; it does require a disk request.
        kwargs["disk"] = params.memory
    else:
        if params.walltime is not None:
            kwargs["walltime"] = batch_walltime(params.walltime, system)
        if params.partition is not None:
            kwargs["queue"] = params.partition
        if params.project is not None:
            kwargs[_ACCOUNT_KEYWORD.get(system, "project")] = params.project
    if params.job_extra_directives:
        kwargs["job_extra_directives"] = list(params.job_extra_directives)
    if system == "slurm":
        kwargs["job_mem"] = sizing.batch_memory(params.memory)
    if system == "oar":
        kwargs["memory_per_core_property_name"] = params.memory_per_core_property_name
        if params.resource_spec is not None:
            kwargs["resource_spec"] = params.resource_spec
    if system in ("sge", "pbs") and params.resource_spec is not None:
        kwargs["resource_spec"] = params.resource_spec
    return kwargs


def render_job_script(
    params: ClusterParameters, system: str, scheduler_address: str = PLACEHOLDER_SCHEDULER
) -> str:
    """The job script a worker job would run, without starting any scheduler."""
    kwargs = jobqueue_arguments(params, system)
    job_cls = kwargs.pop("job_cls")
    script: str = job_cls(scheduler_address, name="seamless-dask-worker", **kwargs).job_script()
    return script
