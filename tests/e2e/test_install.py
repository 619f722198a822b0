"""The chart on a cluster that runs pods: the operator runs under its own ServiceAccount, helm test passes,
and helm uninstall leaves nothing behind."""

from __future__ import annotations

import json
import shlex
import urllib.request
from pathlib import Path

from .conftest import CHART
from .kube import (
    OPERATOR_NAMESPACE,
    RELEASE,
    TEST_NAMESPACE,
    Images,
    Kube,
    example,
    is_ready,
    small_cluster,
    wait_until,
)
from .platform import REPO

OPERATOR_SELECTOR = "app.kubernetes.io/name=seamless-dask-operator"


def test_operator_pod_ready_under_the_charts_service_account(operator_release: str, kube: Kube) -> None:
    # The chart's two replicas (replicaCount 2): both Ready (the standby too, so a rollout proceeds), one leads.
    pods = kube.items("pods", OPERATOR_NAMESPACE, f"{OPERATOR_SELECTOR},app.kubernetes.io/instance={RELEASE}")
    assert len(pods) == 2 and all(is_ready(p) for p in pods), [p["status"] for p in pods]
    assert wait_until(kube.operator_leader, "an operator holding the Lease") in [p["metadata"]["name"] for p in pods]
    accounts = kube.names("serviceaccounts", OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}")
    for pod in pods:
        spec = pod["spec"]
        assert spec["serviceAccountName"] in accounts
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_helm_test_passes(operator_release: str, kube: Kube) -> None:
    out = kube.helm("test", operator_release, "--namespace", OPERATOR_NAMESPACE, "--logs").stdout
    assert "Succeeded" in out, out


def test_uninstall_leaves_nothing(operator_release: str, kube: Kube, images: Images) -> None:
    """A second release of its own (namespaced, next to the suite's) installed, tested and uninstalled, with a
    cluster of its own: the chart's pre-delete hook stops the operator while its RBAC exists, so the cluster's
    finalizer goes with it and deleting the cluster afterwards completes (before the hook it waited for ever)."""
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
        kube.apply(small_cluster(example("minimal")[0], images.runtime, "outlives"), namespace=watched)
        wait_until(lambda: (kube.get("sdc", "outlives", watched) or {}).get("metadata", {}).get("finalizers"),
                   "the second release's operator took the cluster", timeout=120)
        kube.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "180s")
        left = (kube.get("sdc", "outlives", watched) or {}).get("metadata", {}).get("finalizers")
        assert not left, f"the uninstalled operator left its finalizer: {left}"
        kube.kubectl("delete", "sdc", "outlives", "-n", watched, "--wait=true", "--timeout=30s")

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


def test_notes_steps_run_as_written(operator_release: str, kube: Kube, images: Images, tmp_path: Path) -> None:
    """The chart's NOTES, as `helm install` printed them: examples/minimal.yaml as shipped (no image: the
    chart's runtimeImage) comes up, and `kubectl scale --replicas=2` fits the 2-CPU node."""
    notes = kube.helm("get", "notes", operator_release, "--namespace", OPERATOR_NAMESPACE).stdout
    commands = [shlex.split(line.split("#", 1)[0]) for line in notes.splitlines()
                if line.strip().startswith(("kubectl ", "helm "))]
    assert [c for c in commands if "apply" in c and "examples/minimal.yaml" in c], notes
    cluster, namespace = "minimal", TEST_NAMESPACE
    try:
        for command in commands:
            tool_name, *args = command
            args = [str(REPO / a) if a.startswith("examples/") else a for a in args]
            if "-w" in args:  # `get sdc -w` watches until interrupted: wait for what it would show instead
                kube.wait_running(cluster, example(cluster)[0]["spec"]["workers"]["replicas"], namespace)
                print(kube.kubectl(*[a for a in args if a != "-w"]).stdout)
            elif "port-forward" in args:  # in the background, on free local ports; the dashboard answers
                target = next(a for a in args if a.startswith("svc/"))
                with kube.port_forward(target, 8787, tmp_path / "pf.log", namespace) as port:
                    assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30).read() == b"ok"
            elif tool_name == "helm":
                kube.helm(*args)
            else:
                kube.kubectl(*args)
                if "scale" in args:
                    replicas = int(next(a for a in args if a.startswith("--replicas=")).split("=")[1])
                    kube.wait_running(cluster, replicas, namespace)
                    pods = kube.pods(cluster, namespace=namespace)
                    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {images.runtime}
        wait_until(lambda: not kube.pods(cluster, namespace=namespace), "the NOTES' cluster gone", timeout=120)
    finally:
        kube.delete_cluster(cluster, namespace)
