"""A tenant's scheduler, status and names get no power over anyone else (issue 21, items 2, 3, 5, 9).

The real operator against the real kube-apiserver; the schedulers are a real HTTP server playing the tenant's
image (tests/support/hostile_scheduler.py): it lies about whom it retired, drips its answers a byte at a time,
floods them, or runs its clock an hour behind. The tenant also writes the resource's ``.status`` (anyone with
the status subresource may), and names its cluster after another user's Secret.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION
from tests.operator.conftest import Clusters
from tests.support.hostile_scheduler import Behaviour, HostileSchedulers, clock_behind, hostile_schedulers
from tests.support.kubelet import make_pod_ready
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
DASHBOARD_PORT = int(os.environ["SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT"])


@pytest.fixture
def schedulers() -> Iterator[HostileSchedulers]:
    with hostile_schedulers(DASHBOARD_PORT) as server:
        yield server


_next_ip = iter(range(20, 250))


def running(clusters: Clusters, kube_api: client.ApiClient, schedulers: HostileSchedulers, name: str,
            behaviour: Behaviour, ready_workers: int = 0) -> str:
    """Make the cluster's scheduler pod Ready at a loopback address the hostile server answers on."""
    ip = f"127.0.1.{next(_next_ip)}"
    schedulers.behaviours[ip] = behaviour
    pod = wait_for(lambda: clusters.pods(name, "scheduler"), timeout=30, description=f"{name} scheduler")[0]
    make_pod_ready(kube_api, clusters.namespace, pod.metadata.name, "node-1", pod_ip=ip)
    for i in range(ready_workers):
        wait_for(lambda i=i: f"{name}-worker-{i}" in clusters.worker_names(name), timeout=30,
                 description=f"{name}-worker-{i}")
        make_pod_ready(kube_api, clusters.namespace, f"{name}-worker-{i}", "node-1", pod_ip=f"10.9.0.{i + 1}")
    return ip


def pod_names(clusters: Clusters) -> set[str]:
    return {p.metadata.name for p in clusters.core.list_namespaced_pod(clusters.namespace).items
            if p.metadata.deletion_timestamp is None}


def warnings(clusters: Clusters, name: str, reason: str) -> int:
    return sum(e.count or 1 for e in clusters.events(name) if e.reason == reason)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), {})


def test_a_scheduler_naming_pods_it_does_not_own_gets_none_deleted(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient, schedulers: HostileSchedulers) -> None:
    """Item 2: whatever the scheduler answers a retire call with, only pods the cluster owns are deleted."""
    clusters.create("other", {"workers": {"replicas": 1, "maximum": 1}})
    wait_for(lambda: clusters.worker_names("other") == ["other-worker-0"], timeout=30, description="other's worker")
    # A pod named like one of own's workers, and labelled so, that own does not own (another user's).
    clusters.core.create_namespaced_pod(clusters.namespace, {
        "metadata": {"name": "own-worker-7", "labels": {"dask.org/cluster-name": "own", "dask.org/component": "worker",
                                                        "app.kubernetes.io/managed-by": "seamless-dask-operator"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    clusters.create("own", {"workers": {"replicas": 2, "maximum": 2}})
    liar = Behaviour("own", workers=["own-worker-0", "own-worker-1"],
                     retire_names=["own-worker-7", "other-worker-0", "other-scheduler"])
    running(clusters, kube_api, schedulers, "own", liar, ready_workers=2)
    clusters.wait_status("own", lambda s: s.get("phase") == "Running" and s.get("workersReady") == 2,
                         description="own Running with 2 ready workers")

    clusters.patch_spec("own", {"workers": {"replicas": 1}})
    wait_for(lambda: [c for c in liar.calls if c.startswith("POST /api/v1/retire_workers")], timeout=30,
             description="a retire call")
    wait_for(lambda: warnings(clusters, "own", "RetireIncomplete") >= 1, timeout=30,
             description="RetireIncomplete: the scheduler retired none of own's workers")
    time.sleep(3)  # rounds go by
    names = pod_names(clusters)
    assert {"own-worker-7", "other-worker-0", "other-scheduler", "own-worker-0", "own-worker-1"} <= names
    assert clusters.status("own")["workersReady"] == 2, "pods the cluster does not own are not counted"


def test_dripping_and_flooding_schedulers_delay_no_one_else(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient, schedulers: HostileSchedulers,
        other_namespace: str) -> None:
    """Item 3: one deadline per call and a size cap: only the misbehaving clusters say SchedulerUnresponsive."""
    hostile = {"drip-a": Behaviour("drip-a", drip_seconds=1.0), "drip-b": Behaviour("drip-b", drip_seconds=1.0),
               "flood": Behaviour("flood", flood_bytes=300 << 20)}
    for name in hostile:
        clusters.create(name, {"workers": {"replicas": 0, "maximum": 1}})
    for name, behaviour in hostile.items():
        running(clusters, kube_api, schedulers, name, behaviour)
    for name in hostile:
        status = clusters.wait_status(
            name, lambda s: condition(s, "SchedulerResponsive").get("status") == "False", timeout=60,
            description="SchedulerResponsive=False")
        assert status["phase"] == "Running" and status["reason"] == "SchedulerUnresponsive", status
        assert "HTTP API did not answer" in condition(status, "SchedulerResponsive")["message"]

    started = time.monotonic()
    newcomer = Clusters(kube_api, other_namespace)
    newcomer.create("fresh", {"workers": {"replicas": 1, "maximum": 1}})
    newcomer.wait_status("fresh", lambda s: s.get("phase") == "Starting" and s.get("workersDesired") == 1,
                         timeout=20, description="the new cluster's status")
    waited = time.monotonic() - started
    assert newcomer.children("fresh") == (["fresh-worker-0"], 1, 1)
    time.sleep(4)  # more rounds of the hostile clusters: still one Event each
    for name in hostile:
        assert warnings(clusters, name, "SchedulerUnresponsive") == 1, name
    print(f"\nnew cluster's status while 3 schedulers drip or flood: {waited:.2f} s")


def test_idleness_is_a_duration_on_one_clock(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient, schedulers: HostileSchedulers) -> None:
    """Item 9: a scheduler an hour behind deletes nothing early; one that says how long it has been idle is
    believed on its own clock; one too old to say is timed on the operator's."""
    clusters.create("behind", {"timeout": 30, "workers": {"replicas": 0, "maximum": 1}})
    clusters.create("idle-long", {"timeout": 30, "workers": {"replicas": 0, "maximum": 1}})
    clusters.create("old-image", {"timeout": 4, "workers": {"replicas": 0, "maximum": 1}})
    running(clusters, kube_api, schedulers, "behind", Behaviour("behind", idle=clock_behind(3600, idle_for=2)))
    running(clusters, kube_api, schedulers, "idle-long", Behaviour("idle-long", idle=clock_behind(0, idle_for=40)))
    seen_idle = time.monotonic()
    running(clusters, kube_api, schedulers, "old-image",
            Behaviour("old-image", idle=clock_behind(3600, idle_for=None)))
    wait_for(lambda: clusters.find("idle-long") is None, timeout=30, description="idle-long deleted (idle 40 s)")
    assert any(e.reason == "IdleTimeout" for e in clusters.events("idle-long"))
    wait_for(lambda: clusters.find("old-image") is None, timeout=30, description="old-image deleted")
    assert time.monotonic() - seen_idle >= 4, "timed on the operator's clock from its first idle answer"
    assert clusters.find("behind") is not None, "an hour-behind clock deleted a cluster idle for 2 s"


def test_ownership_of_the_tls_secret_is_read_from_the_secret(
        operator_factory: Any, clusters: Clusters, kube_api: client.ApiClient) -> None:
    """Item 5: a forged .status.tlsSecretUid never makes another's Secret the cluster's; an erased one never makes
    the cluster's own Secret look foreign."""
    core = clusters.core
    victim = core.create_namespaced_secret(clusters.namespace, {
        "metadata": {"name": "prey-tls"}, "stringData": {"password": "not yours"}})
    clusters.create("prey", {"tls": {"enabled": True}, "workers": {"replicas": 1, "maximum": 1}})
    clusters.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, clusters.namespace, PLURAL, "prey",
        {"status": {"tlsSecretUid": victim.metadata.uid}})
    clusters.create("mine", {"tls": {"enabled": True}, "workers": {"replicas": 1, "maximum": 2}})
    with operator_factory():
        status = clusters.wait_status("prey", lambda s: s.get("phase") == "Failed", description="prey Failed")
        assert status["reason"] == "NameClash" and "prey-tls" in status["message"], status
        assert clusters.pods("prey", "scheduler") == [] and clusters.worker_names("prey") == []
        clusters.wait_status("mine", lambda s: s.get("phase") == "Starting", description="mine Starting")
        secret = core.read_namespaced_secret("mine-tls", clusters.namespace)
        assert [o.uid for o in secret.metadata.owner_references] == [clusters.get("mine")["metadata"]["uid"]]
    # The tenant erases what .status says of the Secret; an edit makes the next round apply the children again.
    clusters.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, clusters.namespace, PLURAL, "mine",
        {"status": {"tlsSecretUid": None}})
    with operator_factory():
        clusters.patch_spec("mine", {"workers": {"replicas": 2}})
        wait_for(lambda: clusters.worker_names("mine") == ["mine-worker-0", "mine-worker-1"], timeout=30,
                 description="mine scaled after the edit")
        assert clusters.status("mine")["phase"] == "Starting", clusters.status("mine")
        clusters.delete("mine")
        wait_for(lambda: clusters.find("mine") is None, timeout=30, description="mine deleted")
        with pytest.raises(client.exceptions.ApiException):
            core.read_namespaced_secret("mine-tls", clusters.namespace)
    assert core.read_namespaced_secret("prey-tls", clusters.namespace).metadata.uid == victim.metadata.uid
