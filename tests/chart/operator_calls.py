"""What the operator asks of the Kubernetes API, as data: the RBAC tests compare the chart with it.

Derived from reading operator/seamless_dask_operator/kube.py and handlers/
and kopf 1.45's observers, then checked against the API server's audit log
while the real operator runs under the chart's ServiceAccount
(test_operator_rbac.py). Keys are ``(apiGroup, resource, verb)``; values say
who makes the call.
"""

from __future__ import annotations

SDC = ("seamless.dask.org", "seamlessdaskclusters")
SDC_STATUS = ("seamless.dask.org", "seamlessdaskclusters/status")

Call = tuple[str, str, str]

#: Calls in each namespace the operator serves.
OPERATOR_CALLS: dict[Call, str] = {
    (*SDC, "list"): "kopf: initial listing of the watched resource",
    (*SDC, "watch"): "kopf: watch stream of the watched resource",
    (*SDC, "patch"): "kopf: finalizer, progress and diff-base annotations; kube.nudge: a deletion kopf lost",
    (*SDC, "delete"): "kube.delete_cluster: idle timeout (spec.timeout)",
    (*SDC_STATUS, "patch"): "kopf: patch.status goes to the status subresource",
    ("", "services", "list"): "kopf index handlers.watching.cluster_services: initial listing",
    ("", "services", "watch"): "kopf index handlers.watching.cluster_services: drift (deleted, edited)",
    ("", "services", "patch"): "kube.apply: server-side apply of the scheduler Service (ours, edited spec)",
    ("", "services", "create"): "kube.apply: the scheduler Service of a new cluster",
    ("", "services", "delete"): "kube.delete_children",
    ("", "services", "get"): "kube.apply, kube.delete_children: a Service of that name, and whose it is",
    ("networking.k8s.io", "networkpolicies", "get"): "kube.apply: a NetworkPolicy of that name, and whose it is",
    ("networking.k8s.io", "networkpolicies", "patch"): "kube.apply: server-side apply of the scheduler's policy",
    ("networking.k8s.io", "networkpolicies", "create"): "kube.apply: the NetworkPolicy of a new cluster",
    ("networking.k8s.io", "networkpolicies", "delete"): "kube.delete_leftover: a former cluster's of this name",
    ("policy", "poddisruptionbudgets", "get"): "kube.apply: a PodDisruptionBudget of that name, and whose it is",
    ("policy", "poddisruptionbudgets", "patch"): "kube.apply: server-side apply of the scheduler's budget",
    ("policy", "poddisruptionbudgets", "create"): "kube.apply: the scheduler's budget of a new cluster",
    ("policy", "poddisruptionbudgets", "delete"): "kube.delete_leftover: a former cluster's of this name",
    ("", "pods", "create"): "kube.create_pod: the scheduler pod and worker pods",
    ("", "pods", "get"): "kube.create_pod: a pod of that name exists (409): whose is it?",
    ("", "pods", "list"): "kopf index handlers.watching.cluster_pods: initial listing; kube.delete_children",
    ("", "pods", "watch"): "kopf index handlers.watching.cluster_pods: watch stream",
    ("", "secrets", "create"): "kube.ensure_tls_secret (spec.tls.enabled)",
    ("", "secrets", "get"): "kube.ensure_tls_secret, kube.delete_children: whose NAME-tls is (metadata only)",
    ("", "secrets", "delete"): "kube.delete_children",
    ("", "pods", "delete"): "kube.delete_pod: retired or unready workers; owned pods with the cluster",
    ("", "pods", "patch"): "kube.promote_scheduler: a rollout's new scheduler takes over (its labels)",
    ("", "events", "create"): "kopf.warn / kopf.info (kopf posts core/v1 Events)",
    ("apps", "deployments", "get"): "kube.adopt_scheduler: an earlier layout's scheduler Deployment, whose it is",
    ("apps", "deployments", "delete"): "kube.adopt_scheduler: that Deployment, as an orphan (its pod kept)",
    ("apps", "replicasets", "get"): "kube.adopt_scheduler: its ReplicaSet, whose it is",
    ("apps", "replicasets", "delete"): "kube.adopt_scheduler: that ReplicaSet, as an orphan",
}

#: In the operator's own namespace, on objects named after the release only (RBAC resourceNames; ``create``
#: cannot be limited by name): leader election, and a look at its own Deployment.
OWN_NAMESPACE_CALLS: dict[Call, str] = {
    ("coordination.k8s.io", "leases", "create"): "leadership.Lease.try_acquire: the first replica makes the Lease",
    ("coordination.k8s.io", "leases", "get"): "leadership.Lease: who holds it",
    ("coordination.k8s.io", "leases", "update"): "leadership.Lease: take, renew, give up",
    ("apps", "deployments", "get"): "kube.replicas_follow: whether a replica follows one that stops",
}

#: Cluster-scoped reads of kopf's observers (every mode).
KOPF_CLUSTER_CALLS: dict[Call, str] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"): "kopf resource observer: initial listing",
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): "kopf resource observer: re-scan on change",
}

#: Cluster-scoped reads kopf adds when it serves a list of namespaces (--namespace).
KOPF_NAMESPACED_MODE_CALLS: dict[Call, str] = {
    ("", "namespaces", "list"): "kopf namespace observer: initial listing",
    ("", "namespaces", "watch"): "kopf namespace observer: namespaces appearing/going",
}

#: Nothing is granted beyond what the code calls (least privilege).
RESERVED: dict[Call, str] = {}


def namespaced_grants() -> set[Call]:
    """What the chart grants in a served namespace."""
    return set(OPERATOR_CALLS) | set(RESERVED)


def cluster_grants(namespaced_mode: bool) -> set[Call]:
    """What the chart grants on cluster-scoped resources."""
    calls = set(KOPF_CLUSTER_CALLS)
    if namespaced_mode:
        calls |= set(KOPF_NAMESPACED_MODE_CALLS)
    return calls
