"""kopf's own API requests go at most 32 at once (``kopf_requests``): a restart that adds 1,000 finalizers back
sent 1,000 patches at once, drew 1,379 answers 429 and peaked above the chart's memory limit."""

from __future__ import annotations

import asyncio

from seamless_dask_operator import kopf_requests


def _burst(calls: int, at_once: int, url: str = "/apis/seamless.dask.org/v1beta1/namespaces/ns/c") -> tuple[int, int]:
    """``calls`` requests started at once through the bound: (the most in flight at once, how many answered)."""
    in_flight = most = answered = 0

    async def request(method: str, url: str) -> str:
        nonlocal in_flight, most, answered
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        answered += 1
        return f"{method} {url}"

    async def run() -> list[str]:
        bounded = kopf_requests.bounded(request, at_once)
        return await asyncio.gather(*(bounded("patch", f"{url}?i={i}") for i in range(calls)))

    answers = asyncio.run(run())
    assert answers == [f"patch {url}?i={i}" for i in range(calls)]  # each its own answer, in its caller's order
    return most, answered


def test_a_burst_of_requests_goes_at_most_the_bound_at_once_and_every_one_is_answered() -> None:
    assert _burst(1000, 32) == (32, 1000)


def test_events_are_not_bounded() -> None:
    # kopf retries an Event refused in a namespace being deleted for ~54 s: bounded, 33 of them held every slot
    # and the operator's own patches waited (an operator that did not stop within 60 s).
    assert _burst(50, 4, url="/api/v1/namespaces/ns/events") == (50, 50)
    assert _burst(50, 4, url="/api/v1/namespaces/events/pods") == (4, 50)  # a namespace named so is not an Event


def test_each_operator_has_its_own_bound() -> None:
    # One event loop per operator (tests run several in one process): a loop's requests never wait for another's.
    assert _burst(10, 4) == (4, 10)
    assert _burst(10, 4) == (4, 10)


def test_kopf_s_calls_go_through_the_bound() -> None:
    from kopf._cogs.clients import api

    assert kopf_requests.install()
    assert getattr(api.request, kopf_requests._BOUNDED)
    # kopf's get, post, patch, delete and watch stream look request up when they run: they call the bounded one.
    assert kopf_requests._looks_as_expected(api)
    assert kopf_requests.install()  # twice: wrapped once
    assert not getattr(api.request.__wrapped__, kopf_requests._BOUNDED, False)
