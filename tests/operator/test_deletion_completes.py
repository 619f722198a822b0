"""Deletion always completes (issue 14): a huge spec, a deleted CRD, a stopped operator.

On the real kube-apiserver with the real operator. Before: a 300 kB env value
made every kopf patch fail with 422 (its diff-base annotation copied the spec,
annotations are limited to 256 KiB) and the finalizer never came off; deleting
the CRD made kopf stop serving the resource (discovery drops ``patch`` from a
terminating CRD) and hung on finalizers; with the operator stopped, every
deletion hung.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from seamless_dask_runtime.model.identity import FINALIZER
from tests.conftest import CRD
from tests.operator.conftest import Clusters, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube

KUBECTL = str(Path(sys.executable).parent / "kubectl")
CRD_NAME = yaml.safe_load(CRD.read_text())["metadata"]["name"]


def _kubectl_delete(control_plane: Any, namespace: str, name: str, timeout: str = "30s") -> None:
    """What a user runs; it returns only once the resource is gone (``--wait`` is kubectl's default)."""
    subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace, "delete", "sdc", name,
                    f"--timeout={timeout}"], check=True, capture_output=True, text=True, timeout=60)


def _warnings(clusters: Clusters, name: str, reason: str) -> list[client.CoreV1Event]:
    return [e for e in clusters.events(name) if e.reason == reason]


def test_300kb_env_value_is_refused_naming_the_field_and_deletion_completes(
        operator: Any, clusters: Clusters, control_plane: Any) -> None:
    clusters.create("huge", {"workers": {"replicas": 1, "env": [{"name": "BIG", "value": "x" * 300_000}]}})
    status = clusters.wait_status("huge", lambda s: s.get("phase") == "Failed", description="Failed")
    condition = {c["type"]: c for c in status["conditions"]}["SpecValid"]
    assert condition["status"] == "False"
    assert condition["message"].startswith("spec.workers.env[0].value: is over 128 KiB")
    assert "ConfigMap" in condition["message"]
    time.sleep(3)  # three more rounds (interval 1 s): none may say it again, nor make a child
    assert len(_warnings(clusters, "huge", "InvalidSpec")) == 1
    assert clusters.children("huge") == ([], 0, 0)
    _kubectl_delete(control_plane, clusters.namespace, "huge")
    assert clusters.find("huge") is None


def test_spec_over_the_annotation_limit_is_served_edited_and_deleted(
        operator: Any, clusters: Clusters, control_plane: Any) -> None:
    """300 kB of valid env (three 100 kB values): what kopf remembers of it must fit in an annotation."""
    env = [{"name": f"PART{i}", "value": str(i) * 100_000} for i in range(3)]
    clusters.create("large", {"workers": {"replicas": 1, "maximum": 3, "env": env}})
    wait_for(lambda: clusters.children("large") == (["large-worker-0"], 1, 1) or None, timeout=30,
             description="scheduler, Service and one worker")
    pod_env = {e.name: e.value for e in clusters.pods("large", "worker")[0].spec.containers[0].env}
    assert pod_env["PART2"] == "2" * 100_000
    # An edit is seen as one (kopf compares against what it stored): the workers follow.
    clusters.patch_spec("large", {"workers": {"replicas": 2}})
    wait_for(lambda: len(clusters.worker_names("large")) == 2, timeout=30, description="2 workers")
    _kubectl_delete(control_plane, clusters.namespace, "large")
    assert clusters.find("large") is None
    wait_for(lambda: clusters.children("large") == ([], 0, 0) or None, timeout=30, description="children gone")


def test_stopped_operator_leaves_no_finalizer_so_deletion_completes(
        operator_factory: Any, clusters: Clusters, control_plane: Any) -> None:
    with operator_factory():
        clusters.create("orphan", {"workers": {"replicas": 1}})
        wait_for(lambda: clusters.children("orphan") == (["orphan-worker-0"], 1, 1) or None, timeout=30,
                 description="children")
        assert clusters.get("orphan")["metadata"]["finalizers"] == [FINALIZER]
    # The operator stopped (an upgrade, a scale to 0, an uninstall): it took its finalizer with it.
    assert FINALIZER not in (clusters.get("orphan")["metadata"].get("finalizers") or [])
    _kubectl_delete(control_plane, clusters.namespace, "orphan", timeout="10s")
    # Children carry an ownerReference: garbage collection removes them (its first look at a new
    # CRD type may take ~30 s, hence the bound).
    wait_for(lambda: clusters.children("orphan") == ([], 0, 0) or None, timeout=90,
             description="children collected")


def test_restarted_operator_puts_its_finalizer_back(operator_factory: Any, clusters: Clusters) -> None:
    with operator_factory():
        clusters.create("again", {"workers": {"replicas": 0}})
        wait_for(lambda: clusters.get("again")["metadata"].get("finalizers") == [FINALIZER], timeout=30,
                 description="finalizer")
    assert not clusters.get("again")["metadata"].get("finalizers")
    with operator_factory():
        wait_for(lambda: clusters.get("again")["metadata"].get("finalizers") == [FINALIZER], timeout=30,
                 description="finalizer back")
        clusters.delete("again")
        wait_for(lambda: clusters.find("again") is None, timeout=30, description="deleted by the operator")


# -- deleting the CRD: a control plane of its own, as the CRD goes -----------------------------------------

@pytest.fixture
def own_control_plane(tmp_path: Path) -> Iterator[Any]:
    from tests.support.control_plane import ControlPlaneUnavailable, start_control_plane

    try:
        plane = start_control_plane(tmp_path / "kube")
    except ControlPlaneUnavailable as exc:
        pytest.skip(str(exc))
    if not plane.managed:
        plane.stop()
        pytest.skip("deleting the CRD needs a control plane of its own (SDO_KUBE_UP), not a borrowed cluster")
    try:
        yield plane
    finally:
        plane.stop()


def _install_crd(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    extensions.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    wait_for(lambda: any(c.type == "Established" and c.status == "True"
                         for c in extensions.read_custom_resource_definition(CRD_NAME).status.conditions or []),
             timeout=30, description="CRD established")


def _crd_gone(extensions: client.ApiextensionsV1Api) -> bool:
    try:
        extensions.read_custom_resource_definition(CRD_NAME)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_crd_deleted_with_two_clusters_goes_in_bounded_time(own_control_plane: Any) -> None:
    api = own_control_plane.api_client()
    _install_crd(api)
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "crd-gone"}})
    wait_for(lambda: core.list_namespaced_service_account("crd-gone").items, timeout=30,
             description="default service account")
    clusters = Clusters(api, "crd-gone")
    extensions = client.ApiextensionsV1Api(api)
    with running_operator(own_control_plane):
        for name in ("one", "two"):
            clusters.create(name, {"workers": {"replicas": 1}})
        for name in ("one", "two"):
            wait_for(lambda n=name: clusters.children(n) == ([f"{n}-worker-0"], 1, 1) or None, timeout=30,
                     description=f"{name}: children")
            assert clusters.get(name)["metadata"]["finalizers"] == [FINALIZER]
        extensions.delete_custom_resource_definition(CRD_NAME)
        wait_for(lambda: _crd_gone(extensions), timeout=30, description="CRD gone")
        try:
            wait_for(lambda: _children_of_namespace(api, "crd-gone") == [], timeout=30, description="children gone")
        except TimeoutError:
            raise AssertionError(f"left: {_children_of_namespace(api, 'crd-gone')}") from None


def _children_of_namespace(api: client.ApiClient, namespace: str) -> list[str]:
    core = client.CoreV1Api(api)
    return ([f"pod {p.metadata.name}" for p in core.list_namespaced_pod(namespace).items]
            + [f"service {s.metadata.name}" for s in core.list_namespaced_service(namespace).items])
