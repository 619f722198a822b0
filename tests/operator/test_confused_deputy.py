"""The operator is no confused deputy, on the real kube-apiserver with the real operator.

A user whose Role allows SeamlessDaskClusters and nothing else (``kubectl
--as``, the API server's own impersonation and RBAC) cannot get, through the
operator, a pod they could not have created: every such field ends in Failed
with the field named, and nothing is created. The scheduler gets a
NetworkPolicy owned by the cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from seamless_dask_runtime.model.identity import CLUSTER_LABEL, GROUP, KIND, PLURAL, VERSION
from tests.operator.conftest import Clusters
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube

KUBECTL = str(Path(sys.executable).parent / "kubectl")
USER = "sdc-only-user"


def kubectl_as_user(control_plane: Any, namespace: str, *args: str, stdin: str | None = None
                    ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace, "--as", USER,
                           *args], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def sdc_only_user(kube_api: client.ApiClient, namespace: str) -> str:
    rbac = client.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "sdc-only"},
        "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "create", "delete"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "sdc-only"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sdc-only"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]})
    return USER


HOSTILE_SPEC = {
    "workers": {"replicas": 1, "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]},
    "scheduler": {"serviceType": "LoadBalancer"},
    "serviceAccountName": "deployer",
    "volumes": [{"name": "node-root", "hostPath": {"path": "/"}},
                {"name": "db", "secret": {"secretName": "db"}}],
    "volumeMounts": [{"name": "node-root", "mountPath": "/host"}],
}


def test_a_user_allowed_only_clusters_gets_no_pod_they_could_not_create(
        operator: Any, clusters: Clusters, control_plane: Any, sdc_only_user: str) -> None:
    ns = clusters.namespace
    assert kubectl_as_user(control_plane, ns, "auth", "can-i", "create", "pods").stdout.strip() == "no"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "deputy"}, "spec": HOSTILE_SPEC}
    created = kubectl_as_user(control_plane, ns, "create", "-f", "-", stdin=json.dumps(body))
    assert created.returncode == 0, created.stderr  # the user may create clusters: the operator must say no

    status = clusters.wait_status("deputy", lambda s: s.get("phase") == "Failed", description="Failed")
    message = {c["type"]: c for c in status["conditions"]}["SpecValid"]["message"]
    for field in ("spec.volumes[0].hostPath", "spec.volumes[1].secret", "spec.workers.env[0].valueFrom.secretKeyRef",
                  "spec.serviceAccountName", "spec.scheduler.serviceType"):
        assert field in message, (field, message)
    assert "podPolicy" in message, "the message says how an admin would allow it"
    wait_for(lambda: any(e.reason == "InvalidSpec" for e in clusters.events("deputy")), timeout=20,
             description="InvalidSpec event")
    assert clusters.children("deputy") == ([], 0, 0), "no scheduler, no Service, no worker pod"
    assert not clusters.core.list_namespaced_pod(ns).items

    # The user sees why (they may read their clusters) and can delete what they made.
    shown = kubectl_as_user(control_plane, ns, "get", "sdc", "deputy", "-o", "jsonpath={.status.message}")
    assert "hostPath" in shown.stdout
    assert kubectl_as_user(control_plane, ns, "delete", "sdc", "deputy", "--wait=false").returncode == 0
    wait_for(lambda: clusters.find("deputy") is None, timeout=30, description="deleted")


def test_the_cluster_is_reachable_only_from_its_pods_the_operator_and_whom_the_spec_allows(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient) -> None:
    networking = client.NetworkingV1Api(kube_api)
    ns = clusters.namespace
    lab = {"podSelector": {"matchLabels": {"app": "lab"}}}
    created = clusters.create("fenced", {"workers": {"replicas": 0}, "scheduler": {"allowFrom": [lab]}})
    policy = wait_for(lambda: _find_policy(networking, ns, "fenced-scheduler"), timeout=30,
                      description="the scheduler's NetworkPolicy")
    assert [r.uid for r in policy.metadata.owner_references] == [created["metadata"]["uid"]]
    # Every pod of the cluster (the scheduler and each worker, all their ports: a worker's comm port runs
    # whatever it is sent), not the scheduler alone.
    assert policy.spec.pod_selector.match_labels == {CLUSTER_LABEL: "fenced",
                                                     "app.kubernetes.io/managed-by": "seamless-dask-operator"}
    assert policy.spec.policy_types == ["Ingress"]
    (rule,) = policy.spec.ingress
    assert rule.ports is None, "no port of the cluster's pods is open to anyone else"
    peers = [p.pod_selector.match_labels for p in rule._from]
    assert peers == [{CLUSTER_LABEL: "fenced"}, {"app": "lab"}], "own pods, then the spec's peers; nobody else"

    clusters.create("open", {"workers": {"replicas": 0}})
    policy = wait_for(lambda: _find_policy(networking, ns, "open-scheduler"), timeout=30, description="policy")
    peers = [p.pod_selector.match_labels for p in policy.spec.ingress[0]._from]
    assert peers == [{CLUSTER_LABEL: "open"}, None], "unset allowFrom: the pods of the cluster's namespace only"
    assert all(p.namespace_selector is None for p in policy.spec.ingress[0]._from), "no other namespace"


def _find_policy(networking: client.NetworkingV1Api, namespace: str, name: str) -> Any:
    try:
        return networking.read_namespaced_network_policy(name, namespace)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_pod_labels_cannot_join_another_applications_service(
        operator: Any, clusters: Clusters, control_plane: Any, sdc_only_user: str) -> None:
    """Issue 21 item 4: ``podLabels: {app: web}`` put a worker into the EndpointSlice of the Service ``web``."""
    ns = clusters.namespace
    clusters.core.create_namespaced_service(ns, {
        "metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "joiner"},
            "spec": {"podLabels": {"app": "web"}, "workers": {"replicas": 1, "maximum": 1}}}
    created = kubectl_as_user(control_plane, ns, "create", "-f", "-", stdin=json.dumps(body))
    assert created.returncode == 0, created.stderr
    status = clusters.wait_status("joiner", lambda s: s.get("phase") == "Failed", description="Failed")
    assert "spec.podLabels['app']" in status["message"] and "podPolicy.allowedPodLabels" in status["message"]
    assert clusters.children("joiner") == ([], 0, 0)
    assert not clusters.core.list_namespaced_pod(ns, label_selector="app=web").items, "nothing matches web"
