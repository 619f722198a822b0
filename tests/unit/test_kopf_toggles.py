"""kopf's readiness toggles wake their waiters once when the operator is indexed, not once per listed object."""

from __future__ import annotations

import asyncio
from typing import Any

from kopf._cogs.aiokits.aiotoggles import ToggleSet
from seamless_dask_operator import kopf_toggles


def _startup(objects: int) -> tuple[int, list[int]]:
    """As kopf's startup: a toggle per listed object, a worker per object waiting for all of them; the toggles
    dropped one by one. The wake-ups sent, and the order the workers went on in."""

    async def run() -> tuple[int, list[int]]:
        indexed = ToggleSet(all)
        wakeups = 0
        notify_all = indexed._condition.notify_all

        def counted() -> None:
            nonlocal wakeups
            wakeups += 1
            notify_all()

        indexed._condition.notify_all = counted  # type: ignore[method-assign]
        toggles = [await indexed.make_toggle(name=f"object {i}") for i in range(objects)]
        released: list[int] = []

        async def worker(i: int) -> None:
            await indexed.wait_for(True)
            released.append(i)

        workers = [asyncio.ensure_future(worker(i)) for i in range(objects)]
        await asyncio.sleep(0)
        for toggle in toggles[:-1]:
            await indexed.drop_toggle(toggle)
            await asyncio.sleep(0)
        assert released == [], "no worker goes on before every object is indexed"
        await indexed.drop_toggles(toggles[-1:])
        await asyncio.wait_for(asyncio.gather(*workers), 5)
        return wakeups, released

    return asyncio.run(run())


def test_the_operator_indexed_wakes_every_worker_once() -> None:
    assert kopf_toggles.install()
    wakeups, released = _startup(300)
    assert sorted(released) == list(range(300))
    # The set turns off with the first object listed and on with the last one indexed: two wake-ups (kopf 1.45
    # alone: one per toggle made and one per toggle dropped, 600, each waking all 300 workers).
    assert wakeups == 2


def test_a_set_that_turns_off_and_on_again_still_wakes_its_waiters() -> None:
    assert kopf_toggles.install()

    async def run() -> list[str]:
        paused = ToggleSet(any)  # as kopf's operator_paused
        seen: list[str] = []

        async def waiter() -> None:
            await paused.wait_for(True)
            seen.append("paused")
            await paused.wait_for(False)
            seen.append("resumed")

        task = asyncio.ensure_future(waiter())
        await asyncio.sleep(0)
        toggle = await paused.make_toggle(True, name="peer")
        await asyncio.sleep(0)
        quiet = await paused.make_toggle(False, name="another")
        await paused.drop_toggle(toggle)
        await paused.drop_toggle(quiet)
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(run()) == ["paused", "resumed"]


def _listing_with_a_bound(objects: int, bound: int) -> tuple[list[int], int]:
    """As kopf's startup: the bounded stream lists more objects than the bound; each object gets a toggle and a
    worker that drops it (its index filled) and waits for every index. Then, indexed, more work than the bound:
    the most that ran at once."""
    from kopf._cogs.aiokits.aiotasks import Scheduler

    async def run() -> tuple[list[int], int]:
        indexed = ToggleSet(all)
        listing = await indexed.make_toggle(name="the stream's listing")  # dropped when the listing is read
        kopf_toggles._stream_bound.set(bound)  # as the bounded kind's watcher does before it makes its Scheduler
        scheduler = Scheduler()
        went_on: list[int] = []

        async def listed(i: int, toggle: Any) -> None:
            await indexed.drop_toggle(toggle)
            await indexed.wait_for(True)
            went_on.append(i)

        for i in range(objects):
            toggle = await indexed.make_toggle(name=f"object {i}")
            await scheduler.spawn(listed(i, toggle))
        await indexed.drop_toggle(listing)
        try:
            async with asyncio.timeout(5):
                while len(went_on) < objects:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            await scheduler.close()
            return went_on, 0

        running = most = 0
        release = asyncio.Event()

        async def later_event() -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1

        for _ in range(objects):
            await scheduler.spawn(later_event())
        await asyncio.sleep(0.1)
        release.set()
        await asyncio.wait_for(scheduler.wait(), 5)
        await scheduler.close()
        return went_on, most

    return asyncio.run(run())


def test_a_bound_smaller_than_a_listing_lets_indexing_finish_then_holds() -> None:
    assert kopf_toggles.bound_once_indexed("example.org", "things", 3)
    went_on, most = _listing_with_a_bound(objects=12, bound=3)
    # A bound from the start (kopf's queueing.worker_limit): the 3 workers in the places wait for the 9 others'
    # indexes, which never come (a restart with more clusters, pods or Services than the bound resumed none).
    assert sorted(went_on) == list(range(12)), f"only {len(went_on)} of 12 listed objects went on"
    assert most == 3, f"{most} workers at once once indexed, bound 3"


def test_only_the_bounded_kind_s_stream_is_bounded() -> None:
    from kopf._cogs.structs.references import Resource

    assert kopf_toggles.bound_once_indexed("seamless.dask.org", "seamlessdaskclusters", 50)
    bounds: dict[str, int | None] = {}

    async def watcher(*, resource: Resource, **_: Any) -> None:  # where kopf's watcher makes its Scheduler
        bounds[resource.plural] = await asyncio.create_task(_bound_seen_by_a_task())

    async def _bound_seen_by_a_task() -> int | None:
        return kopf_toggles._stream_bound.get()

    async def run() -> None:
        bounded = kopf_toggles._bounding(watcher)
        await asyncio.gather(  # each watcher its own task, as kopf's orchestration starts them
            asyncio.create_task(bounded(resource=Resource("seamless.dask.org", "v1beta1", "seamlessdaskclusters"))),
            asyncio.create_task(bounded(resource=Resource("", "v1", "pods"))))

    asyncio.run(run())
    # The pods' events are light (an index entry): bounded, they waited and made a scaled cluster's status late.
    assert bounds == {"seamlessdaskclusters": 50, "pods": None}
