"""The per-cluster loop: a round on create/update/resume, and a follow round every interval or soon after one of
the cluster's children changed (timed by :mod:`.following`).

A round reads (:mod:`.observing`), calls :func:`decide.decide`, and carries out the plan (:mod:`.executing`);
when the API server refuses an action, the refusal is observed and decided on in the same round.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import kopf

from seamless_dask_runtime.model.parameters import ParameterError

from .. import kube, metrics
from ..api_client import API_FAILURES
from ..builders import ClusterRef, operator_peer
from ..decide import Observation, decide
from ..decide.pacing import ceiling, next_follow_delay
from ..decide.plan import Plan
from ..resource import ClusterSpec, parse_spec
from ..settings import SETTINGS
from .executing import Execution
from .following import Followed, Follower
from .memo import ClusterMemo, cluster_memo, operator_memo
from .observing import edited_fields, known_status, observe
from .watching import RESOURCE, Indexes, drop_managed_fields

OPERATOR_PEER = operator_peer(SETTINGS.pod_namespace, SETTINGS.pod_labels) if SETTINGS.pod_namespace else None


# Rounds under way in this process: a leader that stops gives its Lease up only when none is (a round left running
# could still act after its successor took over); otherwise the Lease expires by itself.
_in_flight = 0
_in_flight_lock = threading.Lock()


def rounds_in_flight() -> int:
    with _in_flight_lock:
        return _in_flight


@contextlib.contextmanager
def _one_round(round_lock: threading.Lock) -> Iterator[None]:
    """The cluster's round lock (one round at a time per cluster), the round counted while it runs."""
    global _in_flight
    with round_lock:
        with _in_flight_lock:
            _in_flight += 1
        try:
            yield
        finally:
            with _in_flight_lock:
                _in_flight -= 1


def cluster_ref(meta: kopf.Meta) -> ClusterRef:
    return ClusterRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def run_round(handler: str, body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
              memo: kopf.Memo, logger: kopf.Logger, indexes: Indexes, *, spec_changed: bool,
              edited: frozenset[str] = frozenset()) -> tuple[Plan, ClusterSpec | ParameterError] | None:
    """One round: the plan carried out (``more``: it left work for a round that should follow at once) and the
    spec it read; None when the cluster is no longer served."""
    metrics.RECONCILES.labels(handler).inc()
    ref, shared, state = cluster_ref(meta), operator_memo(memo), cluster_memo(memo)
    if ref.uid in shared.orphaned:
        return None
    cluster: ClusterSpec | ParameterError
    try:
        cluster = parse_spec(body.get("spec") or {}, SETTINGS.pod_policy, name=ref.name, defaults=SETTINGS.defaults)
    except ParameterError as exc:
        cluster = exc
    observation, api = observe(ref, cluster, indexes, state, shared, logger)
    old_status = known_status(status, state)

    def plan_for(seen: Observation) -> Any:
        return decide(ref, cluster, seen, old_status, meta.get("generation", 0), time.time(),
                      spec_changed=spec_changed, edited=edited, operator_peer=OPERATOR_PEER)

    execution = Execution(body, ref, api, patch, state, shared, handler)
    plan = plan_for(observation)
    refusal = execution.run(plan)
    if refusal is not None:
        # The same round decides what the refusal means (Failed, said once), and reports it.
        plan = plan_for(Observation(pods=observation.pods, refusal=refusal, last_posted=dict(state.last_posted)))
        execution.run(plan)
        return dataclasses.replace(plan, more=False), cluster
    return plan, cluster


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@kopf.on.resume(*RESOURCE)
def apply_cluster(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo,
                  logger: kopf.Logger, diff: kopf.Diff, reason: str, **kwargs: Any) -> None:
    """The spec is new or changed (or the operator restarted): apply the children, then a full round."""
    state = cluster_memo(memo)
    with _one_round(state.round_lock):
        if reason == kopf.Reason.RESUME and state.stood_in:
            # After a restart a follow round got to this cluster first and did this round's work: the spec is
            # the one it read (an edit since would be an update, not a resume).
            state.apply_round_at = time.monotonic()
            return
        done = run_round("apply", body, meta, status, patch, memo, logger, Indexes.of(kwargs),
                         spec_changed=True, edited=edited_fields(diff))
        state.apply_round_at = time.monotonic()
    follower = operator_memo(memo).follower
    more = done is not None and done[0].more
    if (more or state.follow_delay > SETTINGS.reconcile_interval) and follower is not None:
        # The batch was cut short, or the next follow round is far off (a steady cluster): it follows at once.
        # The follower lives on kopf's event loop; this is a thread.
        follower.loop.call_soon_threadsafe(follower.wake, (meta["namespace"], meta["name"]), (meta["uid"],))


# A woken round waits this long: a pod's changes come in bursts (scheduled, started, Ready), one round sees them.
WAKE_DEBOUNCE = 0.3
# ...and runs no sooner than this after an apply round, whose children the watches may not show yet.
AFTER_APPLY = 1.0
# What a round reads of a cluster's metadata (the follower keeps this, not kopf's whole body).
VIEW_METADATA = ("name", "namespace", "uid", "generation", "deletionTimestamp")


def cluster_view(raw: Any) -> dict[str, Any]:
    """What the follower keeps of a cluster for its rounds: what run_round and an Event's reference read."""
    metadata = raw["metadata"]
    return {"apiVersion": raw.get("apiVersion"), "kind": raw.get("kind"),
            "metadata": {key: metadata[key] for key in VIEW_METADATA if key in metadata},
            "spec": raw.get("spec") or {}, "status": raw.get("status") or {}}


@kopf.on.event(*RESOURCE)
async def cluster_event(type: str, event: kopf.RawEvent, memo: kopf.Memo, **kwargs: Any) -> None:
    """Every event of a cluster: the follower follows it (its rounds every interval, or soon after a child
    changed) until it is deleted."""
    drop_managed_fields(event)
    raw: Any = event["object"]
    metadata = raw["metadata"]
    key, uid = (metadata["namespace"], metadata["name"]), metadata["uid"]
    follower = _follower(memo, Indexes.of(kwargs))
    if type == "DELETED" or metadata.get("deletionTimestamp"):
        follower.forget(key, uid)
    else:
        # The create/resume round has just run, or runs soon: the first follow round comes a period later.
        follower.follow(key, uid, cluster_view(raw), memo, first_in=SETTINGS.reconcile_interval)


def _follower(memo: kopf.Memo, indexes: Indexes) -> Follower:
    """The operator's follower, made at the first cluster event: in kopf's context of an object, where kopf.event()
    finds its queue."""
    shared = operator_memo(memo)
    if shared.follower is None:
        assert shared.executor is not None and shared.settings is not None, "configure() runs first"
        settings = shared.settings
        shared.follower = Follower(
            asyncio.get_running_loop(), shared.executor, contextvars.copy_context(),
            when_due=_when_due,
            run_round=functools.partial(_follow_round, indexes=indexes, settings=settings),
            woken_delay=_woken_delay, retry_after=SETTINGS.reconcile_interval)
    return shared.follower


def _when_due(followed: Followed) -> float | None:
    """Whether the cluster's round runs now (0), later (seconds), or never again (None)."""
    shared, state = operator_memo(followed.memo), cluster_memo(followed.memo)
    if followed.view["metadata"].get("deletionTimestamp") or (shared.live is not None and
                                                               followed.uid not in shared.live):
        return None  # deleted, or gone (a finalizer removed by hand): no round any more
    if state.apply_round_at is None and not state.waited_for_apply:
        # Its create/resume round has not run yet (many clusters at once queue for the threads). One period more;
        # then the round runs anyway, as that round would (children it finds missing are not drift), and repairs a
        # cluster whose create kopf gave up on (its own patch refused, say).
        state.waited_for_apply = True
        return SETTINGS.reconcile_interval
    return 0.0


def _woken_delay(followed: Followed) -> float:
    apply_round_at = cluster_memo(followed.memo).apply_round_at or 0.0
    return max(WAKE_DEBOUNCE, apply_round_at + AFTER_APPLY - time.monotonic())


def _follow_round(followed: Followed, *, indexes: Indexes, settings: kopf.OperatorSettings) -> float:
    """One round, its status written; the seconds until the next one (sooner after a failure kopf would retry,
    later while the cluster stays steady: :mod:`..decide.pacing`)."""
    body = kopf.Body(cast(kopf.RawBody, followed.view))  # the view as it is now: the watch renews it, not this round
    state = cluster_memo(followed.memo)
    # Not posted as Events, as kopf's daemons logged: a round's problems are its notices.
    logger = kopf.LocalObjectLogger(body=body, settings=settings)
    with _one_round(state.round_lock):
        # A round that raises (a bug, not bad input) is logged by the follower, which follows the cluster still.
        state.follow_delay = _follow_round_locked(body, body.meta, body.status, followed.memo, state, logger, indexes)
        return state.follow_delay


def _follow_round_locked(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, memo: kopf.Memo, state: ClusterMemo,
                         logger: kopf.Logger, indexes: Indexes) -> float:
    patch = kopf.Patch()
    base = SETTINGS.reconcile_interval
    standing_in = state.apply_round_at is None
    try:
        # Before the cluster's create/resume round has run in this process, this round stands in for it.
        done = run_round("observe", body, meta, status, patch, memo, logger, indexes, spec_changed=standing_in)
    except kopf.TemporaryError as exc:
        logger.warning("round failed, again in %s s: %s", exc.delay, exc)
        return min(exc.delay or base, base)
    if done is None:
        return base
    plan, cluster = done
    state.stood_in = state.stood_in or standing_in
    if patch.status:
        try:
            kube.patch_status(cluster_ref(meta), dict(patch.status))
        except API_FAILURES as exc:
            state.written_status = None  # not written after all: the next round writes it again
            logger.warning("status not written, again in %s s: %s", base, exc)
            return base
    live = operator_memo(memo).live
    return next_follow_delay(plan, retiring=state.retiring is not None, previous=state.follow_delay, base=base,
                             limit=ceiling(cluster, len(live) if live is not None else 1, base))
