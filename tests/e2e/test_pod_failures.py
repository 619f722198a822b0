"""A pod that cannot run reaches the user: a condition with the kubelet's reason and message, one Event,
the reason in `kubectl get sdc` and the message in `kubectl describe`, cleared once the spec is fixed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from seamless_dask_operator.pod_problems import CAUSE_LIMIT

from .kube import TEST_NAMESPACE, Images, Kube, example, small_cluster, wait_until
from .platform import Platform

PROBLEM_WAIT = 90.0


def _crash(spec: dict[str, Any]) -> list[dict[str, Any]]:
    # Python cannot start without its standard library: the worker container exits at once, every time.
    spec["workers"]["env"] = [{"name": "PYTHONHOME", "value": "/nonexistent"}]
    return []


def _missing_image(spec: dict[str, Any]) -> list[dict[str, Any]]:
    spec["image"] = "seamless-dask-runtime:does-not-exist"
    spec["workers"]["replicas"] = 3  # four pods, one cause: said once
    return []


def _too_much_cpu(spec: dict[str, Any]) -> list[dict[str, Any]]:
    spec["workers"]["resources"] = {"requests": {"cpu": "64", "memory": "160Mi"}}
    # Waiting for room is capacity, not failure, for capacityTimeout seconds (WaitingForCapacity); with 0 it is a
    # problem at once, as before capacity was told apart.
    spec["capacityTimeout"] = 0
    return []


UNBOUND_CLAIM = "sdo-e2e-unbound"


def _unbound_claim(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A claim no PersistentVolume binds: no class (so no provisioner, kind's default included), and a selector
    no volume matches."""
    spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": UNBOUND_CLAIM, "readOnly": True}}]
    spec["volumeMounts"] = [{"name": "data", "mountPath": "/data", "readOnly": True}]
    return [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": UNBOUND_CLAIM},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                      "selector": {"matchLabels": {"sdo-e2e": "no-such-volume"}},
                      "resources": {"requests": {"storage": "1Mi"}}}}]


@dataclass(frozen=True)
class Case:
    breaks: Callable[[dict[str, Any]], list[dict[str, Any]]]  # the spec, broken; returns extra objects
    reasons: frozenset[str]  # the reasons the condition may show
    pod: str  # the pod (name suffix) the message must name
    hint: str = ""  # what the hint must say (one per scheduler reason)
    not_hint: str = ""  # ... and must not
    grouped: bool = False  # several pods with one cause: said once, with their names


CASES: dict[str, Case] = {
    "missing-image": Case(_missing_image, frozenset({"ErrImagePull", "ImagePullBackOff"}), "scheduler",
                          hint="check spec.image", grouped=True),
    "too-much-cpu": Case(_too_much_cpu, frozenset({"Unschedulable"}), "worker-0",
                         hint="ask for less CPU (spec.workers.resources.requests.cpu if set, else spec.cores)"),
    "unbound-claim": Case(_unbound_claim, frozenset({"Unschedulable"}), "worker-0",
                          hint="a claim in spec.volumes is not bound", not_hint="add nodes"),
    "crash": Case(_crash, frozenset({"CrashLoopBackOff"}), "worker-0", hint="kubectl logs --previous"),
}


def _problem(kube: Kube, name: str, reasons: frozenset[str], grouped: bool = False) -> dict[str, Any] | None:
    condition = kube.condition(name, "PodsHealthy")
    if grouped and " pods (" not in condition.get("message", ""):
        return None
    return condition if condition.get("status") == "False" and condition.get("reason") in reasons else None


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_problem_is_reported_once_and_clears_when_fixed(case: str, operator_release: str, kube: Kube,
                                                             images: Images) -> None:
    expected = CASES[case]
    name = f"broken-{case}"
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    extra = expected.breaks(doc["spec"])
    kube.apply(*extra, doc)
    try:
        started = time.monotonic()
        condition = wait_until(lambda: _problem(kube, name, expected.reasons, expected.grouped),
                               f"PodsHealthy False with {set(expected.reasons)}", timeout=PROBLEM_WAIT)
        message = condition["message"]
        print(f"{case}: reported after {time.monotonic() - started:.1f} s ({len(message)} characters): {message}")
        assert f"{name}-{expected.pod}" in message, condition
        assert expected.hint in message, f"the hint for {case}: {message}"
        assert not expected.not_hint or expected.not_hint not in message, f"a wrong hint for {case}: {message}"
        if expected.grouped:  # four pods that cannot pull one image: not the kubelet's message four times
            # ErrImagePull and ImagePullBackOff alternate: at most one entry each
            assert message.count("failed to pull") <= 2 and message.count("Back-off pulling") <= 1, message
            assert len(message) <= 2 * (CAUSE_LIMIT + 200), message
        status = kube.status(name)
        assert status["reason"] in expected.reasons and status["message"] == message
        listed = kube.kubectl("get", "sdc", name, "-n", TEST_NAMESPACE).stdout
        assert status["reason"] in listed, listed
        assert message[:60] in kube.kubectl("describe", "sdc", name, "-n", TEST_NAMESPACE).stdout
        if expected.pod == "scheduler":
            assert status["phase"] != "Running"

        time.sleep(12)  # several rounds of the operator (and kubelet back-offs) later: still one Event
        events = [e for reason in expected.reasons for e in kube.events(name, reason)]
        assert sum(e.get("count", 1) for e in events) == 1, [(e["reason"], e.get("count")) for e in events]

        kube.apply(small_cluster(example("minimal")[0], images.runtime, name))  # the spec, fixed
        kube.wait_running(name, 1)
        wait_until(lambda: kube.condition(name, "PodsHealthy").get("status") == "True", "PodsHealthy True again")
        assert kube.status(name)["message"] == ""
    finally:
        kube.delete_cluster(name)
        for obj in extra:
            kube.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "-n", TEST_NAMESPACE,
                         "--ignore-not-found", "--wait=false")


def test_oom_killed_worker_is_reported(operator_release: str, kube: Kube, images: Images, platform: Platform,
                                       tmp_path: Path) -> None:
    """Dask thinks it has 2 GiB, the container may use 200 MiB: a task that allocates 600 MB is killed."""

    if not platform.oom_kills_containers:
        pytest.skip("this node's kernel uses cgroup v1: an OOM kill ends only the worker process under its "
                    "nanny, the container lives on and Kubernetes reports no OOMKilled")
    name = "oom"
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    doc["spec"]["memory"] = "2GiB"
    doc["spec"]["workers"]["resources"] = {"requests": {"cpu": "50m", "memory": "160Mi"},
                                           "limits": {"memory": "200Mi"}}
    kube.apply(doc)
    try:
        kube.wait_running(name, 1)
        with kube.dask_client(name, tmp_path) as client:
            client.submit(lambda: len(bytearray(600_000_000)), pure=False)  # never returns
            condition = wait_until(lambda: _problem(kube, name, {"OOMKilled"}), "PodsHealthy False, OOMKilled",
                                   timeout=PROBLEM_WAIT)
        assert f"worker pod {name}-worker-0" in condition["message"] and "memory" in condition["message"]
        assert len(kube.events(name, "OOMKilled")) == 1
    finally:
        kube.delete_cluster(name)
