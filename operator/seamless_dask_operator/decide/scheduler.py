"""The scheduler pod: one the Service selects, made from the current template (pure).

A rollout adds before it removes, as a Deployment with maxUnavailable 0 does: when the template changes
(an image edit, say), a new scheduler (a *candidate*) starts beside the running one, which keeps serving its
clients and workers; once the candidate is Ready it takes over (the Service selects it, the old pod goes;
clients reconnect, and results held only in worker memory are lost, as with any new scheduler). A
candidate that cannot start (a missing image, no room) stops the rollout there: the running scheduler stays,
and the pod problem says why. A scheduler that is not ready (it never worked, or crashes) has nothing to
protect: it is replaced the old way, deleted first, the next made once it is gone (never two selected).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model.identity import SCHEDULER, SCHEDULER_CANDIDATE

from ..builders.objects import ClusterRef, container_signature, template_hash
from ..builders.scheduler import scheduler_pod, scheduler_template
from ..resource import ClusterSpec
from .notices import Notice, warning_every_minute
from .observation import Observation
from .plan import AdoptScheduler, CreatePod, PromoteScheduler


@dataclass(frozen=True)
class SchedulerDecision:
    create: CreatePod | None = None
    delete: tuple[str, ...] = ()
    promote: PromoteScheduler | None = None
    adopt: AdoptScheduler | None = None
    notices: tuple[Notice, ...] = ()


def _adopt(observation: Observation, template: dict[str, Any], current: str) -> SchedulerDecision:
    """An upgrade from the layout whose scheduler was a Deployment: its pod (with the cluster's clients and results)
    becomes the cluster's own, never a second scheduler beside it; one this operator made meanwhile goes."""
    legacy = sorted(observation.legacy, key=lambda pod: not pod.ready)[0]
    same = legacy.signature == container_signature(template["containers"][0])
    ours = [p.name for p in (*observation.scheduler_pods, *observation.candidates) if not p.terminating]
    notice = Notice("Normal", "Migrated", f"the scheduler Deployment of an earlier operator gave way to its pod "
                    f"{legacy.pod}, now this cluster's own (not restarted"
                    + ("" if same else "; it runs an older template, so a new scheduler will take over once Ready")
                    + (f"; the scheduler {', '.join(ours)} made beside it goes" if ours else "") + ")")
    return SchedulerDecision(adopt=AdoptScheduler(legacy.pod, legacy.replica_set, current if same else "legacy"),
                             delete=tuple(ours), notices=(notice,))


def decide_scheduler(ref: ClusterRef, cluster: ClusterSpec, observation: Observation,
                     edited: frozenset[str]) -> SchedulerDecision:
    template = scheduler_template(ref, cluster)
    current = template_hash(template)
    if observation.legacy:
        return _adopt(observation, template, current)
    candidates = observation.candidates
    ours = [c for c in candidates if c.template_hash == current]
    delete = [c.name for c in candidates if c.template_hash != current]  # made from an older edit
    notices: list[Notice] = []
    if "image" in edited and any(p.template_hash != current for p in observation.schedulers):
        notices.append(Notice("Normal", "ImageChange",
                              f"image {cluster.options.image}: a new scheduler starts beside the running one and "
                              "takes over once Ready; then the workers are replaced one at a time, each new one "
                              "Ready before an old one is retired"))

    active = observation.schedulers
    if not observation.scheduler_pods:
        # None at all, not even a terminating one: a Ready candidate takes over, else a new scheduler is made.
        if ours and ours[0].ready:
            return SchedulerDecision(delete=tuple(delete), promote=PromoteScheduler(ours[0].name),
                                     notices=tuple(notices))
        # A candidate still starting takes over once Ready; with none, a new scheduler is made.
        create = None if ours else CreatePod(SCHEDULER, 0, scheduler_pod(ref, cluster, template))
        return SchedulerDecision(create=create, delete=tuple(delete), notices=tuple(notices))

    finished = [p.name for p in observation.scheduler_pods if p.finished and not p.terminating]
    outdated = [p for p in active if p.template_hash != current]
    if not outdated:
        # Up to date (or on its way out): a candidate is not needed.
        return SchedulerDecision(delete=tuple(finished + delete + [c.name for c in ours]), notices=tuple(notices))
    running = outdated[0]
    if not running.ready:
        # Nothing to protect: replaced the old way (deleted first; the next is made once it is gone).
        return SchedulerDecision(delete=tuple(finished + delete + [c.name for c in ours] + [running.name]),
                                 notices=tuple(notices))
    if not ours:
        if "image" not in edited:
            notices.append(Notice("Normal", "SchedulerRestart",
                                  "the scheduler's template changed: a new scheduler starts beside the running one "
                                  "and takes over once Ready (clients reconnect; results held only in worker "
                                  "memory are lost)"))
        return SchedulerDecision(create=CreatePod(SCHEDULER_CANDIDATE, 0,
                                                  scheduler_pod(ref, cluster, template, candidate=True)),
                                 delete=tuple(finished + delete), notices=tuple(notices))
    candidate = ours[0]
    if candidate.ready:
        return SchedulerDecision(delete=tuple(finished + delete + [running.name]),
                                 promote=PromoteScheduler(candidate.name), notices=tuple(notices))
    if candidate.problem is not None:
        notices.append(warning_every_minute(
            "RolloutBlocked", f"the new scheduler {candidate.name} cannot start ({candidate.problem.reason}): the "
                              f"running scheduler {running.name} stays until the spec is fixed"))
    return SchedulerDecision(delete=tuple(finished + delete), notices=tuple(notices))
