"""The chart's RBAC grants the operator what it calls, and nothing else (static, from `helm template`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from ._helm import CLUSTER_WIDE, NAMESPACED, by_kind, one, render
from .operator_calls import (
    KOPF_CLUSTER_CALLS,
    KOPF_NAMESPACED_MODE_CALLS,
    OPERATOR_CALLS,
    OWN_NAMESPACE_CALLS,
    RESERVED,
    Call,
    cluster_grants,
    namespaced_grants,
)

RELEASE_NS = "ops"


def expand(rules: Iterable[Mapping[str, Any]], names: frozenset[str] = frozenset()) -> set[Call]:
    """RBAC rules → set of (apiGroup, resource, verb); wildcards and URL rules are refused, and rules by name
    allowed only for ``names``."""
    out: set[Call] = set()
    for rule in rules:
        assert "nonResourceURLs" not in rule and set(rule.get("resourceNames") or ()) <= names, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def bound_to_operator(objects: list[dict[str, Any]]) -> tuple[set[Call], dict[str, set[Call]]]:
    """Grants of the operator's ServiceAccount: (cluster-wide set, {namespace: set}) by its bindings."""
    sa = one(objects, "ServiceAccount")["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": sa, "namespace": RELEASE_NS}
    cluster_roles = {r["metadata"]["name"]: expand(r["rules"]) for r in by_kind(objects, "ClusterRole")}
    # By name, in its own namespace only: its Lease and its Deployment, named like the release (the operator's
    # ServiceAccount).
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]):
             expand(r["rules"], frozenset({sa}) if r["metadata"]["namespace"] == RELEASE_NS else frozenset())
             for r in by_kind(objects, "Role")}
    cluster: set[Call] = set()
    per_namespace: dict[str, set[Call]] = {}
    for binding in by_kind(objects, "ClusterRoleBinding"):
        if subject in binding["subjects"]:
            assert binding["roleRef"]["kind"] == "ClusterRole"
            cluster |= cluster_roles[binding["roleRef"]["name"]]
    for binding in by_kind(objects, "RoleBinding"):
        if subject in binding["subjects"]:
            ns = binding["metadata"]["namespace"]
            ref = binding["roleRef"]
            grants = roles[(ns, ref["name"])] if ref["kind"] == "Role" else cluster_roles[ref["name"]]
            per_namespace[ns] = per_namespace.get(ns, set()) | grants
    return cluster, per_namespace


def test_cluster_wide_mode_grants_exactly_what_is_called(helm: str) -> None:
    objects = render(helm, CLUSTER_WIDE, namespace=RELEASE_NS)
    cluster, per_namespace = bound_to_operator(objects)
    assert per_namespace == {RELEASE_NS: set(OWN_NAMESPACE_CALLS)}, "its own namespace: the Lease, its Deployment"
    assert [r["metadata"]["name"] for r in by_kind(objects, "Role")] == ["sdo-seamless-dask-operator-leader"]
    needed = set(OPERATOR_CALLS) | set(KOPF_CLUSTER_CALLS)
    assert needed <= cluster, f"missing: {sorted(needed - cluster)}"
    assert cluster == namespaced_grants() | cluster_grants(namespaced_mode=False), (
        f"beyond the list: {sorted(cluster - namespaced_grants() - cluster_grants(False))}"
    )


def test_namespaced_mode_grants_roles_per_namespace_and_only_reads_cluster_wide(helm: str) -> None:
    objects = render(helm, NAMESPACED, namespace=RELEASE_NS)
    cluster, per_namespace = bound_to_operator(objects)
    assert per_namespace.pop(RELEASE_NS) == set(OWN_NAMESPACE_CALLS)
    assert set(per_namespace) == set(NAMESPACED["watchNamespaces"])
    for ns, grants in per_namespace.items():
        assert set(OPERATOR_CALLS) <= grants, f"{ns} missing {sorted(set(OPERATOR_CALLS) - grants)}"
        assert grants == namespaced_grants(), f"{ns}: beyond the list: {sorted(grants - namespaced_grants())}"
    needed = set(KOPF_CLUSTER_CALLS) | set(KOPF_NAMESPACED_MODE_CALLS)
    assert cluster == needed == cluster_grants(namespaced_mode=True)
    assert {verb for _, _, verb in cluster} == {"list", "watch"}  # cluster-wide: reads only


@pytest.mark.parametrize("values", [CLUSTER_WIDE, NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_nothing_dangerous_is_granted(helm: str, values: dict) -> None:
    objects = render(helm, values, namespace=RELEASE_NS)
    cluster, per_namespace = bound_to_operator(objects)
    every = cluster.union(*per_namespace.values())
    resources = {resource for _, resource, _ in every}
    verbs = {verb for _, _, verb in every}
    assert not resources & {"configmaps", "serviceaccounts", "roles", "rolebindings",
                            "clusterroles", "clusterrolebindings", "nodes", "pods/exec",
                            "pods/portforward", "seamlessdaskclusters/scale"}
    assert not verbs & {"escalate", "bind", "impersonate", "approve", "sign"}
    # Secrets: the operator writes its TLS Secret and deletes it; it may get one by name to read whose it is
    # (kube.py asks for metadata only), and can list or watch none.
    assert {verb for _, resource, verb in every if resource == "secrets"} == {"get", "create", "delete"}


def test_reserved_grants_are_disjoint_from_used_calls() -> None:
    assert not set(RESERVED) & set(OPERATOR_CALLS)


def test_user_facing_aggregated_roles(helm: str) -> None:
    objects = render(helm, CLUSTER_WIDE, namespace=RELEASE_NS)
    edit = one(objects, "ClusterRole", "-edit")
    view = one(objects, "ClusterRole", "-view")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert ("seamless.dask.org", "seamlessdaskclusters/scale", "update") in expand(edit["rules"])  # kubectl scale
    assert {verb for _, _, verb in expand(view["rules"])} == {"get", "list", "watch"}
    off = render(helm, {"rbac": {"create": True, "aggregateToDefaultRoles": False}})
    assert [r["metadata"]["name"] for r in by_kind(off, "ClusterRole")] == ["sdo-seamless-dask-operator"]


def test_the_uninstall_hook_may_only_scale_the_operator_to_zero(helm: str) -> None:
    """`helm uninstall` stops the operator first, while its RBAC exists (files/uninstall-hook.py)."""
    objects = [o for o in render(helm, CLUSTER_WIDE, namespace=RELEASE_NS, uninstall_hook=True)
               if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "pre-delete"]
    assert sorted(o["kind"] for o in objects) == ["Job", "Role", "RoleBinding", "ServiceAccount"]
    role = one(objects, "Role")
    assert role["metadata"]["namespace"] == RELEASE_NS
    assert expand(role["rules"], frozenset({"sdo-seamless-dask-operator"})) == {
        ("apps", "deployments/scale", "patch"), ("", "pods", "list")}
    job = one(objects, "Job")["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == one(objects, "ServiceAccount")["metadata"]["name"]
    assert job["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
