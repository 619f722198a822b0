"""LocalCluster backend: workers are child processes that inherit the worker environment.

The scheduler runs in this process and binds the chosen ports itself (:class:`.base.OwnPortsHandle`).
"""

from __future__ import annotations

import os
from typing import Any

import dask

from ....model import sizing
from ....model.dask_config import nest, scheduler_dask_config_flat
from ....model.worker_environment import worker_environment
from ....scheduler_preload import scheduler_options
from ...localcluster import LOCAL_CLUSTER_DASK_CONFIG, check_local_workers, local_cluster_arguments
from .base import LaunchRequest, OwnPortsHandle


def _available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def start(cluster_class: Any, request: LaunchRequest) -> OwnPortsHandle:
    params = request.params
    available = _available_cpus()
    check_local_workers(params, available)
    # Same variables a batch job script exports; nanny-spawned workers inherit them.
    cpu_count = sizing.local_cpu_count(params, available=available)
    os.environ.update(worker_environment(params, cpu_count=str(cpu_count)))
    dask.config.update(dask.config.config, nest({**LOCAL_CLUSTER_DASK_CONFIG, **scheduler_dask_config_flat(params)}),
                       priority="new")
    cluster = cluster_class(
        **local_cluster_arguments(
            params,
            host=request.host,
            scheduler_port=request.scheduler_port,
            dashboard_port=request.dashboard_port,
        ),
        scheduler_kwargs=scheduler_options(params),
    )
    return OwnPortsHandle(cluster, request)
