"""Users and the audit log: a ServiceAccount's own kubeconfig, and counting its requests."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

# ------------------------------------------------------------------- users and audit


def make_service_account_kubeconfig(
    api: k8s.ApiClient,
    base_kubeconfig: Path | str,
    namespace: str,
    name: str,
    out: Path,
    *,
    cluster_role: str | None = "cluster-admin",
    expiration_seconds: int = 86400,
) -> Path:
    """Create ServiceAccount ``namespace/name``, bind it, write a kubeconfig for it to ``out``.

    The client using ``out`` is ``system:serviceaccount:NAMESPACE:NAME`` in
    the audit log and for RBAC (so its requests can be counted apart from the
    tests' and the controller-manager's, which all use ``admin``).

    Args:
        api: a cluster-admin ApiClient.
        base_kubeconfig: kubeconfig whose current cluster (server, CA) to reuse.
        cluster_role: ClusterRole to bind cluster-wide (ClusterRoleBinding
            ``NAMESPACE-NAME``), or ``None`` to bind nothing (bring your own RBAC).
        expiration_seconds: lifetime of the TokenRequest token.
    """
    core = k8s.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespace({"metadata": {"name": namespace}})
    try:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    if cluster_role:
        body = {
            "metadata": {"name": f"{namespace}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        try:
            k8s.RbacAuthorizationV1Api(api).create_cluster_role_binding(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
    tr = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": expiration_seconds}}
    )
    base = yaml.safe_load(Path(base_kubeconfig).read_text())
    ctx_name = base["current-context"]
    ctx = next(c["context"] for c in base["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in base["clusters"] if c["name"] == ctx["cluster"])
    cluster = dict(cluster)
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str((Path(base_kubeconfig).parent / ca).resolve())
    user = f"system:serviceaccount:{namespace}:{name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": tr.status.token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {"cluster": "cluster", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "sa",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def _parse_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def read_audit_events(audit_log: Path | str) -> Iterable[dict[str, Any]]:
    """Yield the audit log's events (JSON lines), one per request.

    Watches and other long requests log two stages (ResponseStarted and
    ResponseComplete): only the first event of each ``auditID`` is yielded.
    A torn last line (being written) is skipped.
    """
    seen: set[str] = set()
    with open(audit_log, encoding="utf-8") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            audit_id = event.get("auditID", "")
            if audit_id in seen:
                continue
            seen.add(audit_id)
            yield event


def _effective_user(event: dict[str, Any]) -> str:
    imp = event.get("impersonatedUser") or {}
    return imp.get("username") or (event.get("user") or {}).get("username", "")


def count_requests(
    audit_log: Path | str,
    user: str | None = None,
    since: dt.datetime | float | None = None,
    *,
    user_agent: str | None = None,
) -> collections.Counter[tuple[str, str]]:
    """Count API requests in ``audit_log`` per ``(verb, resource)``.

    ``resource`` is the plural resource name, with ``/subresource`` when there
    is one (``pods/status``, ``seamlessdaskclusters/status``); requests to
    non-resource URLs (discovery such as ``/apis``) count under their path.
    ``verb`` is the API verb (get, list, watch, create, update, patch, delete,
    deletecollection).

    Args:
        audit_log: path from :attr:`ControlPlane.audit_log`.
        user: only requests by this user (the impersonated one, if any), e.g.
            ``system:serviceaccount:ns:operator``. Note ``admin`` is shared by
            the kube-controller-manager and the tests.
        since: only requests received at or after this time (aware datetime,
            naive = local time, or a ``time.time()`` epoch).
        user_agent: only requests whose User-Agent starts with this (kopf
            sends ``kopf/<version>``).
    """
    if isinstance(since, dt.datetime):
        since = since.timestamp()
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in read_audit_events(audit_log):
        if user is not None and _effective_user(event) != user:
            continue
        if user_agent is not None and not str(event.get("userAgent", "")).startswith(user_agent):
            continue
        if since is not None:
            ts = event.get("requestReceivedTimestamp") or event.get("stageTimestamp")
            if ts and _parse_ts(ts) < since:
                continue
        ref = event.get("objectRef")
        if ref and ref.get("resource"):
            resource = ref["resource"]
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
        else:
            resource = str(event.get("requestURI", "")).split("?", 1)[0]
        counts[(str(event.get("verb", "")), resource)] += 1
    return counts
