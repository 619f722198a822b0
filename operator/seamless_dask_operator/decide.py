"""One reconcile round, decided without I/O: (spec, observation, old status) -> what to do and what to report.

``handlers`` observe (kopf's pod index, the scheduler's HTTP API), call
:func:`decide`, and execute the :class:`Decision`: apply the Service and
NetworkPolicy, create the scheduler pod and worker pods, delete pods, retire
workers through the scheduler, delete an idle cluster, post Events and patch
``.status``. Every rule of the operator lives
here and is table-tested in tests/unit/test_decide.py.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seamless_dask_runtime.parameters import ParameterError

from .builders.objects import ClusterRef, template_hash
from .builders.scheduler import scheduler_template
from .builders.service import scheduler_service
from .builders.workers import worker_template
from .observation import ChildrenView, Observation
from .pod_problems import PodProblem, same_problem, summary
from .resource import ClusterSpec, desired_workers
from .scaling import WorkerPod, plan_workers
from .status import Observed, status_patch


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str
    # A condition seen every round is posted at most once per this many seconds (None: post it).
    at_most_every: float | None = None


@dataclass(frozen=True)
class Retire:
    """Ask the scheduler to retire workers (their results move first); delete the pods it retired."""

    count: int = 0
    names: tuple[str, ...] = ()
    timeout: float = 120.0


@dataclass(frozen=True)
class Decision:
    status: dict[str, Any]
    write_status: bool
    apply_children: bool = False
    # The scheduler pod from this template (none of the cluster's is left, not even one terminating).
    create_scheduler: dict[str, Any] | None = None
    create_workers: tuple[int, ...] = ()
    worker_template: dict[str, Any] | None = None  # what create_workers are made from
    delete_pods: tuple[str, ...] = ()
    retire: Retire | None = None
    delete_cluster: bool = False
    events: tuple[Event, ...] = field(default_factory=tuple)


def timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return {k: old.get(k) for k in new} != dict(new)


def _spec_error(ref: ClusterRef, message: str, old_status: Mapping[str, Any], generation: int,
                now: float, reason: str = "InvalidSpec") -> Decision:
    already_reported = old_status.get("observedGeneration") == generation and old_status.get("phase") == "Failed"
    status = status_patch(ref, Observed(generation=generation, spec_error=message, spec_error_reason=reason),
                          dict(old_status), timestamp(now))
    events = () if already_reported else (Event("Warning", reason, message),)
    return Decision(status=status, write_status=_changed(old_status, status), events=events)


REJECTED = "RejectedByAPI"


def rejected(ref: ClusterRef, message: str, old_status: Mapping[str, Any], generation: int, now: float) -> Decision:
    """The API server refused an object this spec makes (422, 400): Failed until the spec changes."""
    return _spec_error(ref, message, old_status, generation, now, reason=REJECTED)


def name_clash(ref: ClusterRef, message: str, old_status: Mapping[str, Any], generation: int, now: float) -> Decision:
    """A child's name is taken by an object this cluster does not own: Failed, never taken over."""
    return _spec_error(ref, message, old_status, generation, now, reason="NameClash")


def forbidden(ref: ClusterRef, message: str, old_status: Mapping[str, Any], generation: int, now: float) -> Decision:
    """The API server forbade a child (403: a ResourceQuota, or the operator's own RBAC): Failed, tried again
    every round, so lifting the quota or granting the right recovers without an edit."""
    return _spec_error(ref, message, old_status, generation, now, reason="Forbidden")


def _waiting_for_a_new_spec(old_status: Mapping[str, Any], generation: int) -> bool:
    """This generation was refused by the API already: no retry helps until the spec changes."""
    return old_status.get("phase") == "Failed" and old_status.get("observedGeneration") == generation \
        and old_status.get("reason") == REJECTED


def _problem_events(problems: list[PodProblem], old_status: Mapping[str, Any]) -> tuple[Event, ...]:
    """One Event when a new kind of pod problem appears, not one per round nor per kubelet back-off."""
    if not problems:
        return ()
    before = next((c for c in old_status.get("conditions") or [] if c.get("type") == "PodsHealthy"), None)
    if before is not None and before.get("status") == "False" and same_problem(before.get("reason"),
                                                                                 problems[0].reason):
        return ()
    return (Event("Warning", problems[0].reason, summary(problems)),)


def _service_shape(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    ports = sorted((p.get("name"), p.get("port"), str(p.get("targetPort"))) for p in spec.get("ports") or [])
    return spec.get("type") or "ClusterIP", tuple(ports), tuple(sorted((spec.get("selector") or {}).items()))


def _drift(ref: ClusterRef, cluster: ClusterSpec, children: ChildrenView | None) -> str | None:
    """What someone changed in the scheduler's Service, or None."""
    if children is None:
        return None
    if children.service is None:
        return f"the scheduler Service {ref.scheduler_name} is gone"
    if _service_shape(children.service) != _service_shape(scheduler_service(ref, cluster)["spec"]):
        return f"the scheduler Service {ref.scheduler_name} was edited (type, ports or selector)"
    return None


def decide(ref: ClusterRef, cluster: ClusterSpec | ParameterError, observation: Observation,
           old_status: Mapping[str, Any], generation: int, now: float, *, spec_changed: bool = False,
           edited: frozenset[str] = frozenset()) -> Decision:
    """Everything one round does, from what it saw.

    ``spec_changed``: a create/update/resume round; ``edited``: the spec fields an update changed
    (dotted, below ``spec``: ``workers.replicas`` is what ``kubectl scale`` sets).
    """
    if isinstance(cluster, ParameterError):
        return _spec_error(ref, str(cluster), old_status, generation, now)
    if _waiting_for_a_new_spec(old_status, generation):
        return Decision(status=dict(old_status), write_status=False)
    params, options = cluster.params, cluster.options
    answers = observation.scheduler
    events: list[Event] = []

    # A Service deleted or edited by hand is applied again (server-side apply restores our fields).
    drift = None if spec_changed else _drift(ref, cluster, observation.children)
    if drift is not None:
        events.append(Event("Warning", "DriftRestored", f"{drift}: applied again", 60.0))
    apply_children = spec_changed or drift is not None
    ready_scheduler = observation.ready_scheduler

    # One scheduler pod, made from the current template; an outdated or finished one is deleted, and the next
    # is made once none is left, not even a terminating one: never two schedulers for one cluster (a
    # Deployment's Recreate, without its controller-manager round trips).
    template = scheduler_template(ref, cluster)
    scheduler_hash = template_hash(template)
    delete_now: tuple[str, ...] = ()
    for pod in observation.scheduler_pods:
        if pod.terminating:
            continue
        if pod.finished or pod.template_hash != scheduler_hash:
            delete_now += (pod.name,)
            if not pod.finished and "image" not in edited:  # an image change has its own Event below
                events.append(Event("Normal", "SchedulerRestart", "the scheduler's template changed: restarting "
                                    "it (clients reconnect; results held only in worker memory are lost)"))
    create_scheduler = None if observation.scheduler_pods else template

    batch = params.cluster is not None  # workers are batch jobs the scheduler pod submits, not pods
    desired = 0 if batch else desired_workers(cluster, answers.adaptive_target if options.adaptive else None)
    workers_template = worker_template(ref, cluster)
    plan = plan_workers([WorkerPod(name=p.name, index=p.index, ready=p.ready, template_hash=p.template_hash,
                                   terminating=p.terminating, finished=p.finished) for p in observation.workers],
                        desired, template_hash(workers_template))
    # A pod that is not Ready may still be a worker holding results (a busy one misses its probe):
    # whatever the scheduler knows is retired, never just deleted.
    known = set(answers.worker_names or ())
    delete_now += tuple(plan.delete_finished) + tuple(n for n in plan.delete_unready if n not in known)
    retire_names = tuple(plan.replace) + tuple(n for n in plan.delete_unready if n in known)
    retire = None
    if plan.retire_count or retire_names:
        if ready_scheduler is None:
            events.append(Event("Warning", "ScaleDownWaiting",
                                "scheduler not ready: workers are kept until it can retire them", 60.0))
        else:
            retire = Retire(count=plan.retire_count, names=retire_names, timeout=options.retire_timeout)

    last_activity, delete_cluster = None, False
    if answers.busy:
        last_activity = timestamp(now)
    elif answers.idle_since is not None:
        last_activity = timestamp(answers.idle_since)
        if params.timeout is not None and now - answers.idle_since >= params.timeout:
            delete_cluster = True
            events.append(Event("Normal", "IdleTimeout", f"idle for {params.timeout:g} s: deleting the cluster"))

    workers_ready = sum(1 for p in observation.workers if p.ready)
    if batch:
        workers_ready = len(answers.worker_names or ())
        desired = answers.adaptive_target or 0
    if "image" in edited and observation.schedulers:
        events.append(Event("Normal", "ImageChange",
                            f"image {options.image}: the scheduler restarts on it, then the workers are replaced "
                            "one at a time, each retired first"))
    if "workers.replicas" in edited and options.adaptive:
        events.append(Event("Normal", "AdaptiveScaling",
                            f"workers.adaptive is true: the scheduler's adaptive target decides the workers (now "
                            f"{desired}, between {options.minimum} and {params.maximum_jobs}); "
                            f"replicas {options.replicas} is not used (set workers.adaptive: false to scale by hand)"))
    problems = observation.problems
    events.extend(_problem_events(problems, old_status))
    observed = Observed(
        generation=generation,
        # A scheduler pod made this round is on its way: "missing" then "not ready" would be two writes for one
        # state.
        scheduler_exists=bool(observation.schedulers) or create_scheduler is not None,
        scheduler_ready=ready_scheduler is not None,
        workers_ready=workers_ready,
        workers_desired=desired,
        last_activity=last_activity,
        tls=options.tls,
        pod_problems=tuple(problems),
    )
    status = status_patch(ref, observed, dict(old_status), timestamp(now))
    return Decision(
        status=status,
        write_status=_changed(old_status, status),
        apply_children=apply_children,
        create_scheduler=create_scheduler,
        create_workers=tuple(plan.create),
        worker_template=workers_template if plan.create else None,
        delete_pods=delete_now,
        retire=retire,
        delete_cluster=delete_cluster,
        events=tuple(events),
    )
