"""Nothing is made for a resource that is gone, and a name made and deleted 100 times ends healthy (issue 22,
"Lifecycle edges"), on the real kube-apiserver with the real operator.

Before: with the finalizer removed by hand and the resource deleted, the operator made 144 pods in 40 s for it
(garbage collection deleted them, the operator made them again); after 100 cycles of one name, the last
incarnation owned all its children yet showed Failed NameClash, or had no NetworkPolicy and flipped between
Starting and Failed.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION
from tests.operator.conftest import Clusters
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube


def owned_by(clusters: Clusters, uid: str) -> list[client.V1Pod]:
    return [p for p in clusters.core.list_namespaced_pod(clusters.namespace).items
            if any(o.uid == uid for o in p.metadata.owner_references or [])]


def test_nothing_is_made_for_a_resource_gone_without_its_finalizer(operator: Any, clusters: Clusters) -> None:
    uid = clusters.create("ghost", {"workers": {"replicas": 3, "maximum": 3}})["metadata"]["uid"]
    wait_for(lambda: len(clusters.worker_names("ghost")) == 3, timeout=30, description="3 workers")
    clusters.custom.patch_namespaced_custom_object(GROUP, VERSION, clusters.namespace, PLURAL, "ghost",
                                                   {"metadata": {"finalizers": None}})
    clusters.delete("ghost")
    gone = time.time()
    wait_for(lambda: clusters.find("ghost") is None, timeout=10, description="deleted at once")
    time.sleep(8)  # rounds that would have run for it
    made_after = [p.metadata.name for p in owned_by(clusters, uid)
                  if p.metadata.creation_timestamp.timestamp() > gone + 1]
    assert made_after == [], f"pods made for a resource that is gone: {made_after}"


def _described(clusters: Clusters, networking: client.NetworkingV1Api, uid: str) -> str:
    """What a failure needs to be understood: the status, who owns each child, the pods, the Events."""
    def owners(read: Any) -> Any:
        try:
            return [o.uid for o in read("phoenix-scheduler", clusters.namespace).metadata.owner_references or []]
        except client.exceptions.ApiException as exc:
            return exc.status
    pods = [(p.metadata.name, [o.uid for o in p.metadata.owner_references or []], p.metadata.deletion_timestamp)
            for p in clusters.core.list_namespaced_pod(clusters.namespace).items]
    events = [(e.reason, e.message) for e in clusters.events("phoenix")][-10:]
    return (f"cluster uid {uid}; status {clusters.status('phoenix')}; Service owners "
            f"{owners(clusters.core.read_namespaced_service)}; NetworkPolicy owners "
            f"{owners(networking.read_namespaced_network_policy)}; pods {pods}; last Events {events}")


def test_one_name_made_and_deleted_100_times_ends_in_one_healthy_cluster(operator: Any, clusters: Clusters) -> None:
    networking = client.NetworkingV1Api(clusters.custom.api_client)
    for _ in range(100):
        clusters.create("phoenix", {"workers": {"replicas": 1, "maximum": 1}})
        clusters.delete("phoenix")
        wait_for(lambda: clusters.find("phoenix") is None, timeout=30, interval=0.05, description="gone")
    uid = clusters.create("phoenix", {"workers": {"replicas": 2, "maximum": 2}})["metadata"]["uid"]

    def healthy() -> bool:
        status = clusters.status("phoenix")
        service = clusters.core.read_namespaced_service("phoenix-scheduler", clusters.namespace)
        policy = networking.read_namespaced_network_policy("phoenix-scheduler", clusters.namespace)
        pods = [p for p in owned_by(clusters, uid) if p.metadata.deletion_timestamp is None]
        return (status.get("phase") == "Starting" and status.get("workersDesired") == 2
                and [o.uid for o in service.metadata.owner_references] == [uid]
                and [o.uid for o in policy.metadata.owner_references] == [uid]
                and sorted(p.metadata.name for p in pods) == ["phoenix-scheduler", "phoenix-worker-0",
                                                              "phoenix-worker-1"])

    try:
        wait_for(healthy, timeout=90, interval=0.5, description="the last incarnation healthy, all its children",
                 ignore=(client.exceptions.ApiException,))
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{_described(clusters, networking, uid)}") from None

    time.sleep(5)  # and it stays so (no flipping to Failed)
    assert healthy() and clusters.status("phoenix")["phase"] != "Failed"
    assert not [e for e in clusters.events("phoenix") if e.reason == "NameClash"
                and e.involved_object.uid == uid]
