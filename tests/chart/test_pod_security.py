"""The chart's pods meet the "restricted" Pod Security Standard.

Statically (the rules one can check from the manifest), and for real: the
PodSecurity admission of a real API server, enforcing ``restricted`` on a
namespace, accepts the operator pod and the helm-test pod (server-side dry run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from ._helm import CLUSTER_WIDE, NAMESPACED, hook_test_pod, operator_deployment, render

#: Volume types the restricted profile allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}


def chart_pods(helm: str, values: dict) -> dict[str, dict[str, Any]]:
    objects = render(helm, values, namespace="ops")
    return {
        "operator": operator_deployment(objects)["spec"]["template"],
        "helm-test": hook_test_pod(objects),
    }


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Violations of the restricted profile (v1.25+) checkable from the spec, plus a read-only root."""
    problems = []
    psc = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(flag)
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: {kinds}")
    containers = [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name}: capabilities.drop must include ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: capabilities.add {caps['add']}")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile {seccomp}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            problems.append(f"{name}: hostPort")
        if not sc.get("readOnlyRootFilesystem"):
            problems.append(f"{name}: readOnlyRootFilesystem (not PSS, but our rule)")
    return problems


@pytest.mark.parametrize("values", [CLUSTER_WIDE, NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_pods_pass_restricted_statically(helm: str, values: dict) -> None:
    for name, pod in chart_pods(helm, values).items():
        spec = pod["spec"]
        assert restricted_violations(spec) == [], name
        psc = spec["securityContext"]
        assert psc["runAsUser"] == 1000 and psc["fsGroup"] == 1000, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name


def test_the_checker_catches_violations() -> None:
    bad = {
        "hostNetwork": True,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"privileged": True,
                                                         "capabilities": {"add": ["SYS_ADMIN"]}}}],
    }
    problems = restricted_violations(bad)
    for word in ("hostNetwork", "hostPath", "privileged", "allowPrivilegeEscalation", "drop must include ALL",
                 "SYS_ADMIN", "runAsNonRoot", "seccompProfile", "readOnlyRootFilesystem"):
        assert any(word in p for p in problems), word


def test_pods_admitted_by_pod_security_restricted(
    helm: str, api: k8s.ApiClient, new_namespace: Callable[..., str]
) -> None:
    ns = new_namespace("pss", labels={"pod-security.kubernetes.io/enforce": "restricted",
                                      "pod-security.kubernetes.io/enforce-version": "latest"})
    core = k8s.CoreV1Api(api)
    core.create_namespaced_service_account(ns, {"metadata": {"name": "sdo-seamless-dask-operator"}})
    for name, pod in chart_pods(helm, CLUSTER_WIDE).items():
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"chart-{name}", "labels": pod["metadata"].get("labels", {})},
                "spec": pod["spec"]}
        # Raises 403 Forbidden "violates PodSecurity restricted:latest" otherwise.
        core.create_namespaced_pod(ns, body, dry_run="All")
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        core.create_namespaced_pod(ns, {"metadata": {"name": "bad"},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                                   dry_run="All")
    assert refused.value.status == 403 and "PodSecurity" in refused.value.body
