"""A pod that cannot run reaches the user: a condition with the kubelet's reason and message, one Event,
the reason in `kubectl get sdc` and the message in `kubectl describe`, cleared once the spec is fixed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .kube import TEST_NAMESPACE, Images, Kube, example, small_cluster, wait_until
from .platform import Platform

PROBLEM_WAIT = 90.0


def _crash(spec: dict[str, Any]) -> None:
    # Python cannot start without its standard library: the worker container exits at once, every time.
    spec["workers"]["env"] = [{"name": "PYTHONHOME", "value": "/nonexistent"}]


def _fix_crash(spec: dict[str, Any]) -> None:
    spec["workers"]["env"] = []


def _missing_image(spec: dict[str, Any]) -> None:
    spec["image"] = "seamless-dask-runtime:does-not-exist"


def _unschedulable(spec: dict[str, Any]) -> None:
    spec["workers"]["resources"] = {"requests": {"cpu": "64", "memory": "160Mi"}}


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], set[str], str]] = {
    # name: (break the spec, reasons the condition may show, component whose pod shows it)
    "missing-image": (_missing_image, {"ErrImagePull", "ImagePullBackOff"}, "scheduler"),
    "unschedulable": (_unschedulable, {"Unschedulable"}, "worker"),
    "crash": (_crash, {"CrashLoopBackOff"}, "worker"),
}


def _problem(kube: Kube, name: str, reasons: set[str]) -> dict[str, Any] | None:
    condition = kube.condition(name, "PodsHealthy")
    return condition if condition.get("status") == "False" and condition.get("reason") in reasons else None


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_problem_is_reported_once_and_clears_when_fixed(case: str, operator_release: str, kube: Kube,
                                                             images: Images) -> None:
    breaks, reasons, component = CASES[case]
    name = f"broken-{case}"
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    breaks(doc["spec"])
    kube.apply(doc)
    try:
        started = time.monotonic()
        condition = wait_until(lambda: _problem(kube, name, reasons), f"PodsHealthy False with {reasons}",
                               timeout=PROBLEM_WAIT)
        print(f"{case}: reported after {time.monotonic() - started:.1f} s: {condition['message']}")
        assert f"{component} pod {name}" in condition["message"], condition
        status = kube.status(name)
        assert status["reason"] in reasons and status["message"] == condition["message"]
        listed = kube.kubectl("get", "sdc", name, "-n", TEST_NAMESPACE).stdout
        assert status["reason"] in listed, listed
        assert condition["message"][:60] in kube.kubectl("describe", "sdc", name, "-n", TEST_NAMESPACE).stdout
        if component == "scheduler":
            assert status["phase"] != "Running"

        time.sleep(12)  # several rounds of the operator (and kubelet back-offs) later: still one Event
        events = [e for reason in reasons for e in kube.events(name, reason)]
        assert sum(e.get("count", 1) for e in events) == 1, [(e["reason"], e.get("count")) for e in events]

        kube.apply(small_cluster(example("minimal")[0], images.runtime, name))  # the spec, fixed
        kube.wait_running(name, 1)
        wait_until(lambda: kube.condition(name, "PodsHealthy").get("status") == "True", "PodsHealthy True again")
        assert kube.status(name)["message"] == ""
    finally:
        kube.delete_cluster(name)


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
