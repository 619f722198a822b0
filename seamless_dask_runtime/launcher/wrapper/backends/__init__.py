"""Backends of the wrapper: what a cluster string names decides which one starts.

- a ``LocalCluster`` class → :mod:`.local`
- a dask-jobqueue cluster class (SLURM, PBS, OAR, SGE, LSF, HTCondor) → :mod:`.jobqueue`
- ``seamless_dask_runtime.kubernetes::SeamlessDaskCluster`` → our operator's resource (:mod:`.kubernetes`)
- ``dask_kubernetes.operator::KubeCluster`` → the dask-kubernetes operator (:mod:`.kubernetes`)
- any other ``Cluster`` class, factory function or instance → :mod:`.generic`,
  configured through Dask config as the original wrapper did.

Each returns a handle of :mod:`.base`, the one protocol the CLI knows.
"""

from __future__ import annotations

from typing import Any

from distributed.deploy.cluster import Cluster

from .base import Backend, ClusterHandle, LaunchRequest

__all__ = ["Backend", "ClusterHandle", "LaunchRequest", "choose_backend"]


def choose_backend(target: Any) -> Backend:
    """The backend for the object a cluster string resolved to.

    Backend modules are imported only when the target needs them: a library the
    cluster string did not import (dask_jobqueue, dask_kubernetes) costs start-up time.
    """
    import sys

    from distributed import LocalCluster

    from ....kubernetes import SeamlessDaskCluster

    if isinstance(target, type) and issubclass(target, SeamlessDaskCluster):
        from . import kubernetes

        return Backend("kubernetes", kubernetes.start_seamless)
    jobqueue_core = sys.modules.get("dask_jobqueue.core")
    if isinstance(target, type) and jobqueue_core is not None and issubclass(target, jobqueue_core.JobQueueCluster):
        from . import jobqueue

        return Backend("jobqueue", jobqueue.start)
    kube = sys.modules.get("dask_kubernetes.operator")
    if isinstance(target, type) and kube is not None and issubclass(target, kube.KubeCluster):
        from . import kubernetes

        return Backend("dask-kubernetes", kubernetes.start_kube_cluster)
    if isinstance(target, type) and issubclass(target, LocalCluster):
        from . import local

        return Backend("local", local.start)
    if isinstance(target, LocalCluster):
        raise ValueError(
            "the cluster string names a LocalCluster instance, which cannot take the chosen ports; "
            "name the class instead, e.g. 'distributed::LocalCluster'"
        )
    if isinstance(target, Cluster) or callable(target):
        from . import generic

        return Backend("generic", generic.start)
    raise ValueError(
        f"the cluster string names a {type(target).__name__}, not a Dask cluster class, function or instance"
    )
