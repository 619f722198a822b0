"""kopf's readiness toggles without a wake-up per listed object (a restart with 1,000 clusters: 35 s of 40).

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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

_INSTALLED = "_seamless_dask_operator_quiet_toggles"


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
    from kopf._cogs.aiokits.aiotoggles import Toggle

    toggle = Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggles(self: Any, toggles: Iterable[Any]) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggle(self: Any, toggle: Any) -> None:
    await _drop_toggles(self, (toggle,))


def _looks_as_expected(toggle_set_class: type) -> bool:
    import asyncio

    try:
        probe = toggle_set_class(all)
    except Exception:  # another constructor: another design
        return False
    return isinstance(getattr(probe, "_condition", None), asyncio.Condition) \
        and isinstance(getattr(probe, "_toggles", None), set) \
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
