"""How many workers a Seamless cluster wants: one adaptive policy for every backend.

Dask's own ``Scheduler.adaptive_target`` counts only tasks that are ready to
run (queued, no-worker) and caps the target at the number of ready tasks.
Seamless submits each transformation as a small graph whose ``base`` task
waits on its inputs, so a burst of transformations is mostly *waiting*: plain
Dask adapt asks for too few workers and scales up late. The original
seamless-dask wrapper (``WaitingAwareAdaptive``) therefore adds up, per task
prefix, waiting + queued + no-worker tasks and running tasks, each weighted
by the prefix's learned duration (or the unknown-task duration), and divides
that occupancy by the target duration. This module computes the same target:

- :func:`adaptive_target` is pure (a :class:`Backlog` in, a worker count out);
- :func:`scheduler_backlog` reads a live scheduler into a :class:`Backlog`;
- :func:`install` makes the scheduler answer its ``adaptive_target`` (the
  RPC that ``Adaptive`` calls, and ``/api/v1/adaptive_target`` that the
  operator calls) with this target, never below Dask's own (which keeps
  workers under memory pressure or holding results). The scheduler preload installs it, so the
  jobqueue backend's ``cluster.adapt()`` and the operator scale by one policy.

Exclusive clusters run one transformation per worker: their target is the
number of transformations that need a worker, as in the original.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

WAITING_STATES = ("waiting", "queued", "no-worker")
TRANSFORMATION_PREFIX = "base"  # seamless-dask's keys for the transformation itself start with it


@dataclass(frozen=True)
class Backlog:
    """Tasks a cluster still has to run, by task prefix (a scheduler snapshot)."""

    waiting: Mapping[str, int] = field(default_factory=dict)  # waiting, queued or no-worker
    processing: Mapping[str, int] = field(default_factory=dict)
    durations: Mapping[str, float] = field(default_factory=dict)  # learned average seconds per prefix
    unknown_duration: float = 60.0  # seconds, for a prefix with nothing learned yet

    def duration(self, prefix: str) -> float:
        learned = self.durations.get(prefix)
        return learned if learned is not None and learned > 0 else self.unknown_duration


def occupancy(backlog: Backlog, *, transformation_weight: float = 1.0) -> float:
    """Seconds of work left: waiting and running tasks times their prefix duration.

    ``transformation_weight`` scales running transformations (the original's
    base weight, 1 by default).
    """
    waiting = sum(count * backlog.duration(prefix) for prefix, count in backlog.waiting.items() if count > 0)
    running = sum(
        count * backlog.duration(prefix) * (transformation_weight if prefix.startswith(TRANSFORMATION_PREFIX) else 1.0)
        for prefix, count in backlog.processing.items() if count > 0
    )
    return waiting + running


def transformations_needing_a_worker(backlog: Backlog) -> int:
    return sum(count for states in (backlog.waiting, backlog.processing)
               for prefix, count in states.items() if prefix.startswith(TRANSFORMATION_PREFIX) and count > 0)


def adaptive_target(
    backlog: Backlog,
    *,
    target_duration: float,
    exclusive: bool = False,
    minimum: int = 0,
    maximum: int | None = None,
    transformation_weight: float = 1.0,
    keep: int = 0,
) -> int:
    """Workers wanted: ``ceil(occupancy / target_duration)`` (exclusive: one per transformation),
    at least ``keep``, within ``[minimum, maximum]``.

    ``target_duration`` is per worker: the wrapper scales it by the worker's
    Seamless slots (``S`` or cores) as the original does. ``keep`` is what
    Dask's own target asks for (memory pressure, workers whose results cannot
    move elsewhere): the original ignored it and could retire the last worker
    holding results; here results held in memory are never scaled away.
    """
    if target_duration <= 0:
        raise ValueError(f"target_duration must be positive, not {target_duration!r}")
    if exclusive:
        wanted = transformations_needing_a_worker(backlog)
    else:
        work = occupancy(backlog, transformation_weight=transformation_weight)
        wanted = math.ceil(work / target_duration) if work > 0 else 0
    wanted = max(wanted, keep, minimum)
    return wanted if maximum is None else min(wanted, maximum)


def scheduler_backlog(scheduler: Any) -> Backlog:
    """Snapshot of a live ``distributed`` scheduler (runs on its event loop).

    Walks task *groups*, which the scheduler drops once their tasks are
    forgotten, rather than task prefixes, which it keeps forever: Seamless
    makes a prefix per transformation, so a long session has many.
    """
    waiting: dict[str, int] = {}
    processing: dict[str, int] = {}
    durations: dict[str, float] = {}
    for group in scheduler.task_groups.values():
        name, states = group.prefix.name, group.states
        count = sum(states.get(state, 0) for state in WAITING_STATES)
        if count:
            waiting[name] = waiting.get(name, 0) + count
        if states.get("processing"):
            processing[name] = processing.get(name, 0) + states["processing"]
        if group.prefix.duration_average > 0:
            durations[name] = group.prefix.duration_average
    return Backlog(waiting=waiting, processing=processing, durations=durations,
                   unknown_duration=float(scheduler.UNKNOWN_TASK_DURATION))


def install(scheduler: Any, *, default_target_duration: float, exclusive: bool) -> None:
    """Make ``scheduler.adaptive_target`` (RPC and HTTP API) answer with :func:`adaptive_target`.

    ``default_target_duration`` (seconds) serves callers that pass none: the
    HTTP API, hence the operator. ``Adaptive`` passes its own.
    """
    import dask.utils

    dask_target = scheduler.adaptive_target  # Dask's own, for the workers it would keep
    last = {"target": 0}

    def seamless_adaptive_target(target_duration: Any = None) -> int:
        seconds = default_target_duration if target_duration is None else dask.utils.parse_timedelta(target_duration)
        backlog = scheduler_backlog(scheduler)
        target = adaptive_target(backlog, target_duration=seconds, exclusive=exclusive,
                                 keep=dask_target(target_duration=seconds))
        if target != last["target"]:  # callers ask every few seconds: log changes, not every answer
            last["target"] = target
            log.info("adaptive target %d: waiting %s, processing %s, target duration %gs", target,
                     _summary(backlog, backlog.waiting), _summary(backlog, backlog.processing), seconds)
        return target

    scheduler.adaptive_target = seamless_adaptive_target
    scheduler.handlers["adaptive_target"] = seamless_adaptive_target
    log.info("Seamless adaptive target active (target duration %gs per worker%s)", default_target_duration,
             ", one worker per transformation" if exclusive else "")


def _summary(backlog: Backlog, counts: Mapping[str, int], top: int = 3) -> str:
    """``3x base_1a2b…:12.0s(learned)`` for the largest prefixes, as the original logs them."""
    largest = sorted(counts.items(), key=lambda item: -item[1])[:top]
    parts = [f"{count}x{name[:14]}:{backlog.duration(name):.1f}s"
             f"({'learned' if name in backlog.durations else 'unknown'})" for name, count in largest]
    more = len(counts) - len(largest)
    return ", ".join(parts) + (f" +{more} prefixes" if more > 0 else "") if parts else "none"
