"""`helm install` / `upgrade` / `uninstall` of the chart against a real API server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.support.control_plane import ControlPlane
from tests.support.waiting import wait_for

from ._helm import CHART, run, set_args


def can_i(kubectl: str, cp: ControlPlane, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    proc = run([kubectl, "auth", "can-i", verb, resource, *where, f"--as={sa}"], env=cp.env(), check=False)
    return proc.stdout.strip() == "yes"


def test_install_upgrade_uninstall(
    helm: str, kubectl: str, control_plane: ControlPlane, api: k8s.ApiClient,
    new_namespace: Callable[..., str],
) -> None:
    env = control_plane.env()
    # The release namespace enforces the restricted Pod Security Standard: the
    # ReplicaSet controller's operator pod must be admitted there.
    ops = new_namespace("ops", labels={"pod-security.kubernetes.io/enforce": "restricted"})
    team_a, team_b, other = new_namespace("team-a"), new_namespace("team-b"), new_namespace("other")
    release = f"sdo-{uuid.uuid4().hex[:5]}"
    full = f"{release}-seamless-dask-operator"
    sa = f"system:serviceaccount:{ops}:{full}"
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    try:
        run([helm, "install", release, str(CHART), "-n", ops, "--wait=false", "--timeout", "60s"], env=env)
        status = json.loads(run([helm, "status", release, "-n", ops, "-o", "json"], env=env).stdout)
        assert status["info"]["status"] == "deployed"
        # The CRD came with the chart and is served.
        run([kubectl, "get", "sdc", "-A"], env=env)
        assert apps.read_namespaced_deployment(full, ops).spec.template.spec.service_account_name == full
        core.read_namespaced_service(full, ops)

        def operator_pod_created() -> bool:
            pods = core.list_namespaced_pod(ops, label_selector=f"app.kubernetes.io/instance={release}").items
            return len(pods) == 2  # replicaCount: one acts, one stands by

        wait_for(operator_pod_created, timeout=60, interval=0.2,
                 description="operator pods admitted in a restricted namespace")

        # Cluster-wide mode: the live RBAC (impersonating the ServiceAccount).
        for ns in (team_a, other):
            assert can_i(kubectl, control_plane, sa, "create", "pods", ns)
            assert can_i(kubectl, control_plane, sa, "patch", "seamlessdaskclusters.seamless.dask.org/status", ns)
        # A Secret by name, to read whose it is (kube.py asks for its metadata only); never a list or a watch.
        assert not can_i(kubectl, control_plane, sa, "list", "secrets", team_a)
        assert not can_i(kubectl, control_plane, sa, "watch", "secrets", team_a)
        assert not can_i(kubectl, control_plane, sa, "list", "namespaces", None)  # kopf -A does not

        # Upgrade to namespaced mode: Roles in the watched namespaces only.
        run([helm, "upgrade", release, str(CHART), "-n", ops, "--wait=false",
             *set_args({"watchNamespaces": [team_a, team_b]})], env=env)
        for ns in (team_a, team_b):
            assert can_i(kubectl, control_plane, sa, "create", "pods", ns)
            assert can_i(kubectl, control_plane, sa, "delete", "pods", ns)
            assert not can_i(kubectl, control_plane, sa, "deletecollection", "pods", ns)
        assert not can_i(kubectl, control_plane, sa, "create", "pods", other)
        assert not can_i(kubectl, control_plane, sa, "list", "seamlessdaskclusters.seamless.dask.org", other)
        assert can_i(kubectl, control_plane, sa, "list", "namespaces", None)
        assert can_i(kubectl, control_plane, sa, "watch", "customresourcedefinitions.apiextensions.k8s.io", None)
        assert not can_i(kubectl, control_plane, sa, "get", "customresourcedefinitions.apiextensions.k8s.io", None)
        args = apps.read_namespaced_deployment(full, ops).spec.template.spec.containers[0].args
        assert f"--namespace={team_a}" in args and f"--namespace={team_b}" in args
    finally:
        # --no-hooks: the uninstall hook is a Job, and no kubelet runs it here (tests/e2e run it on a node).
        run([helm, "uninstall", release, "-n", ops, "--wait=false", "--no-hooks"], env=env, check=False)

    # Everything of the release is gone; the CRD stays (helm never deletes CRDs).
    for read in (lambda: apps.read_namespaced_deployment(full, ops),
                 lambda: core.read_namespaced_service_account(full, ops),
                 lambda: k8s.RbacAuthorizationV1Api(api).read_namespaced_role(full, team_a),
                 lambda: k8s.RbacAuthorizationV1Api(api).read_cluster_role(f"{full}-cluster-read")):
        try:
            read()
        except ApiException as exc:
            assert exc.status == 404
        else:
            raise AssertionError("object left behind by helm uninstall")
    k8s.ApiextensionsV1Api(api).read_custom_resource_definition("seamlessdaskclusters.seamless.dask.org")
