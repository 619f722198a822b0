"""The follow loop (handlers/following.py): when a cluster's round runs, on a real event loop and real threads.

Each case waits for rounds with a long first period, so that a round that runs at all says the wake, not the
period, made it run.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from seamless_dask_operator.handlers.following import Followed, Follower

LONG = 60.0  # a period no case waits for
SOON = 0.05
KEY = ("ns", "c")


class Rounds:
    """Records the rounds the follower runs; a round can be held open until released."""

    def __init__(self, next_in: float = LONG):
        self.ran: list[tuple[str, str]] = []  # (uid, the view's marker) per round
        self.next_in = next_in
        self.hold = threading.Event()
        self.hold.set()
        self.started = threading.Event()
        self.fail_once = False

    def run(self, followed: Followed) -> float:
        self.started.set()
        self.hold.wait(10)
        self.ran.append((followed.uid, followed.view.get("marker", "")))
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("a bug in a round")
        return self.next_in


def make(rounds: Rounds, *, when_due: Callable[[Followed], float | None] = lambda f: 0.0,
         retry_after: float = SOON) -> Follower:
    return Follower(asyncio.get_running_loop(), ThreadPoolExecutor(4), contextvars.copy_context(),
                    when_due=when_due, run_round=rounds.run, woken_delay=lambda f: SOON, retry_after=retry_after)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def settle() -> None:
    await asyncio.sleep(0.3)


def test_first_round_after_its_period_then_every_period() -> None:
    async def case() -> None:
        rounds = Rounds(next_in=SOON)
        follower = make(rounds)
        follower.follow(KEY, "u1", {"marker": "a"}, None, first_in=SOON)
        await until(lambda: len(rounds.ran) >= 3)
        follower.stop()
        assert set(rounds.ran) == {("u1", "a")}

    asyncio.run(case())


def test_a_wake_brings_the_round_forward_and_the_view_is_the_latest() -> None:
    async def case() -> None:
        rounds = Rounds()
        follower = make(rounds)
        follower.follow(KEY, "u1", {"marker": "a"}, None, first_in=LONG)
        follower.follow(KEY, "u1", {"marker": "b"}, None, first_in=LONG)  # the watch shows it again: view renewed
        await settle()
        assert rounds.ran == [], "nothing before its period"
        follower.wake(KEY)
        await until(lambda: len(rounds.ran) == 1)
        assert rounds.ran == [("u1", "b")]
        await settle()
        assert len(rounds.ran) == 1, "one wake, one round; the next one a period later"
        follower.stop()

    asyncio.run(case())


def test_a_wake_during_a_round_runs_one_more_round_after_it() -> None:
    async def case() -> None:
        rounds = Rounds()
        follower = make(rounds)
        follower.follow(KEY, "u1", {}, None, first_in=LONG)
        rounds.hold.clear()
        follower.wake(KEY)
        await until(rounds.started.is_set)
        follower.wake(KEY)  # while the round runs: neither a second round at once nor lost
        follower.wake(KEY)
        rounds.hold.set()
        await until(lambda: len(rounds.ran) == 2)
        await settle()
        assert len(rounds.ran) == 2
        follower.stop()

    asyncio.run(case())


def test_children_of_a_former_cluster_of_that_name_wake_nothing() -> None:
    async def case() -> None:
        rounds = Rounds()
        follower = make(rounds)
        follower.follow(KEY, "old", {}, None, first_in=LONG)
        follower.follow(KEY, "new", {}, None, first_in=LONG)  # deleted and made again under the same name
        follower.wake(KEY, owners=("old",))
        follower.wake(("ns", "other"))
        await settle()
        assert rounds.ran == []
        follower.wake(KEY, owners=("new",))
        await until(lambda: rounds.ran == [("new", "")])
        follower.stop()

    asyncio.run(case())


def test_forgotten_and_stopped_clusters_run_no_round() -> None:
    async def case() -> None:
        rounds = Rounds(next_in=SOON)
        follower = make(rounds)
        follower.follow(KEY, "u1", {}, None, first_in=SOON)
        follower.follow(("ns", "d"), "u2", {}, None, first_in=SOON)
        follower.forget(("ns", "d"), "other-uid")  # another cluster's deletion: this one stays
        follower.forget(KEY, "u1")
        await until(lambda: len(rounds.ran) >= 2)
        assert {uid for uid, _ in rounds.ran} == {"u2"}
        follower.stop()
        count = len(rounds.ran)
        await settle()
        assert len(rounds.ran) <= count + 1, "a round under way may end; none starts"
        follower.wake(("ns", "d"))
        await settle()
        assert len(rounds.ran) <= count + 1

    asyncio.run(case())


def test_when_due_waits_or_ends_the_following() -> None:
    async def case() -> None:
        asked: list[str] = []

        def when_due(followed: Followed) -> float | None:
            asked.append(followed.uid)
            if followed.uid == "gone":
                return None
            return SOON if asked.count(followed.uid) == 1 else 0.0  # waits once, then runs

        rounds = Rounds()
        follower = make(rounds, when_due=when_due)
        follower.follow(KEY, "u1", {}, None, first_in=SOON)
        follower.follow(("ns", "g"), "gone", {}, None, first_in=SOON)
        await until(lambda: len(rounds.ran) == 1)
        assert rounds.ran == [("u1", "")] and asked.count("u1") == 2
        assert ("ns", "g") not in follower.followed, "a cluster that is gone is followed no more"
        follower.stop()

    asyncio.run(case())


def test_a_round_that_raises_is_logged_and_the_cluster_still_followed(caplog: pytest.LogCaptureFixture) -> None:
    async def case() -> None:
        rounds = Rounds()
        rounds.fail_once = True
        follower = make(rounds, retry_after=SOON)
        follower.follow(KEY, "u1", {}, None, first_in=SOON)
        await until(lambda: len(rounds.ran) == 2)
        follower.stop()

    asyncio.run(case())
    assert "round of ns/c failed" in caplog.text and "a bug in a round" in caplog.text


def test_a_thread_wakes_it_through_the_loop() -> None:
    async def case() -> None:
        rounds = Rounds()
        follower = make(rounds)
        follower.follow(KEY, "u1", {}, None, first_in=LONG)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(lambda: loop.call_soon_threadsafe(follower.wake, KEY, ("u1",)))
        await until(lambda: len(rounds.ran) == 1)
        follower.stop()

    asyncio.run(case())


class Event:
    """Stands for what kopf's context holds while a handler runs (the cause: the body, the raw event)."""


HANDLER_CAUSE: contextvars.ContextVar[Event | None] = contextvars.ContextVar("HANDLER_CAUSE", default=None)


def test_a_waiting_timer_keeps_nothing_of_the_handler_that_set_it() -> None:
    async def case() -> None:
        rounds = Rounds()
        follower = make(rounds)

        def as_kopf_handler(key: tuple[str, str], uid: str, wake: bool) -> weakref.ref[Event]:
            event = Event()
            HANDLER_CAUSE.set(event)
            follower.follow(key, uid, {}, None, first_in=LONG)
            if wake:
                follower.wake(key)
            return weakref.ref(event)

        # Each in a context of its own, as kopf runs handlers: a timer made there outlives the handler.
        followed = contextvars.copy_context().run(as_kopf_handler, KEY, "u1", False)
        woken = contextvars.copy_context().run(as_kopf_handler, ("ns", "w"), "u2", True)
        gc.collect()
        assert followed() is None and woken() is None, "a timer for later would hold the handler's event till then"
        await until(lambda: len(rounds.ran) == 1)
        follower.stop()

    asyncio.run(case())
