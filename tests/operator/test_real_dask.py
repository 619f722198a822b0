"""Real Dask behind the pods: the built command lines run as local processes.

The scheduler and workers start from the exact args and env of the pod specs
the operator created (the kubelet's job, done here); only addresses are made
local. The operator then sees a live scheduler through its HTTP API.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from distributed import Client
from kubernetes import client

from tests.operator.conftest import Clusters
from tests.support.kubelet import make_pod_ready
from tests.support.pods import start_container, stop_process
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
# Workers cannot import the test package: ship this module's functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
DASHBOARD_PORT = os.environ["SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT"]



class LocalKubelet:
    """Starts pods' containers as processes and marks the pods Ready."""

    def __init__(self, api: client.ApiClient, clusters: Clusters, name: str, tmp: Path):
        self.api, self.clusters, self.name, self.tmp = api, clusters, name, tmp
        self.comm_port = free_port()
        self.processes: dict[str, Any] = {}
        ns = clusters.namespace
        self.replace = {
            ":8787": f":{DASHBOARD_PORT}",
            "8786": str(self.comm_port),
            f"tcp://{name}-scheduler.{ns}.svc:8786": f"tcp://127.0.0.1:{self.comm_port}",
            ":8788": ":0",
        }

    def run_scheduler(self) -> None:
        pod = wait_for(lambda: self.clusters.pods(self.name, "scheduler"), timeout=20, description="scheduler")[0]
        container = self.api.sanitize_for_serialization(pod.spec.containers[0])
        self.processes[pod.metadata.name] = start_container(
            container, pod.metadata.name, self.replace, str(self.tmp / "scheduler.log"))
        with Client(f"tcp://127.0.0.1:{self.comm_port}", timeout=30):
            pass
        make_pod_ready(self.api, self.clusters.namespace, pod.metadata.name, "node-1", pod_ip="127.0.0.1")

    def run_workers(self) -> list[str]:
        started = []
        for pod in self.clusters.pods(self.name, "worker"):
            if pod.metadata.name in self.processes:
                continue
            container = self.api.sanitize_for_serialization(pod.spec.containers[0])
            self.processes[pod.metadata.name] = start_container(
                container, pod.metadata.name, self.replace, str(self.tmp / f"{pod.metadata.name}.log"))
            make_pod_ready(self.api, self.clusters.namespace, pod.metadata.name, "node-1", pod_ip="127.0.0.1")
            started.append(pod.metadata.name)
        return started

    def reap_deleted(self) -> None:
        """A kubelet kills the containers of deleted pods."""
        live = {p.metadata.name for p in self.clusters.pods(self.name, "worker")}
        for name, proc in list(self.processes.items()):
            if "-worker-" in name and name not in live:
                stop_process(proc)
                del self.processes[name]

    def stop(self) -> None:
        for proc in self.processes.values():
            stop_process(proc)


@pytest.fixture
def kubelet(kube_api: client.ApiClient, clusters: Clusters, tmp_path: Path) -> Iterator[LocalKubelet]:
    node = LocalKubelet(kube_api, clusters, "live", tmp_path)
    yield node
    node.stop()


def _worker_view(dask_worker: Any) -> dict[str, Any]:
    return {
        "throttle": os.environ.get("SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"),
        "plugin": "seamless-worker" in dask_worker.plugins,
        "nthreads": dask_worker.state.nthreads,
    }


def test_pods_form_a_working_seamless_cluster_and_scale_down_keeps_results(
    operator: Any, clusters: Clusters, kubelet: LocalKubelet
) -> None:
    clusters.create("live", {"cores": 1, "workers": {"replicas": 2, "maximum": 3, "retireTimeout": 60}})
    kubelet.run_scheduler()
    clusters.wait_status("live", lambda s: s.get("phase") == "Running", timeout=30, description="Running")
    wait_for(lambda: len(clusters.worker_names("live")) == 2, timeout=20, description="worker pods")
    kubelet.run_workers()

    with Client(f"tcp://127.0.0.1:{kubelet.comm_port}", timeout=30) as dask:
        dask.wait_for_workers(2, timeout=60)
        # The scheduler's Prometheus endpoint, on the port its Service exposes as http-dashboard.
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{DASHBOARD_PORT}/metrics", timeout=10).read().decode()
        assert "dask_scheduler_workers" in metrics
        clusters.wait_status("live", lambda s: s.get("workersReady") == 2, description="2 ready")
        views = dask.run(_worker_view)
        assert len(views) == 2
        for view in views.values():
            assert view == {"throttle": "3", "plugin": True, "nthreads": 3}
        # Results held in worker memory, spread over both workers.
        futures = [dask.submit(lambda i: list(range(i * 1000)), i, pure=False) for i in range(20)]
        dask.gather(futures)
        holders = {w for ws in dask.who_has(futures).values() for w in ws}
        assert len(holders) == 2

        # A worker joining later gets the plugin too.
        clusters.patch_spec("live", {"workers": {"replicas": 3}})
        wait_for(lambda: len(clusters.worker_names("live")) == 3, timeout=20, description="3 worker pods")
        kubelet.run_workers()
        dask.wait_for_workers(3, timeout=60)
        assert all(v["plugin"] for v in dask.run(_worker_view).values())

        # Scale down to one: the scheduler retires two workers (moving their data), then their pods go.
        clusters.patch_spec("live", {"workers": {"replicas": 1}})
        wait_for(lambda: len(clusters.worker_names("live")) == 1, timeout=60, description="1 worker pod")
        kubelet.reap_deleted()
        deadline = time.monotonic() + 30
        while len(dask.scheduler_info()["workers"]) != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(dask.scheduler_info()["workers"]) == 1
        results = dask.gather(futures)
        assert [len(r) for r in results] == [i * 1000 for i in range(20)]
        survivor = clusters.worker_names("live")[0]
        assert {dask.scheduler_info()["workers"][a]["name"] for a in dask.scheduler_info()["workers"]} == {survivor}
    clusters.wait_status("live", lambda s: s.get("workersReady") == 1 and s.get("workersDesired") == 1)
