"""The scheduler's NetworkPolicy: who may reach its comm port and its HTTP API.

The scheduler has no authentication (unless ``spec.tls``), and its HTTP API
retires workers: only the cluster's own pods, the operator and the peers the
spec names (``spec.scheduler.allowFrom``; by default the pods of the cluster's
namespace) get through. Pods of other namespaces and anything outside the
Kubernetes cluster do not. ``kubectl port-forward`` enters the pod's own
network namespace and is not affected; nor is the kubelet's readiness probe.
"""

from __future__ import annotations

from typing import Any

from seamless_dask_runtime.identity import CLUSTER_LABEL, COMM_PORT, DASHBOARD_PORT, SCHEDULER

from ..resource import ClusterSpec
from .objects import ClusterRef, metadata, selector

SAME_NAMESPACE: tuple[dict[str, Any], ...] = ({"podSelector": {}},)  # allowFrom when the spec says nothing
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace


def operator_peer(namespace: str, pod_labels: dict[str, str]) -> dict[str, Any]:
    """The operator's pods, wherever it runs (the chart passes its namespace and selector labels)."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
            "podSelector": {"matchLabels": dict(pod_labels)}}


def scheduler_network_policy(ref: ClusterRef, cluster: ClusterSpec,
                             operator: dict[str, Any] | None) -> dict[str, Any]:
    ports = [{"protocol": "TCP", "port": COMM_PORT}, {"protocol": "TCP", "port": DASHBOARD_PORT}]
    allowed = cluster.options.scheduler_allow_from
    peers = [{"podSelector": {"matchLabels": {CLUSTER_LABEL: ref.name}}},  # its workers (and the scheduler)
             *([operator] if operator else []),
             *(SAME_NAMESPACE if allowed is None else allowed)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ref, ref.scheduler_name, SCHEDULER),
        "spec": {
            "podSelector": {"matchLabels": selector(ref, SCHEDULER)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": ports}],
        },
    }
