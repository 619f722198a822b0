"""How many cores, threads, processes and workers a parameter set asks for.

Seed 002: job cores and worker threads are ``cores x transformation_throttle``
(each Seamless worker process runs up to ``throttle`` transformations);
pure Dask keeps ``cores`` and runs 2 threads; exclusive mode runs one thread
on a whole node. Lifetime rotation is ``walltime - stagger - grace``, off for a
single job and for pure Dask (seed 002's pure-Dask job script has none).
"""

from __future__ import annotations

import re
from typing import Any

from .durations import Size
from .parameters import ClusterParameters

PURE_DASK_THREADS = 2


def worker_cores(params: ClusterParameters) -> int:
    """CPUs of one worker (a pod's request, its CPU count): ``cores``, one in exclusive mode, which leaves it unset."""
    return params.cores or 1


def worker_pod_resources(params: ClusterParameters) -> dict[str, Any]:
    """A worker container's Kubernetes resources: its cores, and ``memory`` as request and limit (so Dask's memory
    limit, which it reads from the container, is the memory asked for)."""
    resources: dict[str, Any] = {"requests": {"cpu": str(worker_cores(params))}}
    if params.memory:
        quantity = kubernetes_quantity(params.memory)
        resources["requests"]["memory"] = quantity
        resources["limits"] = {"memory": quantity}
    return resources


def job_cores(params: ClusterParameters) -> int:
    """Cores requested from the batch system for one worker job."""
    if params.exclusive:
        return worker_cores(params)
    if params.job_cores is not None:
        return params.job_cores
    assert params.cores is not None
    if params.pure_dask:
        return params.cores
    return params.cores * params.transformation_throttle


def local_cpu_count(params: ClusterParameters, available: int) -> int:
    """``PYTHON_CPU_COUNT`` of a local worker: its job's cores, but never more than the machine offers.

    A batch job gets the CPUs it asked for (``$SLURM_JOB_CPUS_PER_NODE``); a
    local worker asks nobody, and ``cores x throttle`` may exceed the
    ``available`` CPUs. Seamless sizes thread pools from ``os.cpu_count()``.
    """
    return max(1, min(job_cores(params), available))


def worker_threads(params: ClusterParameters) -> int:
    """Threads of each Dask worker process."""
    if params.exclusive:
        return 1
    if params.worker_threads is not None:
        return params.worker_threads
    if params.pure_dask:
        return PURE_DASK_THREADS
    assert params.cores is not None
    return params.cores * params.transformation_throttle


def worker_processes(params: ClusterParameters) -> int:
    """Dask worker processes per job (one unless asked otherwise)."""
    if params.exclusive:
        return 1
    return params.processes or 1


def lifetime(params: ClusterParameters) -> str | None:
    """Worker lifetime for rolling restarts before the walltime kills the job (derived once by the model)."""
    return params.worker_lifetime


def worker_resources(params: ClusterParameters) -> dict[str, float] | None:
    """Dask resources of each worker; exclusive mode adds ``S = 1``."""
    resources = dict(params.dask_resources or {})
    if params.exclusive:
        resources.setdefault("S", 1.0)
    return resources or None


def minimum_workers(params: ClusterParameters) -> int:
    """Interactive clusters keep one worker alive when idle."""
    return 1 if params.interactive else 0


def adaptive_target_duration(params: ClusterParameters) -> float:
    """Target duration in seconds, scaled by the ``S`` resource (seed 002).

    The original wrapper divides by ``S`` (or by cores when there is no S):
    a worker with more slots finishes the same backlog sooner.
    """
    seconds = params.target_duration.seconds
    if params.pure_dask:
        return seconds
    resources = worker_resources(params) or {}
    factor = resources.get("S") or float(worker_cores(params))
    return seconds * factor if factor > 0 else seconds


_SLURM_MEMORY = re.compile(r"^\s*(\d+)\s*([KMGT])i?B\s*$", re.IGNORECASE)


def batch_memory(memory: str) -> str:
    """Memory as batch directives spell it: ``54000MB`` → ``54000M`` (seed 002)."""
    match = _SLURM_MEMORY.match(memory)
    if match:
        return f"{match.group(1)}{match.group(2).upper()}"
    return f"{max(1, Size(memory).bytes // 2**20)}M"


_QUANTITY_UNITS = (("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10),
                   ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def kubernetes_quantity(memory: str) -> str:
    """Dask size -> Kubernetes quantity of exactly the bytes Dask reads: ``4GiB`` -> ``4Gi``,
    ``54000MB`` -> ``54000M``, ``512m`` -> ``512M`` (Dask: megabytes; Kubernetes' ``m`` would be milli),
    ``4 kiB`` -> ``4Ki``, ``1.5GB`` -> ``1500M``."""
    size = Size(memory).bytes  # no parse when the model's Size is given
    spelled = re.fullmatch(r"(\d+)\s*([kmgtp])(i?)b?", memory.strip().lower())
    if spelled:
        number, prefix, binary = spelled.groups()
        unit = ("k" if prefix == "k" and not binary else prefix.upper()) + binary
        if int(number) * dict(_QUANTITY_UNITS)[unit] == size:  # keep the user's spelling when it is exact
            return f"{number}{unit}"
    for unit, factor in _QUANTITY_UNITS:
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
