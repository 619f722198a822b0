"""The operator's rules, one round at a time, without I/O: (spec, observation, old status) -> decision."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from seamless_dask_operator.builders import desired_children
from seamless_dask_operator.builders.objects import ClusterRef, template_hash
from seamless_dask_operator.builders.scheduler import scheduler_template
from seamless_dask_operator.builders.service import scheduler_service
from seamless_dask_operator.builders.workers import worker_template
from seamless_dask_operator.decide import (
    ApplyChild,
    ChildrenView,
    CreatePod,
    DeleteCluster,
    DeletePod,
    Observation,
    PatchStatus,
    PinImage,
    Plan,
    PodView,
    PromoteScheduler,
    Refusal,
    RefusalKind,
    Retire,
    RetireOutcome,
    SchedulerAnswers,
    children_view,
    decide,
)
from seamless_dask_operator.decide.pacing import ADAPTIVE_CEILING, QUIET_CEILING, ceiling, next_follow_delay
from seamless_dask_operator.pod_problems import PodProblem
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.model.parameters import ParameterError

REF = ClusterRef("c", "ns", "uid-1")
NOW = 1_800_000_000.0
SPEC: dict[str, Any] = {"cores": 1, "workers": {"replicas": 2, "maximum": 4}}
HASH = template_hash(worker_template(REF, parse_spec(SPEC)))
CURRENT = "current"  # a scheduler pod made from the round's spec (run() puts in its hash)
SCHEDULER_HASH = template_hash(scheduler_template(REF, parse_spec(SPEC)))


def scheduler(ready: bool = True, template: str = CURRENT, terminating: bool = False,
              finished: bool = False) -> PodView:
    return PodView("c-scheduler", "scheduler", 0, ready, terminating, template, "10.0.0.2" if ready else None,
                   finished=finished)


def candidate(ready: bool = True, problem: str | None = None) -> PodView:
    """A new scheduler beside the running one (made from the round's spec)."""
    return PodView("c-scheduler-new", "scheduler-candidate", 0, ready, False, CURRENT, "10.0.0.3" if ready else None,
                   problem=PodProblem("c-scheduler-new", "scheduler-candidate", problem, "no such image")
                   if problem else None)


def worker(index: int, ready: bool = True, template: str = HASH, terminating: bool = False,
           finished: bool = False) -> PodView:
    return PodView(f"c-worker-{index}", "worker", index, ready, terminating, template, "10.0.0.9", finished=finished)


IDLE = SchedulerAnswers(reachable=True, busy=False, idle_for=30)
BUSY = SchedulerAnswers(reachable=True, busy=True)


def run(spec: dict[str, Any] | None = None, *pods: PodView, answers: SchedulerAnswers = IDLE,
        old: dict[str, Any] | None = None, service: bool | None = None, spec_changed: bool = False,
        generation: int = 1, edited: frozenset[str] = frozenset(), last_posted: dict[str, float] | None = None,
        ) -> Plan:
    try:
        cluster: Any = parse_spec(SPEC if spec is None else spec)
    except ParameterError as exc:
        cluster = exc
    if not isinstance(cluster, ParameterError):
        current = template_hash(scheduler_template(REF, cluster))
        pods = tuple(dataclasses.replace(p, template_hash=current) if p.template_hash == CURRENT else p for p in pods)
    children = None
    if service is not None:
        children = ChildrenView(service=scheduler_service(REF, parse_spec(SPEC))["spec"] if service else None)
    observation = Observation(pods=pods, children=children, scheduler=answers, last_posted=last_posted or {})
    return decide(REF, cluster, observation, old or {}, generation, NOW, spec_changed=spec_changed,
                  edited=edited)


def created_workers(plan: Plan) -> tuple[int, ...]:
    return tuple(a.index for a in plan.of(CreatePod) if a.component == "worker")


def deleted(plan: Plan) -> tuple[str, ...]:
    return tuple(a.name for a in plan.of(DeletePod))


def acts(plan: Plan) -> dict[str, Any]:
    """The actions only, for compact expectations."""
    return {k: v for k, v in {
        "apply": bool(plan.of(ApplyChild)), "scheduler": plan.creates_scheduler,
        "candidate": any(a.component == "scheduler-candidate" for a in plan.of(CreatePod)),
        "promote": next((a.name for a in plan.of(PromoteScheduler)), None),
        "create": created_workers(plan), "delete": deleted(plan),
        "retire": next(iter(plan.of(Retire)), None), "delete_cluster": bool(plan.of(DeleteCluster)),
        "events": tuple(e.reason for e in plan.events)}.items() if v}


ROUNDS = [
    ("new resource: Service and policy, the scheduler pod, the workers",
     dict(spec_changed=True, answers=SchedulerAnswers()), (),
     {"apply": True, "scheduler": True, "create": (0, 1)}),
    ("converged: nothing to do", {}, (scheduler(), worker(0), worker(1)), {}),
    ("Service deleted by hand: applied again, said once a minute",
     dict(service=False), (scheduler(), worker(0), worker(1)), {"apply": True, "events": ("DriftRestored",)}),
    ("children as applied: no drift", dict(service=True), (scheduler(), worker(0), worker(1)), {}),
    ("scheduler pod gone (deleted by hand, say): a new one, nothing re-applied",
     dict(answers=SchedulerAnswers()), (worker(0), worker(1)), {"scheduler": True}),
    ("scheduler pod terminating: its successor waits until it is gone (never two schedulers)",
     dict(answers=SchedulerAnswers()), (scheduler(ready=False, terminating=True), worker(0), worker(1)), {}),
    ("scheduler template changed: a new one starts beside the running one (surge first), said once",
     dict(answers=SchedulerAnswers()), (scheduler(template="old"), worker(0), worker(1)),
     {"candidate": True, "events": ("SchedulerRestart",)}),
    ("the new scheduler is Ready: it takes over, the old one goes",
     dict(answers=SchedulerAnswers()), (scheduler(template="old"), candidate(), worker(0), worker(1)),
     {"delete": ("c-scheduler",), "promote": "c-scheduler-new"}),
    ("the new scheduler cannot start: the running one stays, and it is said",
     dict(answers=SchedulerAnswers()),
     (scheduler(template="old"), candidate(ready=False, problem="ErrImagePull"), worker(0), worker(1)),
     {"events": ("RolloutBlocked", "ErrImagePull")}),
    ("a scheduler that never worked is replaced the old way: deleted first, nothing to protect",
     dict(answers=SchedulerAnswers()), (scheduler(ready=False, template="old"), worker(0), worker(1)),
     {"delete": ("c-scheduler",)}),
    ("scheduler pod evicted (Failed): deleted, replaced once gone",
     dict(answers=SchedulerAnswers()), (scheduler(ready=False, finished=True), worker(0), worker(1)),
     {"delete": ("c-scheduler",)}),
    ("worker pod evicted (Failed): deleted and replaced in one round",
     {}, (scheduler(), worker(0), worker(1, ready=False, finished=True)), {"create": (2,), "delete": ("c-worker-1",)}),
    ("scale down: the scheduler retires (results move first)", dict(spec={**SPEC, "workers": {"replicas": 1}}),
     (scheduler(), worker(0), worker(1)), {"retire": Retire(count=1, timeout=120)}),
    ("scale down without a ready scheduler: wait, say so", dict(spec={**SPEC, "workers": {"replicas": 1}},
                                                               answers=SchedulerAnswers()),
     (scheduler(ready=False), worker(0), worker(1)), {"events": ("ScaleDownWaiting",)}),
    ("scale down: a never-ready pod goes without retiring", dict(spec={**SPEC, "workers": {"replicas": 1}}),
     (scheduler(), worker(0), worker(1, ready=False)), {"delete": ("c-worker-1",)}),
    ("scale down: a NotReady pod the scheduler knows is retired, not deleted",
     dict(spec={**SPEC, "workers": {"replicas": 1}},
          answers=SchedulerAnswers(reachable=True, worker_names=("c-worker-0", "c-worker-1"), busy=True)),
     (scheduler(), worker(0), worker(1, ready=False)), {"retire": Retire(names=("c-worker-1",), timeout=120)}),
    ("a new template: a new pod first (surge), the old ones keep serving", {},
     (scheduler(), worker(0, template="old"), worker(1, template="old")), {"create": (2,)}),
    ("a new pod is Ready: an old one is retired (results move first)", {},
     (scheduler(), worker(0, template="old"), worker(1, template="old"), worker(2)),
     {"retire": Retire(names=("c-worker-0",), timeout=120)}),
    ("a new pod that cannot start stops the rollout; the old ones stay, and it is said", {},
     (scheduler(), worker(0, template="old"), worker(1, template="old"),
      dataclasses.replace(worker(2, ready=False), problem=PodProblem("c-worker-2", "worker", "Unschedulable",
                                                                     "0/1 nodes: Insufficient memory"))),
     {"events": ("RolloutBlocked", "Unschedulable")}),
    ("a terminating pod's name is not reused", {}, (scheduler(), worker(0), worker(1, terminating=True)),
     {"create": (2,)}),
    ("adaptive: the scheduler's target, capped at maximum",
     dict(spec={"cores": 1, "workers": {"adaptive": True, "maximum": 3}},
          answers=SchedulerAnswers(reachable=True, adaptive_target=7, busy=True)), (scheduler(),),
     {"create": (0, 1, 2)}),
    ("adaptive, scheduler silent: keep the floor, never guess up",
     dict(spec={"cores": 1, "interactive": True, "workers": {"adaptive": True, "maximum": 3}},
          answers=SchedulerAnswers()), (scheduler(ready=False),), {"create": (0,)}),
    ("idle past the timeout: the cluster deletes itself, once said",
     dict(spec={**SPEC, "timeout": 20}), (scheduler(), worker(0), worker(1)),
     {"delete_cluster": True, "events": ("IdleTimeout",)}),
    ("idle, but not for long enough", dict(spec={**SPEC, "timeout": 60}), (scheduler(), worker(0), worker(1)), {}),
    ("busy: never idle", dict(spec={**SPEC, "timeout": 1}, answers=BUSY), (scheduler(), worker(0), worker(1)), {}),
    ("batch backend: no worker pods; the scheduler's jobs are the workers",
     dict(spec={"cluster": "dask_jobqueue::SLURMCluster", "workers": {"maximum": 2}},
          answers=SchedulerAnswers(reachable=True, adaptive_target=2, worker_names=("w1",), busy=True)),
     (scheduler(),), {}),
]


@pytest.mark.parametrize(("case", "kwargs", "pods", "expected"), ROUNDS, ids=[r[0] for r in ROUNDS])
def test_round(case: str, kwargs: dict[str, Any], pods: tuple[PodView, ...], expected: dict[str, Any]) -> None:
    assert acts(run(kwargs.pop("spec", None), *pods, **kwargs)) == expected


def test_running_only_with_a_ready_scheduler() -> None:
    starting = run(None, scheduler(ready=False), worker(0), worker(1), answers=SchedulerAnswers())
    running = run(None, scheduler(), worker(0), worker(1))
    assert (starting.status["phase"], running.status["phase"]) == ("Starting", "Running")
    assert (running.status["workersReady"], running.status["workersDesired"]) == (2, 2)
    assert running.status["lastActivity"] == "2027-01-15T07:59:30Z"  # idle since 30 s before NOW


def test_batch_counts_the_schedulers_workers() -> None:
    decision = run({"cluster": "dask_jobqueue::SLURMCluster", "workers": {"maximum": 2}}, scheduler(),
                   answers=SchedulerAnswers(reachable=True, adaptive_target=2, worker_names=("w1",), busy=True))
    assert (decision.status["workersReady"], decision.status["workersDesired"]) == (1, 2)


def test_nothing_written_when_nothing_changed() -> None:
    first = run(None, scheduler(), worker(0), worker(1))
    assert first.writes_status
    assert not run(None, scheduler(), worker(0), worker(1), old=first.status).writes_status


def test_no_second_write_while_the_scheduler_pod_appears() -> None:
    """Create round, then rounds before and after the watch shows its scheduler pod: one status, written once."""
    created = run(None, spec_changed=True, answers=SchedulerAnswers())
    # The create round pinned the image: the resource is at generation 2 from then on.
    before_pod = run(None, service=True, answers=SchedulerAnswers(), old=created.status, generation=2)
    with_pod = run(None, scheduler(ready=False), service=True, answers=SchedulerAnswers(), old=before_pod.status,
                   generation=2)
    assert created.writes_status and not before_pod.writes_status and not with_pod.writes_status
    assert before_pod.creates_scheduler, "not in the index yet: made again (a 409 when it exists)"
    reasons = {c["type"]: c["reason"] for c in with_pod.status["conditions"]}
    assert reasons["SchedulerReady"] == "SchedulerNotReady"


def test_bad_spec_fails_with_one_event_per_refusal() -> None:
    bad = {"cores": -1}
    first = run(bad, generation=3)
    assert first.status["phase"] == "Failed" and "spec.cores" in first.status["message"]
    assert acts(first) == {"events": ("InvalidSpec",)}
    again = run(bad, old=first.status, generation=3)
    assert acts(again) == {} and not again.writes_status
    # A new generation with the same fault: the status follows it, the Event is not said twice; another fault is.
    same = run(bad, old=first.status, generation=4)
    assert "events" not in acts(same) and same.status["observedGeneration"] == 4
    assert acts(run({"cores": -2}, old=first.status, generation=4))["events"] == ("InvalidSpec",)


@pytest.mark.parametrize(("children", "what"), [
    (ChildrenView(service=None), "Service c-scheduler is gone"),
    (ChildrenView(service={**scheduler_service(REF, parse_spec(SPEC))["spec"], "type": "LoadBalancer"}),
     "was edited"),
])
def test_drift_is_applied_again(children: ChildrenView, what: str) -> None:
    pods = (scheduler(template=SCHEDULER_HASH), worker(0), worker(1))
    decision = decide(REF, parse_spec(SPEC), Observation(pods=pods, children=children), {}, 1, NOW)
    assert decision.of(ApplyChild) and [e.reason for e in decision.events] == ["DriftRestored"]
    assert what in decision.events[0].message


def test_the_round_the_pinned_image_starts_applies_no_child_again() -> None:
    """Creation pins spec.image (a new generation, so a second spec round) before the watch shows the Service just
    created: seen as created, the children are current; none is applied again, no drift is said."""
    cluster = parse_spec(SPEC)
    created = ApplyChild(desired_children(REF, cluster)[0], ours=False)
    pods = (scheduler(template=SCHEDULER_HASH), worker(0), worker(1))
    second = decide(REF, cluster, Observation(pods=pods, children=children_view(created.manifest)), {}, 2, NOW,
                    spec_changed=True, edited=frozenset({"image"}))
    assert not second.of(ApplyChild) and not second.events
    edited = parse_spec({**SPEC, "scheduler": {"allowFrom": [{"podSelector": {"matchLabels": {"app": "x"}}}]}})
    third = decide(REF, edited, Observation(pods=pods, children=children_view(created.manifest)), {}, 3, NOW,
                   spec_changed=True, edited=frozenset({"scheduler.allowFrom"}))
    assert [a.manifest["kind"] for a in third.of(ApplyChild)] == ["NetworkPolicy", "PodDisruptionBudget", "Service"]


def test_refused_by_the_api_fails_once_and_waits_for_a_new_spec() -> None:
    refusal = Refusal(RefusalKind.REJECTED,
                      "the API server refused a child object (422): spec.containers[0].env[0].name: Invalid")
    pinned = {**SPEC, "image": "example.org/seamless:1"}  # as after the create round
    first = decide(REF, parse_spec(pinned), Observation(refusal=refusal), {}, 5, NOW)
    assert (first.status["phase"], first.status["reason"]) == ("Failed", "RejectedByAPI")
    assert "env[0].name" in first.status["message"] and acts(first) == {"events": ("RejectedByAPI",)}
    waiting = run(pinned, scheduler(), old=first.status, generation=5, spec_changed=True)
    assert acts(waiting) == {} and not waiting.writes_status, "no retry of the same spec"
    assert acts(run(pinned, old=first.status, generation=6, spec_changed=True,
                    answers=SchedulerAnswers())) == {"apply": True, "scheduler": True, "create": (0, 1)}


def test_a_refusal_in_the_round_that_pins_the_image_is_written_once() -> None:
    """The pin makes the next generation: the Failed status says that one, and the next round has nothing to write
    (it wrote the same Failed again with the new number, a second write tests caught)."""
    refusal = Refusal(RefusalKind.REJECTED, "the API server refused a child object (422): Pod is invalid")
    created = decide(REF, parse_spec(SPEC), Observation(refusal=refusal), {}, 1, NOW, spec_changed=True)
    assert (created.status["phase"], created.status["observedGeneration"]) == ("Failed", 2)
    after_pin = run({**SPEC, "image": "example.org/seamless:1"}, old=created.status, generation=2)
    assert acts(after_pin) == {} and not after_pin.writes_status


def test_kubectl_scale_on_an_adaptive_cluster_is_answered() -> None:
    spec = {"cores": 1, "workers": {"adaptive": True, "replicas": 3, "maximum": 4}}
    decision = run(spec, scheduler(), answers=SchedulerAnswers(reachable=True, adaptive_target=1, busy=True),
                   spec_changed=True, edited=frozenset({"workers.replicas"}))
    [event] = decision.events
    assert event.reason == "AdaptiveScaling" and "adaptive target decides the workers (now 1" in event.message
    assert created_workers(decision) == (0,), "the scheduler's target rules, not replicas"


def test_an_image_change_says_what_it_will_do() -> None:
    decision = run({**SPEC, "image": "runtime:2"}, scheduler(template=SCHEDULER_HASH), worker(0, template="old"),
                   worker(1, template="old"),
                   spec_changed=True, edited=frozenset({"image"}))
    assert [e.reason for e in decision.events] == ["ImageChange"]
    assert "a new scheduler starts beside the running one" in decision.events[0].message and decision.of(ApplyChild)
    assert deleted(decision) == () and acts(decision)["candidate"], "surge first: the running one stays"


def test_pod_problem_is_one_event_until_it_changes() -> None:
    pull = PodProblem("c-worker-0", "worker", "ImagePullBackOff", "no such image")
    stuck = PodView("c-worker-0", "worker", 0, False, False, HASH, None, problem=pull)
    first = run(None, scheduler(), stuck, worker(1))
    assert acts(first)["events"] == ("ImagePullBackOff",)
    assert first.status["reason"] == "ImagePullBackOff"
    assert "events" not in acts(run(None, scheduler(), stuck, worker(1), old=first.status))
    err = PodView("c-worker-0", "worker", 0, False, False, HASH, None,
                  problem=PodProblem("c-worker-0", "worker", "ErrImagePull", "no such image"))
    assert "events" not in acts(run(None, scheduler(), err, worker(1), old=first.status)), \
        "the kubelet alternating ErrImagePull and ImagePullBackOff is one problem"
    crash = PodView("c-worker-0", "worker", 0, False, False, HASH, None,
                    problem=PodProblem("c-worker-0", "worker", "CrashLoopBackOff", "exit 1"))
    assert acts(run(None, scheduler(), crash, worker(1), old=first.status))["events"] == ("CrashLoopBackOff",)


@pytest.mark.parametrize("name", ["a" * 54, "dotted.name"])
def test_a_name_no_child_can_carry_is_a_spec_error_said_once(name: str) -> None:
    """For API servers without the CRD's CEL rules: Failed naming metadata.name, nothing made, one Event."""
    ref = ClusterRef(name, "ns", "uid-1")
    try:
        parse_spec(SPEC, name=name)
    except ParameterError as exc:
        cluster: Any = exc
    first = decide(ref, cluster, Observation(), {}, 3, NOW, spec_changed=True)
    assert (first.status["phase"], first.status["reason"]) == ("Failed", "InvalidSpec")
    assert first.status["message"].startswith("metadata.name: ") and "DNS-1035" in first.status["message"]
    assert acts(first) == {"events": ("InvalidSpec",)}
    again = decide(ref, cluster, Observation(), first.status, 3, NOW + 5)
    assert acts(again) == {} and not again.writes_status


def test_thousands_of_workers_come_in_batches_that_leave_room_for_edits() -> None:
    """Issue 21 item 7: a round creates, deletes or retires at most BATCH workers and says more is to come."""
    from seamless_dask_operator.decide.workers import BATCH

    spec = {"cores": 1, "workers": {"replicas": 250, "maximum": 250}}
    first = run(spec, scheduler())
    assert len(created_workers(first)) == BATCH and first.more
    last = run(spec, scheduler(), *(worker(i) for i in range(200)))
    assert created_workers(last) == tuple(range(200, 250)) and not last.more
    down = run({"cores": 1, "workers": {"replicas": 0, "maximum": 250}}, scheduler(),
               *(worker(i, ready=False) for i in range(250)))
    assert len(deleted(down)) == BATCH and down.more
    retiring = run({"cores": 1, "workers": {"replicas": 0, "maximum": 250}}, scheduler(),
                   *(worker(i) for i in range(250)))
    assert next(iter(retiring.of(Retire))).count == BATCH and retiring.more


def test_the_default_image_is_written_into_the_spec_at_creation() -> None:
    """An upgrade of the operator (a new default image) changes no running cluster: the default is pinned."""
    bare = {"cores": 1, "workers": {"replicas": 1, "maximum": 1}}
    created = run(bare, spec_changed=True, answers=SchedulerAnswers())
    assert created.of(PinImage) and created.of(PinImage)[0].image == parse_spec(SPEC).options.image
    assert not run({**SPEC, "image": "mine:1"}, spec_changed=True, answers=SchedulerAnswers()).of(PinImage)
    assert not run(bare, scheduler()).of(PinImage), \
        "only a create/update/resume round writes the spec"


def test_version_skew_is_a_condition_and_one_event() -> None:
    """Issue 25: another distributed/dask release among clients, workers, scheduler (the scheduler's own report)."""
    said = "client Client-1 has distributed 2026.7.1; the scheduler has distributed 2026.8.0"
    skewed = run(None, scheduler(), worker(0), worker(1),
                 answers=SchedulerAnswers(reachable=True, busy=True, versions=(True, said)))
    condition = {c["type"]: c for c in skewed.status["conditions"]}["VersionSkew"]
    assert (condition["status"], condition["reason"], condition["message"]) == ("True", "VersionMismatch", said)
    assert [e.reason for e in skewed.events] == ["VersionSkew"]
    again = run(None, scheduler(), worker(0), worker(1), old=skewed.status,
                answers=SchedulerAnswers(reachable=True, busy=True, versions=(True, said)))
    assert not again.events, "said once"
    unasked = run(None, scheduler(), worker(0), worker(1), old=skewed.status,
                  answers=SchedulerAnswers(reachable=True, busy=True))
    assert {c["type"]: c for c in unasked.status["conditions"]}["VersionSkew"]["status"] == "True", "as it was"
    matched = run(None, scheduler(), worker(0), worker(1), old=skewed.status,
                  answers=SchedulerAnswers(reachable=True, busy=True, versions=(False, "")))
    assert {c["type"]: c for c in matched.status["conditions"]}["VersionSkew"]["reason"] == "VersionsMatch"


def test_more_workers_than_wanted_reads_as_scaling_down_not_as_a_contradiction() -> None:
    """Issue 25 item 6: READY 1 DESIRED 0 right after a computation, and an Event "now 0" while a worker is up."""
    spec = {"cores": 1, "workers": {"adaptive": True, "maximum": 4}}
    after = run(spec, scheduler(), worker(0), answers=SchedulerAnswers(reachable=True, adaptive_target=0, busy=False,
                                                                       idle_for=1),
                spec_changed=True, edited=frozenset({"workers.replicas"}))
    assert (after.status["workersReady"], after.status["workersDesired"]) == (1, 0)
    assert after.status["reason"] == "ScalingDown"
    assert after.status["message"] == "1 worker running, 0 wanted: 1 is retired once the scheduler has moved its " \
                                      "results"
    [event] = after.events
    assert "1 of the 1 running are retired once their results have moved" in event.message


def test_pods_waiting_for_room_are_capacity_not_failure_until_the_users_time() -> None:
    """Issue 22: Unschedulable for lack of CPU/memory is WaitingForCapacity (healthy) for capacityTimeout seconds."""
    def unschedulable(since: float) -> PodView:
        problem = PodProblem("c-worker-1", "worker", "Unschedulable",
                             "0/1 nodes are available: 1 Insufficient cpu.", since=since)
        return PodView("c-worker-1", "worker", 1, False, False, HASH, None, problem=problem)

    spec = {**SPEC, "capacityTimeout": 300}
    waiting = run(spec, scheduler(), worker(0), unschedulable(NOW - 60))
    healthy = {c["type"]: c for c in waiting.status["conditions"]}["PodsHealthy"]
    assert (healthy["status"], healthy["reason"]) == ("True", "WaitingForCapacity")
    assert waiting.status["reason"] == "WaitingForCapacity" and waiting.status["phase"] == "Running"
    assert [(e.type, e.reason) for e in waiting.events] == [("Normal", "WaitingForCapacity")]
    too_long = run(spec, scheduler(), worker(0), unschedulable(NOW - 400), old=waiting.status)
    assert {c["type"]: c for c in too_long.status["conditions"]}["PodsHealthy"]["status"] == "False"
    assert [(e.type, e.reason) for e in too_long.events] == [("Warning", "Unschedulable")]
    claim = PodProblem("c-worker-1", "worker", "Unschedulable",
                       "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.", since=NOW)
    stuck = run(spec, scheduler(), worker(0), PodView("c-worker-1", "worker", 1, False, False, HASH, None,
                                                      problem=claim))
    assert stuck.status["reason"] == "Unschedulable", "an unbound claim is no capacity to wait for"


def test_a_full_quota_is_waited_out_not_failed() -> None:
    """Issue 22: a ResourceQuota refusal says QuotaExceeded (the API's words) and is no failure."""
    said = "the API server refused a child object (403 Forbidden): pods c-worker-1 is forbidden: exceeded quota"
    plan = decide(REF, parse_spec(SPEC), Observation(refusal=Refusal(RefusalKind.QUOTA, said)),
                  {"phase": "Running", "reason": "SchedulerReady"}, 1, NOW)
    assert (plan.status["phase"], plan.status["reason"], plan.status["message"]) == ("Running", "QuotaExceeded", said)
    assert [e.reason for e in plan.events] == ["QuotaExceeded"]
    again = decide(REF, parse_spec(SPEC), Observation(refusal=Refusal(RefusalKind.QUOTA, said)), plan.status, 1, NOW)
    assert not again.events and not again.writes_status


def test_memory_named_twice_is_said_on_apply() -> None:
    """Issue 25 item 4: spec.memory was silently ignored once workers.resources was set."""
    spec = {**SPEC, "memory": "2GiB", "workers": {**SPEC["workers"], "resources": {"requests": {"memory": "1Gi"}}}}
    applied = run(spec, scheduler(), worker(0), worker(1), spec_changed=True)
    [event] = [e for e in applied.events if e.reason == "MemoryOverridden"]
    assert "spec.memory 2GiB" in event.message and "1Gi" in event.message
    assert not [e for e in run(spec, scheduler(), worker(0), worker(1)).events if e.reason == "MemoryOverridden"]
    # The operator's own image pin is a second spec change at once: not said twice.
    pinned = run(spec, scheduler(), worker(0), worker(1), spec_changed=True, last_posted={"MemoryOverridden": NOW - 1})
    assert not [e for e in pinned.events if e.reason == "MemoryOverridden"]


def test_an_api_refusal_is_said_once_across_the_operators_own_spec_write() -> None:
    """The image the operator pins makes a new generation: the same refusal seen again is not a second Event; a
    different one (the user's edit changed what is wrong) is."""
    said = "the API server refused a child object (422 Unprocessable Entity): Pod \"c-worker-0\" is invalid"
    first = decide(REF, parse_spec(SPEC), Observation(refusal=Refusal(RefusalKind.REJECTED, said)), {}, 1, NOW)
    assert [e.reason for e in first.events] == ["RejectedByAPI"]
    pinned = decide(REF, parse_spec(SPEC), Observation(refusal=Refusal(RefusalKind.REJECTED, said)), first.status,
                    2, NOW)
    assert not pinned.events and pinned.status["observedGeneration"] == 2
    other = decide(REF, parse_spec(SPEC), Observation(refusal=Refusal(RefusalKind.REJECTED, said + " (env)")),
                   pinned.status, 3, NOW)
    assert [e.reason for e in other.events] == ["RejectedByAPI"]


def test_a_scheduler_still_not_answering_is_no_new_status() -> None:
    """The first failure is said (condition, Event); the next rounds fail in other words (a timeout, then a refused
    connection, another question first): the status keeps the first words, nothing is written again."""
    pods = (scheduler(), worker(0), worker(1))
    first = run(None, *pods, answers=SchedulerAnswers(reachable=False, error="http://c:8787/api/v1/get_workers: "
                                                                              "timed out"))
    responsive = next(c for c in first.status["conditions"] if c["type"] == "SchedulerResponsive")
    assert (responsive["status"], first.status["reason"]) == ("False", "SchedulerUnresponsive")
    assert [e.reason for e in first.events] == ["SchedulerUnresponsive"] and first.of(PatchStatus)
    again = run(None, *pods, old=first.status,
                answers=SchedulerAnswers(reachable=False, error="http://c:8787/api/v1/versions: [Errno 111] refused"))
    assert not again.of(PatchStatus) and not again.events
    assert again.status["message"] == first.status["message"] and "timed out" in again.status["message"]
    answering = run(None, *pods, old=again.status)
    assert next(c for c in answering.status["conditions"] if c["type"] == "SchedulerResponsive")["status"] == "True"


def _steady_delays(spec: dict[str, Any] | None, fleet: int, rounds: int = 8, **kwargs: Any) -> list[float]:
    """The follow delays of a cluster whose rounds see the same thing ``rounds`` times in a fleet of ``fleet``."""
    cluster = parse_spec(SPEC if spec is None else spec)
    pods = (scheduler(), *(worker(i) for i in range(cluster.options.replicas)))
    old = run(spec, *pods).status
    delays, delay = [], 5.0
    for _ in range(rounds):
        plan = run(spec, *pods, old=old)
        delay = next_follow_delay(plan, retiring=False, previous=delay, base=5.0, limit=ceiling(cluster, fleet, 5.0))
        delays.append(delay)
    return delays


def test_a_steady_cluster_is_asked_less_often_in_a_large_fleet_only() -> None:
    """With 1,000 clusters a round every 5 s each is 200 rounds a second of an operator with nothing to do."""
    assert _steady_delays(None, fleet=20) == [5.0] * 8, "a small fleet keeps its period"
    assert _steady_delays(None, fleet=1000) == [10.0, 20.0, 40.0, 50.0, 50.0, 50.0, 50.0, 50.0]
    assert max(_steady_delays(None, fleet=100_000)) == QUIET_CEILING


def test_what_only_the_scheduler_says_is_still_asked_for_in_time() -> None:
    adaptive = {"cores": 1, "workers": {"adaptive": True, "minimum": 1, "maximum": 4}}
    assert max(_steady_delays(adaptive, fleet=1000)) == ADAPTIVE_CEILING, "new work starts workers within 10 s"
    timeout = {**SPEC, "timeout": 600}  # idle for 30 s of it (IDLE)
    assert max(_steady_delays(timeout, fleet=1000)) == 50.0
    timeout = {**SPEC, "timeout": 60}
    assert max(_steady_delays(timeout, fleet=1000)) == 15.0, "an idle timeout is seen within a quarter of it"


def test_any_change_brings_the_period_back() -> None:
    pods = (scheduler(), worker(0), worker(1))
    steady = run(None, *pods, old=run(None, *pods).status)
    assert next_follow_delay(steady, retiring=False, previous=40.0, base=5.0, limit=50.0) == 50.0
    assert next_follow_delay(steady, retiring=True, previous=40.0, base=5.0, limit=50.0) == 5.0, "a retire in flight"
    one_missing = run(None, scheduler(), worker(0), old=steady.status)
    assert next_follow_delay(one_missing, retiring=False, previous=40.0, base=5.0, limit=50.0) == 5.0
    not_ready = run(None, scheduler(), worker(0), worker(1, ready=False), old=steady.status)
    assert next_follow_delay(not_ready, retiring=False, previous=40.0, base=5.0, limit=50.0) == 5.0
    busy = run(None, *pods, old=steady.status, answers=BUSY)
    assert busy.writes_status and next_follow_delay(busy, retiring=False, previous=40.0, base=5.0, limit=50.0) == 5.0
    more = dataclasses.replace(steady, more=True)
    assert next_follow_delay(more, retiring=False, previous=40.0, base=5.0, limit=50.0) == 0.0


def test_one_idle_period_asked_twice_is_one_last_activity() -> None:
    """The answer's age differs from round to round: idle since 07:59:29.999 and, a round later, since 07:59:30.004
    are one moment, not a status write (they were one write in a hundred rounds; 50 in a fleet's idle minutes)."""
    pods = (scheduler(), worker(0), worker(1))
    first = run(None, *pods, answers=SchedulerAnswers(reachable=True, busy=False, idle_for=30.001))
    assert first.status["lastActivity"] == "2027-01-15T07:59:29Z"
    again = run(None, *pods, old=first.status, answers=SchedulerAnswers(reachable=True, busy=False, idle_for=29.996))
    assert not again.writes_status and again.status["lastActivity"] == "2027-01-15T07:59:29Z"
    later = run(None, *pods, old=first.status, answers=SchedulerAnswers(reachable=True, busy=False, idle_for=20.0))
    assert later.writes_status and later.status["lastActivity"] == "2027-01-15T07:59:40Z", "a new idle period"


def test_a_retired_worker_goes_before_its_replacement_is_made() -> None:
    """Rollout (surge 1): the round that collects a retired old worker deletes its pod before it creates the next
    new one, so the API never shows two pods beyond the count."""
    retired = RetireOutcome(Retire(count=0, names=("c-worker-0",), timeout=60), retired=("c-worker-0",))
    pods = (scheduler(template=SCHEDULER_HASH), worker(0, template="old"), worker(1, template="old"), worker(2))
    plan = decide(REF, parse_spec(SPEC), Observation(pods=pods, scheduler=IDLE, retire_outcome=retired), {}, 1, NOW)
    pod_actions = [(type(a).__name__, a.name) for a in plan.actions if isinstance(a, (CreatePod, DeletePod))]
    assert pod_actions == [("DeletePod", "c-worker-0"), ("CreatePod", "c-worker-3")]


def test_the_service_is_applied_last_so_that_it_proves_the_others_were() -> None:
    """A create round cut short after the Service (a leftover NetworkPolicy of a former cluster of this name) is
    retried; the retry finds the Service of this spec's hash and applies nothing more: had the Service gone first,
    the NetworkPolicy would never have been made."""
    plan = run(None, spec_changed=True, answers=SchedulerAnswers())
    kinds = [a.manifest["kind"] for a in plan.of(ApplyChild)]
    assert kinds[-1] == "Service" and {"NetworkPolicy", "PodDisruptionBudget"} <= set(kinds[:-1])
