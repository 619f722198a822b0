"""Pure builders: a validated SeamlessDaskCluster → the Kubernetes objects it owns.

Every function here takes plain values and returns plain dicts (the JSON the
API server stores), so golden tests compare them without any I/O.
"""

from typing import Any

from ..resource import ClusterSpec
from .objects import ClusterRef
from .scheduler import scheduler_deployment
from .service import scheduler_service
from .workers import worker_pod, worker_pod_name


def desired_children(ref: ClusterRef, cluster: ClusterSpec) -> list[dict[str, Any]]:
    """The scheduler Deployment and Service (workers are scaled separately)."""
    return [scheduler_deployment(ref, cluster), scheduler_service(ref, cluster)]


__all__ = [
    "ClusterRef",
    "desired_children",
    "scheduler_deployment",
    "scheduler_service",
    "worker_pod",
    "worker_pod_name",
]
