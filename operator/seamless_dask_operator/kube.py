"""The Kubernetes API calls the operator makes, and nothing else.

Sync kubernetes client, called from kopf's thread pool. Server-side apply
keeps the scheduler Deployment and Service idempotent (same name, same
owner: a restarted operator re-applies and creates nothing twice); worker
pods are created by name and a 409 means "already there".
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from seamless_dask_runtime.identity import CLUSTER_LABEL, GROUP, PLURAL, VERSION

from .builders.objects import ClusterRef
from .settings import SETTINGS

TIMEOUT = SETTINGS.request_timeout  # every call: a hung API fails the round, which kopf retries

FIELD_MANAGER = "seamless-dask-operator"

def load_configuration() -> None:
    """In-cluster service account when there is one, else the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()


def apply(obj: dict[str, Any]) -> None:
    """Server-side apply of the scheduler Deployment or Service (one request, create or update)."""
    meta = obj["metadata"]
    patch = {
        "Deployment": client.AppsV1Api().patch_namespaced_deployment,
        "Service": client.CoreV1Api().patch_namespaced_service,
    }[obj["kind"]]
    patch(meta["name"], meta["namespace"], obj, field_manager=FIELD_MANAGER, force=True,
          _content_type="application/apply-patch+yaml", _request_timeout=TIMEOUT)


def ensure_tls_secret(ref: ClusterRef) -> bool:
    """Make the cluster's certificates once; an existing Secret is kept (its certificates are in use)."""
    from .tls import make_certificates, tls_secret

    try:
        client.CoreV1Api().create_namespaced_secret(ref.namespace, tls_secret(ref, make_certificates(ref)),
                                                    _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def create_pod(pod: dict[str, Any]) -> bool:
    """Create a worker pod; False when a pod of that name exists already."""
    try:
        client.CoreV1Api().create_namespaced_pod(pod["metadata"]["namespace"], pod, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status == 409:
            return False
        raise
    return True


def scheduler_deployment_exists(ref: ClusterRef) -> bool:
    try:
        client.AppsV1Api().read_namespaced_deployment(ref.scheduler_name, ref.namespace, _preload_content=False,
                                                      _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_pod(namespace: str, name: str) -> None:
    try:
        client.CoreV1Api().delete_namespaced_pod(name, namespace, grace_period_seconds=30, _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status != 404:
            raise


def delete_children(ref: ClusterRef) -> list[str]:
    """What garbage collection would do, done now (GC may lag on a new CRD type).

    Returns what was still there; an empty list means everything is gone
    (pods already terminating count as gone: their kubelet finishes them).
    """
    core, apps = client.CoreV1Api(), client.AppsV1Api()
    found: list[str] = []
    for kind, call in (
        ("Deployment", lambda: apps.delete_namespaced_deployment(
            ref.scheduler_name, ref.namespace, propagation_policy="Background", _request_timeout=TIMEOUT)),
        ("Service", lambda: core.delete_namespaced_service(ref.scheduler_name, ref.namespace,
                                                           _request_timeout=TIMEOUT)),
        ("Secret", lambda: core.delete_namespaced_secret(ref.tls_secret_name, ref.namespace,
                                                         _request_timeout=TIMEOUT)),
    ):
        try:
            call()
        except ApiException as exc:
            if exc.status != 404:
                raise
        else:
            found.append(kind)
    selector = f"{CLUSTER_LABEL}={ref.name}"
    pods = [p.metadata.name for p in core.list_namespaced_pod(ref.namespace, label_selector=selector,
                                                               _request_timeout=TIMEOUT).items
            if p.metadata.deletion_timestamp is None]
    if pods:
        core.delete_collection_namespaced_pod(ref.namespace, label_selector=selector, _request_timeout=TIMEOUT)
        found += [f"pod {name}" for name in pods]
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


def delete_cluster(ref: ClusterRef) -> None:
    try:
        client.CustomObjectsApi().delete_namespaced_custom_object(GROUP, VERSION, ref.namespace, PLURAL, ref.name,
                                                                  _request_timeout=TIMEOUT)
    except ApiException as exc:
        if exc.status != 404:
            raise
