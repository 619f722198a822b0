"""The follow loop: when each followed cluster's next round runs, as one timer per cluster on kopf's event loop.

It replaces a kopf daemon per cluster. A daemon kept a task, its coroutine chain, a stopper, a logger and kopf's
whole live body for every cluster (about 30 KB each, 1,000 clusters ~40 MB); a timer and a :class:`Followed`
record keep only what a round reads. This module knows *when* a round runs (a period, sooner when woken, one at
a time per cluster, in kopf's handler threads); :mod:`.cluster_loop` knows *what* a round is.

Everything here runs on the event loop (kopf's handlers and the timers' callbacks); a thread reaches it through
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Callable, Collection
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (namespace, name)

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Followed:
    """One followed cluster: what a round reads of it (not kopf's whole body) and its timer."""

    uid: str
    view: dict[str, Any]  # the cluster as the watch last showed it, reduced to what a round reads
    memo: Any  # kopf's memo of the cluster (its ClusterMemo, the shared OperatorMemo)
    timer: asyncio.TimerHandle | None = None
    due: float = 0.0  # loop.time() of the next round
    running: bool = False  # its round runs in a handler thread now
    woken: bool = False  # a child changed while its round ran: the next one follows soon


# When a round comes due: None stops following the cluster, 0 runs the round now, more waits that many seconds.
WhenDue = Callable[[Followed], float | None]
# The round itself, in a handler thread: the seconds until the next one.
Round = Callable[[Followed], float]
# How soon a woken round runs (a pod's changes come in bursts: one round sees them).
WokenDelay = Callable[[Followed], float]


class Follower:
    """The timers of the followed clusters, and their rounds run in ``executor`` (kopf's handler threads)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: Executor, context: contextvars.Context, *,
                 when_due: WhenDue, run_round: Round, woken_delay: WokenDelay, retry_after: float):
        # ``context``: kopf's context, where kopf.event() finds its queue; each round runs in a copy of it.
        self.loop, self.executor, self.context = loop, executor, context
        self.when_due, self.run_round, self.woken_delay = when_due, run_round, woken_delay
        self.retry_after = retry_after
        self.timer_context = contextvars.Context()
        self.followed: dict[Key, Followed] = {}
        self.stopped = False

    def follow(self, key: Key, uid: str, view: dict[str, Any], memo: Any, *, first_in: float) -> None:
        """The watch shows the cluster: its view is renewed; one not followed yet gets its first round in
        ``first_in`` seconds (a former cluster of that name is forgotten)."""
        followed = self.followed.get(key)
        if followed is not None and followed.uid == uid:
            followed.view = view
            return
        if followed is not None:
            self._drop(key)
        followed = self.followed[key] = Followed(uid=uid, view=view, memo=memo)
        self._schedule(key, followed, first_in)

    def forget(self, key: Key, uid: str) -> None:
        """The cluster is deleted (or being deleted): no round of it starts any more."""
        followed = self.followed.get(key)
        if followed is not None and followed.uid == uid:
            self._drop(key)

    def wake(self, key: Key, owners: Collection[str] = ()) -> None:
        """A child of the cluster changed: its round runs soon, not a period later. ``owners``: the clusters the
        child belongs to, when it says; the children of a former cluster of the same name wake nothing."""
        followed = self.followed.get(key)
        if followed is None or (owners and followed.uid not in owners):
            return
        if followed.running:
            followed.woken = True
            return
        self._schedule(key, followed, self.woken_delay(followed), sooner_only=True)

    def stop(self) -> None:
        """The operator stops: no round starts any more (those under way finish in their threads)."""
        self.stopped = True
        for followed in self.followed.values():
            if followed.timer is not None:
                followed.timer.cancel()
        self.followed.clear()

    def _drop(self, key: Key) -> None:
        followed = self.followed.pop(key)
        if followed.timer is not None:
            followed.timer.cancel()
            followed.timer = None

    def _schedule(self, key: Key, followed: Followed, delay: float, *, sooner_only: bool = False) -> None:
        due = self.loop.time() + max(delay, 0.0)
        if self.stopped or (sooner_only and followed.timer is not None and followed.due <= due):
            return
        if followed.timer is not None:
            followed.timer.cancel()
        followed.due = due
        # In a context of its own: a timer keeps the context it is made in, and the one of the kopf handler that
        # follows or wakes a cluster holds that handler's whole event (the body, the raw event) until it fires.
        followed.timer = self.loop.call_at(due, self._due, key, followed, context=self.timer_context)

    def _due(self, key: Key, followed: Followed) -> None:
        followed.timer = None
        if self.stopped or self.followed.get(key) is not followed:
            return
        wait = self.when_due(followed)
        if wait is None:
            self._drop(key)
        elif wait > 0:
            self._schedule(key, followed, wait)
        else:
            self._start(key, followed)

    def _start(self, key: Key, followed: Followed) -> None:
        followed.running, followed.woken = True, False
        try:
            future = self.loop.run_in_executor(self.executor, self.context.copy().run, self.run_round, followed)
        except RuntimeError:  # the executor is shut down: the operator stops
            followed.running = False
            return
        future.add_done_callback(functools.partial(self._done, key, followed))

    def _done(self, key: Key, followed: Followed, future: asyncio.Future[float]) -> None:
        followed.running = False
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:  # a round's own failures are handled in it: this is a bug, not a reason to stop
            log.error("round of %s/%s failed, again in %s s", *key, self.retry_after, exc_info=error)
            delay = self.retry_after
        else:
            delay = future.result()
        if followed.woken:
            delay = min(delay, self.woken_delay(followed))
            followed.woken = False
        if self.followed.get(key) is followed:
            self._schedule(key, followed, delay)
