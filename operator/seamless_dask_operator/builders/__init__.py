"""Pure builders: a validated SeamlessDaskCluster → the Kubernetes objects it owns.

Every function here takes plain values and returns plain dicts (the JSON the
API server stores), so golden tests compare them without any I/O.
"""

from typing import Any

from ..resource import ClusterSpec
from .network_policy import operator_peer, scheduler_network_policy
from .objects import ClusterRef
from .scheduler import scheduler_pod, scheduler_template
from .service import scheduler_service
from .workers import worker_pod, worker_pod_name


def desired_children(ref: ClusterRef, cluster: ClusterSpec,
                     operator: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The scheduler's Service and NetworkPolicy, applied as they are (pods are made one by one: the scheduler's
    when there is none, the workers' as scaling decides).

    ``operator``: the NetworkPolicy peer of the operator's pods (:func:`operator_peer`); None when the operator
    runs outside the cluster, where a NetworkPolicy does not see it anyway.
    """
    return [scheduler_service(ref, cluster), scheduler_network_policy(ref, cluster, operator)]


__all__ = [
    "ClusterRef",
    "desired_children",
    "operator_peer",
    "scheduler_pod",
    "scheduler_service",
    "scheduler_template",
    "worker_pod",
    "worker_pod_name",
]
