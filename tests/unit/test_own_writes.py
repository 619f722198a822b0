"""A round sees the pods this operator created that the watch does not show yet (handlers/observing.py).

The watch and the index it feeds run on kopf's event loop while a round reads them in a thread: the watch may
have shown a new pod (its uid marked seen) just after the round took its listing. Such a pod is still counted,
or the round makes it a second time (a 409 and a GET; 11 of 1,500 at 500 -> 2,000 workers in a run where
the pod watch lagged behind the rounds).
"""

from __future__ import annotations

import time

from seamless_dask_operator.decide.observation import PodView
from seamless_dask_operator.handlers.memo import ClusterMemo, OperatorMemo
from seamless_dask_operator.handlers.observing import _with_own_writes


def _view(name: str) -> PodView:
    return PodView(name=name, component="worker", index=0, ready=False, terminating=False, template_hash=None,
                   ip=None)


def _created(state: ClusterMemo, name: str, uid: str) -> None:
    state.created[name] = (time.monotonic(), _view(name), uid)


def test_a_pod_seen_after_the_listing_was_read_still_counts() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    _created(state, "c-worker-0", "u0")
    shared.saw("u0")  # the watch showed it; the listing this round read is older
    assert [p.name for p in _with_own_writes((), state, shared)] == ["c-worker-0"]
    # The next round's listing has it: counted once, the expectation done.
    assert [p.name for p in _with_own_writes((_view("c-worker-0"),), state, shared)] == ["c-worker-0"]
    assert not state.created and not state.unlisted


def test_a_pod_that_came_and_went_between_rounds_stops_counting_a_round_later() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    _created(state, "c-worker-0", "u0")
    shared.saw("u0")
    _with_own_writes((), state, shared)
    assert _with_own_writes((), state, shared) == ()  # still not listed: it is gone
    assert not state.created and not state.unlisted


def test_a_pod_the_watch_has_not_shown_counts_until_it_does() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    _created(state, "c-worker-0", "u0")
    for _ in range(3):
        assert [p.name for p in _with_own_writes((), state, shared)] == ["c-worker-0"]
    assert not state.unlisted
