"""kopf's readiness: its toggles without a wake-up per listed object (a restart with 1,000 clusters: 35 s of 40),
and a bound on our clusters' stream that holds only once the operator is indexed.

kopf holds every object's handlers back until all indexes are filled: at startup each listed object of an
indexed kind (our clusters, pods and Services) gets a toggle in one ``ToggleSet``, and every toggle made or
dropped wakes every object worker waiting on that set. N objects, N wake-ups each: with 4,000 objects a
restart spent 35 s of CPU in ``Condition.notify_all`` and the wake-ups it schedules (py-spy, bench/restart.py
--profile) before the first cluster resumed.

A waiter waits for the set's value (``all``/``any`` of its toggles) to become True or False; a toggle made or
dropped that leaves the value as it was cannot release it. :func:`install` makes ``make_toggle``,
``drop_toggle`` and ``drop_toggles`` wake the waiters only when the value changes: the same semantics, O(N)
instead of O(N²). It checks that kopf's ``ToggleSet`` still looks as it did in kopf 1.45 (its condition, its set
of toggles) and leaves kopf alone otherwise. Written here because it is kopf's internals; it belongs upstream.

The same readiness decides when a bound on our clusters' watch stream may hold. kopf starts a worker for every
object of a stream at once: 1,000 clusters created at once were ~700 cluster events in processing, each with its
body, diff, patch and coroutines, waiting for a handler thread (peak 153 -> 123 MB median with at most 50 at once,
bench/README.md, "Back-pressure on our clusters' stream"). kopf's own ``queueing.worker_limit`` cannot be used:
it bounds every stream (the pods' too: a pod event waiting for a place made a status late and held more memory
than it saved), and at startup a worker keeps its place while it waits for every index, which only the workers
of every listed object fill: with more objects listed than places nothing ever ran (a restart with 1,000
clusters). :func:`bound_once_indexed` makes the Scheduler of one kind's watch stream spawn at most that many
workers, and only while its event loop's operator is indexed (kopf's ``ToggleSet(all)``, seen through the two
functions above).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import weakref
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

_INSTALLED = "_seamless_dask_operator_quiet_toggles"
_BOUND_INSTALLED = "_seamless_dask_operator_bound_once_indexed"

# How many objects of a kind (group, plural) are processed at once once indexed: read when its watcher starts.
_bounds: dict[tuple[str, str], int] = {}
_stream_bound: contextvars.ContextVar[int | None] = contextvars.ContextVar("stream_bound", default=None)

# Per event loop (one operator each; tests run several in one process): is its operator indexed?
_indexed: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, bool] = weakref.WeakKeyDictionary()


def _value_changed(toggle_set: Any, on: bool) -> None:
    if toggle_set._fn is all:  # kopf's operator_indexed; its other set, operator_paused, is any()
        _indexed[asyncio.get_running_loop()] = on


def indexed() -> bool:
    """Whether the operator of the running event loop has filled its indexes (kopf's readiness)."""
    return _indexed.get(asyncio.get_running_loop(), False)


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
    from kopf._cogs.aiokits.aiotoggles import Toggle

    toggle = Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            _value_changed(self, not before)
            self._condition.notify_all()
    return toggle


async def _drop_toggles(self: Any, toggles: Iterable[Any]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            _value_changed(self, not before)
            self._condition.notify_all()


async def _drop_toggle(self: Any, toggle: Any) -> None:
    await _drop_toggles(self, (toggle,))


def _looks_as_expected(toggle_set_class: type) -> bool:
    try:
        probe = toggle_set_class(all)
    except Exception:  # another constructor: another design
        return False
    return isinstance(getattr(probe, "_condition", None), asyncio.Condition) \
        and isinstance(getattr(probe, "_toggles", None), set) and getattr(probe, "_fn", None) is all \
        and all(callable(getattr(toggle_set_class, m, None)) for m in ("make_toggle", "drop_toggle", "drop_toggles"))


def install() -> bool:
    """Make kopf's ToggleSet wake its waiters only when its value changes; False where kopf looks different."""
    try:
        from kopf._cogs.aiokits import aiotoggles
    except ImportError:
        log.info("kopf has no aiotoggles module: its startup toggles are left as they are")
        return False
    toggle_set = aiotoggles.ToggleSet
    if getattr(toggle_set, _INSTALLED, False):
        return True
    if not _looks_as_expected(toggle_set):
        log.info("kopf's ToggleSet is not the one of kopf 1.45: its startup toggles are left as they are")
        return False
    toggle_set.make_toggle = _make_toggle  # type: ignore[method-assign]
    toggle_set.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    toggle_set.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    setattr(toggle_set, _INSTALLED, True)
    return True


def _can_spawn(self: Any) -> bool:
    if self._pending_coros.empty():
        return False
    if self._limit is not None and len(self._running_tasks) >= self._limit:
        return False  # kopf's own bound, as kopf has it
    bound = _stream_bound.get()  # the watcher's context, copied into this spawner task
    # While indexing, every listed object's worker must run (see the module's doc). No wake-up is needed when
    # indexing starts again: an object whose worker will wait for it is spawned while it runs, and a spawn wakes.
    return bound is None or len(self._running_tasks) < bound or not indexed()


def _bounding(watcher: Any) -> Any:
    @functools.wraps(watcher)
    async def bounded_watcher(*, resource: Any, **kwargs: Any) -> None:
        # Seen by the Scheduler this watcher makes: its spawner task copies this task's context.
        _stream_bound.set(_bounds.get((resource.group, resource.plural)))
        await watcher(resource=resource, **kwargs)

    setattr(bounded_watcher, _BOUND_INSTALLED, True)
    return bounded_watcher


def _kopf_looks_as_expected(scheduler_class: type, watcher: Any) -> bool:
    init = getattr(vars(scheduler_class).get("__init__"), "__code__", None)
    parameters = inspect.signature(watcher).parameters
    return init is not None and callable(getattr(scheduler_class, "_can_spawn", None)) \
        and {"_limit", "_pending_coros", "_running_tasks"} <= set(init.co_names) \
        and parameters.get("resource", None) is not None \
        and parameters["resource"].kind is inspect.Parameter.KEYWORD_ONLY


def bound_once_indexed(group: str, plural: str, bound: int | None) -> bool:
    """Process at most ``bound`` objects of the kind ``group``/``plural`` at once once the operator is indexed
    (None: no bound), for the watch streams started from now on (see the module's doc). False where kopf looks
    different than kopf 1.45: then nothing is bounded."""
    try:
        from kopf._cogs.aiokits import aiotasks
        from kopf._core.reactor import queueing
    except ImportError:
        log.info("kopf has no aiotasks or queueing module: its watch streams stay unbounded")
        return False
    if not getattr(queueing.watcher, _BOUND_INSTALLED, False):
        if not install() or not _kopf_looks_as_expected(aiotasks.Scheduler, queueing.watcher):
            log.info("kopf's Scheduler or watcher is not the one of kopf 1.45: its watch streams stay unbounded")
            return False
        aiotasks.Scheduler._can_spawn = _can_spawn  # type: ignore[method-assign]
        queueing.watcher = _bounding(queueing.watcher)
    if bound is None:
        _bounds.pop((group, plural), None)
    else:
        _bounds[(group, plural)] = bound
    return bound is not None
