"""The simulated fleet of the scale runs: the real kube-scheduler places pods on fake nodes, the kubelet
stand-in makes them Ready and finalizes their deletion (pods are simulated: no container runs)."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.fleet import (
    FINALIZE,
    LOOPBACK_RANGE,
    READY,
    SIMULATED_LABEL,
    START,
    Fleet,
    FleetUnavailable,
    PodAddresses,
    fake_nodes,
    kube_binary,
    kubelet_step,
    simulated_fleet,
)
from tests.support.fleet_schedulers import SchedulerBook, loopback_cidr
from tests.support.ports import free_port
from tests.support.waiting import wait_for

NODE_CPU = 4


# -- pure parts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pod", "step"), [
    ({"metadata": {}, "status": {"phase": "Pending"}}, START),
    ({"metadata": {}}, START),
    ({"metadata": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}, READY),
    ({"metadata": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, None),
    ({"metadata": {}, "status": {"phase": "Succeeded"}}, None),
    ({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}}, FINALIZE),
    ({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Pending"}}, FINALIZE),
])
def test_kubelet_step(pod: dict[str, Any], step: int | None) -> None:
    assert kubelet_step(pod) == step


def test_fake_nodes_have_their_own_addresses_away_from_services_and_the_real_node() -> None:
    nodes = fake_nodes(300)
    assert len({n.name for n in nodes}) == len({n.address for n in nodes}) == len({n.pod_cidr for n in nodes}) == 300
    taken = [ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("10.244.0.0/24")]
    assert not any(n.pod_cidr.overlaps(t) for n in nodes for t in taken)
    with pytest.raises(ValueError, match="nodes must be"):
        fake_nodes(0)


def test_a_pod_keeps_its_address_and_a_freed_one_is_given_again_last() -> None:
    addresses = PodAddresses(ipaddress.ip_network("10.128.5.0/24"))
    first = addresses.take("a")
    assert first == "10.128.5.2" and addresses.take("a") == first  # .1 is the node's bridge
    second = addresses.take("b")
    addresses.release("a")
    assert addresses.take("c") not in (first, second)
    addresses.keep("d", "10.128.5.200")
    assert addresses.take("d") == "10.128.5.200" and len(addresses) == 3


def test_scheduler_answers_follow_the_pods_the_stand_in_runs() -> None:
    book = SchedulerBook()
    assert book.answer("127.64.0.2", "GET", "/api/v1/get_workers", b"")[0] == 404  # nobody there yet
    book.scheduler_started("127.64.0.2", "ns", "c1")
    book.scheduler_started("127.64.0.3", "ns", "c2")
    for name, ip in (("c1-worker-0", "10.128.0.5"), ("c1-worker-1", "10.128.0.6"), ("c2-worker-0", "10.128.0.7")):
        book.worker_ready("ns", name.split("-")[0], name, ip)
    status, workers = book.answer("127.64.0.2", "GET", "/api/v1/get_workers", b"")
    assert status == 200
    assert [w["name"] for w in workers["workers"]] == ["c1-worker-0", "c1-worker-1"]  # its own cluster's only
    status, idle = book.answer("127.64.0.2", "GET", "/api/v1/seamless/idle", b"")
    assert idle["clients"] == 0 and idle["workers"] == 2 and isinstance(idle["idle_since"], float)
    assert idle["idle_for"] >= 0

    address = workers["workers"][1]["address"]
    _, retired = book.answer("127.64.0.2", "POST", "/api/v1/retire_workers",
                             json.dumps({"workers": [address]}).encode())
    assert retired == {address: {"name": "c1-worker-1"}}
    book.worker_ready("ns", "c1", "c1-worker-1", "10.128.0.6")  # a retired worker does not come back...
    assert [w["name"] for w in book.answer("127.64.0.2", "GET", "/api/v1/get_workers", b"")[1]["workers"]] == \
        ["c1-worker-0"]
    pod = {"metadata": {"name": "c1-worker-1", "namespace": "ns",
                        "labels": {"dask.org/cluster-name": "c1", "dask.org/component": "worker"}}}
    book.pod_event("DELETED", pod)
    book.worker_ready("ns", "c1", "c1-worker-1", "10.128.0.9")  # ...until its pod is gone and made anew
    assert len(book.answer("127.64.0.2", "GET", "/api/v1/get_workers", b"")[1]["workers"]) == 2

    scheduler = {"metadata": {"name": "c2-scheduler", "namespace": "ns", "deletionTimestamp": "2026-01-01T00:00:00Z",
                              "labels": {"dask.org/cluster-name": "c2", "dask.org/component": "scheduler"}},
                 "status": {"podIP": "127.64.0.3"}}
    book.pod_event("MODIFIED", scheduler)
    assert book.answer("127.64.0.3", "GET", "/health", b"")[0] == 404  # a scheduler being deleted stops answering
    assert SchedulerBook(busy=True).answer("127.64.0.2", "GET", "/health", b"")[0] == 404
    busy = SchedulerBook(busy=True)
    busy.scheduler_started("127.64.0.2", "ns", "c1")
    assert busy.answer("127.64.0.2", "GET", "/api/v1/seamless/idle", b"")[1]["idle_since"] is None


def test_scheduler_addresses_are_loopback_and_apart_per_node() -> None:
    nets = [loopback_cidr(i) for i in range(300)]
    assert len(set(nets)) == 300 and all(n.subnet_of(LOOPBACK_RANGE) for n in nets)  # type: ignore[arg-type]
    assert all(n.subnet_of(ipaddress.ip_network("127.0.0.0/8")) for n in nets)  # type: ignore[arg-type]


# -- on the real control plane ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(control_plane: Any) -> Iterator[Fleet]:
    try:
        kube_binary("kube-scheduler")
    except FleetUnavailable as exc:
        pytest.skip(str(exc))
    with simulated_fleet(control_plane.kubeconfig, nodes=3, prefix=f"fleet-{uuid.uuid4().hex[:6]}-",
                         cpu=str(NODE_CPU), memory="16Gi", max_pods=20, dask_port=free_port()) as running:
        yield running


def pod(name: str, cpu: str) -> dict[str, Any]:
    """A pod that only the fleet's nodes take (the session's other test nodes have no kubelet at all)."""
    return {"metadata": {"name": name},
            "spec": {"nodeSelector": {SIMULATED_LABEL: "true"},
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}


def is_ready(p: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])


@pytest.mark.kube
def test_the_scheduler_places_a_pod_it_becomes_ready_and_a_deleted_pod_goes_away(
        fleet: Fleet, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, pod("one", "100m"))
    ready = wait_for(lambda: (p := core.read_namespaced_pod("one", namespace)) and is_ready(p) and p,
                     timeout=30, description="pod one Ready")

    node = next(n for n in fleet.nodes if n.name == ready.spec.node_name)
    assert ready.status.phase == "Running"
    assert ipaddress.ip_address(ready.status.pod_ip) in node.pod_cidr
    assert ready.status.host_ip == node.address
    assert [(c.name, c.ready, c.state.running is not None) for c in ready.status.container_statuses] == \
        [("main", True, True)]
    # Bound by the real kube-scheduler, not by a test helper: it records its decision.
    scheduled = wait_for(lambda: [e for e in core.list_namespaced_event(namespace).items
                                  if e.involved_object.name == "one" and e.reason == "Scheduled"],
                         timeout=10, description="Scheduled event")
    assert "default-scheduler" in (scheduled[0].reporting_component or scheduled[0].source.component or "")
    assert node.name in scheduled[0].message

    core.delete_namespaced_pod("one", namespace)  # graceful, as kubectl deletes: the "kubelet" finalizes it

    def gone() -> bool:
        try:
            core.read_namespaced_pod("one", namespace)
        except client.exceptions.ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=15, description="pod one deleted")


@pytest.mark.kube
def test_capacity_decides_placement_and_a_pod_too_big_for_every_node_stays_unschedulable(
        fleet: Fleet, kube_api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, pod("too-big", str(NODE_CPU + 1)))
    # Three pods of 3 CPUs on three nodes of 4: one per node, whatever the scoring prefers.
    for i in range(3):
        core.create_namespaced_pod(namespace, pod(f"big-{i}", "3"))

    def all_ready() -> list[client.V1Pod]:
        pods = [core.read_namespaced_pod(f"big-{i}", namespace) for i in range(3)]
        return pods if all(is_ready(p) for p in pods) else []

    placed = wait_for(all_ready, timeout=30, description="three 3-CPU pods Ready")
    assert sorted(p.spec.node_name for p in placed) == sorted(fleet.node_names)

    def unschedulable() -> client.V1PodCondition | None:
        p = core.read_namespaced_pod("too-big", namespace)
        return next((c for c in p.status.conditions or [] if c.type == "PodScheduled" and c.status == "False"),
                    None)

    condition = wait_for(unschedulable, timeout=15, description="too-big: PodScheduled False")
    assert condition.reason == "Unschedulable"
    assert "Insufficient cpu" in condition.message, condition.message
    too_big = core.read_namespaced_pod("too-big", namespace)
    assert too_big.spec.node_name is None and too_big.status.phase == "Pending"


@pytest.mark.kube
def test_a_scheduler_pod_answers_the_operator_at_its_address_with_its_ready_workers(
        fleet: Fleet, kube_api: client.ApiClient, namespace: str) -> None:
    from seamless_dask_operator.scheduler_api import SchedulerAPI

    core = client.CoreV1Api(kube_api)
    labels = {"dask.org/cluster-name": "answers", "app.kubernetes.io/managed-by": "seamless-dask-operator"}

    def dask_pod(name: str, component: str) -> dict[str, Any]:
        body = pod(name, "100m")
        body["metadata"]["labels"] = {**labels, "dask.org/component": component}
        return body

    core.create_namespaced_pod(namespace, dask_pod("answers-scheduler", "scheduler"))
    for i in range(2):
        core.create_namespaced_pod(namespace, dask_pod(f"answers-worker-{i}", "worker"))
    pods = wait_for(lambda: (ps := [core.read_namespaced_pod(n, namespace) for n in
                                    ("answers-scheduler", "answers-worker-0", "answers-worker-1")])
                    and all(is_ready(p) for p in ps) and ps, timeout=30, description="three pods Ready")
    scheduler_ip = pods[0].status.pod_ip
    assert ipaddress.ip_address(scheduler_ip) in LOOPBACK_RANGE
    assert all(ipaddress.ip_address(p.status.pod_ip) not in LOOPBACK_RANGE for p in pods[1:])

    api = SchedulerAPI(f"http://{scheduler_ip}:{fleet.dask_port}", timeout=5)
    assert sorted(api.worker_names()) == ["answers-worker-0", "answers-worker-1"]
    busy, idle_for = api.idle_for()
    # Idle, and (as our scheduler route) for how long on its own clock: since its pod went Running, moments ago.
    assert busy is False and idle_for is not None and 0 <= idle_for < 600
    assert api.retire(1, timeout=5) == ["answers-worker-0"]
    assert api.worker_names() == ["answers-worker-1"]
    core.delete_namespaced_pod("answers-worker-1", namespace)
    wait_for(lambda: api.worker_names() == [], timeout=15, description="deleted worker gone from the scheduler")
