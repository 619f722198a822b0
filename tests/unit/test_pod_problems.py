"""Pod problems read from pod status as the kubelet and scheduler write it (pure, table-tested)."""

from __future__ import annotations

from typing import Any

import pytest
from seamless_dask_operator.builders.objects import ClusterRef
from seamless_dask_operator.decide.status import Observed, status_patch
from seamless_dask_operator.pod_problems import (
    CAUSE_LIMIT,
    MESSAGE_LIMIT,
    PodProblem,
    pod_problem,
    pod_problems,
    scheduler_causes,
    summary,
)

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
    many = [PodProblem(f"c-worker-{i}", "worker", f"Reason{i}", "x" * 200) for i in range(50)]
    assert len(summary(many)) == MESSAGE_LIMIT


# The kubelet's message for a missing image on the node (containerd 1.6), as long as it really is.
PULL = ('failed to pull and unpack image "docker.io/library/seamless-dask-runtime:nope": failed to resolve '
        'reference "docker.io/library/seamless-dask-runtime:nope": failed to do request: Head '
        '"https://registry-1.docker.io/v2/library/seamless-dask-runtime/manifests/nope": dial tcp: lookup '
        'registry-1.docker.io on 10.96.0.10:53: no such host')


def test_pods_with_one_cause_are_one_entry() -> None:
    """Three workers that cannot pull one image: said once, with their names, not three times."""
    problems = [PodProblem(f"c-worker-{i}", "worker", "ErrImagePull", PULL) for i in range(3)]
    text = summary(problems)
    assert text.count("failed to pull") == 1
    assert text.startswith("3 worker pods (c-worker-0, c-worker-1, c-worker-2): ErrImagePull: failed to pull")
    assert text.endswith("no such host (check spec.image and that the node can pull it)")
    assert len(text) < len(PULL) + 120  # was three messages and three hints: 1.2 kB
    assert len(text) <= CAUSE_LIMIT + 120


def test_many_pods_of_one_cause_name_a_few() -> None:
    problems = [PodProblem(f"c-worker-{i}", "worker", "Unschedulable",
                           "0/1 nodes are available: 1 Insufficient cpu.") for i in range(8)]
    assert summary(problems).startswith("8 worker pods (c-worker-0, c-worker-1, c-worker-2, … 5 more): Unschedulable")


def test_crash_loops_differing_only_in_pod_and_back_off_are_one_cause() -> None:
    def crash(pod: str, back_off: str, restarts: int) -> PodProblem:
        return PodProblem(pod, "worker", "CrashLoopBackOff",
                          f"container worker exited with code 1 (Error); back-off {back_off} restarting failed "
                          f"container=worker pod={pod}_ns(0a1b-{pod}), {restarts} restarts")
    text = summary([crash("c-worker-0", "20s", 2), crash("c-worker-1", "40s", 3)])
    assert text.startswith("2 worker pods (c-worker-0, c-worker-1): CrashLoopBackOff: container worker exited")
    assert text.count("exited with code") == 1


def test_one_cause_across_components_is_one_entry_and_other_causes_stay_apart() -> None:
    problems = [
        PodProblem("c-scheduler", "scheduler", "ErrImagePull", PULL),
        PodProblem("c-worker-0", "worker", "ErrImagePull", PULL),
        PodProblem("c-worker-1", "worker", "ErrImagePull", PULL),
        PodProblem("c-worker-2", "worker", "CrashLoopBackOff", "container worker exited with code 2 (Error)"),
    ]
    parts = summary(problems).split("; ")
    assert [p.split(":")[0] for p in parts] == ["3 pods (c-scheduler, c-worker-0, c-worker-1)", "worker pod c-worker-2"]


def test_one_reason_with_different_fixes_stays_apart() -> None:
    """An unschedulable scheduler and worker: the resources to lower are in different places."""
    full = "0/1 nodes are available: 1 Insufficient cpu."
    parts = summary([PodProblem("c-scheduler", "scheduler", "Unschedulable", full),
                     PodProblem("c-worker-0", "worker", "Unschedulable", full)]).split("; ")
    assert len(parts) == 2 and "spec.scheduler.resources" in parts[0] and "spec.workers.resources" in parts[1]


# kube-scheduler v1.36.2's Unschedulable messages (PodScheduled condition, read from the node of ../shared/kube),
# and older formats, each with the spec field the hint must name and what it must not say.
AFTER = " no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
SCHEDULER_CASES = [
    ("cpu", "worker", "0/1 nodes are available: 1 Insufficient cpu." + AFTER,
     "spec.workers.resources.requests.cpu if set, else spec.cores", "claim"),
    ("cpu, scheduler pod", "scheduler", "0/1 nodes are available: 1 Insufficient cpu." + AFTER,
     "spec.scheduler.resources", "spec.workers"),
    ("memory", "worker", "0/1 nodes are available: 1 Insufficient memory." + AFTER,
     "ask for less memory (spec.memory", "CPU"),
    ("GPU", "worker", "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are "
     "available: 2 No preemption victims found for incoming pod.", "spec.workers.resources", "CPU"),
    ("unbound claim", "worker", "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found",
     "StorageClass", "add nodes"),
    ("missing claim", "worker", '0/1 nodes are available: persistentvolumeclaim "buffers" not found. not found',
     "claimName", "add nodes"),
    ("node selector", "worker", "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector." + AFTER,
     "spec.workers.nodeSelector", "CPU"),
    ("taint", "scheduler", "0/1 nodes are available: 1 node(s) had untolerated taint(s)." + AFTER,
     "spec.scheduler.tolerations", "CPU"),
    ("taint, named (before v1.33)", "worker", "0/1 nodes are available: 1 node(s) had untolerated taint "
     "{dedicated: gpu}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
     "spec.workers.tolerations", "CPU"),
    ("cordoned", "worker", "0/1 nodes are available: 1 node(s) were unschedulable." + AFTER, "uncordon", "CPU"),
    ("anti-affinity", "worker", "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules. "
     "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
     "podAntiAffinity", "CPU"),
    ("no nodes", "worker", "no nodes available to schedule pods", "no nodes", "CPU"),
    ("unknown reason", "worker", "0/1 nodes are available: 1 node(s) had something new.",
     "spec.workers asks for", "claim"),
]


@pytest.mark.parametrize(("case", "component", "message", "says", "never"), SCHEDULER_CASES,
                         ids=[c[0] for c in SCHEDULER_CASES])
def test_unschedulable_hint_per_scheduler_reason(case: str, component: str, message: str, says: str,
                                                 never: str) -> None:
    hint = PodProblem("c-x", component, "Unschedulable", message).hint
    assert hint is not None and says in hint and never not in hint, hint


def test_unschedulable_shows_the_schedulers_verdict_not_its_preemption_notes() -> None:
    text = summary([PodProblem("c-worker-0", "worker", "Unschedulable",
                               "0/1 nodes are available: 1 Insufficient cpu." + AFTER)])
    assert text.startswith("worker pod c-worker-0: Unschedulable: 0/1 nodes are available: 1 Insufficient cpu (ask")
    assert "preemption" not in text.lower()


def test_several_scheduler_reasons_get_each_hint_once() -> None:
    message = ("0/3 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) had untolerated "
               "taint(s). no new claims to deallocate, preemption: 0/3 nodes are available: 2 No preemption "
               "victims found for incoming pod, 1 Preemption is not helpful for scheduling.")
    assert scheduler_causes(message) == ["Insufficient cpu", "Insufficient memory", "node(s) had untolerated taint(s)"]
    hint = PodProblem("c-worker-0", "worker", "Unschedulable", message).hint or ""
    assert hint.count("less CPU") == 1 and "less memory" in hint and "tolerations" in hint


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
