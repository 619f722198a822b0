"""The real operator's rounds: a pod's change shows in ``.status`` without waiting for the period, and a
cluster where nothing changes is not written to."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from seamless_dask_operator.handlers import cluster_loop

from tests.operator.conftest import Clusters
from tests.support.kubelet import make_pod_ready
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube

PERIOD = 60.0  # far longer than any wait below: what happens sooner was not the periodic round


@pytest.fixture
def long_period(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator (in this process) rounds every PERIOD s instead of the tests' 1 s."""
    monkeypatch.setattr(cluster_loop, "SETTINGS",
                        dataclasses.replace(cluster_loop.SETTINGS, reconcile_interval=PERIOD))
    yield


def test_ready_pods_show_in_status_long_before_the_next_period(long_period: None, operator: Any,
                                                               clusters: Clusters,
                                                               kube_api: client.ApiClient) -> None:
    clusters.create("quick", {"workers": {"replicas": 1, "maximum": 1}})
    clusters.wait_status("quick", lambda s: s.get("phase") == "Starting")
    scheduler = wait_for(lambda: clusters.pods("quick", "scheduler"), timeout=20, description="scheduler pod")[0]

    started = time.monotonic()
    make_pod_ready(kube_api, clusters.namespace, scheduler.metadata.name, "node-1", pod_ip="10.244.1.9")
    clusters.wait_status("quick", lambda s: s.get("phase") == "Running", timeout=15, description="Running")
    make_pod_ready(kube_api, clusters.namespace, "quick-worker-0", "node-1", pod_ip="10.244.1.10")
    status = clusters.wait_status("quick", lambda s: s.get("workersReady") == 1, timeout=15,
                                  description="a worker ready")
    assert time.monotonic() - started < PERIOD / 2
    assert {c["type"]: c["status"] for c in status["conditions"]}["WorkersReady"] == "True"

    # A deleted worker is replaced as soon, and the status says it is not ready any more.
    old_uid = clusters.pods("quick", "worker")[0].metadata.uid
    clusters.core.delete_namespaced_pod("quick-worker-0", clusters.namespace, grace_period_seconds=0)
    wait_for(lambda: [p for p in clusters.pods("quick", "worker") if p.metadata.uid != old_uid], timeout=15,
             description="a new worker pod")
    clusters.wait_status("quick", lambda s: s.get("workersReady") == 0, timeout=15, description="worker gone")


def test_nothing_is_written_while_nothing_changes(operator: Any, clusters: Clusters,
                                                  kube_api: client.ApiClient) -> None:
    """Clusters starting, running, and running with a ready worker: rounds every second, no write."""
    for name in ("still-a", "still-b", "still-c"):
        clusters.create(name, {"workers": {"replicas": 1, "maximum": 2}})
    for name, ip in (("still-b", "10.244.2.2"), ("still-c", "10.244.2.3")):
        pod = wait_for(lambda n=name: clusters.pods(n, "scheduler"), timeout=20, description="scheduler pod")[0]
        make_pod_ready(kube_api, clusters.namespace, pod.metadata.name, "node-1", pod_ip=ip)
        clusters.wait_status(name, lambda s: s.get("phase") == "Running")
    make_pod_ready(kube_api, clusters.namespace, "still-c-worker-0", "node-1", pod_ip="10.244.2.4")
    clusters.wait_status("still-c", lambda s: s.get("workersReady") == 1)
    clusters.wait_status("still-a", lambda s: s.get("phase") == "Starting")
    # Nothing answers at the fake scheduler addresses: once a call has failed (within its deadline, later on a
    # loaded machine) the cluster says so, once; that is the last change.
    for name in ("still-b", "still-c"):
        clusters.wait_status(name, lambda s: any(c.get("type") == "SchedulerResponsive" and c.get("status") == "False"
                                                 for c in s.get("conditions") or []), description="unresponsive")
    time.sleep(3)  # the rounds that follow the last change

    def versions() -> dict[str, str]:
        return {name: clusters.get(name)["metadata"]["resourceVersion"] for name in ("still-a", "still-b", "still-c")}

    before = versions()
    time.sleep(6)  # six rounds at the tests' 1 s period
    assert versions() == before, "a cluster was written to while nothing changed"
