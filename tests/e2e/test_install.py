"""The chart on a cluster that runs pods: the operator runs under its own ServiceAccount, helm test passes,
and helm uninstall leaves nothing behind."""

from __future__ import annotations

import json

from .conftest import CHART
from .kube import OPERATOR_NAMESPACE, RELEASE, Images, Kube, is_ready, wait_until

OPERATOR_SELECTOR = "app.kubernetes.io/name=seamless-dask-operator"


def test_operator_pod_ready_under_the_charts_service_account(operator_release: str, kube: Kube) -> None:
    pods = kube.items("pods", OPERATOR_NAMESPACE, f"{OPERATOR_SELECTOR},app.kubernetes.io/instance={RELEASE}")
    assert len(pods) == 1 and is_ready(pods[0]), [p["status"] for p in pods]
    spec = pods[0]["spec"]
    accounts = kube.names("serviceaccounts", OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")
    assert spec["serviceAccountName"] in accounts
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_helm_test_passes(operator_release: str, kube: Kube) -> None:
    out = kube.helm("test", operator_release, "--namespace", OPERATOR_NAMESPACE, "--logs").stdout
    assert "Succeeded" in out, out


def test_uninstall_leaves_nothing(operator_release: str, kube: Kube, images: Images) -> None:
    """A second release of its own (namespaced, next to the suite's) installed, tested and uninstalled."""
    release, namespace, watched = "sdo-e2e-second", "sdo-e2e-second", "sdo-e2e-second-watched"
    kube.kubectl("create", "namespace", watched, check=False)
    repository, _, tag = images.operator.rpartition(":")
    selector = f"app.kubernetes.io/instance={release}"
    namespaced = "deployments,replicasets,pods,services,serviceaccounts,configmaps,secrets,roles,rolebindings"
    try:
        kube.helm("install", release, str(CHART), "--namespace", namespace, "--create-namespace",
                  "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                  "--set", f"watchNamespaces={{{watched}}}", "--wait", "--timeout", "300s", timeout=360)
        assert kube.names("deployments", namespace, selector)
        assert kube.names("roles", watched, selector), "namespaced mode: a Role in the watched namespace"
        kube.helm("test", release, "--namespace", namespace)
        kube.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "180s")

        def leftovers() -> dict[str, list[str]]:
            found = {ns: kube.names(namespaced, ns, selector) for ns in (namespace, watched)}
            cluster_wide = kube.kubectl("get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "json").stdout
            found["cluster"] = [i["metadata"]["name"] for i in json.loads(cluster_wide)["items"]]
            # helm test pods carry no instance label of their own: look for them by name too
            found["test-pods"] = [n for n in kube.names("pods", namespace) if n.startswith(release)]
            return {k: v for k, v in found.items() if v}

        wait_until(lambda: not leftovers(), "nothing left of the uninstalled release", timeout=90)
    finally:
        kube.helm("uninstall", release, "--namespace", namespace, check=False)
        kube.kubectl("delete", "namespace", namespace, watched, "--wait=false", check=False)
