"""Day two on real pods (issue 22): edits roll out adding before removing, and a killed leader is replaced; results
held in worker memory survive all of it.

Before: a typo in spec.image deleted the scheduler at once (its replacement went to ErrImagePull), all 3 workers
were gone within 4 s and the client's result was lost; spec.memory: 64GiB retired the only working worker before
its replacement could be scheduled. Two operators at once retired every worker of a scale-down.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kube import (
    OPERATOR_NAMESPACE,
    TEST_NAMESPACE,
    Images,
    Kube,
    example,
    is_ready,
    small_cluster,
    wait_until,
)


def uids(kube: Kube, cluster: str, component: str) -> dict[str, str]:
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in kube.pods(cluster, component)
            if not p["metadata"].get("deletionTimestamp")}


_held = itertools.count()


@pytest.fixture
def held(operator_release: str, kube: Kube, images: Images, tmp_path: Path,
         request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, list[Any]]]:
    """A cluster of 3 workers, and a client outside holding 30 results in their memory."""
    name = f"held-{next(_held)}"
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    doc["spec"]["workers"].update(replicas=3, maximum=3)
    kube.apply(doc)
    kube.wait_running(name, 3)
    with kube.dask_client(name, tmp_path) as client:
        client.wait_for_workers(3, timeout=120)
        results = client.map(lambda i: bytes(50_000) + i.to_bytes(4, "big"), range(30), pure=False)
        client.gather(results)
        yield name, client, results
    kube.delete_cluster(name)


def still_held(client: Any, results: list[Any]) -> bool:
    return [int.from_bytes(r[-4:], "big") for r in client.gather(results, errors="raise")] == list(range(30))


@pytest.mark.parametrize("edit", [{"image": "seamless-dask-runtime:no-such-tag"},
                                  {"memory": "64GiB",
                                   "workers": {"resources": {"requests": {"cpu": "50m", "memory": None}}}}],
                         ids=["image-typo", "memory-64GiB"])
def test_an_edit_that_cannot_run_keeps_the_cluster_and_its_results(held: tuple[str, Any, list[Any]], kube: Kube,
                                                                   images: Images, edit: dict[str, Any]) -> None:
    name, client, results = held
    schedulers, workers = uids(kube, name, "scheduler"), uids(kube, name, "worker")
    original = kube.get("sdc", name)["spec"]
    kube.kubectl("patch", "sdc", name, "-n", TEST_NAMESPACE, "--type=merge", "-p", json.dumps({"spec": edit}))
    wait_until(lambda: kube.events(name, "RolloutBlocked") or kube.status(name).get("reason") in (
        "ErrImagePull", "ImagePullBackOff", "WaitingForCapacity", "Unschedulable"), "the rollout says it waits",
        timeout=120)
    time.sleep(10)  # rounds go by: nothing working is removed
    assert uids(kube, name, "scheduler") == schedulers, "the running scheduler stays"
    assert {n: u for n, u in uids(kube, name, "worker").items() if n in workers} == workers, "the old workers stay"
    assert kube.status(name)["phase"] == "Running" and still_held(client, results)

    # The edit undone: the cluster is as before, nothing was restarted, every result still there.
    undo = {key: original.get(key) for key in edit} | {"workers": original["workers"]}
    kube.kubectl("patch", "sdc", name, "-n", TEST_NAMESPACE, "--type=merge", "-p", json.dumps({"spec": undo}))
    wait_until(lambda: set(uids(kube, name, "worker")) == set(workers) and not kube.pods(
        name, "scheduler-candidate"), "the new pods that could not run are gone", timeout=120)
    assert uids(kube, name, "scheduler") == schedulers and uids(kube, name, "worker") == workers
    kube.wait_running(name, 3)
    assert still_held(client, results)


def test_a_working_edit_rolls_workers_one_at_a_time_and_keeps_results(held: tuple[str, Any, list[Any]],
                                                                      kube: Kube) -> None:
    name, client, results = held
    workers = uids(kube, name, "worker")
    kube.kubectl("patch", "sdc", name, "-n", TEST_NAMESPACE, "--type=merge", "-p",
                 json.dumps({"spec": {"workers": {"env": [{"name": "ROLLED", "value": "1"}]}}}))
    most = 0

    def rolled() -> bool:
        nonlocal most
        now = uids(kube, name, "worker")
        most = max(most, len(now))
        ready = [p for p in kube.pods(name, "worker") if is_ready(p)]
        # By uid: a replacement may take a retired worker's name (the lowest free index).
        return not set(now.values()) & set(workers.values()) and len(ready) == 3
    try:
        wait_until(rolled, "every worker replaced, each new one Ready first", timeout=240, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{kube.describe(name)}") from None
    assert most <= 4, "at most one pod beyond the count (surge 1)"
    assert still_held(client, results), "retired workers' results moved first"


def test_the_leader_killed_during_scaling_and_creation_loses_nothing(held: tuple[str, Any, list[Any]], kube: Kube,
                                                                     images: Images) -> None:
    name, client, results = held
    leaders = []
    for round_ in range(5):
        leader = kube.operator_leader()
        leaders.append(leader)
        replicas = 3 if round_ % 2 == 0 else 2  # ends at 3: the count the cluster is checked for
        kube.kubectl("scale", "sdc", name, "-n", TEST_NAMESPACE, f"--replicas={replicas}")
        kube.apply(small_cluster(example("minimal")[0], images.runtime, f"chaos-{round_}"))
        if leader:
            kube.kubectl("delete", "pod", leader, "-n", OPERATOR_NAMESPACE, "--grace-period=0", "--force",
                         check=False)
        time.sleep(3)
    try:
        kube.wait_running(name, 3, timeout=150)
        wait_until(lambda: len(kube.pods(name, "worker")) == 3, "3 worker pods", timeout=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{kube.describe(name)}") from None
    for round_ in range(5):
        kube.wait_running(f"chaos-{round_}", 1, timeout=300)
        assert len(kube.pods(f"chaos-{round_}", "scheduler")) == 1
        assert len(kube.pods(f"chaos-{round_}", "worker")) == 1
        kube.delete_cluster(f"chaos-{round_}")
    assert len(kube.pods(name, "scheduler")) == 1 and len(kube.pods(name, "worker")) == 3
    assert still_held(client, results), "no result lost"
    assert len([leader for leader in leaders if leader]) >= 4, leaders
