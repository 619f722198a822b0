"""Pure mappings of the wrapper's Kubernetes backends."""

from __future__ import annotations

from seamless_dask_runtime.kubernetes import resource_manifest
from seamless_dask_runtime.launcher.wrapper.backends import LaunchRequest
from seamless_dask_runtime.launcher.wrapper.backends.kubernetes import default_name, kube_cluster_arguments
from seamless_dask_runtime.model.parameters import from_status_parameters
from seamless_dask_runtime.model.worker_environment import worker_environment


def test_resource_manifest_maps_status_parameters() -> None:
    params = from_status_parameters({"cores": 4, "memory": "8GiB", "transformation_throttle": 2, "maximum_jobs": 5,
                                     "unknown-task-duration": "2m", "image": "registry/rt:1"})
    body = resource_manifest(params, "c1", "ns")
    assert body["metadata"]["name"] == "c1" and body["metadata"]["namespace"] == "ns"
    assert body["spec"] == {"cores": 4, "memory": "8GiB", "transformationThrottle": 2, "unknownTaskDuration": "2m",
                            "image": "registry/rt:1",
                            "workers": {"adaptive": True, "minimum": 0, "maximum": 5, "replicas": 0}}


def test_without_an_image_the_operators_default_applies() -> None:
    params = from_status_parameters({"cores": 1, "maximum_jobs": 2})
    assert "image" not in resource_manifest(params, "c1", "ns")["spec"], "the chart's runtimeImage decides"


def test_default_name_is_a_dns_label() -> None:
    assert default_name("/home/u/.remote-http-launcher/server/daskserver-hpc-proj.json") == "daskserver-hpc-proj"
    assert default_name("/tmp/123_Status.json") == "sd-123-status"


def test_kube_cluster_gets_our_worker_environment() -> None:
    params = from_status_parameters({"cores": 2, "memory": "4GiB", "interactive": True, "maximum_jobs": 3})
    request = LaunchRequest(params=params, host="0.0.0.0", scheduler_port=41000, dashboard_port=41001,
                            status_path="/x/daskserver-a.json")
    kwargs = kube_cluster_arguments(params, request)
    assert kwargs["env"] == worker_environment(params, cpu_count="2")
    assert kwargs["env"]["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"] == "3"
    assert kwargs["worker_command"] == ["dask", "worker", "--nthreads", "6"]
    assert (kwargs["name"], kwargs["n_workers"], kwargs["scheduler_forward_port"]) == ("daskserver-a", 1, 41000)
    assert kwargs["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}


def test_memory_is_a_kubernetes_quantity_on_both_kubernetes_paths() -> None:
    from seamless_dask_operator.builders import ClusterRef, worker_pod
    from seamless_dask_operator.resource import parse_spec

    params = from_status_parameters({"cores": 1, "memory": "54000MB"})
    request = LaunchRequest(params=params, host="0.0.0.0", scheduler_port=1, dashboard_port=2)
    assert kube_cluster_arguments(params, request)["resources"]["requests"]["memory"] == "54000M"
    pod = worker_pod(ClusterRef("c", "ns", "u"), parse_spec({"memory": "54000MB"}), 0)
    assert pod["spec"]["containers"][0]["resources"]["requests"]["memory"] == "54000M"
