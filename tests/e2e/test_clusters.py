"""SeamlessDaskClusters on real pods: every example comes up, computes from inside and outside the cluster,
carries the plugin and throttle environment, scales, heals, and times out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .kube import EXAMPLES, TEST_NAMESPACE, Images, Kube, example, is_ready, small_cluster, wait_until

THROTTLE = "SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"


def _hostpath_volume_for(claim: dict, name: str) -> dict:
    """A PersistentVolume the example's claim binds to on a one-node cluster without a provisioner."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": claim["spec"]["resources"]["requests"], "accessModes": claim["spec"]["accessModes"],
                 "hostPath": {"path": f"/tmp/{name}", "type": "DirectoryOrCreate"},
                 "claimRef": {"namespace": TEST_NAMESPACE, "name": claim["metadata"]["name"]},
                 "persistentVolumeReclaimPolicy": "Delete"},
    }


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
def test_every_example_runs(name: str, operator_release: str, kube: Kube, images: Images) -> None:
    """`kubectl apply -f examples/X.yaml` as shipped (no image, their own sizes, on a 2-CPU node): Running only
    once the scheduler passes its probe; workers connect; the pods run the chart's runtimeImage."""
    docs = example(name)
    extra = [d for d in docs if d["kind"] != "SeamlessDaskCluster"]
    cluster = next(d for d in docs if d["kind"] == "SeamlessDaskCluster")
    assert "image" not in cluster["spec"], "the examples run the operator's default image"
    volume = f"sdo-e2e-{name}"
    if any(d["kind"] == "PersistentVolumeClaim" for d in extra):
        kube.kubectl("delete", "pv", volume, "--ignore-not-found")
        kube.apply(*[_hostpath_volume_for(d, volume) for d in extra if d["kind"] == "PersistentVolumeClaim"])
    workers = cluster["spec"]["workers"]
    expected = workers.get("minimum", 0) if workers.get("adaptive") else workers.get("replicas", 1)
    try:
        kube.apply(*extra, cluster)
        kube.wait_running(cluster["metadata"]["name"], expected)
        connected = kube.connected_workers(cluster["metadata"]["name"])
        assert len(connected) == expected, connected
        images_run = {c["image"] for p in kube.pods(cluster["metadata"]["name"]) for c in p["spec"]["containers"]}
        assert images_run == {images.runtime}, images_run
    finally:
        kube.delete_cluster(cluster["metadata"]["name"])
        for doc in extra:
            kube.kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "-n", TEST_NAMESPACE,
                         "--ignore-not-found", "--wait=false")
        kube.kubectl("delete", "pv", volume, "--ignore-not-found", "--wait=false")


@pytest.fixture
def minimal(operator_release: str, kube: Kube, images: Images, request: pytest.FixtureRequest) -> str:
    """examples/minimal.yaml, Running with one worker; deleted after the test."""
    name = f"min-{request.node.name.split('[')[0].removeprefix('test_')[:20].replace('_', '-')}".rstrip("-")
    kube.apply(small_cluster(example("minimal")[0], images.runtime, name))
    request.addfinalizer(lambda: kube.delete_cluster(name))
    kube.wait_running(name, 1)
    return name


def test_computes_from_a_pod_through_the_service_and_from_the_host(minimal: str, kube: Kube, images: Images,
                                                                   tmp_path: Path) -> None:
    inside = kube.run_pod("sdo-e2e-client", images.runtime, (
        "import os\nfrom distributed import Client\n"
        f"with Client('tcp://{minimal}-scheduler:8786', timeout=60) as c:\n"
        "    print('sum', c.submit(sum, range(10)).result())\n"
        f"    print('throttle', sorted(set(c.run(os.getenv, '{THROTTLE}').values())))\n"))
    assert "sum 45" in inside, inside
    assert f"{minimal}-scheduler.{TEST_NAMESPACE}.svc" in kube.status(minimal)["schedulerAddress"]

    with kube.dask_client(minimal, tmp_path) as client:
        # Results come back through the scheduler: the host cannot reach pod IPs on every platform.
        assert client.submit(pow, 7, 2).result(timeout=60) == 49


def test_every_worker_carries_the_plugin_and_throttle(minimal: str, kube: Kube, tmp_path: Path) -> None:
    """Also workers that join later (scale 1 -> 2)."""

    kube.kubectl("scale", "sdc", minimal, "-n", TEST_NAMESPACE, "--replicas=2")
    kube.wait_running(minimal, 2)
    with kube.dask_client(minimal, tmp_path) as client:
        client.wait_for_workers(2, timeout=60)
        throttles = client.run(os.getenv, THROTTLE)
        plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert len(throttles) == 2 and set(throttles.values()) == {"3"}, throttles
    assert all("seamless-worker" in names for names in plugins.values()), plugins


def test_scale_up_and_down_keeps_results(minimal: str, kube: Kube, tmp_path: Path) -> None:
    """`kubectl scale` 1 -> 3 -> 1: results held in worker memory survive the retirement of two workers."""

    kube.kubectl("scale", "sdc", minimal, "-n", TEST_NAMESPACE, "--replicas=3")
    kube.wait_running(minimal, 3)
    with kube.dask_client(minimal, tmp_path) as client:
        client.wait_for_workers(3, timeout=60)
        held = client.map(lambda i: bytes(100_000) + i.to_bytes(4, "big"), range(60), pure=False)
        client.gather(held)
        holders = {w for w, keys in client.has_what().items() if keys}
        assert len(holders) >= 2, "results should be spread over the workers"
        kube.kubectl("scale", "sdc", minimal, "-n", TEST_NAMESPACE, "--replicas=1")
        kube.wait_running(minimal, 1)
        wait_until(lambda: len(kube.pods(minimal, "worker")) == 1, "two worker pods deleted")
        results = client.gather(held)
    assert [int.from_bytes(r[-4:], "big") for r in results] == list(range(60))


def test_killed_worker_pod_is_replaced(minimal: str, kube: Kube) -> None:
    [worker] = kube.pods(minimal, "worker")
    kube.kubectl("delete", "pod", worker["metadata"]["name"], "-n", TEST_NAMESPACE, "--grace-period=0", "--force")

    def replaced() -> bool:
        pods = kube.pods(minimal, "worker")
        return len(pods) == 1 and pods[0]["metadata"]["uid"] != worker["metadata"]["uid"] and is_ready(pods[0])
    wait_until(replaced, "a new worker pod, Ready")
    kube.wait_running(minimal, 1)
    wait_until(lambda: len(kube.connected_workers(minimal)) == 1, "the new worker connected")


def test_killed_scheduler_pod_leaves_running_and_returns(minimal: str, kube: Kube) -> None:
    [scheduler] = kube.pods(minimal, "scheduler")
    kube.kubectl("delete", "pod", scheduler["metadata"]["name"], "-n", TEST_NAMESPACE, "--grace-period=0", "--force")
    wait_until(lambda: kube.status(minimal).get("phase") != "Running", "phase leaves Running", timeout=60,
               interval=0.3)
    kube.wait_running(minimal, 1)
    wait_until(lambda: len(kube.connected_workers(minimal)) == 1, "the worker reconnected to the new scheduler")


def test_idle_timeout_deletes_the_cluster(operator_release: str, kube: Kube, images: Images) -> None:
    doc = small_cluster(example("minimal")[0], images.runtime, "idle")
    doc["spec"]["timeout"] = 15
    kube.apply(doc)
    try:
        kube.wait_running("idle", 1)
        wait_until(lambda: kube.get("sdc", "idle") is None, "the idle cluster deleted itself", timeout=90)
        assert kube.events("idle", "IdleTimeout"), "an IdleTimeout Event says why the cluster went"
    finally:
        kube.delete_cluster("idle")


def test_adaptive_scales_to_maximum_under_load_and_back_when_idle(operator_release: str, kube: Kube,
                                                                    images: Images, tmp_path: Path) -> None:
    doc = small_cluster(example("adaptive")[0], images.runtime, "adapt")
    doc["spec"].update(targetDuration="5s", unknownTaskDuration="20s")
    doc["spec"]["workers"].update(minimum=0, maximum=3)
    kube.apply(doc)
    try:
        kube.wait_running("adapt", 0)
        with kube.dask_client("adapt", tmp_path) as client:
            import time

            futures = client.map(time.sleep, [0.5] * 60, pure=False)
            wait_until(lambda: kube.status("adapt").get("workersReady") == 3, "3 workers (maximum) under load")
            client.gather(futures)
            del futures
        wait_until(lambda: kube.status("adapt").get("workersReady") == 0 and not kube.pods("adapt", "worker"),
                   "idle: back to minimum 0", timeout=180)
    finally:
        kube.delete_cluster("adapt")
