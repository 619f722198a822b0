"""Pod problems read from pod status as the kubelet and scheduler write it (pure, table-tested)."""

from __future__ import annotations

from typing import Any

import pytest
from seamless_dask_operator.builders.objects import ClusterRef
from seamless_dask_operator.decide.status import Observed, status_patch
from seamless_dask_operator.pod_problems import MESSAGE_LIMIT, PodProblem, pod_problem, pod_problems, summary

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
RECENT, LONG_AGO = "2027-01-15T07:58:00Z", "2027-01-14T07:58:00Z"


def _pod(name: str = "c-worker-0", phase: str = "Running", conditions: list[dict[str, Any]] | None = None,
         **container: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if container:
        status["containerStatuses"] = [{"name": "worker", "ready": False, "restartCount": 0, **container}]
    return {"metadata": {"name": name}, "status": status}


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


CASES = [
    ("image pull back-off", _pod(state=_waiting("ImagePullBackOff", 'Back-off pulling image "x:nope"')),
     ("ImagePullBackOff", 'Back-off pulling image "x:nope"')),
    ("image pull error", _pod(state=_waiting("ErrImagePull", "not found")), ("ErrImagePull", "not found")),
    ("never pull, absent", _pod(state=_waiting("ErrImageNeverPull", "image not present")),
     ("ErrImageNeverPull", "image not present")),
    ("unschedulable", _pod(phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient cpu."}]),
     ("Unschedulable", "0/1 nodes are available: 1 Insufficient cpu.")),
    ("crash loop back-off", _pod(state=_waiting("CrashLoopBackOff", "back-off 20s restarting failed container"),
                                 restartCount=2, lastState={"terminated": {"exitCode": 1, "reason": "Error"}}),
     ("CrashLoopBackOff", "container worker exited with code 1 (Error); back-off 20s restarting failed container")),
    ("crash loop, between two back-offs", _pod(state={"running": {}}, restartCount=3,
                                               lastState={"terminated": {"exitCode": 1, "reason": "Error"}}),
     ("CrashLoopBackOff", "container worker exited with code 1 (Error), 3 restarts")),
    ("OOM kill, restarting", _pod(state={"running": {}}, restartCount=1,
                                  lastState={"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                            "finishedAt": RECENT}}),
     ("OOMKilled", "container worker was killed for exceeding its memory limit (1 restarts)")),
    ("OOM kill, ready again but recent", _pod(state={"running": {}}, ready=True, restartCount=1,
                                              lastState={"terminated": {"reason": "OOMKilled", "finishedAt": RECENT}}),
     ("OOMKilled", "container worker was killed for exceeding its memory limit (1 restarts)")),
    ("evicted", _pod(phase="Failed") | {"status": {"phase": "Failed", "reason": "Evicted",
                                                   "message": "The node was low on resource: memory."}},
     ("Evicted", "The node was low on resource: memory.")),
]

HEALTHY = [
    ("starting", _pod(phase="Pending", state=_waiting("ContainerCreating"))),
    ("running and ready", _pod(state={"running": {}}, ready=True)),
    ("not yet scheduled, no verdict", _pod(phase="Pending")),
    ("OOM kill long ago, ready since", _pod(state={"running": {}}, ready=True, restartCount=1,
                                            lastState={"terminated": {"reason": "OOMKilled",
                                                                      "finishedAt": LONG_AGO}})),
    ("restarted after a clean exit", _pod(state={"running": {}}, restartCount=1,
                                          lastState={"terminated": {"exitCode": 0, "reason": "Completed"}})),
    ("being deleted", {**_pod(state=_waiting("CrashLoopBackOff")),
                       "metadata": {"name": "c-worker-0", "deletionTimestamp": RECENT}}),
]


@pytest.mark.parametrize(("case", "pod", "expected"), CASES, ids=[c[0] for c in CASES])
def test_problem_and_its_message(case: str, pod: dict[str, Any], expected: tuple[str, str]) -> None:
    assert pod_problem(pod, "worker", NOW) == PodProblem("c-worker-0", "worker", *expected)


@pytest.mark.parametrize(("case", "pod"), HEALTHY, ids=[c[0] for c in HEALTHY])
def test_no_problem(case: str, pod: dict[str, Any]) -> None:
    assert pod_problem(pod, "worker", NOW) is None


def test_scheduler_first_and_a_hint_for_the_user() -> None:
    problems = pod_problems([
        (_pod("c-worker-1", state=_waiting("ImagePullBackOff", "nope")), "worker"),
        (_pod("c-scheduler-x", state=_waiting("ErrImagePull", "nope")), "scheduler"),
        (_pod("c-worker-0", state={"running": {}}, ready=True), "worker"),
    ], NOW)
    assert [p.pod for p in problems] == ["c-scheduler-x", "c-worker-1"]
    assert summary(problems) == ("scheduler pod c-scheduler-x: ErrImagePull: nope (check spec.image and that the "
                                 "node can pull it); worker pod c-worker-1: ImagePullBackOff: nope (check spec.image "
                                 "and that the node can pull it)")


def test_summary_is_bounded() -> None:
    many = [PodProblem(f"c-worker-{i}", "worker", "Unschedulable", "x" * 200) for i in range(50)]
    assert len(summary(many)) == MESSAGE_LIMIT


def test_status_shows_the_first_problem_and_clears() -> None:
    ref = ClusterRef("c", "ns", "uid")
    problem = PodProblem("c-scheduler-x", "scheduler", "ImagePullBackOff", "nope")
    broken = status_patch(ref, Observed(generation=2, scheduler_exists=True, pod_problems=(problem,)), {}, "t1")
    healthy_condition = next(c for c in broken["conditions"] if c["type"] == "PodsHealthy")
    assert (broken["phase"], broken["reason"]) == ("Starting", "ImagePullBackOff")
    assert broken["message"] == problem.describe() == healthy_condition["message"]
    assert (healthy_condition["status"], healthy_condition["reason"]) == ("False", "ImagePullBackOff")

    fixed = status_patch(ref, Observed(generation=3, scheduler_exists=True, scheduler_ready=True), broken, "t2")
    condition = next(c for c in fixed["conditions"] if c["type"] == "PodsHealthy")
    assert (fixed["phase"], fixed["reason"], fixed["message"]) == ("Running", "SchedulerReady", "")
    assert (condition["status"], condition["lastTransitionTime"]) == ("True", "t2")
