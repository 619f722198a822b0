"""The operator's and the clusters' lifecycle: startup settings, deletion, release on shutdown, the CRD deleted.

Deletion always completes, so the finalizer is held only while an operator can act on it:

* kopf needs it while the operator runs (the delete handler runs before the resource goes, after
  any follow round under way), and it buys the ordered deletion of :func:`delete_cluster`: no child
  outlives its resource, whatever garbage collection's lag on a freshly installed CRD.
* An operator that stops with no replica to follow it (its Deployment scaled to 0 or deleted, as the
  chart's uninstall hook does first; or no Deployment at all) takes its finalizer off every resource
  it served (:func:`release_on_shutdown`): deleting one while no operator runs completes at once, and
  garbage collection removes the children (they all carry an ownerReference); the next operator puts
  the finalizer back. A replica that stops while its Deployment still wants replicas (a rollout, a
  drain, a killed leader) releases nothing: another replica serves the resources at once, and a
  restart writes nothing.
* Deleting the CRD: the API server then refuses patches in discovery, so kopf stops serving the
  resource and no delete handler would ever run; :func:`crd_deleted` deletes the children of every
  resource and takes the finalizer off itself, and the CRD goes.

An operator killed outright (SIGKILL, node lost) cannot release anything: deletions wait for the
next operator, or ``kubectl patch sdc NAME --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]'``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from seamless_dask_runtime.model.identity import FINALIZER, GROUP, PLURAL

from .. import kopf_toggles, kube, metrics
from ..api_client import API_FAILURES
from ..builders import ClusterRef
from ..decide import stopping_status
from ..persistence import CompactDiffBaseStorage
from ..settings import SETTINGS
from .cluster_loop import RESOURCE, cluster_ref
from .executing import temporary
from .memo import OperatorMemo, cluster_memo, operator_memo
from .watching import filter_watches_on_the_server


@kopf.on.startup(errors=kopf.ErrorsMode.PERMANENT)  # a failed start stops the operator with its reason, now
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    settings.posting.level = logging.WARNING  # Events for problems, not for every log line
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    # Compacted: a copy of a large spec in an annotation made every patch fail, the finalizer's removal too.
    settings.persistence.diffbase_storage = CompactDiffBaseStorage(prefix=GROUP, key="last-handled-configuration")
    settings.watching.server_timeout = 300
    filter_watches_on_the_server(settings)
    settings.networking.request_timeout = SETTINGS.request_timeout
    # Sync handlers wait on the API and the schedulers, not the CPU: many threads, many clusters at once.
    settings.execution.max_workers = SETTINGS.handler_threads
    # Back-pressure on our clusters' watch stream once indexed: kopf processes at most this many of them at once,
    # the others wait as raw events (peak at N=1000, bench/README.md). A worker idle for a second lets its place go.
    if SETTINGS.event_workers < 0:  # would stop every cluster once indexed: refused, loudly
        raise kopf.PermanentError(f"SEAMLESS_DASK_OPERATOR_EVENT_WORKERS={SETTINGS.event_workers}: set how many "
                                  "SeamlessDaskClusters are processed at once (default 50), or 0 for no bound")
    if kopf_toggles.bound_once_indexed(GROUP, PLURAL, SETTINGS.event_workers or None):
        settings.queueing.idle_timeout = 1.0
    # The operator-wide memo is shallow-copied into every resource's memo: this one object is shared by all.
    shared = memo["operator"] = OperatorMemo(executor=settings.execution.executor, settings=settings,
                                             live=kwargs["live_clusters"])
    shared.nudger = asyncio.ensure_future(_nudge_stuck_deletions(kwargs["clusters_being_deleted"]))
    try:
        metrics.serve(SETTINGS.metrics_port)
    except OSError as exc:
        raise kopf.PermanentError(f"cannot serve metrics on port {SETTINGS.metrics_port}: {exc} (set "
                                  "SEAMLESS_DASK_OPERATOR_METRICS_PORT, the chart's metricsPort, to a free port; "
                                  "0 serves none)") from exc


@kopf.index(*RESOURCE)
async def live_clusters(uid: str, **_: Any) -> dict[str, bool]:
    """The SeamlessDaskClusters that exist, by uid: a write for one that is gone (or a former one of the same name)
    is never made."""
    return {uid: True}


@kopf.index(*RESOURCE)
async def clusters_being_deleted(namespace: str | None, name: str | None, meta: kopf.Meta,
                                 **_: Any) -> dict[Any, Any] | None:
    """The clusters whose deletion waits for this operator (deleted, the finalizer still on)."""
    if meta.get("deletionTimestamp") and FINALIZER in (meta.get("finalizers") or []):
        return {(namespace, name): meta["deletionTimestamp"]}
    return None


# kopf retries a failed delete handler by patching the resource after a delay; when that patch itself fails (a
# 409, a 5xx), nothing makes kopf look at the resource again, and its deletion waits for ever. A deletion still
# waiting after this long gets an annotation changed, which kopf sees as an event: the handler runs again.
STUCK_AFTER = 30.0
NUDGE_EVERY = 10.0


async def _nudge_stuck_deletions(deleting: kopf.Index[Any, Any]) -> None:
    while True:
        await asyncio.sleep(NUDGE_EVERY)
        now = time.time()
        for (namespace, name), stamps in list(deleting.items()):
            for stamp in stamps:
                if now - _epoch(stamp) > STUCK_AFTER:
                    await asyncio.to_thread(_best_effort, logging.getLogger(__name__), f"nudge {namespace}/{name}",
                                            kube.nudge, namespace, name)


def _epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@kopf.on.delete(*RESOURCE)
def delete_cluster(meta: kopf.Meta, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Children go now, not when garbage collection gets to them; the resource goes after them.

    Meanwhile the phase says Stopping.
    """
    state = cluster_memo(memo)
    with state.round_lock:  # a follow round under way ends first: it could still make a child
        state.deleting = True
    patch.status.update(stopping_status())
    metrics.forget(meta["namespace"], meta["name"])
    try:
        left = kube.delete_children_until_gone(cluster_ref(meta))
    except API_FAILURES as exc:
        raise temporary(exc, "delete") from exc
    if left:
        raise kopf.TemporaryError(f"children keep coming back: {', '.join(left)}", delay=2)


# Finalizers are released this many at a time: 1,000 clusters go in seconds, inside the pod's grace period.
RELEASE_THREADS = 32


def _release_all(logger: kopf.Logger, shared: OperatorMemo | None, *, delete_children: bool) -> int:
    """Take the finalizer off every resource this operator serves (their children deleted first, if asked)."""
    try:
        served = kube.clusters(SETTINGS.namespaces)
    except API_FAILURES as exc:
        logger.warning("could not list the SeamlessDaskClusters to release them: %s", exc)
        return 0
    refs = [ClusterRef(name=c["metadata"]["name"], namespace=c["metadata"]["namespace"], uid=c["metadata"]["uid"])
            for c in served]
    if delete_children:
        if shared is not None:
            shared.orphaned.update(ref.uid for ref in refs)
        # Twice: a round already past its check when the first pass ran may still have made a child.
        for _ in range(2):
            for ref in refs:
                _best_effort(logger, f"delete the children of {ref.namespace}/{ref.name}", kube.delete_children, ref)
            time.sleep(0.5)
    with ThreadPoolExecutor(max_workers=RELEASE_THREADS, thread_name_prefix="release") as pool:
        released = pool.map(lambda pair: bool(_best_effort(logger, f"release {pair[0].namespace}/{pair[0].name}",
                                                           kube.release, pair[1])), zip(refs, served, strict=True))
        return sum(released)


def _best_effort(logger: kopf.Logger, what: str, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except API_FAILURES as exc:  # one failing must not keep the others
        logger.warning("could not %s: %s", what, exc)
        return None


@kopf.on.cleanup()
async def release_on_shutdown(logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    """The operator stops: no resource keeps a finalizer that nobody would take off (see the module's doc)."""
    shared = operator_memo(memo)
    if shared.nudger is not None:
        shared.nudger.cancel()
    if shared.follower is not None:
        shared.follower.stop()
    await asyncio.to_thread(_release_unless_followed, logger)


def _release_unless_followed(logger: kopf.Logger) -> None:
    if kube.replicas_follow(SETTINGS.pod_namespace, SETTINGS.deployment_name):
        logger.info("another replica of %s serves the SeamlessDaskClusters: their finalizers stay",
                    SETTINGS.deployment_name)
        return
    started = time.monotonic()
    released = _release_all(logger, None, delete_children=False)
    logger.info("released %d SeamlessDaskClusters for the time no operator runs, in %.1f s", released,
                time.monotonic() - started)


CRD_NAME = f"{PLURAL}.{GROUP}"


@kopf.on.event("apiextensions.k8s.io", "v1", "customresourcedefinitions",
               when=lambda name, **_: name == CRD_NAME)
def crd_deleted(meta: kopf.Meta, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """The CRD is being deleted: kopf no longer serves its resources (see the module's doc), so this does."""
    if not meta.get("deletionTimestamp"):
        return
    released = _release_all(logger, operator_memo(memo), delete_children=True)
    logger.warning("CRD %s deleted: released %d SeamlessDaskClusters, their children deleted", CRD_NAME, released)
