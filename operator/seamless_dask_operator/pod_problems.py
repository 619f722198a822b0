"""Why a cluster's pods do not run, in the kubelet's and scheduler's own words (pure).

A pod stuck on a missing image, a request no node can meet, a crashing
container or a memory limit shows up here as a :class:`PodProblem`; the
operator turns the problems of one round into the ``PodsHealthy`` condition,
``.status.message`` and one Event per new kind of problem.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Container waiting reasons that mean "this will not start by itself soon".
WAITING_PROBLEMS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
    "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
})
# An OOM kill is reported until the container has run this long again.
OOM_MEMORY_SECONDS = 600.0
MESSAGE_LIMIT = 1000

_HINTS = {
    "ErrImagePull": "check spec.image and that the node can pull it",
    "ImagePullBackOff": "check spec.image and that the node can pull it",
    "ErrImageNeverPull": "load the image into the node or set spec.imagePullPolicy: IfNotPresent",
    "InvalidImageName": "fix spec.image",
    "Unschedulable": "lower spec.workers.resources / spec.scheduler.resources (or cores, memory), or add nodes",
    "OOMKilled": "raise spec.memory (or the resources' memory limit)",
    "CrashLoopBackOff": "see `kubectl logs --previous` of the pod",
}


# The kubelet alternates these for one cause: one problem, not two.
_FAMILIES = {"ErrImagePull": "ImagePull", "ImagePullBackOff": "ImagePull", "ErrImageNeverPull": "ImagePull",
             "CrashLoopBackOff": "Crash", "RunContainerError": "Crash"}


def same_problem(reason: str | None, other: str | None) -> bool:
    """Whether two reasons name one cause (ErrImagePull then ImagePullBackOff is one missing image)."""
    return _FAMILIES.get(reason or "", reason) == _FAMILIES.get(other or "", other)


@dataclass(frozen=True)
class PodProblem:
    pod: str
    component: str
    reason: str
    message: str

    def describe(self) -> str:
        hint = _HINTS.get(self.reason)
        text = f"{self.component} pod {self.pod}: {self.reason}"
        if self.message:
            text += f": {self.message}"
        return f"{text} ({hint})" if hint else text


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _container_problem(container: Mapping[str, Any], now: float) -> tuple[str, str] | None:
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or {}
    last = (container.get("lastState") or {}).get("terminated") or {}
    name = container.get("name", "?")
    if terminated.get("reason") == "OOMKilled" or (
        last.get("reason") == "OOMKilled"
        and (not container.get("ready") or now - (_timestamp(last.get("finishedAt")) or now) < OOM_MEMORY_SECONDS)
    ):
        restarts = container.get("restartCount", 0)
        return "OOMKilled", f"container {name} was killed for exceeding its memory limit ({restarts} restarts)"
    crashed = f"container {name} exited with code {last.get('exitCode')} ({last.get('reason')})"
    if waiting.get("reason") in WAITING_PROBLEMS:
        message = waiting.get("message") or ""
        if waiting["reason"] == "CrashLoopBackOff" and last:
            message = f"{crashed}; {message}"
        return waiting["reason"], message
    # Between two back-offs a crashing container runs briefly: still the same crash loop.
    if container.get("restartCount", 0) and last.get("exitCode") and not container.get("ready"):
        return "CrashLoopBackOff", f"{crashed}, {container['restartCount']} restarts"
    return None


def pod_problem(pod: Mapping[str, Any], component: str, now: float) -> PodProblem | None:
    """The one reason this pod is not running as it should, or None."""
    name = (pod.get("metadata") or {}).get("name", "?")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return PodProblem(name, component, status.get("reason") or "PodFailed", status.get("message") or "")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" \
                and condition.get("reason") == "Unschedulable":
            return PodProblem(name, component, "Unschedulable", condition.get("message") or "")
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        found = _container_problem(container, now)
        if found:
            return PodProblem(name, component, *found)
    return None


def by_importance(problems: Iterable[PodProblem]) -> list[PodProblem]:
    """Scheduler first (nothing runs without it), then by pod name."""
    return sorted(problems, key=lambda p: (p.component != "scheduler", p.pod))


def pod_problems(pods: Iterable[tuple[Mapping[str, Any], str]], now: float) -> list[PodProblem]:
    """Problems of (pod, component) pairs, most important first."""
    return by_importance(p for pod, component in pods if (p := pod_problem(pod, component, now)) is not None)


def summary(problems: list[PodProblem]) -> str:
    """One line for ``.status.message``, a condition and an Event; bounded in size."""
    text = "; ".join(p.describe() for p in problems)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"

