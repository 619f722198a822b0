"""The Kubernetes API calls the operator makes, and nothing else.

Called from kopf's thread pool (the transport: :mod:`api_client`). Server-side apply
keeps the scheduler Service and NetworkPolicy idempotent (same name, same
owner: a restarted operator re-applies and creates nothing twice); the
scheduler pod and worker pods are created by name and a 409 means "already
there" when the pod there is the cluster's own.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from seamless_dask_runtime.model.identity import (
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    FINALIZER,
    GROUP,
    PLURAL,
    SCHEDULER,
    TEMPLATE_HASH_ANNOTATION,
    VERSION,
)

from .api_client import API_FAILURES, ApiError, request
from .builders.objects import ClusterRef

FIELD_MANAGER = "seamless-dask-operator"

# The operator's few calls, by path, with JSON in and out (api_client: kopf's credentials, one urllib3 pool).
PATHS = {
    "Service": "/api/v1/namespaces/{namespace}/services",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
    "Secret": "/api/v1/namespaces/{namespace}/secrets",
    "Pod": "/api/v1/namespaces/{namespace}/pods",
    "SeamlessDaskCluster": f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}",
}


def _path(kind: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    path = PATHS[kind].format(namespace=quote(namespace, safe=""))
    for part in (name, subresource):
        if part is not None:
            path += "/" + quote(part, safe="")
    return path


class ForeignObject(RuntimeError):
    """An object has a child's name, and this cluster does not own it: never taken over (see :func:`delete_leftover`
    for one a former SeamlessDaskCluster of that name left behind)."""

    def __init__(self, kind: str, namespace: str, name: str, meta: dict[str, Any] | None = None):
        super().__init__(f"{kind} {namespace}/{name} exists and is not owned by this SeamlessDaskCluster: "
                         f"rename the cluster, or delete that {kind} if it is a leftover of yours")
        self.kind, self.namespace, self.name, self.meta = kind, namespace, name, meta or {}

    def cluster_owners(self) -> list[tuple[str, str]]:
        """(uid, name) of the SeamlessDaskClusters that own the object (a former incarnation of this name, say)."""
        return [(o.get("uid", ""), o.get("name", "")) for o in self.meta.get("ownerReferences") or []
                if o.get("kind") == "SeamlessDaskCluster" and o.get("apiVersion", "").startswith(f"{GROUP}/")]


# Metadata only: whose an object is, never its content (a Secret's data stays unread).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


def _read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object's metadata as the API stores it, or None when there is none."""
    try:
        return request("GET", _path(kind, namespace, name), accept=METADATA_ONLY)["metadata"]
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _owned(meta: dict[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or [])


def _refuse_foreign(kind: str, namespace: str, name: str, owner_uid: str) -> None:
    """Raise :class:`ForeignObject` when an object of that name exists and the cluster does not own it."""
    existing = _read(kind, namespace, name)
    if existing is not None and not _owned(existing, owner_uid):
        raise ForeignObject(kind, namespace, name, existing)


def apply(obj: dict[str, Any], owner_uid: str, ours: bool = False) -> str:
    """A child applied as a whole (the scheduler Service, NetworkPolicy, PodDisruptionBudget): created when absent,
    server-side applied when the cluster's; its uid (what the watch will show).

    ``ours``: the watch shows this object owned by the cluster, so it is applied at once. Otherwise it is
    created (one request for a new cluster); on a name taken, one of the same name that another owns (or
    nobody) raises :class:`ForeignObject` (never taken over), and the cluster's own is applied over.
    """
    meta = obj["metadata"]
    if not ours:
        try:
            created = request("POST", _path(obj["kind"], meta["namespace"]), body=obj,
                              query={"fieldManager": FIELD_MANAGER})
            return str(created["metadata"]["uid"])
        except ApiError as exc:
            if exc.status != 409:
                raise
        _refuse_foreign(obj["kind"], meta["namespace"], meta["name"], owner_uid)
    applied = request("PATCH", _path(obj["kind"], meta["namespace"], meta["name"]), body=obj,
                      query={"fieldManager": FIELD_MANAGER, "force": "true"},
                      content_type="application/apply-patch+yaml")
    return str(applied["metadata"]["uid"])


def ensure_tls_secret(ref: ClusterRef) -> None:
    """Make the cluster's certificates once: the Secret ``NAME-tls``, owned by the resource.

    Whose an existing Secret of that name is, the Secret itself says (its ownerReference, read as metadata
    only); nothing a tenant can write, such as ``.status``, is believed: another's Secret would be mounted in
    pods that run the tenant's image.
    """
    from .tls import make_certificates, tls_secret

    try:
        request("POST", _path("Secret", ref.namespace), body=tls_secret(ref, make_certificates(ref)))
    except ApiError as exc:
        if exc.status != 409:
            raise
        _refuse_foreign("Secret", ref.namespace, ref.tls_secret_name, ref.uid)  # ours, made earlier: in use


def create_pod(pod: dict[str, Any], owner_uid: str) -> str | None:
    """Create the scheduler pod or a worker pod: its uid; None when the cluster's own pod of that name exists
    already.

    One of that name that another owns (or nobody) raises :class:`ForeignObject`: never counted as ours.
    """
    meta = pod["metadata"]
    try:
        created = request("POST", _path("Pod", meta["namespace"]), body=pod)
    except ApiError as exc:
        if exc.status != 409:
            raise
        _refuse_foreign("Pod", meta["namespace"], meta["name"], owner_uid)
        return None
    return str(created["metadata"]["uid"])


def adopt_scheduler(ref: ClusterRef, pod: str, replica_set: str, template_hash: str) -> None:
    """An earlier operator's scheduler Deployment ``NAME-scheduler`` gives way to its pod, which becomes the
    cluster's own (left running: its clients and results stay). Only when the Deployment is this cluster's and
    the ReplicaSet that Deployment's; both are deleted as orphans (their pod kept), each by its uid."""
    deployment = _meta_at(f"/apis/apps/v1/namespaces/{quote(ref.namespace, safe='')}/deployments/"
                          f"{quote(ref.scheduler_name, safe='')}")
    rs_path = f"/apis/apps/v1/namespaces/{quote(ref.namespace, safe='')}/replicasets/{quote(replica_set, safe='')}"
    owner_of_rs = {o.get("uid") for o in (_meta_at(rs_path) or {}).get("ownerReferences") or []}
    if deployment is None or not _owned(deployment, ref.uid) or deployment["uid"] not in owner_of_rs:
        raise ForeignObject("Pod", ref.namespace, pod)  # not this cluster's: never taken over
    for path, meta in ((f"/apis/apps/v1/namespaces/{quote(ref.namespace, safe='')}/deployments/"
                        f"{quote(ref.scheduler_name, safe='')}", deployment), (rs_path, _meta_at(rs_path))):
        if meta is None:
            continue
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Orphan",
                   "preconditions": {"uid": meta["uid"]}}
        try:
            request("DELETE", path, body=options)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
    request("PATCH", _path("Pod", ref.namespace, pod), content_type="application/merge-patch+json",
            body={"metadata": {"ownerReferences": [ref.owner_reference()],
                               "annotations": {TEMPLATE_HASH_ANNOTATION: template_hash}}})


def _meta_at(path: str) -> dict[str, Any] | None:
    try:
        return request("GET", path, accept=METADATA_ONLY)["metadata"]
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def promote_scheduler(namespace: str, name: str) -> None:
    """A Ready candidate becomes the scheduler the Service selects (its component label)."""
    component = {COMPONENT_LABEL: SCHEDULER, "app.kubernetes.io/component": SCHEDULER}
    request("PATCH", _path("Pod", namespace, name), body={"metadata": {"labels": component}},
            content_type="application/merge-patch+json")


def delete_pod(namespace: str, name: str) -> None:
    try:
        request("DELETE", _path("Pod", namespace, name), query={"gracePeriodSeconds": 30})
    except ApiError as exc:
        if exc.status != 404:
            raise


def delete_children(ref: ClusterRef) -> list[str]:
    """What garbage collection would do, done now (GC may lag on a new CRD type).

    Returns what was still there; an empty list means everything is gone
    (pods already terminating count as gone: their kubelet finishes them).
    """
    found: list[str] = []
    ours: list[tuple[str, str, str]] = []
    for kind, name in (("Service", ref.scheduler_name), ("Secret", ref.tls_secret_name)):
        meta = _read(kind, ref.namespace, name)
        if meta is not None and _owned(meta, ref.uid):  # absent, or another's of the same name: not ours
            ours.append((kind, name, meta["uid"]))
    for kind, name, uid in ours:
        # The precondition: exactly our object, not another made under the name since.
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        try:
            request("DELETE", _path(kind, ref.namespace, name), body=options)
        except ApiError as exc:
            if exc.status in (404, 409):
                continue  # gone, or not ours
            raise
        found.append(kind)
    # Pods carrying our cluster label that we do not own (dask-kubernetes uses the same label) are left alone.
    labelled = request("GET", _path("Pod", ref.namespace), query={"labelSelector": f"{CLUSTER_LABEL}={ref.name}"})
    pods = [p["metadata"]["name"] for p in labelled.get("items") or []
            if not p["metadata"].get("deletionTimestamp")
            and any(o.get("uid") == ref.uid for o in p["metadata"].get("ownerReferences") or [])]
    for name in pods:
        delete_pod(ref.namespace, name)
        found.append(f"pod {name}")
    return found


def delete_children_until_gone(ref: ClusterRef, settle: float = 0.5, limit: float = 30.0) -> list[str]:
    """Delete the children until a round finds none; returns what is still there after ``limit`` seconds.

    A reconcile already in flight when the deletion began (kopf runs on-delete
    handlers while timers finish) may create a child after the first round;
    the next round deletes it, instead of leaving it to garbage collection.
    """
    deadline = time.monotonic() + limit
    while True:
        found = delete_children(ref)
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(settle)


def clusters(namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
    """The SeamlessDaskClusters of these namespaces (none given: of all), as listed now."""
    if not namespaces:
        return list(request("GET", f"/apis/{GROUP}/{VERSION}/{PLURAL}").get("items") or [])
    return [item for namespace in namespaces
            for item in request("GET", _path("SeamlessDaskCluster", namespace)).get("items") or []]


def release(cluster: dict[str, Any]) -> bool:
    """Take the operator's finalizer off ``cluster`` (as listed); False when it had none, was gone or changed.

    A JSON patch that tests the entry first: a finalizer another controller added meanwhile is never removed.
    """
    meta = cluster["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if FINALIZER not in finalizers:
        return False
    at = f"/metadata/finalizers/{finalizers.index(FINALIZER)}"
    try:
        request("PATCH", _path("SeamlessDaskCluster", meta["namespace"], meta["name"]),
                body=[{"op": "test", "path": at, "value": FINALIZER}, {"op": "remove", "path": at}],
                content_type="application/json-patch+json")
    except ApiError as exc:
        if exc.status in (404, 409, 422):  # gone, or its finalizers changed: the next round sees it anew
            return False
        raise
    return True


def patch_status(ref: ClusterRef, status: dict[str, Any]) -> None:
    """Merge ``status`` into the resource's ``.status`` (as kopf writes a handler's patch), of this very resource
    only (its uid a precondition: a new one of the same name is not written to); gone is fine."""
    try:
        request("PATCH", _path("SeamlessDaskCluster", ref.namespace, ref.name, "status"),
                body={"metadata": {"uid": ref.uid}, "status": status}, content_type="application/merge-patch+json")
    except ApiError as exc:
        if exc.status not in (404, 409, 422):  # gone, or another resource of that name now
            raise


def delete_leftover(error: ForeignObject) -> None:
    """Delete exactly the object that raised ``error`` (its uid a precondition): for a leftover of a former
    SeamlessDaskCluster of this name, which garbage collection removes too, later."""
    uid = error.meta.get("uid")
    if not uid:
        return
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
    try:
        request("DELETE", _path(error.kind, error.namespace, error.name), body=options)
    except ApiError as exc:
        if exc.status not in (404, 409):
            raise


def nudge(namespace: str, name: str) -> None:
    """Change an annotation of a SeamlessDaskCluster: kopf sees an event, and runs its pending handlers again."""
    try:
        request("PATCH", _path("SeamlessDaskCluster", namespace, name),
                body={"metadata": {"annotations": {f"{GROUP}/nudged": str(time.time())}}},
                content_type="application/merge-patch+json")
    except ApiError as exc:
        if exc.status != 404:
            raise


def delete_cluster(ref: ClusterRef) -> None:
    try:
        request("DELETE", _path("SeamlessDaskCluster", ref.namespace, ref.name))
    except ApiError as exc:
        if exc.status != 404:
            raise


def replicas_follow(namespace: str, deployment: str) -> bool:
    """Whether the operator's Deployment still wants replicas (one will serve when this one stops). False when
    there is no Deployment (the operator runs elsewhere), it is being deleted, or scaled to 0."""
    if not (namespace and deployment):
        return False
    try:
        found = request("GET", f"/apis/apps/v1/namespaces/{quote(namespace, safe='')}/deployments/"
                               f"{quote(deployment, safe='')}")
    except API_FAILURES:  # gone (uninstalled), no right to look, no API: release, so no deletion waits for us
        return False
    return not found["metadata"].get("deletionTimestamp") and int((found.get("spec") or {}).get("replicas", 1)) > 0
