"""What the operator sees of one cluster in one round (pure values).

Its own pods and scheduler Service (from the watches), what its scheduler answered, and what
became of the previous round's actions: a child the API server refused, a retire call that
finished, the Events posted lately. The handlers fill an :class:`Observation`;
:func:`decide.decide` reads nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from seamless_dask_runtime.model.identity import (
    COMPONENT_LABEL,
    SCHEDULER,
    SCHEDULER_CANDIDATE,
    TEMPLATE_HASH_ANNOTATION,
    WORKER,
    WORKER_INDEX_LABEL,
)

from ..pod_problems import PodProblem, by_importance, pod_problem
from .plan import Retire


@dataclass(frozen=True)
class PodView:
    name: str
    component: str
    index: int
    ready: bool
    terminating: bool
    template_hash: str | None
    ip: str | None
    problem: PodProblem | None = None
    # Failed or Succeeded: its containers will not run again (evicted, node shut down); it is replaced.
    finished: bool = False


@dataclass(frozen=True)
class SchedulerAnswers:
    """What the scheduler's HTTP API answered this round; None where it was not asked or did not answer."""

    reachable: bool = False
    adaptive_target: int | None = None
    worker_names: tuple[str, ...] | None = None  # Dask names = pod names (batch: job names)
    busy: bool | None = None
    idle_for: float | None = None  # seconds without a client or a task (a duration: one clock, the scheduler's)
    error: str | None = None  # why a ready scheduler did not answer (it runs the tenant's image)
    # Another distributed/dask release among scheduler, workers and clients: (skew, the scheduler's words); None
    # when not asked lately or the scheduler is too old to say.
    versions: tuple[bool, str] | None = None


@dataclass(frozen=True)
class ChildrenView:
    """The cluster's own scheduler Service as the watch last saw it."""

    service: dict[str, Any] | None = None  # type, ports and selector; None: no Service of ours
    applied: str | None = None  # the hash of the children it was applied with (their template-hash annotation)


def children_view(service: Mapping[str, Any]) -> ChildrenView:
    """A Service object (from the watch, or the manifest this operator just created) as a round sees it."""
    spec = service.get("spec") or {}
    return ChildrenView(service={k: spec.get(k) for k in ("type", "ports", "selector")},
                        applied=(service["metadata"].get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION))


class RefusalKind(Enum):
    REJECTED = "RejectedByAPI"  # 400/422: what this spec makes is invalid; retrying the same spec cannot help
    FORBIDDEN = "Forbidden"  # 403: a ResourceQuota or a missing right; may pass later without an edit
    NAME_CLASH = "NameClash"  # a child's name is taken by an object this cluster does not own
    QUOTA = "QuotaExceeded"  # a ResourceQuota is full: not a failure, it passes once the quota frees


@dataclass(frozen=True)
class Refusal:
    """The API server would not take an action of this round (what it said, in its own words)."""

    kind: RefusalKind
    message: str


@dataclass(frozen=True)
class RetireOutcome:
    """A retire call that finished since the last round: who the scheduler says it retired, or why it failed."""

    request: Retire
    retired: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class LegacyScheduler:
    """A scheduler pod of this cluster that an earlier operator's Deployment made (the layout before the scheduler
    became a pod of the operator's own): owned by a ReplicaSet, not by the cluster."""

    pod: str
    replica_set: str
    signature: str  # builders.objects.container_signature of what it runs
    ready: bool


@dataclass(frozen=True)
class Observation:
    pods: tuple[PodView, ...] = ()  # only the pods this cluster owns (ownerReference uid)
    children: ChildrenView | None = None  # None: not observed (nothing to say about drift)
    scheduler: SchedulerAnswers = SchedulerAnswers()
    refusal: Refusal | None = None  # set on the second pass of a round whose actions were refused
    retire_outcome: RetireOutcome | None = None
    retiring: bool = False  # a retire call is still in flight
    last_posted: Mapping[str, float] = field(default_factory=dict)  # Event reason -> when (the round's clock)
    legacy: tuple[LegacyScheduler, ...] = ()

    @property
    def workers(self) -> list[PodView]:
        return [p for p in self.pods if p.component == WORKER]

    @property
    def scheduler_pods(self) -> list[PodView]:
        """Every scheduler pod, on its way out or not (a new one waits until none is left)."""
        return [p for p in self.pods if p.component == SCHEDULER]

    @property
    def candidates(self) -> list[PodView]:
        """New schedulers started beside the running one (a rollout), not on their way out."""
        return [p for p in self.pods if p.component == SCHEDULER_CANDIDATE and not p.terminating and not p.finished]

    @property
    def schedulers(self) -> list[PodView]:
        """Scheduler pods that are not on their way out."""
        return [p for p in self.scheduler_pods if not p.terminating and not p.finished]

    @property
    def ready_scheduler(self) -> PodView | None:
        return next((p for p in self.schedulers if p.ready and p.ip), None)

    @property
    def problems(self) -> list[PodProblem]:
        return by_importance(p.problem for p in self.pods if p.problem is not None)


def _is_ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def pod_view(pod: Mapping[str, Any], now: float) -> PodView:
    """One pod as kopf's index keeps it (metadata + status summary)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = pod.get("status") or {}
    component = labels.get(COMPONENT_LABEL, "?")
    terminating = bool(meta.get("deletionTimestamp"))
    index = labels.get(WORKER_INDEX_LABEL, "0")
    finished = status.get("phase") in ("Failed", "Succeeded")
    return PodView(
        name=meta.get("name", "?"),
        component=component,
        index=int(index) if str(index).isdigit() else 0,
        ready=_is_ready(status) and not terminating and not finished,
        terminating=terminating,
        template_hash=(meta.get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION),
        ip=status.get("podIP"),
        problem=pod_problem(pod, component, now),
        finished=finished,
    )


def pod_views(pods: Iterable[Mapping[str, Any]], now: float) -> tuple[PodView, ...]:
    return tuple(pod_view(p, now) for p in pods)
