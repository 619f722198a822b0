"""Pure builders: a validated SeamlessDaskCluster → the Kubernetes objects it owns.

Every function here takes plain values and returns plain dicts (the JSON the
API server stores), so golden tests compare them without any I/O.
"""

from typing import Any

from seamless_dask_runtime.model.identity import TEMPLATE_HASH_ANNOTATION

from ..resource import ClusterSpec
from .disruption_budget import scheduler_disruption_budget
from .network_policy import operator_peer, scheduler_network_policy
from .objects import ClusterRef, template_hash
from .scheduler import scheduler_pod, scheduler_template
from .service import scheduler_service
from .workers import worker_pod, worker_pod_name


def desired_children(ref: ClusterRef, cluster: ClusterSpec,
                     operator: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The scheduler's Service, NetworkPolicy and PodDisruptionBudget, applied as they are (pods are made one by
    one: the scheduler's when there is none, the workers' as scaling decides).

    ``operator``: the NetworkPolicy peer of the operator's pods (:func:`operator_peer`); None when the operator
    runs outside the cluster, where a NetworkPolicy does not see it anyway.

    Each carries the hash of what they all were built from: a restarted operator that finds the Service of this
    hash (in its watch) applies none again; one of another hash (an older operator's, without the budget) has
    all applied.
    """
    children = [scheduler_service(ref, cluster), scheduler_network_policy(ref, cluster, operator),
                scheduler_disruption_budget(ref)]
    applied = template_hash(children)
    for child in children:
        child["metadata"]["annotations"] = {TEMPLATE_HASH_ANNOTATION: applied}
    return children


__all__ = [
    "ClusterRef",
    "desired_children",
    "operator_peer",
    "scheduler_disruption_budget",
    "scheduler_pod",
    "scheduler_service",
    "scheduler_template",
    "worker_pod",
    "worker_pod_name",
]
