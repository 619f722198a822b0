"""The Kubernetes API calls the operator makes, and nothing else.

Sync kubernetes client, called from kopf's thread pool. Server-side apply
keeps the scheduler Deployment and Service idempotent (same name, same
owner: a restarted operator re-applies and creates nothing twice); worker
pods are created by name and a 409 means "already there".
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from seamless_dask_runtime.identity import CLUSTER_LABEL, GROUP, PLURAL, VERSION

from .builders.objects import ClusterRef
from .settings import SETTINGS

TIMEOUT = SETTINGS.request_timeout  # every call: a hung API fails the round, which kopf retries
# Answers the operator does not read are not turned into client model objects (_preload_content=False): at
# 100 clusters at once those were most of the transient memory and CPU of a round.

FIELD_MANAGER = "seamless-dask-operator"

def load_configuration() -> None:
    """In-cluster service account when there is one, else the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    _shared_client.cache_clear()


@functools.cache
def _shared_client() -> client.ApiClient:
    """One ApiClient (one connection pool) for every call: a client per call meant a new TLS connection
    and a new pool each time, which cost CPU, memory and latency at scale."""
    api = client.ApiClient()
    pool = api.rest_client.pool_manager
    pool.connection_pool_kw["maxsize"] = SETTINGS.handler_threads  # one connection per handler thread at most
    return api


def _api(kind: Any) -> Any:
    return kind(_shared_client())


def _done(response: Any) -> None:
    """Read an answer the operator does not use: reading it to the end returns the connection to the pool."""
    response.read()


class ForeignObject(RuntimeError):
    """An object has a child's name, and this cluster does not own it: it is never taken over nor deleted."""

    def __init__(self, kind: str, namespace: str, name: str):
        super().__init__(f"{kind} {namespace}/{name} exists and is not owned by this SeamlessDaskCluster: "
                         f"rename the cluster, or delete that {kind} if it is a leftover of yours")


def _read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """The object's metadata as the API stores it, or None when there is none."""
    read = {
        "Deployment": _api(client.AppsV1Api).read_namespaced_deployment,
        "Service": _api(client.CoreV1Api).read_namespaced_service,
        "NetworkPolicy": _api(client.NetworkingV1Api).read_namespaced_network_policy,
    }[kind]
    try:
        response = read(name, namespace, _preload_content=False, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(response.data)["metadata"]


def _owned(meta: dict[str, Any], owner_uid: str) -> bool:
    return any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or [])


def apply(obj: dict[str, Any], owner_uid: str) -> None:
    """Server-side apply of the scheduler Deployment, Service or NetworkPolicy: created when absent, updated when ours.

    One of the same name that another owns (or nobody) raises :class:`ForeignObject`: never taken over.
    """
    meta = obj["metadata"]
    existing = _read(obj["kind"], meta["namespace"], meta["name"])
    if existing is not None and not _owned(existing, owner_uid):
        raise ForeignObject(obj["kind"], meta["namespace"], meta["name"])
    patch = {
        "Deployment": _api(client.AppsV1Api).patch_namespaced_deployment,
        "Service": _api(client.CoreV1Api).patch_namespaced_service,
        "NetworkPolicy": _api(client.NetworkingV1Api).patch_namespaced_network_policy,
    }[obj["kind"]]
    _done(patch(meta["name"], meta["namespace"], obj, field_manager=FIELD_MANAGER, force=True,
          _content_type="application/apply-patch+yaml", _preload_content=False, _request_timeout=TIMEOUT))


def ensure_tls_secret(ref: ClusterRef, recorded_uid: str | None) -> str:
    """Make the cluster's certificates once; the uid of its Secret (kept in ``.status.tlsSecretUid``).

    The operator may not read Secrets (least privilege), so the uid it recorded when it made the Secret
    tells ours from another's of the same name: an existing Secret it did not make is a name clash.
    """
    from .tls import make_certificates, tls_secret

    try:
        created = _api(client.CoreV1Api).create_namespaced_secret(
            ref.namespace, tls_secret(ref, make_certificates(ref)), _preload_content=False, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status != 409:
            raise
        if recorded_uid is None:
            raise ForeignObject("Secret", ref.namespace, ref.tls_secret_name) from None
        return recorded_uid  # ours, made earlier: its certificates are in use
    return str(json.loads(created.data)["metadata"]["uid"])


def create_pod(pod: dict[str, Any]) -> bool:
    """Create a worker pod; False when a pod of that name exists already."""
    try:
        _done(_api(client.CoreV1Api).create_namespaced_pod(pod["metadata"]["namespace"], pod, _preload_content=False,
                                                           _request_timeout=TIMEOUT))
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True



def delete_pod(namespace: str, name: str) -> None:
    try:
        _done(_api(client.CoreV1Api).delete_namespaced_pod(name, namespace, grace_period_seconds=30,
                                                           _preload_content=False, _request_timeout=TIMEOUT))
    except ApiException as exc:
        if exc.status != 404:
            raise


def delete_children(ref: ClusterRef, tls_secret_uid: str | None = None) -> list[str]:
    """What garbage collection would do, done now (GC may lag on a new CRD type).

    Returns what was still there; an empty list means everything is gone
    (pods already terminating count as gone: their kubelet finishes them).
    """
    core, apps = _api(client.CoreV1Api), _api(client.AppsV1Api)
    found: list[str] = []
    deletes = {
        "Deployment": lambda name, options: apps.delete_namespaced_deployment(
            name, ref.namespace, body=options, propagation_policy="Background", _request_timeout=TIMEOUT),
        "Service": lambda name, options: core.delete_namespaced_service(
            name, ref.namespace, body=options, _request_timeout=TIMEOUT),
        "Secret": lambda name, options: core.delete_namespaced_secret(
            name, ref.namespace, body=options, _request_timeout=TIMEOUT),
    }
    ours: list[tuple[str, str, str]] = []
    for kind, name in (("Deployment", ref.scheduler_name), ("Service", ref.scheduler_name)):
        meta = _read(kind, ref.namespace, name)
        if meta is not None and _owned(meta, ref.uid):  # absent, or another's of the same name: not ours
            ours.append((kind, name, meta["uid"]))
    if tls_secret_uid:
        ours.append(("Secret", ref.tls_secret_name, tls_secret_uid))
    for kind, name, uid in ours:
        try:  # the precondition: exactly our object, not another made under the name since
            deletes[kind](name, client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)))
        except ApiException as exc:
            if exc.status in (404, 409):
                continue  # gone, or not ours
            raise
        found.append(kind)
    # Pods carrying our cluster label that we do not own (dask-kubernetes uses the same label) are left alone.
    labelled = core.list_namespaced_pod(ref.namespace, label_selector=f"{CLUSTER_LABEL}={ref.name}",
                                        _request_timeout=TIMEOUT).items
    pods = [p.metadata.name for p in labelled if p.metadata.deletion_timestamp is None
            and any(o.uid == ref.uid for o in p.metadata.owner_references or [])]
    for name in pods:
        delete_pod(ref.namespace, name)
        found.append(f"pod {name}")
    return found


def delete_children_until_gone(ref: ClusterRef, tls_secret_uid: str | None = None, settle: float = 0.5,
                               limit: float = 30.0) -> list[str]:
    """Delete the children until a round finds none; returns what is still there after ``limit`` seconds.

    A reconcile already in flight when the deletion began (kopf runs on-delete
    handlers while timers finish) may create a child after the first round;
    the next round deletes it, instead of leaving it to garbage collection.
    """
    deadline = time.monotonic() + limit
    while True:
        found = delete_children(ref, tls_secret_uid)
        tls_secret_uid = None  # deleted (or not ours) in the first round
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(settle)


def patch_status(ref: ClusterRef, status: dict[str, Any]) -> None:
    """Merge ``status`` into the resource's ``.status`` (as kopf writes a handler's patch); gone is fine."""
    try:
        _done(_api(client.CustomObjectsApi).patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, PLURAL, ref.name, {"status": status},
            _content_type="application/merge-patch+json", _preload_content=False, _request_timeout=TIMEOUT))
    except ApiException as exc:
        if exc.status != 404:
            raise


def delete_cluster(ref: ClusterRef) -> None:
    try:
        _api(client.CustomObjectsApi).delete_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL, ref.name,
                                                                  _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status != 404:
            raise
