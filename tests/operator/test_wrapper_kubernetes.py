"""seamless-dask-wrapper → SeamlessDaskCluster: status file in, resource out, and back."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import Clusters
from tests.support.kubelet import make_pod_ready
from tests.support.waiting import wait_for
from tests.support.wrapper import start_wrapper, stop, wait_for_exit, wait_for_status, write_launcher_status

pytestmark = pytest.mark.kube
CLUSTER = "seamless_dask_runtime.kubernetes::SeamlessDaskCluster"


def _start(path: Path, control_plane: Any) -> Any:
    return start_wrapper(path, cluster=CLUSTER, env={"KUBECONFIG": str(control_plane.kubeconfig),
                                                     "SEAMLESS_DASK_K8S_ADDRESS": "service"})


def _schedule_and_wait_running(clusters: Clusters, kube_api: client.ApiClient, name: str, path: Path,
                               proc: Any, pod_ip: str) -> dict:
    """Do the kubelet's part for the scheduler pod, then wait for the wrapper's `running`."""
    scheduler = wait_for(lambda: clusters.pods(name, "scheduler"), timeout=30, description="scheduler pod")[0]
    make_pod_ready(kube_api, clusters.namespace, scheduler.metadata.name, "node-1", pod_ip=pod_ip)
    status = wait_for_status(path, proc, timeout=60)
    assert status["status"] == "running", status
    return status


def test_status_file_to_running_resource_and_back(operator: Any, clusters: Clusters, control_plane: Any,
                                                  kube_api: client.ApiClient, tmp_path: Path) -> None:
    path = tmp_path / "daskserver-hpc-proj.json"
    launcher = write_launcher_status(path, {"cores": 2, "memory": "2GiB", "maximum_jobs": 3, "interactive": True,
                                            "namespace": clusters.namespace, "timeout": 600})
    proc = _start(path, control_plane)
    try:
        resource = wait_for(lambda: clusters.find("daskserver-hpc-proj"), timeout=30, description="resource")
        spec = resource["spec"]
        assert (spec["cores"], spec["memory"], spec["interactive"], spec["timeout"]) == (2, "2GiB", True, 600)
        assert spec["workers"] == {"adaptive": True, "minimum": 1, "maximum": 3, "replicas": 0, "retireTimeout": 120}
        assert json.loads(path.read_text())["status"] == "starting"  # not running before the scheduler is
        status = _schedule_and_wait_running(clusters, kube_api, "daskserver-hpc-proj", path, proc, "10.244.0.7")
        assert status["scheduler_address"] == f"tcp://daskserver-hpc-proj-scheduler.{clusters.namespace}.svc:8786"
        assert (status["port"], status["dashboard_port"]) == (8786, 8787)
        assert status["parameters"] == launcher["parameters"] and status["pid"] == launcher["pid"]

        proc.send_signal(signal.SIGTERM)
        assert wait_for_exit(proc, 90) == 0
        assert not path.exists()
        assert clusters.find("daskserver-hpc-proj") is None
    finally:
        stop(proc)


def test_resource_deleted_by_operator_idle_timeout_stops_wrapper(operator: Any, clusters: Clusters,
                                                                 control_plane: Any, kube_api: client.ApiClient,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "namespace": clusters.namespace, "name": "idle"})
    proc = _start(path, control_plane)
    try:
        _schedule_and_wait_running(clusters, kube_api, "idle", path, proc, "10.244.0.8")
        clusters.delete("idle")  # what the operator does after spec.timeout idle seconds
        assert wait_for_exit(proc, 90) == 0
        assert not path.exists()
    finally:
        stop(proc)


def test_failed_resource_fails_the_status_file(operator: Any, clusters: Clusters, control_plane: Any,
                                               kube_api: client.ApiClient, tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "namespace": clusters.namespace, "name": "doomed"})
    proc = _start(path, control_plane)
    try:
        _schedule_and_wait_running(clusters, kube_api, "doomed", path, proc, "10.244.0.9")
        # Someone breaks the running cluster's spec: the operator reports Failed with the field.
        clusters.patch_spec("doomed", {"unknownTaskDuration": "never"})
        deadline_status = wait_for(lambda: json.loads(path.read_text()).get("status") == "failed"
                                   and json.loads(path.read_text()), timeout=60, description="failed")
        assert "spec.unknownTaskDuration" in deadline_status["error"]
        assert wait_for_exit(proc, 120) == 1  # after deleting the resource it created
        wait_for(lambda: clusters.find("doomed") is None, timeout=60, description="resource cleaned up")
    finally:
        stop(proc)


def test_api_refusal_is_a_clear_failure(kube_api: client.ApiClient, clusters: Clusters, control_plane: Any,
                                        tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "namespace": "no-such-namespace", "name": "x"})
    proc = _start(path, control_plane)
    try:
        status = wait_for_status(path, proc, timeout=60)
        assert status["status"] == "failed"
        assert "404" in status["error"] and "no-such-namespace" in status["error"]
    finally:
        stop(proc)


def test_stop_signal_while_waiting_for_running(operator: Any, clusters: Clusters, control_plane: Any,
                                               tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "namespace": clusters.namespace, "name": "impatient"})
    proc = _start(path, control_plane)
    try:
        wait_for(lambda: clusters.find("impatient"), timeout=30, description="resource")
        proc.send_signal(signal.SIGTERM)  # the scheduler never becomes Ready: no kubelet
        # Stopped by a signal before running: exit 128 + N, as a shell reports it (and as every stage of the wrapper).
        assert wait_for_exit(proc, 90) == 128 + signal.SIGTERM
        assert json.loads(path.read_text())["status"] == "failed"  # it never ran: failed, as the original does
        wait_for(lambda: clusters.find("impatient") is None, timeout=60, description="resource removed")
    finally:
        stop(proc)


def test_relaunch_after_sigkill_takes_over_its_live_cluster(operator: Any, clusters: Clusters, control_plane: Any,
                                                            kube_api: client.ApiClient, tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    parameters = {"cores": 1, "namespace": clusters.namespace, "name": "phoenix", "timeout": 600}
    write_launcher_status(path, parameters)
    first = _start(path, control_plane)
    second = None
    try:
        _schedule_and_wait_running(clusters, kube_api, "phoenix", path, first, "10.244.0.10")
        uid = clusters.get("phoenix")["metadata"]["uid"]
        stop(first)  # SIGKILL: the resource stays behind
        relaunch = write_launcher_status(path, parameters)  # what the launcher writes for the next wrapper
        second = _start(path, control_plane)
        status = wait_for_status(path, second, timeout=60)
        assert status["status"] == "running", status.get("error")
        assert status["pid"] == relaunch["pid"]
        assert clusters.get("phoenix")["metadata"]["uid"] == uid  # the same live cluster, not a new one
        second.send_signal(signal.SIGTERM)
        assert wait_for_exit(second, 90) == 0
        assert not path.exists()
        wait_for(lambda: clusters.find("phoenix") is None, timeout=60, description="resource removed")
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_name_taken_by_someone_else_says_how_to_free_it(operator: Any, clusters: Clusters, control_plane: Any,
                                                        tmp_path: Path) -> None:
    clusters.create("taken", {"cores": 1})  # a user's own cluster, no wrapper behind it
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "namespace": clusters.namespace, "name": "taken"})
    proc = _start(path, control_plane)
    try:
        status = wait_for_status(path, proc, timeout=60)
        assert wait_for_exit(proc, 60) == 1
        assert status["status"] == "failed"
        assert f"kubectl delete sdc taken -n {clusters.namespace}" in status["error"]
        assert "already exists" in status["error"]
        assert clusters.find("taken") is not None  # not ours: untouched
    finally:
        stop(proc)
