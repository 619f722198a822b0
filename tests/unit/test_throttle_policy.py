"""The throttle's pure policy: capacity, immediate grants, epochs, releases, no leaks."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seamless_dask_runtime.throttle.policy import (
    DEFAULT_EPOCH_SECONDS,
    Outcome,
    PermissionDecision,
    PermissionPolicy,
    Status,
)
from seamless_dask_runtime.throttle.protocol import (
    EPOCH_ENV,
    THROTTLE_ENV,
    epoch_seconds_from_environment,
    throttle_from_environment,
)

pytestmark = pytest.mark.timeout(120)


def fill(policy: PermissionPolicy, holder: str = "h", now: float = 0.0) -> list[int]:
    """Take every free slot; return the tokens."""
    tokens = []
    while policy.in_flight < policy.capacity:
        decision = policy.request(holder, now)
        assert decision.status is Status.GRANTED
        tokens.append(decision.request_id)
    return tokens


# ------------------------------------------------------------------ capacity
def test_capacity_is_throttle_times_workers_and_follows_set_workers():
    policy = PermissionPolicy(throttle=3)
    assert policy.epoch_seconds == DEFAULT_EPOCH_SECONDS == 10.0
    assert policy.capacity == 0
    for workers in (1, 2, 5, 0, 4):
        policy.set_workers(workers)
        assert policy.capacity == 3 * workers
    assert policy.snapshot()["capacity"] == 12


def test_no_workers_means_nothing_is_granted_at_once():
    policy = PermissionPolicy(throttle=3, workers=0)
    decision = policy.request("a", 0.0)
    assert decision.status is Status.QUEUED
    # Idle slots are counted against capacity 0: the epoch denies.
    assert policy.close_epoch(10.0, load=0.0) == [Outcome(decision.request_id, False)]


def test_below_capacity_grants_immediately():
    policy = PermissionPolicy(throttle=2, workers=2)
    decisions = [policy.request(f"h{i}", now=float(i)) for i in range(4)]
    assert all(d.status is Status.GRANTED and d.granted for d in decisions)
    assert len({d.request_id for d in decisions}) == 4
    assert policy.in_flight == 4 and policy.queued == 0
    assert policy.epoch_deadline is None
    assert policy.granted_total == 4


# ------------------------------------------------------------------- epochs
def test_requests_at_capacity_wait_for_the_epoch_deadline():
    policy = PermissionPolicy(throttle=1, workers=2)
    fill(policy)
    first = policy.request("a", now=100.0)
    second = policy.request("b", now=103.5)
    assert first == PermissionDecision(first.request_id, Status.QUEUED, 110.0)
    assert second.status is Status.QUEUED and second.deadline == 110.0  # same epoch
    assert policy.epoch_deadline == 110.0 and policy.queued == 2
    # Not decided before the deadline, whatever the load.
    assert policy.close_epoch(109.999, load=0.0) == []
    assert policy.queued == 2 and policy.in_flight == 2
    # Decided at the deadline; saturated cluster: all denied.
    outcomes = policy.close_epoch(110.0, load=1.0)
    assert outcomes == [Outcome(first.request_id, False), Outcome(second.request_id, False)]
    assert policy.queued == 0 and policy.epoch_deadline is None
    assert policy.epochs_closed == 1 and policy.denied_total == 2
    # The next queued request opens a new epoch from its own time.
    third = policy.request("c", now=111.0)
    assert third.deadline == 121.0


def test_epoch_length_is_configurable():
    policy = PermissionPolicy(throttle=1, workers=1, epoch_seconds=0.25)
    fill(policy)
    assert policy.request("x", now=5.0).deadline == 5.25


def test_epoch_grants_extra_permits_only_into_idle_slots():
    policy = PermissionPolicy(throttle=5, workers=4)  # capacity 20, ceiling 30
    fill(policy)
    queued = [policy.request(f"q{i}", now=0.0).request_id for i in range(6)]
    # 5% of capacity per epoch -> 1 extra permit, oldest first.
    outcomes = policy.close_epoch(10.0, load=0.25)
    assert outcomes == [Outcome(queued[0], True)] + [Outcome(r, False) for r in queued[1:]]
    assert policy.in_flight == 21 and policy.overcommitted_total == 1


def test_epoch_grant_budget_is_bounded_by_idle_slots_and_ceiling():
    policy = PermissionPolicy(throttle=5, workers=4, epoch_grant_fraction=1.0)
    fill(policy)
    queued = [policy.request("q", now=0.0).request_id for _ in range(15)]
    # idle slots: floor(0.25 * 20) = 5
    outcomes = policy.close_epoch(10.0, load=0.75)
    assert [o.granted for o in outcomes] == [True] * 5 + [False] * 10
    assert [o.request_id for o in outcomes] == queued
    # ceiling = 20 + floor(0.5 * 20) = 30: at most 5 more, even if idle.
    for _ in range(15):
        policy.request("q", now=20.0)
    outcomes = policy.close_epoch(30.0, load=0.0)
    assert sum(o.granted for o in outcomes) == 5
    assert policy.in_flight == policy.ceiling == 30


@pytest.mark.parametrize("load", [1.0, 1.5, math.nan, 0.96])
def test_saturated_or_unknown_load_denies_everything(load):
    policy = PermissionPolicy(throttle=5, workers=4)
    fill(policy)
    for _ in range(3):
        policy.request("q", now=0.0)
    assert [o.granted for o in policy.close_epoch(10.0, load)] == [False] * 3


def test_no_overcommit_when_max_overcommit_is_zero():
    policy = PermissionPolicy(throttle=2, workers=2, max_overcommit=0.0)
    fill(policy)
    policy.request("q", now=0.0)
    assert policy.close_epoch(10.0, load=0.0)[0].granted is False


def test_wait_false_is_denied_at_capacity_without_queueing():
    policy = PermissionPolicy(throttle=1, workers=1)
    fill(policy)
    decision = policy.request("x", now=0.0, wait=False)
    assert decision.status is Status.DENIED and not decision.granted
    assert policy.queued == 0 and policy.epoch_deadline is None
    assert policy.denied_total == 1
    policy.set_workers(2)
    assert policy.request("x", now=0.0, wait=False).granted


# ---------------------------------------------------------------- hand-off
def test_release_hands_the_slot_to_the_oldest_queued_request():
    policy = PermissionPolicy(throttle=1, workers=2)
    a, b = fill(policy)
    q1 = policy.request("x", now=1.0).request_id
    q2 = policy.request("y", now=2.0).request_id
    assert policy.release(a) == [Outcome(q1, True)]
    assert policy.is_granted(q1) and policy.is_queued(q2)
    assert policy.epoch_deadline == 11.0  # q2's epoch is still the one q1 opened
    assert policy.release(b) == [Outcome(q2, True)]
    assert policy.queued == 0 and policy.epoch_deadline is None
    assert policy.close_epoch(11.0, load=0.0) == []


def test_new_capacity_grants_queued_requests():
    policy = PermissionPolicy(throttle=2, workers=1)
    fill(policy)
    queued = [policy.request("q", now=0.0).request_id for _ in range(3)]
    assert policy.set_workers(2) == [Outcome(queued[0], True), Outcome(queued[1], True)]
    assert policy.queued == 1 and policy.in_flight == 4


def test_shrinking_capacity_revokes_nothing_and_blocks_new_grants():
    policy = PermissionPolicy(throttle=2, workers=3)
    tokens = fill(policy)
    assert policy.set_workers(1) == []
    assert policy.in_flight == 6 and policy.capacity == 2
    assert policy.request("n", now=0.0).status is Status.QUEUED
    for token in tokens[:4]:
        assert policy.release(token) == []
    outcomes = policy.release(tokens[4])
    assert len(outcomes) == 1 and outcomes[0].granted
    assert policy.in_flight == 2


# ---------------------------------------------------------------- releases
def test_release_is_idempotent():
    policy = PermissionPolicy(throttle=2, workers=1)
    token = policy.request("h", now=0.0).request_id
    assert policy.release(token) == []
    assert policy.in_flight == 0
    assert policy.release(token) == []
    assert policy.release(424242) == []
    assert policy.in_flight == 0 and policy.snapshot()["holders"] == 0


def test_releasing_a_queued_request_withdraws_it():
    policy = PermissionPolicy(throttle=1, workers=1)
    fill(policy)
    rid = policy.request("q", now=0.0).request_id
    assert policy.release(rid) == [Outcome(rid, False)]
    assert policy.queued == 0 and policy.epoch_deadline is None
    assert policy.withdrawn_total == 1
    assert policy.release(rid) == []


def test_release_holder_frees_everything_the_holder_had():
    policy = PermissionPolicy(throttle=2, workers=2)
    a = [policy.request("A", now=0.0).request_id for _ in range(3)]
    b = policy.request("B", now=0.0).request_id
    aq = policy.request("A", now=0.0).request_id  # queued
    bq = [policy.request("B", now=0.0).request_id for _ in range(3)]  # queued
    assert policy.tokens_of("A") == {*a, aq}
    outcomes = policy.release_holder("A")
    # A's queued request is withdrawn, A's three slots go to B's queued requests.
    assert Outcome(aq, False) in outcomes
    assert [o for o in outcomes if o.granted] == [Outcome(r, True) for r in bq]
    assert policy.tokens_of("A") == set()
    assert policy.in_flight == 4 and policy.tokens_of("B") == {b, *bq}
    assert policy.release_holder("A") == []
    assert policy.release_holder("B") == []
    assert policy.in_flight == 0 and policy.queued == 0 and policy.snapshot()["holders"] == 0


# -------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs",
    [
        {"throttle": 0},
        {"throttle": -1},
        {"throttle": 2.5},
        {"throttle": True},
        {"epoch_seconds": -1.0},
        {"epoch_seconds": math.inf},
        {"max_overcommit": 1.0},
        {"epoch_grant_fraction": 1.5},
        {"workers": -1},
    ],
)
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ValueError):
        PermissionPolicy(**kwargs)


def test_set_workers_refuses_negative():
    with pytest.raises(ValueError, match="workers"):
        PermissionPolicy().set_workers(-2)


@pytest.mark.parametrize(("value", "expected"), [(None, 3), ("", 3), ("1", 1), (" 7 ", 7), ("24", 24)])
def test_throttle_from_environment(value, expected):
    env = {} if value is None else {THROTTLE_ENV: value}
    assert throttle_from_environment(env) == expected


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "three", "3x"])
def test_bad_throttle_environment_names_the_variable(value):
    with pytest.raises(ValueError, match=THROTTLE_ENV) as info:
        throttle_from_environment({THROTTLE_ENV: value})
    assert repr(value) in str(info.value)


def test_epoch_seconds_from_environment():
    assert epoch_seconds_from_environment({}) == 10.0
    assert epoch_seconds_from_environment({EPOCH_ENV: "0.25"}) == 0.25
    for bad in ("-1", "soon", "inf", "nan"):
        with pytest.raises(ValueError, match=EPOCH_ENV):
            epoch_seconds_from_environment({EPOCH_ENV: bad})


def test_environment_names_match_the_rest_of_the_runtime():
    """The throttle reads the variable the job scripts export (seed 002), with the same default."""
    worker_environment = pytest.importorskip("seamless_dask_runtime.model.worker_environment")
    parameters = pytest.importorskip("seamless_dask_runtime.model.parameters")
    assert worker_environment.THROTTLE_VARIABLE == THROTTLE_ENV
    assert parameters.DEFAULT_TRANSFORMATION_THROTTLE == throttle_from_environment({})


# ------------------------------------------------------------ no leaks
def test_thousand_cycles_from_several_holders_leave_nothing_in_flight():
    rng = random.Random(2024)
    policy = PermissionPolicy(throttle=2, workers=2, epoch_seconds=1.0)
    holders = [f"client-{i}" for i in range(5)]
    held: dict[str, list[int]] = {h: [] for h in holders}
    now = 0.0
    cycles = 0
    while cycles < 1000:
        now += rng.random() * 0.2
        holder = rng.choice(holders)
        decision = policy.request(holder, now)
        if decision.granted:
            held[holder].append(decision.request_id)
        outcomes = policy.close_epoch(now, load=rng.random())
        for rid, granted in outcomes:
            if granted:
                owner = next(h for h in holders if rid in policy.tokens_of(h))
                held[owner].append(rid)
        # Each holder gives back what it holds, sometimes twice (idempotence).
        victim = rng.choice(holders)
        while held[victim]:
            token = held[victim].pop()
            for rid, granted in policy.release(token) + policy.release(token):
                if granted:
                    owner = next(h for h in holders if rid in policy.tokens_of(h))
                    held[owner].append(rid)
            cycles += 1
        assert policy.in_flight <= policy.ceiling
    for holder in holders:  # the model and the policy agree on who holds what
        mine = policy.tokens_of(holder)
        assert set(held[holder]) == {t for t in mine if policy.is_granted(t)}
        for token in mine:
            if policy.is_queued(token):
                assert policy.release(token) == [Outcome(token, False)]
    for holder in holders:
        for token in held[holder]:
            assert policy.release(token) == []
    assert policy.in_flight == 0
    assert policy.queued == 0
    assert policy.snapshot()["holders"] == 0
    assert policy.granted_total >= 1000


# ----------------------------------------------------------- properties
class PolicyMachine(RuleBasedStateMachine):
    """Random interleavings of request/release/set_workers/epochs against a model."""

    holders = ("a", "b", "c")

    def __init__(self) -> None:
        super().__init__()
        self.policy = PermissionPolicy(throttle=2, workers=1, epoch_seconds=1.0)
        self.now = 0.0
        self.granted: dict[int, str] = {}  # model: granted, not released
        self.queued: set[int] = set()
        self.issued: list[int] = []

    def _absorb(self, outcomes: list[Outcome], *, capacity_bound: bool) -> None:
        for rid, granted in outcomes:
            assert rid in self.queued, "only queued requests get later decisions"
            self.queued.discard(rid)
            if granted:
                owner = next(h for h in self.holders if rid in self.policy.tokens_of(h))
                self.granted[rid] = owner
                bound = self.policy.capacity if capacity_bound else max(
                    self.policy.capacity, self.policy.ceiling)
                assert len(self.granted) <= bound

    @rule(holder=st.sampled_from(holders), wait=st.booleans())
    def request(self, holder: str, wait: bool) -> None:
        before = self.policy.in_flight
        decision = self.policy.request(holder, self.now, wait=wait)
        self.issued.append(decision.request_id)
        if decision.status is Status.GRANTED:
            assert before < self.policy.capacity
            self.granted[decision.request_id] = holder
        elif decision.status is Status.QUEUED:
            assert wait and before >= self.policy.capacity
            self.queued.add(decision.request_id)
        else:
            assert not wait and before >= self.policy.capacity

    @precondition(lambda self: self.issued)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from([*self.issued, 10**9]))
        was_queued = token in self.queued
        outcomes = self.policy.release(token)
        if was_queued:
            assert outcomes == [Outcome(token, False)]
            self.queued.discard(token)
            return
        self.granted.pop(token, None)
        self._absorb(outcomes, capacity_bound=True)

    @rule(holder=st.sampled_from(holders))
    def release_holder(self, holder: str) -> None:
        mine = self.policy.tokens_of(holder)
        outcomes = self.policy.release_holder(holder)
        for rid in mine:
            self.granted.pop(rid, None)
        withdrawn = [o for o in outcomes if not o.granted]
        assert {o.request_id for o in withdrawn} == mine & self.queued
        self.queued -= mine
        self._absorb([o for o in outcomes if o.granted], capacity_bound=True)

    @rule(workers=st.integers(min_value=0, max_value=4))
    def set_workers(self, workers: int) -> None:
        self._absorb(self.policy.set_workers(workers), capacity_bound=True)

    @rule(dt=st.floats(min_value=0.0, max_value=1.5), load=st.floats(min_value=0.0, max_value=1.0))
    def tick(self, dt: float, load: float) -> None:
        self.now += dt
        deadline = self.policy.epoch_deadline
        outcomes = self.policy.close_epoch(self.now, load)
        if deadline is None or self.now < deadline:
            assert outcomes == []
        else:
            assert {o.request_id for o in outcomes} == self.queued
            self._absorb(outcomes, capacity_bound=False)
            assert not self.queued

    @invariant()
    def model_matches(self) -> None:
        policy = self.policy
        assert policy.in_flight == len(self.granted)
        assert policy.queued == len(self.queued)
        assert all(policy.is_granted(t) for t in self.granted)
        assert all(policy.is_queued(t) for t in self.queued)
        assert (policy.epoch_deadline is None) == (not self.queued)
        if self.queued:
            assert policy.in_flight >= policy.capacity  # hand-off keeps the queue "at capacity"

    def teardown(self) -> None:
        for token in list(self.queued) + list(self.granted):  # withdraw first: no hand-offs
            self.policy.release(token)
        self.policy.close_epoch(self.now + 100.0, load=1.0)
        assert self.policy.in_flight == 0
        assert self.policy.queued == 0
        assert self.policy.snapshot()["holders"] == 0


PolicyMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_policy_state_machine = PolicyMachine.TestCase


def test_capacity_is_what_the_workers_reported_when_they_did() -> None:
    policy = PermissionPolicy(throttle=3, epoch_seconds=10)
    policy.set_workers(2)
    assert policy.capacity == 6
    policy.set_workers(2, permits=7)  # one worker runs throttle 5, the other 2 (a throttle edit rolling out)
    assert policy.capacity == 7
    for holder in range(7):
        assert policy.request(f"c{holder}", now=0.0).status == Status.GRANTED
    waiting = policy.request("late", now=0.0)
    assert waiting.status == Status.QUEUED
    outcomes = policy.set_workers(3, permits=9)  # a new worker brings its permits: the queued request goes in
    assert [o.granted for o in outcomes] == [True]
