"""Worker pods: how many, which to create, retire, replace or delete (pure).

Scale-down order: pods that never became ready hold no results and go first;
the rest are retired through the scheduler, which picks the workers whose
memory is cheapest to move and moves it before the pods are deleted. Only the
pods this cluster owns are ever counted, retired or deleted, whatever the
scheduler says: the scheduler runs the tenant's image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from seamless_dask_runtime.model.identity import WORKER

from ..builders.objects import ClusterRef, template_hash
from ..builders.workers import worker_pod, worker_template
from ..resource import ClusterSpec, desired_workers
from .notices import Notice, warning_every_minute
from .observation import Observation, PodView
from .plan import CreatePod, Retire


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


def plan_workers(pods: Sequence[PodView], desired: int, current_hash: str) -> WorkerPlan:
    """Converge the live pods on ``desired`` workers built from ``current_hash``.

    A finished pod (evicted, say) is not live: it is deleted, and replaced in the same round.
    """
    finished = [p.name for p in pods if p.finished and not p.terminating]
    plan = _plan_live([p for p in pods if not p.terminating and not p.finished], pods, desired, current_hash)
    return dataclasses.replace(plan, delete_finished=finished)


def _free(pods: Sequence[PodView], count: int, desired: int) -> list[int]:
    used = {p.index for p in pods}  # terminating and finished names are still taken
    free = (i for i in range(len(pods) + desired + 2) if i not in used)
    return [next(free) for _ in range(count)]


def _plan_live(live: list[PodView], pods: Sequence[PodView], desired: int, current_hash: str) -> WorkerPlan:
    outdated = [p for p in live if p.template_hash != current_hash]
    if outdated:
        return _plan_rollout(live, outdated, pods, desired, current_hash)
    excess = len(live) - desired
    if excess < 0:
        return WorkerPlan(create=_free(pods, -excess, desired))
    if excess > 0:
        unready = sorted((p for p in live if not p.ready), key=lambda p: -p.index)[:excess]
        return WorkerPlan(delete_unready=[p.name for p in unready], retire_count=excess - len(unready))
    return WorkerPlan()


def _plan_rollout(live: list[PodView], outdated: list[PodView], pods: Sequence[PodView], desired: int,
                  current_hash: str) -> WorkerPlan:
    """Add before removing, as a Deployment with maxSurge 1 and maxUnavailable 0: one new pod at a time, and an
    old one retired (its results move) only once a new one is Ready. A new pod that cannot start (a missing
    image, no room for its size) stops the rollout there; the old pods keep serving."""
    # Outdated pods that never became ready (a bad image, say) give no capacity and hold no results.
    never_ready = [p.name for p in outdated if not p.ready]
    ready_old = sorted((p for p in outdated if p.ready), key=lambda p: p.index)
    current = [p for p in live if p.template_hash == current_hash]
    ready_new = [p for p in current if p.ready]
    starting_new = sorted((p for p in current if not p.ready), key=lambda p: -p.index)
    surplus = len(ready_new) + len(ready_old) - desired
    retire = [p.name for p in ready_old[:max(surplus, 0)]]
    # A lower count meanwhile: new pods that are still starting go first.
    extra_new = [p.name for p in starting_new[:max(len(current) - desired, 0)]]
    # At most one pod beyond the count (a retiring one still counts until it is gone).
    create = _free(pods, 1, desired) if not starting_new and len(current) < desired and len(live) <= desired else []
    return WorkerPlan(create=create, delete_unready=never_ready + extra_new, replace=retire)


# Pods created or deleted, and workers retired, in one round at most: a cluster scaled by thousands converges
# over rounds that follow one another at once, and between them an edit, a deletion or the operator's shutdown
# is seen (in one round of a million, none was).
BATCH = 100


@dataclass(frozen=True)
class WorkerDecision:
    desired: int
    ready: int
    create: tuple[CreatePod, ...] = ()
    delete: tuple[str, ...] = ()
    retire: Retire | None = None
    notices: tuple[Notice, ...] = ()
    more: bool = False  # a batch was cut short: the next round runs at once


def _retire_notices(observation: Observation, retired: tuple[str, ...]) -> list[Notice]:
    outcome = observation.retire_outcome
    if outcome is None:
        return []
    if outcome.error is not None:
        return [warning_every_minute("RetireFailed", f"could not retire workers within {outcome.request.timeout:g} s "
                                                     f"({outcome.error}); they keep running")]
    wanted = len(outcome.request.names) + outcome.request.count
    if len(retired) < wanted:
        return [warning_every_minute("RetireIncomplete", f"scheduler retired {len(retired)} of {wanted} workers; "
                                                         "retrying")]
    return []


def _blocked_notices(observation: Observation, current_hash: str) -> list[Notice]:
    old = [p for p in observation.workers if p.template_hash != current_hash and p.ready]
    stuck = [(p.name, p.problem.reason) for p in observation.workers
             if p.template_hash == current_hash and not p.ready and p.problem is not None]
    if not old or not stuck:
        return []
    name, reason = stuck[0]
    return [warning_every_minute("RolloutBlocked", f"the new worker pod {name} cannot start ({reason}): the rollout "
                                                   f"waits, and the {len(old)} running workers of the old spec stay")]


def decide_workers(ref: ClusterRef, cluster: ClusterSpec, observation: Observation) -> WorkerDecision:
    params, options = cluster.params, cluster.options
    answers = observation.scheduler
    if params.cluster is not None:
        # Batch backend: the workers are jobs the scheduler pod submits; its own adaptive target counts them.
        return WorkerDecision(desired=answers.adaptive_target or 0, ready=len(answers.worker_names or ()))

    owned = {p.name for p in observation.workers}
    # The call that finished retired these (results moved): their pods go now, and this round plans without them.
    outcome = observation.retire_outcome
    retired = tuple(n for n in (outcome.retired if outcome else ()) if n in owned)
    pods = [dataclasses.replace(p, terminating=True) if p.name in retired else p for p in observation.workers]

    desired = desired_workers(cluster, answers.adaptive_target if options.adaptive else None)
    template = worker_template(ref, cluster)
    plan = plan_workers(pods, desired, template_hash(template))
    # A pod that is not Ready may still be a worker holding results (a busy one misses its probe):
    # whatever the scheduler knows is retired, never just deleted.
    known = set(answers.worker_names or ()) & owned
    delete = retired + tuple(plan.delete_finished) + tuple(n for n in plan.delete_unready if n not in known)
    retire_names = tuple(plan.replace) + tuple(n for n in plan.delete_unready if n in known)
    more = len(plan.create) > BATCH or len(delete) > BATCH or len(retire_names) + plan.retire_count > BATCH
    delete, retire_names = delete[:BATCH], retire_names[:BATCH]
    retire_count = min(plan.retire_count, BATCH - len(retire_names))

    notices = _retire_notices(observation, retired) + _blocked_notices(observation, template_hash(template))
    retire = None
    if retire_count or retire_names:
        if observation.ready_scheduler is None:
            notices.append(warning_every_minute("ScaleDownWaiting",
                                                "scheduler not ready: workers are kept until it can retire them"))
        elif not observation.retiring and outcome is None:
            # One call in flight per cluster; the round that collects one asks nothing more.
            retire = Retire(count=retire_count, names=retire_names, timeout=options.retire_timeout)
    create = tuple(CreatePod(WORKER, index, worker_pod(ref, cluster, index, template))
                   for index in plan.create[:BATCH])
    return WorkerDecision(desired=desired, ready=sum(1 for p in observation.workers if p.ready), create=create,
                          delete=delete, retire=retire, notices=tuple(notices), more=more)
