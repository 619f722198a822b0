"""The resource's ``.status``: the status-file protocol's phase plus Kubernetes conditions (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.identity import COMM_PORT, DASHBOARD_PORT, WORKER
from seamless_dask_runtime.status import ClusterStatus, Phase

from .builders.objects import ClusterRef, selector_string
from .pod_problems import PodProblem, summary


@dataclass(frozen=True)
class Observed:
    """What the operator saw this round."""

    generation: int
    scheduler_exists: bool = False
    scheduler_ready: bool = False
    workers_ready: int = 0
    workers_desired: int = 0
    spec_error: str | None = None
    spec_error_reason: str = "InvalidSpec"
    last_activity: str | None = None
    tls: bool = False
    pod_problems: tuple[PodProblem, ...] = ()


def cluster_status(ref: ClusterRef, observed: Observed) -> ClusterStatus:
    """Running means the scheduler pod passes its ``/health`` readiness probe."""
    if observed.spec_error:
        phase, reason = Phase.FAILED, observed.spec_error_reason
    elif observed.scheduler_ready:
        phase, reason = Phase.RUNNING, "SchedulerReady"
    else:
        phase, reason = Phase.STARTING, "SchedulerNotReady"
    message = observed.spec_error
    if observed.pod_problems and not observed.spec_error:
        reason, message = observed.pod_problems[0].reason, summary(list(observed.pod_problems))
    return ClusterStatus(
        phase=phase,
        scheduler_port=COMM_PORT,
        dashboard_port=DASHBOARD_PORT,
        scheduler_address=ref.scheduler_url(observed.tls),
        dashboard_url=ref.dashboard_url,
        workers_ready=observed.workers_ready,
        workers_desired=observed.workers_desired,
        reason=reason,
        message=message,
    )


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message,
            "observedGeneration": generation}


def conditions(observed: Observed) -> list[dict[str, Any]]:
    valid = observed.spec_error is None
    return [
        _condition("SpecValid", valid, "Valid" if valid else observed.spec_error_reason,
                   observed.spec_error or "spec translates to a cluster", observed.generation),
        _condition("SchedulerReady", observed.scheduler_ready,
                   "HealthCheckPassing" if observed.scheduler_ready else
                   ("SchedulerNotReady" if observed.scheduler_exists else "SchedulerMissing"),
                   "scheduler answers /health" if observed.scheduler_ready
                   else "waiting for the scheduler pod to pass /health",
                   observed.generation),
        _condition("PodsHealthy", not observed.pod_problems,
                   observed.pod_problems[0].reason if observed.pod_problems else "NoProblems",
                   summary(list(observed.pod_problems)) if observed.pod_problems
                   else "no pod is failing to pull, schedule, start or stay within its memory",
                   observed.generation),
        _condition("WorkersReady", observed.workers_ready >= observed.workers_desired,
                   "AllWorkersReady" if observed.workers_ready >= observed.workers_desired else "WorkersPending",
                   f"{observed.workers_ready}/{observed.workers_desired} workers ready", observed.generation),
    ]


def merge_conditions(old: list[dict[str, Any]] | None, new: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """Keep ``lastTransitionTime`` unless the condition's status changed."""
    previous = {c.get("type"): c for c in old or []}
    merged = []
    for condition in new:
        before = previous.get(condition["type"])
        stamp = now if before is None or before.get("status") != condition["status"] \
            else before.get("lastTransitionTime", now)
        merged.append({**condition, "lastTransitionTime": stamp})
    return merged


def status_patch(ref: ClusterRef, observed: Observed, old_status: dict[str, Any] | None, now: str) -> dict[str, Any]:
    """The whole ``.status`` the operator writes."""
    status = cluster_status(ref, observed)
    patch: dict[str, Any] = {
        "phase": status.phase.value,
        "schedulerAddress": status.scheduler_address,
        "schedulerPort": status.scheduler_port,
        "dashboardPort": status.dashboard_port,
        "dashboardUrl": status.dashboard_url,
        "workersReady": status.workers_ready,
        "workersDesired": status.workers_desired,
        "selector": selector_string(ref, WORKER),
        "observedGeneration": observed.generation,
        "reason": status.reason,
        "message": status.message or "",
        "conditions": merge_conditions((old_status or {}).get("conditions"), conditions(observed), now),
    }
    if observed.last_activity is not None:
        patch["lastActivity"] = observed.last_activity
    return patch
