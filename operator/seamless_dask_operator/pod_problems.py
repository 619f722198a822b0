"""Why a cluster's pods do not run, in the kubelet's and scheduler's own words (pure).

A pod stuck on a missing image, a request no node can meet, a crashing
container or a memory limit shows up here as a :class:`PodProblem`; the
operator turns the problems of one round into the ``PodsHealthy`` condition,
``.status.message`` and one Event per new kind of problem.
"""

from __future__ import annotations

import datetime
import re
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
# The whole summary (status message, condition, Event), and each kubelet/scheduler message in it: a cause
# shared by many pods is said once, so `kubectl get sdc -o yaml` and `describe` stay readable.
MESSAGE_LIMIT = 1000
CAUSE_LIMIT = 240
NAMES_SHOWN = 3

_HINTS = {
    "ErrImagePull": "check spec.image and that the node can pull it",
    "ImagePullBackOff": "check spec.image and that the node can pull it",
    "ErrImageNeverPull": "load the image into the node or set spec.imagePullPolicy: IfNotPresent",
    "InvalidImageName": "fix spec.image",
    "OOMKilled": "raise spec.memory (or the resources' memory limit)",
    "CrashLoopBackOff": "see `kubectl logs --previous` of the pod",
}

# kube-scheduler's reasons (its plugins' words in "0/N nodes are available: ..."), each with what to change.
# {part} is spec.workers or spec.scheduler: where the pod's placement and resources come from.
_SCHEDULER_HINTS: tuple[tuple[str, str], ...] = (
    ("Insufficient cpu", "ask for less CPU ({cpu}) or add nodes with free CPU"),
    ("Insufficient memory", "ask for less memory ({memory}) or add nodes with free memory"),
    ("Insufficient ", "ask for less of that resource ({part}.resources) or add nodes that have it"),
    ("Too many pods", "the nodes hold as many pods as they may: add nodes or remove pods"),
    ("unbound immediate PersistentVolumeClaims",
     "a claim in spec.volumes is not bound: it needs a PersistentVolume, or a StorageClass whose provisioner "
     "makes one (`kubectl describe pvc`)"),
    ("persistentvolumeclaim ", "create the PersistentVolumeClaim named in spec.volumes, or fix its claimName"),
    ("didn't find available persistent volumes to bind",
     "no PersistentVolume fits the claim in spec.volumes (size, access mode, StorageClass): add one"),
    ("volume node affinity conflict", "the claim's volume is on nodes the pod may not use: check its volume's "
     "node affinity and {part}.nodeSelector/affinity"),
    ("did not have enough free storage", "the claim's StorageClass has no room left on the nodes: ask for less "
     "or add storage"),
    ("didn't match Pod's node affinity/selector",
     "no node matches {part}.nodeSelector/affinity: fix them, or label a node to match"),
    ("untolerated taint", "the nodes are tainted: add a matching toleration to {part}.tolerations, or use "
     "untainted nodes"),
    ("were unschedulable", "the nodes are cordoned: uncordon one (`kubectl uncordon`) or add nodes"),
    ("free ports", "the nodes' ports are taken: free them or add nodes"),
    ("anti-affinity", "{part}.affinity's podAntiAffinity excludes every node: relax it or add nodes"),
    ("pod affinity", "{part}.affinity's podAffinity matches no node: relax it"),
    ("topology spread", "the pod topology spread constraints cannot be met: relax them or add nodes"),
    ("no nodes available", "the cluster has no nodes that can run pods"),
)
_SCHEDULER_FALLBACK = "change what {part} asks for (resources, nodeSelector, affinity, tolerations) or add nodes"
_AVAILABLE = re.compile(r"^\d+/\d+ nodes are available: ")
_COUNT = re.compile(r"^\d+ ")


def scheduler_verdict(message: str) -> str:
    """The first sentence of an Unschedulable message: why no node fits (v1.36 adds the post-filters' words,
    "no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful ...")."""
    return message.strip().split(". ", 1)[0].rstrip(".")


def scheduler_causes(message: str) -> list[str]:
    """kube-scheduler's reasons in an Unschedulable message, without node counts and the post-filters' part."""
    body = _AVAILABLE.sub("", scheduler_verdict(message))
    return [c for c in (_COUNT.sub("", part.strip()) for part in body.split(", ")) if c]


def scheduler_hint(message: str, component: str) -> str:
    """What to change for each of the scheduler's reasons, in the spec fields of this pod's part."""
    part = "spec.scheduler" if component == "scheduler" else "spec.workers"
    fields = {
        "part": part,
        # A worker asks for spec.cores CPUs and spec.memory unless spec.workers.resources says otherwise.
        "cpu": "spec.scheduler.resources" if component == "scheduler"
        else "spec.workers.resources.requests.cpu if set, else spec.cores",
        "memory": "spec.scheduler.resources" if component == "scheduler"
        else "spec.memory, or spec.workers.resources' memory when spec.memory is unset",
    }
    hints: list[str] = []
    for cause in scheduler_causes(message):
        hint = next((h for key, h in _SCHEDULER_HINTS if key in cause), _SCHEDULER_FALLBACK).format(**fields)
        if hint not in hints:
            hints.append(hint)
    return "; ".join(hints) or _SCHEDULER_FALLBACK.format(**fields)


# The kubelet alternates these for one cause: one problem, not two.
_FAMILIES = {"ErrImagePull": "ImagePull", "ImagePullBackOff": "ImagePull", "ErrImageNeverPull": "ImagePull",
             "CrashLoopBackOff": "Crash", "RunContainerError": "Crash"}


def same_problem(reason: str | None, other: str | None) -> bool:
    """Whether two reasons name one cause (ErrImagePull then ImagePullBackOff is one missing image)."""
    return _FAMILIES.get(reason or "", reason) == _FAMILIES.get(other or "", other)


# Causes that mean "no room yet", not "cannot ever run here": a node autoscaler adds nodes, other pods finish.
_CAPACITY_CAUSES = ("Insufficient ", "Too many pods")


@dataclass(frozen=True)
class PodProblem:
    pod: str
    component: str
    reason: str
    message: str
    since: float | None = None  # when it began (an Unschedulable pod's PodScheduled transition), when known

    @property
    def waits_for_capacity(self) -> bool:
        """Unschedulable for lack of room only (CPU, memory, other resources, pod slots): capacity, not failure."""
        if self.reason != "Unschedulable":
            return False
        causes = scheduler_causes(self.message)
        return bool(causes) and all(cause.startswith(_CAPACITY_CAUSES) for cause in causes)

    @property
    def hint(self) -> str | None:
        """What the user should change, per cause (a scheduler's reason, a kubelet's)."""
        if self.reason == "Unschedulable":
            return scheduler_hint(self.message, self.component)
        return _HINTS.get(self.reason)

    def describe(self) -> str:
        return _describe([self])


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
            return PodProblem(name, component, "Unschedulable", condition.get("message") or "",
                              since=_timestamp(condition.get("lastTransitionTime")))
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


def _cause(problem: PodProblem) -> str:
    """The message without what differs between pods of one cause (their names, uids, back-off times, counts)."""
    text = problem.message.replace(problem.pod, "POD")
    text = re.sub(r"pod=\S+", "pod=POD", text)
    text = re.sub(r"back-off \S+", "back-off", text)
    return re.sub(r"\d+ restarts", "N restarts", text)


def _shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, keeping both ends (a pull error names the image first, the cause last)."""
    if len(text) <= limit:
        return text
    tail = limit // 3
    return text[: limit - tail - 1] + "…" + text[-tail:]


def _describe(group: list[PodProblem]) -> str:
    first = group[0]
    components = {p.component for p in group}
    if len(group) == 1:
        who = f"{first.component} pod {first.pod}"
    else:
        names = ", ".join(p.pod for p in group[:NAMES_SHOWN])
        more = f", … {len(group) - NAMES_SHOWN} more" if len(group) > NAMES_SHOWN else ""
        kind = f"{first.component} pods" if len(components) == 1 else "pods"
        who = f"{len(group)} {kind} ({names}{more})"
    text = f"{who}: {first.reason}"
    message = scheduler_verdict(first.message) if first.reason == "Unschedulable" else first.message
    if message:
        text += f": {_shorten(message, CAUSE_LIMIT)}"
    hint = first.hint
    return f"{text} ({hint})" if hint else text


def group_by_cause(problems: Iterable[PodProblem]) -> list[list[PodProblem]]:
    """Pods with one reason, message and hint, together (a missing image: scheduler and workers alike; an
    unschedulable scheduler and worker apart, their fixes differ); in the order of their first pod."""
    groups: dict[tuple[str, str, str | None], list[PodProblem]] = {}
    for problem in problems:
        groups.setdefault((problem.reason, _cause(problem), problem.hint), []).append(problem)
    return list(groups.values())


def summary(problems: list[PodProblem]) -> str:
    """One line for ``.status.message``, a condition and an Event: each cause once, with its pods; bounded."""
    text = "; ".join(_describe(group) for group in group_by_cause(problems))
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
