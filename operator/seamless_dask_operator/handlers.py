"""kopf handlers: observe, call :func:`decide.decide`, execute. No rule of the operator lives here.

create/update/resume and a daemon per cluster run the same round (:func:`_reconcile`): the daemon's
every interval, and soon after one of the cluster's pods changed;
delete removes the children at once. A bad spec ends in a Failed phase, a
condition and one Event per generation, never in an exception loop; API
failures become ``kopf.TemporaryError`` and are retried soon.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kopf
from urllib3.exceptions import HTTPError

from seamless_dask_runtime.identity import (
    CLUSTER_LABEL,
    FINALIZER,
    GROUP,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
    VERSION,
    is_worker_of,
)
from seamless_dask_runtime.parameters import ParameterError
from seamless_dask_runtime.status import Phase

from . import kube, metrics
from .api_client import API_FAILURES, ApiError
from .builders import ClusterRef, desired_children, operator_peer, scheduler_pod, worker_pod
from .decide import Decision, Event, Retire, decide, forbidden, name_clash, rejected
from .observation import ChildrenView, Observation, SchedulerAnswers, pod_views
from .persistence import CompactDiffBaseStorage
from .resource import ClusterSpec, parse_spec
from .scheduler_api import SchedulerAPI, SchedulerUnavailable
from .settings import SETTINGS

RESOURCE = (GROUP, VERSION, PLURAL)
OPERATOR_PEER = operator_peer(SETTINGS.pod_namespace, SETTINGS.pod_labels) if SETTINGS.pod_namespace else None


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # Events for problems, not for every log line
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    # Compacted: a copy of a large spec in an annotation made every patch fail, the finalizer's removal too.
    settings.persistence.diffbase_storage = CompactDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = SETTINGS.request_timeout
    # Sync handlers wait on the API and the schedulers, not the CPU: many threads, many clusters at once.
    settings.execution.max_workers = SETTINGS.handler_threads
    # The operator-wide memo is shallow-copied into every resource's memo: the rounds of the daemons run in
    # kopf's own thread pool, and a pod's event finds its cluster's daemon in the one shared dict.
    memo.executor = settings.execution.executor
    memo.wake = {}
    metrics.serve(SETTINGS.metrics_port)


# -- observe ------------------------------------------------------------------

def _pod_status_summary(status: dict[str, Any]) -> dict[str, Any]:
    """What readiness and pod problems are read from; the rest of a pod's status is not kept."""
    def container(c: dict[str, Any]) -> dict[str, Any]:
        return {key: c.get(key) for key in ("name", "ready", "restartCount", "state", "lastState")}

    return {
        "podIP": status.get("podIP"),
        "phase": status.get("phase"),
        "reason": status.get("reason"),
        "message": status.get("message"),
        "conditions": list(status.get("conditions") or []),
        "initContainerStatuses": [container(c) for c in status.get("initContainerStatuses") or []],
        "containerStatuses": [container(c) for c in status.get("containerStatuses") or []],
    }


@kopf.index("pods", labels={MANAGED_BY_LABEL: MANAGED_BY, CLUSTER_LABEL: kopf.PRESENT})
def cluster_pods(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Our pods by (namespace, cluster), kept current by one watch: no LIST per reconcile."""
    pod = {
        "metadata": {
            "name": body["metadata"]["name"],
            "labels": dict(labels),
            "annotations": dict(body["metadata"].get("annotations") or {}),
            "deletionTimestamp": body["metadata"].get("deletionTimestamp"),
            "owners": _owner_uids(body),
        },
        "status": _pod_status_summary(body.get("status") or {}),
    }
    return {(namespace, labels[CLUSTER_LABEL]): pod}


def _owner_uids(body: kopf.Body) -> list[str]:
    return [o.get("uid") for o in body["metadata"].get("ownerReferences") or []]


@kopf.index("v1", "services", labels={MANAGED_BY_LABEL: MANAGED_BY, CLUSTER_LABEL: kopf.PRESENT})
def cluster_services(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Our scheduler Services, kept current by one watch: a Service deleted or edited is seen."""
    spec = body.get("spec") or {}
    return {(namespace, labels[CLUSTER_LABEL]): {
        "name": body["metadata"]["name"],
        "owners": _owner_uids(body),
        "service": {k: spec.get(k) for k in ("type", "ports", "selector")},
    }}


def _children(ref: ClusterRef, services: list[dict[str, Any]]) -> ChildrenView:
    service = next((s for s in services if s["name"] == ref.scheduler_name and ref.uid in s["owners"]), None)
    return ChildrenView(service=None if service is None else service["service"])


def _scheduler_api(observation_pods: Observation) -> SchedulerAPI | None:
    ready = observation_pods.ready_scheduler
    return SchedulerAPI(f"http://{ready.ip}:{SETTINGS.dashboard_port}") if ready is not None else None


def _ask_scheduler(api: SchedulerAPI | None, cluster: ClusterSpec, logger: logging.Logger) -> SchedulerAnswers:
    """The questions this cluster's round needs answered; an unanswered one stays None."""
    if api is None:
        return SchedulerAnswers()
    batch = cluster.params.cluster is not None
    answers: dict[str, Any] = {"reachable": True}
    try:
        if cluster.options.adaptive or batch:
            answers["adaptive_target"] = api.adaptive_target()
        answers["worker_names"] = tuple(api.worker_names())
        idle_since = api.idle_since()
        answers["busy"] = idle_since is None
        answers["idle_since"] = idle_since
    except SchedulerUnavailable as exc:
        logger.info("scheduler did not answer: %s", exc)
        answers["reachable"] = False
    return SchedulerAnswers(**answers)


def _observe(ref: ClusterRef, cluster: ClusterSpec | ParameterError, indexes: Indexes,
             logger: logging.Logger) -> tuple[Observation, SchedulerAPI | None]:
    key = (ref.namespace, ref.name)
    # Only the pods this cluster owns: one that merely carries its labels is not ours to count, scale or delete.
    owned = [p for p in indexes.pods.get(key, []) if ref.uid in p["metadata"]["owners"]]
    seen = Observation(pods=pod_views(owned, time.time()),
                       children=_children(ref, list(indexes.services.get(key, []))))
    if isinstance(cluster, ParameterError):
        return seen, None
    api = _scheduler_api(seen)
    return Observation(pods=seen.pods, children=seen.children, scheduler=_ask_scheduler(api, cluster, logger)), api


@dataclass(frozen=True)
class Indexes:
    """kopf's indexes of our pods and scheduler Services, by (namespace, cluster)."""

    pods: kopf.Index[Any, Any]
    services: kopf.Index[Any, Any]


# -- act ----------------------------------------------------------------------

def _post(body: kopf.Body, event: Event, memo: kopf.Memo) -> None:
    if event.at_most_every is not None:
        last_posted: dict[str, float] = memo.setdefault("last_posted", {})
        now = time.monotonic()
        if now - last_posted.get(event.reason, -event.at_most_every) < event.at_most_every:
            return
        last_posted[event.reason] = now
    # kopf.event, not kopf.info/warn: those are filtered by the posting level, and these Events are for users.
    kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if event.type == "Warning":
        metrics.ERRORS.labels("cluster", event.reason).inc()


# A retire call lasts as long as the scheduler takes to move the workers' memory (up to retireTimeout): it runs
# here, never in kopf's handler threads, so slow schedulers cannot starve the rounds of other clusters. One call
# per cluster at most; threads that wait on a socket cost little, so many clusters retire at once, none queued
# behind another's slow scheduler (up to this many).
RETIRE_THREADS = 256
_retirer = ThreadPoolExecutor(max_workers=RETIRE_THREADS, thread_name_prefix="retire")


def _call_retire(api: SchedulerAPI, retire: Retire) -> list[str]:
    # retire.timeout is spec.workers.retireTimeout, which the model bounds (MAX_RETIRE_TIMEOUT).
    retired = api.retire_named(list(retire.names), retire.timeout) if retire.names else []
    if retire.count:
        retired += api.retire(retire.count, retire.timeout)
    return retired


def _retire(body: kopf.Body, ref: ClusterRef, api: SchedulerAPI | None, decision: Decision, memo: kopf.Memo) -> None:
    """Start the decided retirement, or finish the one under way: one call in flight per cluster.

    Retire first, then delete: only the pods the scheduler says it retired are deleted, by the first round
    that finds the call finished. That round asks for nothing more: it decided on pods it has just deleted.
    """
    # Rounds of one cluster never overlap (_round_lock): one call in flight, harvested once.
    pending: tuple[Retire, Future[list[str]]] | None = memo.get("retiring")
    if pending is None:
        if decision.retire is not None and api is not None:
            memo["retiring"] = (decision.retire, _retirer.submit(_call_retire, api, decision.retire))
        return
    if not pending[1].done():
        return
    memo["retiring"] = None
    _retired(body, ref, *pending, memo)


def _retired(body: kopf.Body, ref: ClusterRef, retire: Retire, call: Future[list[str]], memo: kopf.Memo) -> None:
    try:
        retired = call.result()
    except SchedulerUnavailable as exc:
        _post(body, Event("Warning", "RetireFailed", f"could not retire workers within {retire.timeout:g} s "
                                                     f"({exc}); they keep running", 60.0), memo)
        return
    for name in retired:
        if is_worker_of(ref.name, name):  # the scheduler may know workers that are not our pods
            kube.delete_pod(ref.namespace, name)
    wanted = len(retire.names) + retire.count
    if len(retired) < wanted:
        _post(body, Event("Warning", "RetireIncomplete",
                          f"scheduler retired {len(retired)} of {wanted} workers; retrying", 60.0), memo)


def _execute(body: kopf.Body, ref: ClusterRef, cluster: ClusterSpec | ParameterError, decision: Decision,
             api: SchedulerAPI | None, patch: kopf.Patch, memo: kopf.Memo, logger: logging.Logger) -> None:
    # kopf runs the delete handler while a round may still be under way: that round creates nothing more.
    def deleting() -> bool:
        return bool(memo.get("deleting")) or ref.uid in ORPHANED

    if isinstance(cluster, ClusterSpec):
        if decision.apply_children:
            if cluster.options.tls and not deleting():
                recorded = (body.get("status") or {}).get("tlsSecretUid")
                uid = kube.ensure_tls_secret(ref, recorded)
                if uid != recorded:
                    patch.status["tlsSecretUid"] = uid
            for obj in desired_children(ref, cluster, OPERATOR_PEER):
                if deleting():
                    return
                kube.apply(obj, ref.uid)
        if decision.create_scheduler is not None:
            if deleting():
                return
            kube.create_pod(scheduler_pod(ref, cluster, decision.create_scheduler), ref.uid)
        for index in decision.create_workers:
            if deleting():
                return
            kube.create_pod(worker_pod(ref, cluster, index, decision.worker_template), ref.uid)
    for name in decision.delete_pods:
        kube.delete_pod(ref.namespace, name)
    _retire(body, ref, api, decision, memo)
    if decision.delete_cluster:
        logger.warning("deleting idle cluster %s/%s", ref.namespace, ref.name)
        kube.delete_cluster(ref)
    _report(body, ref, decision, patch, memo)


def _report(body: kopf.Body, ref: ClusterRef, decision: Decision, patch: kopf.Patch, memo: kopf.Memo) -> None:
    """What every round ends with, acted or not: its Events, metrics and ``.status``."""
    for event in decision.events:
        _post(body, event, memo)
    metrics.record_status(ref.namespace, ref.name, decision.status)
    if decision.write_status:
        patch.status.update(decision.status)


REFUSALS = (400, 422)  # the request itself is wrong: retrying the same spec cannot help
FORBIDDEN = 403


def _api_message(exc: ApiError) -> str:
    """The API server's own words (it names the field), not the whole response."""
    import json

    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"the API server refused a child object ({exc.status} {exc.reason}): {message or exc.body}"


def _api_errors_are_temporary(exc: Exception, handler: str) -> kopf.TemporaryError:
    # 409/429/5xx, dropped connections, timeouts: kopf retries soon; the resource keeps its state.
    if isinstance(exc, ApiError):
        metrics.ERRORS.labels(handler, str(exc.status)).inc()
        return kopf.TemporaryError(f"Kubernetes API {exc.status}: {exc.reason}", delay=5)
    metrics.ERRORS.labels(handler, "connection").inc()
    return kopf.TemporaryError(f"Kubernetes API unreachable: {exc}", delay=2)


def _reconcile(handler: str, body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
               memo: kopf.Memo, logger: logging.Logger, indexes: Indexes, *, spec_changed: bool,
               edited: frozenset[str] = frozenset()) -> None:
    metrics.RECONCILES.labels(handler).inc()
    ref = ClusterRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    if ref.uid in ORPHANED:
        return
    cluster: ClusterSpec | ParameterError
    try:
        cluster = parse_spec(body.get("spec") or {}, SETTINGS.pod_policy, name=ref.name,
                             default_image=SETTINGS.default_image)
    except ParameterError as exc:
        cluster = exc
    try:
        observation, api = _observe(ref, cluster, indexes, logger)
        decision = decide(ref, cluster, observation, dict(status), meta.get("generation", 0), time.time(),
                          spec_changed=spec_changed, edited=edited)
        _execute(body, ref, cluster, decision, api, patch, memo, logger)
    except ApiError as exc:
        if exc.status == FORBIDDEN:
            # A quota or a missing right: Failed with the API's words, said once, tried again every round.
            _report(body, ref, forbidden(ref, _api_message(exc), dict(status), meta.get("generation", 0),
                                         time.time()), patch, memo)
            return
        if exc.status not in REFUSALS:
            raise _api_errors_are_temporary(exc, handler) from exc
        # What this spec makes is invalid to the API server: say so, and wait for a new spec.
        _report(body, ref, rejected(ref, _api_message(exc), dict(status), meta.get("generation", 0), time.time()),
                patch, memo)
    except kube.ForeignObject as exc:
        # A name clash: Failed, said once; checked again every round (the other object may go).
        _report(body, ref, name_clash(ref, str(exc), dict(status), meta.get("generation", 0), time.time()),
                patch, memo)
    except HTTPError as exc:
        raise _api_errors_are_temporary(exc, handler) from exc


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@kopf.on.resume(*RESOURCE)
def apply_cluster(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo,
                  logger: logging.Logger, cluster_pods: kopf.Index[Any, Any],
                  cluster_services: kopf.Index[Any, Any], diff: kopf.Diff = (), **_: Any) -> None:
    """The spec is new or changed (or the operator restarted): apply the children, then a full round."""
    with _round_lock(memo):
        _reconcile("apply", body, meta, status, patch, memo, logger,
                   Indexes(cluster_pods, cluster_services), spec_changed=True,
                   edited=_edited_fields(diff))
        memo["applied_at"] = time.monotonic()


def _edited_fields(diff: kopf.Diff) -> frozenset[str]:
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


# -- follow: one daemon per cluster, a round every interval or soon after one of its pods changed ----------

# A woken round waits this long: a pod's changes come in bursts (scheduled, started, Ready), one round sees them.
WAKE_DEBOUNCE = 0.3
# ...and runs no sooner than this after an apply round, whose children the watches may not show yet.
AFTER_APPLY = 1.0


def _round_lock(memo: kopf.Memo) -> threading.Lock:
    """One round at a time per cluster: an apply round and a daemon round never see each other half-done."""
    lock: threading.Lock = memo.setdefault("round_lock", threading.Lock())
    return lock


@kopf.on.event("pods", labels={MANAGED_BY_LABEL: MANAGED_BY, CLUSTER_LABEL: kopf.PRESENT})
async def pod_changed(type: str | None, namespace: str, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    """A pod of ours changed (bound, Ready, failed, deleted): its cluster's round runs now, not a period later.

    Pods the operator creates (ADDED) and the initial listing (None) wake nothing: the round that made them
    knows.
    """
    if type not in ("MODIFIED", "DELETED"):
        return
    wake = memo.get("wake", {}).get((namespace, labels[CLUSTER_LABEL]))
    if wake is not None:
        wake.set()


async def _woken_or_due(wake: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> bool:
    """Wait for the interval, a pod change or the stop; True when a pod change woke it."""
    waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    return wake.is_set()


@kopf.daemon(*RESOURCE, cancellation_timeout=SETTINGS.request_timeout)
async def follow_cluster(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, memo: kopf.Memo,
                         logger: logging.Logger, stopped: kopf.DaemonStopped, cluster_pods: kopf.Index[Any, Any],
                         cluster_services: kopf.Index[Any, Any], **_: Any) -> None:
    """Follow pods and the scheduler: scale, replace, time out, report; every interval, and when a pod changes.

    The body, meta and status kopf gives a daemon follow the resource; the round runs in kopf's handler threads
    and writes ``.status`` itself (kopf applies a daemon's patch only when it returns).
    """
    key = (meta["namespace"], meta["name"])
    wakers: dict[tuple[str, str], asyncio.Event] = memo.setdefault("wake", {})
    wake = wakers[key] = asyncio.Event()
    indexes = Indexes(cluster_pods, cluster_services)
    loop = asyncio.get_running_loop()
    try:
        delay = SETTINGS.reconcile_interval  # the create/resume round has just run
        waited_for_apply = False
        while not stopped:
            if await _woken_or_due(wake, stopped, delay):
                await asyncio.sleep(max(WAKE_DEBOUNCE, memo.get("applied_at", 0.0) + AFTER_APPLY - time.monotonic()))
            wake.clear()
            if stopped or meta.get("deletionTimestamp"):
                break
            if "applied_at" not in memo and not waited_for_apply:
                # Its create/resume round has not run yet (many clusters at once queue for the threads): the
                # children this round would miss are not drift. One period more; then the round runs anyway,
                # and repairs a cluster whose create kopf gave up on (its own patch refused, say).
                waited_for_apply = True
                continue
            # Copied context: kopf.event() and the per-object logger find their queue, as in kopf's own threads.
            run = functools.partial(contextvars.copy_context().run, _follow_round, body, meta, status, memo,
                                    logger, indexes)
            delay = await loop.run_in_executor(memo.get("executor"), run)
    finally:
        if wakers.get(key) is wake:
            del wakers[key]


def _follow_round(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, memo: kopf.Memo, logger: logging.Logger,
                  indexes: Indexes) -> float:
    """One round, its status written; the seconds until the next one (sooner after a failure kopf would retry)."""
    patch = kopf.Patch()
    with _round_lock(memo):
        try:
            _reconcile("observe", body, meta, status, patch, memo, logger, indexes, spec_changed=False)
        except kopf.TemporaryError as exc:
            logger.warning("round failed, again in %s s: %s", exc.delay, exc)
            return min(exc.delay or SETTINGS.reconcile_interval, SETTINGS.reconcile_interval)
        if patch.status:
            try:
                kube.patch_status(ClusterRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"]),
                                  dict(patch.status))
            except API_FAILURES as exc:
                logger.warning("status not written, again in %s s: %s", SETTINGS.reconcile_interval, exc)
    return SETTINGS.reconcile_interval


@kopf.on.delete(*RESOURCE)
def delete_cluster(meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Children go now, not when garbage collection gets to them; the resource goes after them.

    Meanwhile the phase says Stopping.

    Deletion always completes, so the finalizer is held only while an operator can act on it:

    * kopf needs it while the operator runs (its timers and daemons are stopped before the resource
      goes), and it buys the ordered deletion above: no child outlives its resource, whatever
      garbage collection's lag on a freshly installed CRD.
    * An operator that stops (scaled down, upgraded, uninstalled with ``kubectl``) takes its finalizer
      off every resource it served (:func:`release_on_shutdown`): deleting one while no operator runs
      completes at once, and garbage collection removes the children (they all carry an ownerReference);
      the next operator puts the finalizer back.
    * Deleting the CRD: the API server then refuses patches in discovery, so kopf stops serving the
      resource and no delete handler would ever run; :func:`crd_deleted` deletes the children of every
      resource and takes the finalizer off itself, and the CRD goes.

    An operator killed outright (SIGKILL, node lost) cannot release anything: deletions wait for the
    next operator, or ``kubectl patch sdc NAME --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'``.
    """
    memo["deleting"] = True
    patch.status.update({"phase": Phase.STOPPING.value, "reason": "Deleting",
                         "message": "deleting the scheduler, its Service and the workers"})
    metrics.forget(meta["namespace"], meta["name"])
    try:
        left = kube.delete_children_until_gone(ClusterRef(name=meta["name"], namespace=meta["namespace"],
                                                          uid=meta["uid"]), status.get("tlsSecretUid"))
    except API_FAILURES as exc:
        raise _api_errors_are_temporary(exc, "delete") from exc
    if left:
        raise kopf.TemporaryError(f"children keep coming back: {', '.join(left)}", delay=2)


# Resources whose CRD is being deleted: kopf no longer serves them, yet their timers may still run a round,
# which would make the children again; a round of one of these does nothing.
ORPHANED: set[str] = set()


def _release_all(logger: logging.Logger, *, delete_children: bool) -> int:
    """Take the finalizer off every resource this operator serves (their children deleted first, if asked)."""
    try:
        served = kube.clusters(SETTINGS.namespaces)
    except API_FAILURES as exc:
        logger.warning("could not list the SeamlessDaskClusters to release them: %s", exc)
        return 0
    refs = [ClusterRef(name=c["metadata"]["name"], namespace=c["metadata"]["namespace"], uid=c["metadata"]["uid"])
            for c in served]
    if delete_children:
        ORPHANED.update(ref.uid for ref in refs)
        # Twice: a round already past its check when the first pass ran may still have made a child.
        for tls_uids in ([(c.get("status") or {}).get("tlsSecretUid") for c in served], [None] * len(refs)):
            for ref, tls_uid in zip(refs, tls_uids, strict=True):
                _best_effort(logger, f"delete the children of {ref.namespace}/{ref.name}",
                             kube.delete_children, ref, tls_uid)
            time.sleep(0.5)
    return sum(bool(_best_effort(logger, f"release {ref.namespace}/{ref.name}", kube.release, cluster))
               for ref, cluster in zip(refs, served, strict=True))


def _best_effort(logger: logging.Logger, what: str, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except API_FAILURES as exc:  # one failing must not keep the others
        logger.warning("could not %s: %s", what, exc)
        return None


@kopf.on.cleanup()
def release_on_shutdown(logger: logging.Logger, **_: Any) -> None:
    """The operator stops: no resource keeps a finalizer that nobody would take off (see delete_cluster)."""
    released = _release_all(logger, delete_children=False)
    logger.info("released %d SeamlessDaskClusters for the time no operator runs", released)


CRD_NAME = f"{PLURAL}.{GROUP}"


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions",
               when=lambda name, **_: name == CRD_NAME)
def crd_deleted(meta: kopf.Meta, logger: logging.Logger, **_: Any) -> None:
    """The CRD is being deleted: kopf no longer serves its resources (see delete_cluster), so this does."""
    if not meta.get("deletionTimestamp"):
        return
    released = _release_all(logger, delete_children=True)
    logger.warning("CRD %s deleted: released %d SeamlessDaskClusters, their children deleted", CRD_NAME, released)
