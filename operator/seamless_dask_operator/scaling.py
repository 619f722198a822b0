"""Which worker pods to create, retire or replace (pure).

Scale-down order: pods that never became ready hold no results and go first;
the rest are retired through the scheduler, which picks the workers whose
memory is cheapest to move and moves it before the pods are deleted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerPod:
    """What the operator observed of one worker pod."""

    name: str
    index: int
    ready: bool
    template_hash: str | None
    terminating: bool = False
    finished: bool = False  # Failed or Succeeded (evicted, say): no container of it runs again


@dataclass(frozen=True)
class WorkerPlan:
    create: list[int] = field(default_factory=list)
    delete_unready: list[str] = field(default_factory=list)
    retire_count: int = 0
    replace: list[str] = field(default_factory=list)
    delete_finished: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.delete_unready or self.retire_count or self.replace or self.delete_finished)


def plan_workers(pods: list[WorkerPod], desired: int, current_hash: str) -> WorkerPlan:
    """Converge the live pods on ``desired`` workers built from ``current_hash``.

    A finished pod (evicted, say) is not live: it is deleted, and replaced in the same round.
    """
    finished = [p.name for p in pods if p.finished and not p.terminating]
    plan = _plan_live([p for p in pods if not p.terminating and not p.finished], pods, desired, current_hash)
    return dataclasses.replace(plan, delete_finished=finished)


def _plan_live(live: list[WorkerPod], pods: list[WorkerPod], desired: int, current_hash: str) -> WorkerPlan:
    excess = len(live) - desired
    if excess < 0:
        used = {p.index for p in pods}  # terminating and finished names are still taken
        free = (i for i in range(len(pods) + desired + 1) if i not in used)
        return WorkerPlan(create=[next(free) for _ in range(-excess)])
    if excess > 0:
        unready = sorted((p for p in live if not p.ready), key=lambda p: -p.index)[:excess]
        return WorkerPlan(delete_unready=[p.name for p in unready], retire_count=excess - len(unready))
    # Right count: roll outdated pods one at a time so capacity never drops by more than one.
    outdated = sorted((p for p in live if p.template_hash != current_hash), key=lambda p: (p.ready, p.index))
    # Outdated pods that never became ready (a bad image, say) give no capacity and hold no results.
    never_ready = [p.name for p in outdated if not p.ready]
    if never_ready:
        return WorkerPlan(delete_unready=never_ready)
    return WorkerPlan(replace=[outdated[0].name] if outdated else [])
