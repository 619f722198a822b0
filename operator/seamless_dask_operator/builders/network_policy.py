"""The cluster's NetworkPolicy: who may reach any of its pods, on any port.

Neither the scheduler nor a worker authenticates (unless ``spec.tls``): the
scheduler's HTTP API retires workers, and a worker's comm port runs whatever
function it is sent. So the policy selects every pod of the cluster (scheduler,
workers, their nannies and dashboards; a worker's ports are chosen when it
starts, so no port list could name them) and lets in only the cluster's own
pods, the operator and the peers the spec names (``spec.scheduler.allowFrom``;
by default the pods of the cluster's namespace: clients fetch results from the
workers directly). Pods of other namespaces and anything outside the Kubernetes
cluster do not get in. ``kubectl port-forward`` enters the pod's own network
namespace and is not affected; nor are the kubelet's probes. It is named after
the scheduler's Service, as it has been since it guarded the scheduler alone.
"""

from __future__ import annotations

from typing import Any

from seamless_dask_runtime.model.identity import CLUSTER_LABEL, MANAGED_BY, MANAGED_BY_LABEL, SCHEDULER

from ..resource import ClusterSpec
from .objects import ClusterRef, metadata

SAME_NAMESPACE: tuple[dict[str, Any], ...] = ({"podSelector": {}},)  # allowFrom when the spec says nothing
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def operator_peer(namespace: str, pod_labels: dict[str, str]) -> dict[str, Any]:
    """The operator's pods, wherever it runs (the chart passes its namespace and selector labels)."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
            "podSelector": {"matchLabels": dict(pod_labels)}}


def scheduler_network_policy(ref: ClusterRef, cluster: ClusterSpec,
                             operator: dict[str, Any] | None) -> dict[str, Any]:
    allowed = cluster.options.scheduler_allow_from
    peers = [{"podSelector": {"matchLabels": {CLUSTER_LABEL: ref.name}}},  # its workers (and the scheduler)
             *([operator] if operator else []),
             *(SAME_NAMESPACE if allowed is None else allowed)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ref, ref.scheduler_name, SCHEDULER),
        "spec": {
            "podSelector": {"matchLabels": {CLUSTER_LABEL: ref.name, MANAGED_BY_LABEL: MANAGED_BY}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers}],
        },
    }
