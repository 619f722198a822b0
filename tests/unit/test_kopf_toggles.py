"""kopf's readiness toggles wake their waiters once when the operator is indexed, not once per listed object."""

from __future__ import annotations

import asyncio

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
