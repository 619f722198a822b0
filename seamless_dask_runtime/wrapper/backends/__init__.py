"""Backends of the wrapper: what a cluster string names decides which one starts.

- a ``LocalCluster`` class → :mod:`.local`
- a dask-jobqueue cluster class (SLURM, PBS, OAR, SGE, LSF, HTCondor) → :mod:`.jobqueue`
- ``seamless_dask_runtime.kubernetes::SeamlessDaskCluster`` → our operator's resource (:mod:`.kubernetes`)
- ``dask_kubernetes.operator::KubeCluster`` → the dask-kubernetes operator (:mod:`.kubernetes`)
- any other ``Cluster`` class, factory function or instance → :mod:`.generic`,
  configured through Dask config as the original wrapper did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributed.deploy.cluster import Cluster

from ...parameters import ClusterParameters


@dataclass(frozen=True)
class LaunchRequest:
    """What every backend needs besides the parameters."""

    params: ClusterParameters
    host: str
    scheduler_port: int
    dashboard_port: int
    log_directory: str | None = None
    status_path: str | None = None
    stop: threading.Event | None = None  # set by a stop signal; long waits give up on it


Starter = Callable[[Any, LaunchRequest], Cluster]


def scheduler_preloads(params: ClusterParameters) -> list[str]:
    """The preload pods use too: plugin and throttle are on the scheduler before any worker joins.

    It reads the parameters from the environment, so set them for this process.
    """
    if params.pure_dask:
        return []
    import json
    import os

    from ...commands import SCHEDULER_PRELOAD
    from ...identity import PARAMETERS_VARIABLE
    from ...parameters import to_status_parameters

    os.environ[PARAMETERS_VARIABLE] = json.dumps(to_status_parameters(params))
    return [SCHEDULER_PRELOAD]


def choose_backend(target: Any) -> tuple[str, Starter]:
    """``(name, starter)`` for the object a cluster string resolved to.

    Backend modules are imported only when the target needs them: a library the
    cluster string did not import (dask_jobqueue, dask_kubernetes) costs start-up time.
    """
    import sys

    from distributed import LocalCluster

    from ...kubernetes import SeamlessDaskCluster

    if isinstance(target, type) and issubclass(target, SeamlessDaskCluster):
        from . import kubernetes

        return "kubernetes", kubernetes.start_seamless
    jobqueue_core = sys.modules.get("dask_jobqueue.core")
    if isinstance(target, type) and jobqueue_core is not None and issubclass(target, jobqueue_core.JobQueueCluster):
        from . import jobqueue

        return "jobqueue", jobqueue.start
    kube = sys.modules.get("dask_kubernetes.operator")
    if isinstance(target, type) and kube is not None and issubclass(target, kube.KubeCluster):
        from . import kubernetes

        return "dask-kubernetes", kubernetes.start_kube_cluster
    if isinstance(target, type) and issubclass(target, LocalCluster):
        from . import local

        return "local", local.start
    if isinstance(target, LocalCluster):
        raise ValueError(
            "the cluster string names a LocalCluster instance, which cannot take the chosen ports; "
            "name the class instead, e.g. 'distributed::LocalCluster'"
        )
    if isinstance(target, Cluster) or callable(target):
        from . import generic

        return "generic", generic.start
    raise ValueError(
        f"the cluster string names a {type(target).__name__}, not a Dask cluster class, function or instance"
    )
