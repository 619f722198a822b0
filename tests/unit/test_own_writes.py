"""A round counts the pods and the Service this operator made that its listing does not show yet
(``handlers/memo.Expected``, ``handlers/observing.py``).

The watch and the index it feeds run on kopf's event loop while a round reads them in a thread: the watch may
have shown a new child (its uid marked seen) just after the round took its listing. Such a child still counts,
or the round makes a pod a second time (a 409 and a GET; 11 of 1,500 at 500 -> 2,000 workers in a run where
the pod watch lagged behind the rounds) or calls the Service deleted by hand (a re-apply and a false
DriftRestored Event). One round later, a listing that still lacks it means it came and went.
"""

from __future__ import annotations

from typing import Any

from seamless_dask_operator.builders import ClusterRef
from seamless_dask_operator.decide import ChildrenView
from seamless_dask_operator.decide.observation import PodView
from seamless_dask_operator.handlers.memo import ClusterMemo, Expected, OperatorMemo
from seamless_dask_operator.handlers.observing import _children, _with_own_writes

REF = ClusterRef(name="c", namespace="ns", uid="cluster-uid")
AS_APPLIED = ChildrenView(service={"type": "ClusterIP", "ports": [{"port": 8786}]})


def _view(name: str) -> PodView:
    return PodView(name=name, component="worker", index=0, ready=False, terminating=False, template_hash=None,
                   ip=None)


def _created(state: ClusterMemo, name: str, uid: str) -> None:
    state.created[name] = Expected(_view(name), uid)


def _listed_service(view: ChildrenView) -> dict[str, Any]:
    return {"name": REF.scheduler_name, "owners": [REF.uid], "view": view}


def test_a_pod_seen_after_the_listing_was_read_still_counts() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    _created(state, "c-worker-0", "u0")
    shared.saw("u0")  # the watch showed it; the listing this round read is older
    assert [p.name for p in _with_own_writes((), state, shared)] == ["c-worker-0"]
    # The next round's listing has it: counted once, the expectation done.
    assert [p.name for p in _with_own_writes((_view("c-worker-0"),), state, shared)] == ["c-worker-0"]
    assert not state.created


def test_a_pod_that_came_and_went_between_rounds_stops_counting_a_round_later() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    _created(state, "c-worker-0", "u0")
    shared.saw("u0")
    _with_own_writes((), state, shared)
    assert _with_own_writes((), state, shared) == ()  # still not listed: it is gone
    assert not state.created


def test_a_pod_the_watch_has_not_shown_counts_until_it_does() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    _created(state, "c-worker-0", "u0")
    for _ in range(3):
        assert [p.name for p in _with_own_writes((), state, shared)] == ["c-worker-0"]
    assert not state.created["c-worker-0"].shown


def test_a_service_seen_after_the_listing_was_read_is_not_called_deleted() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    state.service_applied = Expected(AS_APPLIED, "s0")
    shared.saw("s0")  # the watch showed it; the Services index this round read is older
    assert _children(REF, [], state, shared) == AS_APPLIED
    # The next round's listing has it: what the listing shows from now on.
    listed = ChildrenView(service={"type": "ClusterIP", "ports": [{"port": 8786}], "clusterIP": "10.0.0.9"})
    assert _children(REF, [_listed_service(listed)], state, shared) == listed
    assert state.service_applied is None


def test_a_service_that_came_and_went_between_rounds_is_drift_a_round_later() -> None:
    state, shared = ClusterMemo(), OperatorMemo()
    state.service_applied = Expected(AS_APPLIED, "s0")
    shared.saw("s0")
    assert _children(REF, [], state, shared) == AS_APPLIED
    assert _children(REF, [], state, shared) == ChildrenView()  # still not listed: deleted, applied again
