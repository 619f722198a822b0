"""The permission policy of the anti-deadlock throttle: a pure state machine.

Why it exists: a Seamless transformation running inside a Dask task may submit
nested transformations and block until they finish. If every worker thread is
held by such a waiting task, the nested work never gets a thread and the
cluster stalls (seed 001: 18/20 aggregations, then silence). The throttle
bounds how much work callers may put on the cluster; a denied caller runs the
work itself, in the thread it already holds, so it always makes progress.

No I/O, no threads, no clock: every method takes ``now`` (seconds, any
monotonic origin) and the cluster ``load``, so the scheduler plugin and the
tests drive it the same way.

Policy
------
``capacity = throttle * workers`` (``workers`` = connected Dask workers), or
the sum of the permits each worker reported (``set_workers(n, permits=...)``:
workers tell the scheduler their own throttle, so a throttle edit reaches the
scheduler with the new workers, without restarting it).

1. **Below capacity** (``in_flight < capacity``) a request is granted at once.
2. **At capacity** it is queued into the current *epoch*. The first request
   queued opens the epoch; its deadline is ``first queued time +
   epoch_seconds`` (10 s by default). A request made with ``wait=False`` is
   denied at once instead of being queued.
3. **Hand-off**: whenever capacity frees up (a release, a new worker) the
   oldest queued requests are granted immediately, while
   ``in_flight < capacity``. So a non-empty queue always means "at capacity",
   and a new request never jumps the queue.
4. **Epoch close** (``close_epoch(now, load)`` once ``now >= deadline``): every
   queued request is decided, oldest first. ``load`` is the fraction of the
   cluster's execution slots in use (0 = idle, 1 = saturated; NaN counts as
   1). The number granted is the free capacity (normally 0 because of
   hand-off) plus an over-capacity allowance::

       extra = min(floor((1 - load) * capacity),            # idle slots
                   max(1, ceil(epoch_grant_fraction * capacity)),  # per epoch
                   ceiling - max(in_flight, capacity))      # hard ceiling
       ceiling = capacity + floor(max_overcommit * capacity)

   (``extra`` is 0 when the idle-slot term is 0.) The rest are **denied**; a
   denied caller retries or runs the work locally. The queue is then empty
   and the next queued request opens a new epoch.
5. ``release(token)`` is idempotent (unknown or already released tokens are
   ignored; a still-queued token is withdrawn and reported denied).
   ``release_holder(holder)`` releases and withdraws everything a holder
   (a Dask client) has, for clients that disconnect.

Invariants: ``in_flight <= max(capacity, ceiling)`` at the moment of every
grant (``set_workers`` may later shrink capacity below ``in_flight``; no new
grant happens until releases bring it back); with ``max_overcommit < 1`` the
ceiling stays below ``2 * capacity``, which is what keeps over-capacity grants
from recreating the seed-001 starvation when workers have at least
``throttle`` threads each (a starved chain needs two permits per blocked
thread).
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from ..model.identity import DEFAULT_TRANSFORMATION_THROTTLE

DEFAULT_THROTTLE = DEFAULT_TRANSFORMATION_THROTTLE
DEFAULT_EPOCH_SECONDS = 10.0
DEFAULT_EPOCH_GRANT_FRACTION = 0.05
DEFAULT_MAX_OVERCOMMIT = 0.5


class Status(str, Enum):
    """What became of a request at the moment it was made."""

    GRANTED = "granted"
    QUEUED = "queued"
    DENIED = "denied"


@dataclass(frozen=True)
class PermissionDecision:
    """Answer to :meth:`PermissionPolicy.request`; ``request_id`` is also the token."""

    request_id: int
    status: Status
    deadline: float | None = None  # epoch deadline, for QUEUED

    @property
    def granted(self) -> bool:
        return self.status is Status.GRANTED


class Outcome(NamedTuple):
    """A later decision about a queued request: ``(request_id, granted)``."""

    request_id: int
    granted: bool


@dataclass
class _Queued:
    request_id: int
    holder_id: str
    queued_at: float


@dataclass
class PermissionPolicy:
    """Capacity counter with epoch batching; see the module docstring for the rules."""

    throttle: int = DEFAULT_THROTTLE
    epoch_seconds: float = DEFAULT_EPOCH_SECONDS
    workers: int = 0
    reported_permits: int | None = None  # the workers' own throttles summed, when they reported them
    epoch_grant_fraction: float = DEFAULT_EPOCH_GRANT_FRACTION
    max_overcommit: float = DEFAULT_MAX_OVERCOMMIT

    granted_total: int = field(default=0, init=False)
    denied_total: int = field(default=0, init=False)
    withdrawn_total: int = field(default=0, init=False)
    overcommitted_total: int = field(default=0, init=False)
    epochs_closed: int = field(default=0, init=False)
    _granted: dict[int, str] = field(default_factory=dict, init=False, repr=False)
    _queue: OrderedDict[int, _Queued] = field(default_factory=OrderedDict, init=False, repr=False)
    _by_holder: dict[str, set[int]] = field(default_factory=dict, init=False, repr=False)
    _deadline: float | None = field(default=None, init=False, repr=False)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1), init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.throttle, bool) or not isinstance(self.throttle, int) or self.throttle < 1:
            raise ValueError(f"throttle must be a positive integer, got {self.throttle!r}")
        if not (self.epoch_seconds >= 0 and math.isfinite(self.epoch_seconds)):
            raise ValueError(f"epoch_seconds must be a finite number >= 0, got {self.epoch_seconds!r}")
        if not 0 <= self.epoch_grant_fraction <= 1:
            raise ValueError(f"epoch_grant_fraction must be in [0, 1], got {self.epoch_grant_fraction!r}")
        if not 0 <= self.max_overcommit < 1:
            # >= 1 would let permits reach 2 * capacity, enough for a starved chain.
            raise ValueError(f"max_overcommit must be in [0, 1), got {self.max_overcommit!r}")
        self._check_workers(self.workers)

    # ----------------------------------------------------------------- views
    @property
    def capacity(self) -> int:
        """Permits grantable without an epoch: throttle x workers, or what the workers reported."""
        return self.throttle * self.workers if self.reported_permits is None else self.reported_permits

    @property
    def ceiling(self) -> int:
        """Hard bound for over-capacity grants made at epoch close."""
        return self.capacity + math.floor(self.max_overcommit * self.capacity)

    @property
    def in_flight(self) -> int:
        return len(self._granted)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def epoch_deadline(self) -> float | None:
        """When the open epoch must be closed, or None if nothing is queued."""
        return self._deadline

    def is_granted(self, request_id: int) -> bool:
        return request_id in self._granted

    def is_queued(self, request_id: int) -> bool:
        return request_id in self._queue

    def tokens_of(self, holder_id: str) -> set[int]:
        """Granted tokens and queued request ids of a holder (a copy)."""
        return set(self._by_holder.get(holder_id, ()))

    def snapshot(self) -> dict[str, object]:
        """Counters for monitoring and tests."""
        return {
            "throttle": self.throttle,
            "workers": self.workers,
            "capacity": self.capacity,
            "ceiling": self.ceiling,
            "in_flight": self.in_flight,
            "queued": self.queued,
            "holders": len(self._by_holder),
            "granted_total": self.granted_total,
            "denied_total": self.denied_total,
            "withdrawn_total": self.withdrawn_total,
            "overcommitted_total": self.overcommitted_total,
            "epochs_closed": self.epochs_closed,
            "epoch_seconds": self.epoch_seconds,
            "epoch_deadline": self._deadline,
        }

    # ------------------------------------------------------------- requests
    def request(self, holder_id: str, now: float, *, wait: bool = True) -> PermissionDecision:
        """Grant at once below capacity; otherwise queue (or deny if not ``wait``)."""
        request_id = next(self._ids)
        if self.in_flight < self.capacity and not self._queue:
            self._grant(request_id, holder_id)
            return PermissionDecision(request_id, Status.GRANTED)
        if not wait:
            self.denied_total += 1
            return PermissionDecision(request_id, Status.DENIED)
        if not self._queue:
            self._deadline = now + self.epoch_seconds
        self._queue[request_id] = _Queued(request_id, holder_id, now)
        self._by_holder.setdefault(holder_id, set()).add(request_id)
        return PermissionDecision(request_id, Status.QUEUED, self._deadline)

    def close_epoch(self, now: float, load: float) -> list[Outcome]:
        """Decide every queued request (oldest first) if the epoch is due; else ``[]``."""
        if not self._queue or self._deadline is None or now < self._deadline:
            return []
        load = 1.0 if math.isnan(load) else min(1.0, max(0.0, load))
        capacity = self.capacity
        within = max(0, capacity - self.in_flight)
        extra = 0
        idle_slots = math.floor((1.0 - load) * capacity + 1e-9)  # 1 - 0.8 is 0.19999...
        if idle_slots > 0:
            per_epoch = max(1, math.ceil(self.epoch_grant_fraction * capacity))
            headroom = self.ceiling - max(self.in_flight, capacity)
            extra = max(0, min(idle_slots, per_epoch, headroom))
        budget = within + extra
        outcomes: list[Outcome] = []
        queue, self._queue, self._deadline = self._queue, OrderedDict(), None
        for entry in queue.values():
            self._forget_holder_entry(entry.holder_id, entry.request_id)
            if budget > 0:
                budget -= 1
                if self.in_flight >= capacity:
                    self.overcommitted_total += 1
                self._grant(entry.request_id, entry.holder_id)
                outcomes.append(Outcome(entry.request_id, True))
            else:
                self.denied_total += 1
                outcomes.append(Outcome(entry.request_id, False))
        self.epochs_closed += 1
        return outcomes

    # ------------------------------------------------------------- releases
    def release(self, token: int) -> list[Outcome]:
        """Give a permit back (idempotent); returns the queued requests this let in.

        A token that is still queued is withdrawn and reported as denied.
        """
        if token in self._queue:
            entry = self._queue.pop(token)
            self._forget_holder_entry(entry.holder_id, token)
            self.withdrawn_total += 1
            if not self._queue:
                self._deadline = None
            return [Outcome(token, False)]
        holder_id = self._granted.pop(token, None)
        if holder_id is None:
            return []
        self._forget_holder_entry(holder_id, token)
        return self._hand_off()

    def release_holder(self, holder_id: str) -> list[Outcome]:
        """Release every permit and withdraw every request of a holder (it disconnected)."""
        outcomes: list[Outcome] = []
        for token in sorted(self._by_holder.get(holder_id, ())):
            if token in self._queue:
                outcomes.extend(self.release(token))
            else:
                self._granted.pop(token, None)
        self._by_holder.pop(holder_id, None)
        outcomes.extend(self._hand_off())
        return outcomes

    def set_workers(self, workers: int, permits: int | None = None) -> list[Outcome]:
        """Follow the worker count (and the permits they reported); returns queued requests granted by new
        capacity."""
        self._check_workers(workers)
        if permits is not None:
            self._check_workers(permits)
        self.workers = workers
        self.reported_permits = permits
        return self._hand_off()

    # -------------------------------------------------------------- helpers
    def _grant(self, request_id: int, holder_id: str) -> None:
        self._granted[request_id] = holder_id
        self._by_holder.setdefault(holder_id, set()).add(request_id)
        self.granted_total += 1

    def _forget_holder_entry(self, holder_id: str, request_id: int) -> None:
        tokens = self._by_holder.get(holder_id)
        if tokens is not None:
            tokens.discard(request_id)
            if not tokens:
                del self._by_holder[holder_id]

    def _hand_off(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while self._queue and self.in_flight < self.capacity:
            _, entry = self._queue.popitem(last=False)
            self._forget_holder_entry(entry.holder_id, entry.request_id)
            self._grant(entry.request_id, entry.holder_id)
            outcomes.append(Outcome(entry.request_id, True))
        if not self._queue:
            self._deadline = None
        return outcomes

    @staticmethod
    def _check_workers(workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
