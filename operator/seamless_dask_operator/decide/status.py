"""The resource's ``.status``: the status-file protocol's phase plus Kubernetes conditions (pure)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model.identity import COMM_PORT, DASHBOARD_PORT, WORKER
from seamless_dask_runtime.model.status import ClusterStatus, Phase

from ..builders.objects import ClusterRef, selector_string
from ..pod_problems import PodProblem, summary


def timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(stamp: str) -> float:
    """Seconds since the epoch of a :func:`timestamp` (-inf for anything else: never the same moment)."""
    try:
        return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return float("-inf")


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
    waiting_for_capacity: tuple[PodProblem, ...] = ()  # Unschedulable for lack of room, within capacityTimeout
    scheduler_error: str | None = None  # a ready scheduler whose HTTP API did not answer as it should
    versions: tuple[bool, str] | None = None  # (skew, the scheduler's words), None: not known


def _version_skew(observed: Observed, old: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``VersionSkew``: True when a client, worker or the scheduler runs another distributed/dask release."""
    if observed.versions is None:
        before = next((c for c in old or [] if c.get("type") == "VersionSkew"), None)
        if before is not None:  # not asked this round: as it was
            return {k: v for k, v in before.items() if k != "lastTransitionTime"} | \
                {"observedGeneration": observed.generation}
        return _condition("VersionSkew", None, "NotReported", "the scheduler has not reported versions",
                          observed.generation)
    skew, message = observed.versions
    if skew:
        return _condition("VersionSkew", True, "VersionMismatch", message, observed.generation)
    return _condition("VersionSkew", False, "VersionsMatch",
                      "scheduler, workers and clients run the same distributed and dask", observed.generation)


UNRESPONSIVE = "SchedulerUnresponsive"


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
    elif observed.waiting_for_capacity and not observed.spec_error:
        reason, message = "WaitingForCapacity", summary(list(observed.waiting_for_capacity))
    elif observed.scheduler_error and observed.scheduler_ready and not observed.spec_error:
        reason, message = UNRESPONSIVE, unresponsive_message(observed.scheduler_error)
    elif observed.workers_ready > observed.workers_desired and observed.scheduler_ready and not observed.spec_error:
        # READY above DESIRED is no error: say what happens, without the retire protocol's words.
        reason, message = "ScalingDown", _scaling_down(observed)
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


def _scaling_down(observed: Observed) -> str:
    above, running = observed.workers_ready - observed.workers_desired, observed.workers_ready
    return (f"{running} worker{'' if running == 1 else 's'} running, {observed.workers_desired} wanted: {above} "
            f"{'is' if above == 1 else 'are'} retired once the scheduler has moved {'its' if above == 1 else 'their'} "
            "results")


def unresponsive_message(error: str) -> str:
    return f"the scheduler passes /health but its HTTP API did not answer as it should: {error[:300]}"


def _condition(kind: str, ok: bool | None, reason: str, message: str, generation: int) -> dict[str, Any]:
    status = "Unknown" if ok is None else "True" if ok else "False"
    return {"type": kind, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


def _pods_healthy(observed: Observed) -> dict[str, Any]:
    if observed.pod_problems:
        return _condition("PodsHealthy", False, observed.pod_problems[0].reason,
                          summary(list(observed.pod_problems)), observed.generation)
    if observed.waiting_for_capacity:
        # Capacity is not failure: healthy, and waiting for room (a node autoscaler adds nodes, other pods finish).
        return _condition("PodsHealthy", True, "WaitingForCapacity",
                          "waiting for room: " + summary(list(observed.waiting_for_capacity)), observed.generation)
    return _condition("PodsHealthy", True, "NoProblems",
                      "no pod is failing to pull, schedule, start or stay within its memory", observed.generation)


def _responsive(observed: Observed, old: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not observed.scheduler_ready:
        return _condition("SchedulerResponsive", None, "SchedulerNotReady", "not asked: the scheduler is not ready",
                          observed.generation)
    if observed.scheduler_error:
        before = next((c for c in old or [] if c.get("type") == "SchedulerResponsive"), None)
        if before is not None and before.get("status") == "False" and before.get("reason") == UNRESPONSIVE:
            # Still not answering: the first failure's words stay (a timeout one round, a refused connection the
            # next, is no news, and each new text would be a write every round).
            return _condition("SchedulerResponsive", False, UNRESPONSIVE, str(before.get("message")),
                              observed.generation)
        return _condition("SchedulerResponsive", False, UNRESPONSIVE, unresponsive_message(observed.scheduler_error),
                          observed.generation)
    return _condition("SchedulerResponsive", True, "Answering",
                      "the scheduler answers the operator's questions in time", observed.generation)


def conditions(observed: Observed, old: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
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
        _responsive(observed, old),
        _pods_healthy(observed),
        _condition("WorkersReady", observed.workers_ready >= observed.workers_desired,
                   "AllWorkersReady" if observed.workers_ready >= observed.workers_desired else "WorkersPending",
                   _scaling_down(observed) if observed.workers_ready > observed.workers_desired
                   else f"{observed.workers_ready}/{observed.workers_desired} workers ready", observed.generation),
        _version_skew(observed, old),
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
    old_conditions = (old_status or {}).get("conditions")
    new_conditions = conditions(observed, old_conditions)
    message = status.message or ""
    if status.reason == UNRESPONSIVE:  # in the condition's words (kept while the scheduler still does not answer)
        message = next(c["message"] for c in new_conditions if c["type"] == "SchedulerResponsive")
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
        "message": message,
        "conditions": merge_conditions(old_conditions, new_conditions, now),
    }
    if observed.last_activity is not None:
        patch["lastActivity"] = observed.last_activity
    return patch


STOPPING_REASON = "Deleting"


def stopping_status() -> dict[str, Any]:
    """What ``.status`` says while a deleted cluster's children are removed."""
    return {"phase": Phase.STOPPING.value, "reason": STOPPING_REASON,
            "message": "deleting the scheduler, its Service and the workers"}
