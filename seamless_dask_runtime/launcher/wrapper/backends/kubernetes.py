"""Kubernetes backends: our SeamlessDaskCluster, and dask-kubernetes' KubeCluster for sites running its operator.

- SeamlessDaskCluster: the operator starts the scheduler with our preload, reports the
  status and watches idleness (:class:`OperatorSupervisedHandle`).
- KubeCluster: a Dask cluster like any other; the runtime arrives through a client
  (:class:`.base.InjectingHandle`) and the wrapper's idle monitor supervises it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from ....kubernetes import DEFAULT_IMAGE, SeamlessDaskCluster, status_file_identity
from ....model import sizing
from ....model.parameters import ClusterParameters
from ....model.status import ClusterStatus
from ....model.worker_environment import worker_environment
from .base import ClusterHandle, InjectingHandle, LaunchRequest


def default_name(status_path: str | None) -> str:
    """A DNS-1035 name from the status file's name (``daskserver-x-proj.json`` → ``daskserver-x-proj``)."""
    stem = Path(status_path or "seamless-dask").name.split(".")[0].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", stem).strip("-")[:40] or "seamless-dask"
    return name if name[0].isalpha() else f"sd-{name}"[:40]


class OperatorSupervisedHandle(ClusterHandle):
    """Our SeamlessDaskCluster resource: the operator reports its addresses and deletes it when idle."""

    cluster: SeamlessDaskCluster

    def running_status(self) -> ClusterStatus:
        return self.cluster.status

    def supervise(self, stop: threading.Event, timeout: float | None) -> str | None:
        return self.cluster.supervise(stop)  # the operator applies the idle timeout


def start_seamless(cluster_class: type, request: LaunchRequest) -> OperatorSupervisedHandle:
    owner = status_file_identity(request.status_path) if request.status_path else None
    cluster = cluster_class(request.params, scheduler_port=request.scheduler_port,
                            dashboard_port=request.dashboard_port, default_name=default_name(request.status_path),
                            stop=request.stop, owner=owner)
    return OperatorSupervisedHandle(cluster, request)


def kube_cluster_arguments(params: ClusterParameters, request: LaunchRequest) -> dict[str, Any]:
    """dask-kubernetes ``KubeCluster`` keywords: our worker sizing and environment on its pods (pure)."""
    return {
        "name": params.name or default_name(request.status_path),
        "namespace": params.namespace,
        "image": params.image or DEFAULT_IMAGE,
        "n_workers": sizing.minimum_workers(params),
        "resources": sizing.worker_pod_resources(params),
        "env": worker_environment(params, cpu_count=str(sizing.worker_cores(params))),
        "worker_command": ["dask", "worker", "--nthreads", str(sizing.worker_threads(params))],
        "scheduler_forward_port": request.scheduler_port,
        "shutdown_on_close": True,
    }


def start_kube_cluster(cluster_class: type, request: LaunchRequest) -> InjectingHandle:
    cluster = cluster_class(**kube_cluster_arguments(request.params, request))
    cluster.adapt(minimum=sizing.minimum_workers(request.params), maximum=request.params.maximum_jobs)
    return InjectingHandle(cluster, request)
