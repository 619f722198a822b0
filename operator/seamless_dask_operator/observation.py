"""What the operator sees of one cluster in one round: its pods and what its scheduler said (pure values).

Handlers fill an :class:`Observation` (from kopf's pod index and the
scheduler's HTTP API); :func:`decide.decide` reads nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.identity import (
    COMPONENT_LABEL,
    SCHEDULER,
    TEMPLATE_HASH_ANNOTATION,
    WORKER,
    WORKER_INDEX_LABEL,
)

from .pod_problems import PodProblem, by_importance, pod_problem


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
    idle_since: float | None = None


@dataclass(frozen=True)
class ChildrenView:
    """The cluster's own scheduler Service as the watch last saw it."""

    service: dict[str, Any] | None = None  # type, ports and selector; None: no Service of ours


@dataclass(frozen=True)
class Observation:
    pods: tuple[PodView, ...] = ()
    children: ChildrenView | None = None  # None: not observed (nothing to say about drift)
    scheduler: SchedulerAnswers = SchedulerAnswers()

    @property
    def workers(self) -> list[PodView]:
        return [p for p in self.pods if p.component == WORKER]

    @property
    def scheduler_pods(self) -> list[PodView]:
        """Every scheduler pod, on its way out or not (a new one waits until none is left)."""
        return [p for p in self.pods if p.component == SCHEDULER]

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
