"""One reconcile round, decided without I/O: (spec, observation, old status) -> the round's :class:`Plan`.

The handlers observe (the watches of our pods and Service, the scheduler's HTTP API, what became
of the previous round's actions), call :func:`decide`, and carry out the plan's actions in order.
Every rule of the operator lives in this package, one sub-decision per module, each table-tested
(tests/unit/test_decide.py):

- ``children``: the Service, NetworkPolicy and TLS Secret, and drift;
- ``scheduler``: the one scheduler pod;
- ``workers``: how many worker pods, which to create, retire, replace or delete;
- ``idleness``: the idle timeout;
- ``notices``: which Events are posted now;
- ``refusals``: a spec or an API answer that ends in ``Failed``;
- ``status``: what ``.status`` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model.parameters import ParameterError

from ..builders.objects import ClusterRef
from ..resource import ClusterSpec, memory_overridden
from .children import decide_children
from .idleness import decide_idleness
from .notices import (
    Notice,
    capacity_notices,
    events_to_post,
    pod_problem_notices,
    unresponsive_notices,
    version_skew_notices,
    warning_every_minute,
)
from .observation import (
    ChildrenView,
    LegacyScheduler,
    Observation,
    PodView,
    Refusal,
    RefusalKind,
    RetireOutcome,
    SchedulerAnswers,
    children_view,
    pod_view,
    pod_views,
)
from .plan import (
    Action,
    AdoptScheduler,
    ApplyChild,
    CreatePod,
    DeleteCluster,
    DeletePod,
    EnsureTlsSecret,
    PatchStatus,
    PinImage,
    Plan,
    PostEvent,
    PromoteScheduler,
    Retire,
)
from .refusals import INVALID_SPEC, api_message, changed, failed, refusal_kind, refused, waiting_for_a_new_spec
from .scheduler import decide_scheduler
from .status import Observed, status_patch, stopping_status, timestamp
from .workers import decide_workers

__all__ = [
    "Action",
    "AdoptScheduler",
    "ApplyChild",
    "ChildrenView",
    "CreatePod",
    "DeleteCluster",
    "DeletePod",
    "EnsureTlsSecret",
    "LegacyScheduler",
    "Observation",
    "PatchStatus",
    "PinImage",
    "Plan",
    "PodView",
    "PostEvent",
    "PromoteScheduler",
    "Questions",
    "Refusal",
    "RefusalKind",
    "Retire",
    "RetireOutcome",
    "SchedulerAnswers",
    "api_message",
    "children_view",
    "decide",
    "pod_view",
    "pod_views",
    "questions",
    "refusal_kind",
    "stopping_status",
]


@dataclass(frozen=True)
class Questions:
    """What a round asks the cluster's scheduler (its HTTP API)."""

    adaptive_target: bool
    worker_names: bool = True
    idleness: bool = True
    versions: bool = True


def questions(cluster: ClusterSpec, versions_due: bool = True) -> Questions:
    """The adaptive target only where it decides something: adaptive clusters, and batch ones (their status); the
    versions when due (they change only when a client or worker joins: once a minute is enough)."""
    return Questions(adaptive_target=cluster.options.adaptive or cluster.params.cluster is not None,
                     versions=versions_due)


def _adaptive_scaling_notice(cluster: ClusterSpec, desired: int, running: int) -> Notice:
    options = cluster.options
    above = f"; {running - desired} of the {running} running are retired once their results have moved" \
        if running > desired else ""
    return Notice("Normal", "AdaptiveScaling",
                  f"workers.adaptive is true: the scheduler's adaptive target decides the workers (now {desired}, "
                  f"between {options.minimum} and {cluster.params.maximum_jobs}{above}); replicas "
                  f"{options.replicas} is not used (set workers.adaptive: false to scale by hand)")


def decide(ref: ClusterRef, cluster: ClusterSpec | ParameterError, observation: Observation,
           old_status: Mapping[str, Any], generation: int, now: float, *, spec_changed: bool = False,
           edited: frozenset[str] = frozenset(), operator_peer: dict[str, Any] | None = None) -> Plan:
    """Everything one round does, from what it saw.

    ``spec_changed``: a create/update/resume round; ``edited``: the spec fields an update changed
    (dotted, below ``spec``: ``workers.replicas`` is what ``kubectl scale`` sets); ``now``: the
    operator's clock (seconds since the epoch); ``operator_peer``: the NetworkPolicy peer of the
    operator's own pods (None outside a cluster).
    """
    if isinstance(cluster, ParameterError):
        return failed(ref, str(cluster), INVALID_SPEC, old_status, generation, now)
    pin = spec_changed and cluster.options.image_unset
    if pin:
        # The image this round writes into the spec makes the next generation, the spec this status describes: a
        # status of the generation before would be written again by the next round for nothing but the number.
        generation += 1
    if observation.refusal is not None:
        return refused(ref, observation.refusal, old_status, generation, now)
    if waiting_for_a_new_spec(old_status, generation):
        return Plan(status=dict(old_status))

    children = decide_children(ref, cluster, observation.children, spec_changed, operator_peer)
    scheduler = decide_scheduler(ref, cluster, observation, edited)
    workers = decide_workers(ref, cluster, observation)
    idle = decide_idleness(cluster.params, observation.scheduler, now, old_status.get("lastActivity"))

    notices = [*children.notices, *scheduler.notices, *workers.notices, *idle.notices]
    overridden = memory_overridden(cluster)
    if spec_changed and overridden is not None:
        # At most once a minute: edits in a burst (a script applying twice) get one warning.
        notices.append(warning_every_minute("MemoryOverridden",
                                            f"spec.memory {cluster.params.memory} is not the pods' memory: "
                                            f"spec.workers.resources names {overridden}, which wins; remove one "
                                            "of them"))
    if "workers.replicas" in edited and cluster.options.adaptive:
        notices.append(_adaptive_scaling_notice(cluster, workers.desired, workers.ready))
    # Pods that wait for room (a node autoscaler adds nodes, other pods finish) are capacity, not failure, for the
    # time the user set; past it, a problem like any other.
    waiting = [p for p in observation.problems if p.waits_for_capacity
               and (p.since is None or now - p.since < cluster.options.capacity_timeout)]
    problems = [p for p in observation.problems if p not in waiting]
    old_conditions = list(old_status.get("conditions") or [])
    notices += pod_problem_notices(problems, old_conditions) + capacity_notices(waiting, problems, old_conditions)
    # The scheduler runs the tenant's image: one that does not answer as it should is this cluster's news only.
    scheduler_error = observation.scheduler.error if observation.ready_scheduler is not None else None
    notices += unresponsive_notices(scheduler_error, old_conditions)
    notices += version_skew_notices(observation.scheduler.versions, old_conditions)

    status = status_patch(ref, Observed(
        generation=generation,
        # A scheduler pod made this round is on its way: "missing" then "not ready" would be two writes for one
        # state.
        scheduler_exists=bool(observation.schedulers) or scheduler.create is not None,
        scheduler_ready=observation.ready_scheduler is not None,
        workers_ready=workers.ready,
        workers_desired=workers.desired,
        last_activity=idle.last_activity,
        tls=cluster.options.tls,
        pod_problems=tuple(problems),
        waiting_for_capacity=tuple(waiting),
        scheduler_error=scheduler_error,
        versions=observation.scheduler.versions,
    ), dict(old_status), timestamp(now))

    actions: list[Action] = [PinImage(cluster.options.image)] if pin else []
    actions += children.actions
    if scheduler.adopt is not None:
        actions.append(scheduler.adopt)
    if scheduler.create is not None:
        actions.append(scheduler.create)
    # A worker pod deleted here is retired, finished or never ready: it serves nothing, and going first keeps a
    # rollout within one pod beyond the count even as the API shows it.
    actions += [DeletePod(name) for name in workers.delete]
    actions += workers.create
    actions += [DeletePod(name) for name in scheduler.delete]
    if scheduler.promote is not None:
        actions.append(scheduler.promote)
    if workers.retire is not None:
        actions.append(workers.retire)
    if idle.delete_cluster:
        actions.append(DeleteCluster())
    actions += events_to_post(notices, observation.last_posted, now)
    if changed(old_status, status):
        actions.append(PatchStatus(status))
    return Plan(status=status, actions=tuple(actions), more=workers.more)
