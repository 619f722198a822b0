"""Pure builders: a validated SeamlessDaskCluster → the Kubernetes objects it owns.

Every function here takes plain values and returns plain dicts (the JSON the
API server stores), so golden tests compare them without any I/O.
"""

from .objects import ClusterRef, desired_children
from .scheduler import scheduler_deployment
from .service import scheduler_service
from .workers import worker_pod, worker_pod_name

__all__ = [
    "ClusterRef",
    "desired_children",
    "scheduler_deployment",
    "scheduler_service",
    "worker_pod",
    "worker_pod_name",
]
