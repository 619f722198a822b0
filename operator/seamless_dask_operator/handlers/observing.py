"""One round's :class:`Observation` of a cluster: its own pods and Service, its scheduler's answers, and what
became of the previous round's retire call and Events."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import kopf

from seamless_dask_runtime.model.identity import COMPONENT_LABEL, SCHEDULER
from seamless_dask_runtime.model.parameters import ParameterError

from ..builders import ClusterRef
from ..decide import (
    ChildrenView,
    LegacyScheduler,
    Observation,
    PodView,
    RetireOutcome,
    SchedulerAnswers,
    pod_view,
    pod_views,
    questions,
)
from ..resource import ClusterSpec
from ..scheduler_api import SchedulerAPI, SchedulerUnavailable
from ..settings import SETTINGS
from .memo import OBJECT_EXPECTATION_SECONDS, ClusterMemo, OperatorMemo
from .watching import Indexes

# How long this operator's own writes count when the watches do not show them yet (a watch lags by milliseconds
# on a quiet API server, by seconds under load; a write the watch never shows is not believed for ever).
EXPECTATION_SECONDS = 60.0
# Versions change only when a client or a worker joins: asked once a minute.
VERSIONS_EVERY = 60.0


def _children(ref: ClusterRef, services: list[dict[str, Any]], state: ClusterMemo,
              shared: OperatorMemo) -> ChildrenView | None:
    service = next((s for s in services if s["name"] == ref.scheduler_name and ref.uid in s["owners"]), None)
    applied = state.service_applied
    if applied is not None:
        if applied.counts(service is not None, shared.seen, time.monotonic()):
            return applied.view  # as this operator applied it (a round right after, such as the pinned image's)
        state.service_applied = None
    if service is None:
        return ChildrenView()
    view: ChildrenView = service["view"]
    return view


def known_status(status: kopf.Status, state: ClusterMemo) -> dict[str, Any]:
    """``.status`` as the watch shows it, or as this operator last wrote it when the watch has not shown that yet:
    a round right after the one that said "Failed" does not say it again."""
    known = dict(status)
    if state.written_status is not None:
        at, written = state.written_status
        if time.monotonic() - at < EXPECTATION_SECONDS:
            known.update(written)
        else:
            state.written_status = None
    return known


def _with_own_writes(pods: tuple[PodView, ...], state: ClusterMemo, shared: OperatorMemo) -> tuple[PodView, ...]:
    """The watch's pods, plus the ones this operator created and minus the ones it deleted, that the watch does not
    show yet: a round right after another neither makes a pod twice (a 409 and a GET each) nor retires or deletes
    one twice."""
    now = time.monotonic()
    seen = {p.name: p for p in pods}
    for name, expected in list(state.created.items()):
        if not expected.counts(name in seen, shared.seen, now):
            del state.created[name]
    for name, at in list(state.deleted.items()):
        if name not in seen or seen[name].terminating or now - at > OBJECT_EXPECTATION_SECONDS:
            del state.deleted[name]
    views = [dataclasses.replace(p, terminating=True, ready=False) if p.name in state.deleted else p for p in pods]
    return (*views, *(expected.view for expected in state.created.values()))


def scheduler_api(observation: Observation) -> SchedulerAPI | None:
    ready = observation.ready_scheduler
    return SchedulerAPI(f"http://{ready.ip}:{SETTINGS.dashboard_port}") if ready is not None else None


def _idle_for(state: ClusterMemo, busy: bool, reported: float | None) -> float | None:
    """Seconds idle: as the scheduler measured them, else on this operator's clock from its first idle answer."""
    if busy:
        state.idle_seen_at = None
        return None
    if reported is not None:
        return reported
    if state.idle_seen_at is None:
        state.idle_seen_at = time.monotonic()
    return time.monotonic() - state.idle_seen_at


def _ask_scheduler(api: SchedulerAPI | None, cluster: ClusterSpec, state: ClusterMemo,
                   logger: kopf.Logger) -> SchedulerAnswers:
    """The questions this cluster's round needs answered; an unanswered one stays None."""
    if api is None:
        return SchedulerAnswers()
    now = time.monotonic()
    asked = questions(cluster, versions_due=now - state.versions_asked_at >= VERSIONS_EVERY)
    answers: dict[str, Any] = {}
    try:
        if asked.adaptive_target:
            answers["adaptive_target"] = api.adaptive_target()
        if asked.worker_names:
            answers["worker_names"] = tuple(api.worker_names())
        if asked.idleness:
            busy, reported = api.idle_for()
            answers.update(busy=busy, idle_for=_idle_for(state, busy, reported))
    except SchedulerUnavailable as exc:
        logger.info("scheduler did not answer: %s", exc)
        return SchedulerAnswers(**answers, reachable=False, error=str(exc))
    if asked.versions:
        state.versions_asked_at = now
        try:
            answers["versions"] = api.versions()
        except SchedulerUnavailable as exc:  # a question on the side: its answer missing is no unresponsive scheduler
            logger.info("scheduler did not report its versions: %s", exc)
    return SchedulerAnswers(**answers, reachable=True)


def _retire_outcome(state: ClusterMemo) -> tuple[RetireOutcome | None, bool]:
    """The retire call that finished since the last round (collected once), and whether one is still in flight."""
    if state.retiring is None:
        return None, False
    request, call = state.retiring
    if not call.done():
        return None, True
    state.retiring = None
    try:
        return RetireOutcome(request, retired=tuple(call.result())), False
    except Exception as exc:  # the scheduler runs the tenant's image: whatever it did is this cluster's problem
        return RetireOutcome(request, error=str(exc) or type(exc).__name__), False


def observe(ref: ClusterRef, cluster: ClusterSpec | ParameterError, indexes: Indexes, state: ClusterMemo,
            shared: OperatorMemo, logger: kopf.Logger) -> tuple[Observation, SchedulerAPI | None]:
    key = (ref.namespace, ref.name)
    # Only the pods this cluster owns: one that merely carries its labels is not ours to count, scale or delete.
    listed = list(indexes.pods.get(key, []))
    owned = [p for p in listed if ref.uid in p["metadata"]["owners"]]
    seen = Observation(pods=_with_own_writes(pod_views(owned, time.time()), state, shared),
                       children=_children(ref, list(indexes.services.get(key, [])), state, shared),
                       last_posted=dict(state.last_posted), legacy=_legacy_schedulers(ref, listed))
    if isinstance(cluster, ParameterError):
        return seen, None
    api = scheduler_api(seen)
    outcome, retiring = _retire_outcome(state)
    return Observation(pods=seen.pods, children=seen.children, scheduler=_ask_scheduler(api, cluster, state, logger),
                       retire_outcome=outcome, retiring=retiring, last_posted=seen.last_posted,
                       legacy=seen.legacy), api


def _legacy_schedulers(ref: ClusterRef, listed: list[dict[str, Any]]) -> tuple[LegacyScheduler, ...]:
    """Scheduler pods of this cluster's name that the Deployment ``NAME-scheduler`` of an earlier operator made (its
    ReplicaSet owns them); whether that Deployment is this cluster's is checked when one is adopted."""
    found = []
    for pod in listed:
        legacy = pod.get("legacy")
        meta = pod["metadata"]
        if legacy is None or ref.uid in meta["owners"] or meta.get("deletionTimestamp") \
                or meta["labels"].get(COMPONENT_LABEL) != SCHEDULER \
                or not legacy["replica_set"].startswith(f"{ref.scheduler_name}-"):
            continue
        view = pod_view(pod, time.time())
        found.append(LegacyScheduler(view.name, legacy["replica_set"], legacy["signature"], view.ready))
    return tuple(found)


def edited_fields(diff: kopf.Diff) -> frozenset[str]:
    """Dotted spec fields an update changed (kopf's diff below ``spec``; a whole dict replaced counts per key)."""
    edited: set[str] = set()
    for item in diff:
        path = [str(p) for p in item.field if p != "spec"]
        old, new = item.old, item.new
        if isinstance(old, dict) and isinstance(new, dict):
            edited |= {".".join([*path, key]) for key in old.keys() | new.keys() if old.get(key) != new.get(key)}
        elif path:
            edited.add(".".join(path))
    return frozenset(edited)
