"""Scheduler side of the throttle: a SchedulerPlugin that owns the PermissionPolicy.

Why on the scheduler: it is the one place every client and every task (through
its worker's client) already talks to, and it knows how many workers exist and
how busy their threads are. The plugin

- keeps ``policy.workers`` equal to the number of connected workers,
- answers three comm handlers on the scheduler (``seamless_throttle_request``,
  ``seamless_throttle_release``, ``seamless_throttle_stats``), so clients need
  no extra connection,
- closes epochs with a timer on the scheduler's own asyncio loop (no threads),
- releases a client's permits when the client goes away (``remove_client``).

Install it with ``client.register_plugin(ThrottlePlugin(...))``, with
:func:`install` (``client.run_on_scheduler``), or with
``dask scheduler --preload seamless_dask_runtime.throttle.preload``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any, cast

from distributed.diagnostics.plugin import SchedulerPlugin

from .policy import (
    DEFAULT_EPOCH_GRANT_FRACTION,
    DEFAULT_MAX_OVERCOMMIT,
    Outcome,
    PermissionPolicy,
    Status,
)
from .protocol import (
    RELEASE_OP,
    REQUEST_OP,
    STATS_OP,
    THROTTLE_PLUGIN_NAME,
    WORKER_THROTTLE_OP,
    epoch_seconds_from_environment,
    throttle_from_environment,
)

log = logging.getLogger(__name__)

LoadFunction = Callable[[Any, int], float]

__all__ = [
    "ThrottlePlugin",
    "cluster_load",
    "epoch_seconds_from_environment",
    "install",
    "throttle_from_environment",
]


def cluster_load(scheduler: Any, in_flight: int = 0) -> float:
    """Fraction of the cluster's worker threads in use, for epoch decisions.

    A thread counts as used when it runs a task that has not seceded (a task
    blocked on nested results still holds its thread, which is exactly the
    seed-001 hazard). Outstanding permits count too (``in_flight``): a granted
    permit may not have reached a worker yet. Tasks waiting on the scheduler for
    a thread (queued/unrunnable) mean saturation.
    """
    threads = 0
    busy = 0
    for ws in scheduler.workers.values():
        threads += ws.nthreads
        busy += min(ws.nthreads, max(0, len(ws.processing) - len(ws.long_running)))
    if threads <= 0:
        return 1.0
    if len(getattr(scheduler, "queued", ())) or len(getattr(scheduler, "unrunnable", ())):
        return 1.0
    return min(1.0, max(busy, in_flight) / threads)


class ThrottlePlugin(SchedulerPlugin):
    """The permission manager, living on the scheduler.

    ``throttle`` and ``epoch_seconds`` default to the *scheduler's* environment
    (``SEAMLESS_WORKER_TRANSFORMATION_THROTTLE``, ``SEAMLESS_THROTTLE_EPOCH_SECONDS``),
    read when the plugin starts there, not where it was constructed.
    ``load_function(scheduler, in_flight) -> float in [0, 1]`` replaces
    :func:`cluster_load` for epoch decisions.
    """

    name = THROTTLE_PLUGIN_NAME
    idempotent = True  # registering twice keeps the first (and its permits)

    def __init__(
        self,
        throttle: int | None = None,
        epoch_seconds: float | None = None,
        *,
        epoch_grant_fraction: float = DEFAULT_EPOCH_GRANT_FRACTION,
        max_overcommit: float = DEFAULT_MAX_OVERCOMMIT,
        load_function: LoadFunction | None = None,
    ) -> None:
        self._throttle = throttle
        self._epoch_seconds = epoch_seconds
        self._epoch_grant_fraction = epoch_grant_fraction
        self._max_overcommit = max_overcommit
        self._load_function = load_function
        self.policy: PermissionPolicy | None = None
        self.scheduler: Any = None
        self._init_runtime_state()

    def _init_runtime_state(self) -> None:
        self._workers: set[str] = set()
        self._throttle_of: dict[str, int] = {}  # what each worker reported (its own environment's throttle)
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._rid_of: dict[str, int] = {}
        self._key_of: dict[int, str] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Only the configuration travels (client.register_plugin pickles us).
        state = self.__dict__.copy()
        for name in ("policy", "scheduler", "_workers", "_throttle_of", "_waiters", "_rid_of", "_key_of", "_timer"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.policy = None
        self.scheduler = None
        self._init_runtime_state()

    # ------------------------------------------------------------ lifecycle
    async def start(self, scheduler: Any) -> None:
        self.attach(scheduler)

    def attach(self, scheduler: Any) -> None:
        """Build the policy from the scheduler's environment and register handlers (idempotent)."""
        if self.scheduler is scheduler and self.policy is not None:
            return
        env = os.environ
        throttle = self._throttle if self._throttle is not None else throttle_from_environment(env)
        epoch = self._epoch_seconds
        if epoch is None:
            epoch = epoch_seconds_from_environment(env)
        self.policy = PermissionPolicy(
            throttle=throttle,
            epoch_seconds=epoch,
            epoch_grant_fraction=self._epoch_grant_fraction,
            max_overcommit=self._max_overcommit,
        )
        self.scheduler = scheduler
        self._workers = set(scheduler.workers)
        self.policy.set_workers(len(self._workers), self._reported_permits())
        for address in self._workers:
            self._check_threads(address)
        scheduler.handlers[REQUEST_OP] = self.handle_request
        scheduler.handlers[RELEASE_OP] = self.handle_release
        scheduler.handlers[STATS_OP] = self.handle_stats
        scheduler.handlers[WORKER_THROTTLE_OP] = self.handle_worker_throttle
        log.info("Seamless throttle active: throttle=%d epoch=%ss workers=%d",
                 throttle, epoch, len(self._workers))

    async def close(self) -> None:
        self._cancel_timer()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(False)
        self._waiters.clear()
        if self.scheduler is not None:
            for op, handler in ((REQUEST_OP, self.handle_request), (RELEASE_OP, self.handle_release),
                                (STATS_OP, self.handle_stats), (WORKER_THROTTLE_OP, self.handle_worker_throttle)):
                if self.scheduler.handlers.get(op) == handler:
                    del self.scheduler.handlers[op]

    # ---------------------------------------------------- scheduler events
    def add_worker(self, scheduler: Any, worker: str) -> None:
        self._workers.add(worker)
        self._check_threads(worker)
        self._follow_workers()

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> None:
        self._workers.discard(worker)
        self._throttle_of.pop(worker, None)
        self._follow_workers()

    def handle_worker_throttle(self, address: str, throttle: int) -> None:
        """A worker's own throttle (its environment's, which the pod or job script set): after a
        transformationThrottle edit only the workers are replaced, and capacity follows them."""
        if address in self._workers and isinstance(throttle, int) and throttle >= 1:
            self._throttle_of[address] = throttle
            self._follow_workers()

    def _reported_permits(self) -> int | None:
        if not self._throttle_of:
            return None
        default = self._policy.throttle  # workers that did not report (yet) count with the scheduler's
        return sum(self._throttle_of.get(address, default) for address in self._workers)

    def _follow_workers(self) -> None:
        self._apply(self._policy.set_workers(len(self._workers), self._reported_permits()))

    def remove_client(self, scheduler: Any, client: str) -> None:
        policy = self._policy
        tokens = policy.tokens_of(client)
        if not tokens:
            return
        released = [t for t in tokens if policy.is_granted(t)]
        self._apply(policy.release_holder(client))
        for token in released:
            self._forget(token)
        log.info("Released %d permit(s) of departed client %s", len(released), client)

    # ------------------------------------------------------------- handlers
    async def handle_request(
        self,
        client: str,
        keys: list[str],
        timeout: float | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Decide one permit per key; waits for the epoch for queued ones (at most ``timeout``)."""
        policy = self._policy
        now = time.monotonic()
        rids: list[int] = []
        pending: dict[int, asyncio.Future[bool]] = {}
        loop = asyncio.get_running_loop()
        if len(set(keys)) != len(keys) or any(key in self._rid_of for key in keys):
            raise ValueError("permission keys must be new and unique")
        for key in keys:
            decision = policy.request(client, now, wait=wait)
            rids.append(decision.request_id)
            if decision.status is Status.DENIED:
                continue
            self._rid_of[key] = decision.request_id
            self._key_of[decision.request_id] = key
            if decision.status is Status.QUEUED:
                fut: asyncio.Future[bool] = loop.create_future()
                self._waiters[decision.request_id] = fut
                pending[decision.request_id] = fut
        if pending:
            self._arm_timer()
            try:
                await asyncio.wait(pending.values(), timeout=timeout)
            except BaseException:  # cancelled (comm lost, scheduler closing): undo everything
                for rid in rids:
                    self._forget(rid)
                    self._waiters.pop(rid, None)
                    self._apply(policy.release(rid))
                raise
            for rid, fut in pending.items():
                if not fut.done():  # timed out: withdraw
                    self._apply(policy.release(rid))
        granted = [policy.is_granted(rid) for rid in rids]
        return {"granted": granted, "capacity": policy.capacity, "in_flight": policy.in_flight}

    def handle_release(self, keys: list[str]) -> dict[str, int]:
        """Release permits (or withdraw queued requests) by key; unknown keys are ignored."""
        released = 0
        for key in keys:
            rid = self._rid_of.pop(key, None)
            if rid is None:
                continue
            self._key_of.pop(rid, None)
            if self._policy.is_granted(rid):
                released += 1
            self._apply(self._policy.release(rid))
        return {"released": released, "in_flight": self._policy.in_flight}

    def handle_stats(self) -> dict[str, Any]:
        """Policy counters plus what the scheduler sees (threads, load)."""
        policy = self._policy
        stats = policy.snapshot()
        deadline = cast("float | None", stats.pop("epoch_deadline"))
        stats["epoch_closes_in"] = None if deadline is None else max(0.0, deadline - time.monotonic())
        stats["threads"] = sum(ws.nthreads for ws in self.scheduler.workers.values())
        stats["load"] = self._load()
        return stats

    # -------------------------------------------------------------- epochs
    def _arm_timer(self) -> None:
        deadline = self._policy.epoch_deadline
        if deadline is None:
            self._cancel_timer()
            return
        if self._timer is not None and self._timer_deadline == deadline:
            return
        self._cancel_timer()
        delay = max(0.0, deadline - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._close_epoch)
        self._timer_deadline = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None

    def _close_epoch(self) -> None:
        self._timer = None
        self._timer_deadline = None
        policy = self._policy
        outcomes = policy.close_epoch(time.monotonic(), self._load())
        if outcomes:
            granted = sum(o.granted for o in outcomes)
            log.debug("Throttle epoch closed: %d granted, %d denied", granted, len(outcomes) - granted)
        self._apply(outcomes)
        self._arm_timer()  # re-arms if the timer fired a hair early

    def _load(self) -> float:
        policy = self._policy
        fn = self._load_function or cluster_load
        try:
            return float(fn(self.scheduler, policy.in_flight))
        except Exception:  # a broken probe must not wedge the throttle: assume saturated
            log.exception("Throttle load function failed; assuming full load")
            return 1.0

    # ------------------------------------------------------------- helpers
    @property
    def _policy(self) -> PermissionPolicy:
        if self.policy is None:
            raise RuntimeError("ThrottlePlugin is not attached to a scheduler yet")
        return self.policy

    def _apply(self, outcomes: list[Outcome]) -> None:
        """Deliver later decisions to the handlers waiting for them."""
        for rid, granted in outcomes:
            fut = self._waiters.pop(rid, None)
            if fut is not None and not fut.done():
                fut.set_result(granted)
            elif granted and fut is None:
                # Nobody is waiting for this grant any more: give it straight back.
                self._forget(rid)
                self._apply(self._policy.release(rid))
                continue
            if not granted:
                self._forget(rid)
        if self.policy is not None and self._timer is not None and self.policy.epoch_deadline is None:
            self._cancel_timer()

    def _forget(self, rid: int) -> None:
        key = self._key_of.pop(rid, None)
        if key is not None:
            self._rid_of.pop(key, None)

    def _check_threads(self, address: str) -> None:
        ws = self.scheduler.workers.get(address) if self.scheduler is not None else None
        if ws is not None and self.policy is not None and ws.nthreads < self.policy.throttle:
            log.warning(
                "Worker %s has %d thread(s) but the throttle grants %d permits per worker; "
                "nested work can starve (give workers cores x throttle threads)",
                address, ws.nthreads, self.policy.throttle,
            )


def install(scheduler: Any, throttle: int | None = None, epoch_seconds: float | None = None,
            **kwargs: Any) -> ThrottlePlugin:
    """Put the throttle on ``scheduler`` (idempotent); usable from a preload or run_on_scheduler."""
    existing = scheduler.plugins.get(THROTTLE_PLUGIN_NAME)
    if isinstance(existing, ThrottlePlugin):
        existing.attach(scheduler)
        return existing
    plugin = ThrottlePlugin(throttle, epoch_seconds, **kwargs)
    plugin.attach(scheduler)
    scheduler.add_plugin(plugin, name=THROTTLE_PLUGIN_NAME)
    return plugin
