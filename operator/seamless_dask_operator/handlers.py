"""kopf handlers: read the resource, call the pure core, write children and ``.status``.

create/update/resume apply the scheduler Deployment and Service; a timer
observes pods and the scheduler, scales workers (replicas or the scheduler's
adaptive target, retiring before deleting), enforces the idle timeout and
writes status. Bad specs end in a Failed phase, a condition and one Event per
generation — never in an exception loop.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from seamless_dask_runtime.parameters import ParameterError

from . import kube, metrics
from .builders import ClusterRef, desired_children, worker_pod
from .builders.objects import CLUSTER_LABEL, COMPONENT_LABEL, MANAGED_BY, TEMPLATE_HASH, template_hash
from .builders.workers import INDEX_LABEL, worker_template
from .resource import GROUP, PLURAL, VERSION, ClusterSpec, desired_workers, parse_spec
from .scaling import WorkerPod, plan_workers
from .scheduler_api import SchedulerAPI, SchedulerUnavailable
from .settings import SETTINGS
from .status import Observed, status_patch

RESOURCE = (GROUP, VERSION, PLURAL)
# What the API (or the way to it) can throw at a handler; all of it is worth a retry.
API_FAILURES = (ApiException, HTTPError)
# Clusters whose deletion began (uids; a few bytes each, never reused). kopf runs
# on-delete handlers while a timer may still be finishing: that timer must not
# create again what the delete handler removes.
_DELETING: set[str] = set()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(meta: Any) -> ClusterRef:
    return ClusterRef(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])


def _is_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # Events for problems, not for every log line
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    # Sync handlers wait on the API, not the CPU: more threads, more clusters reconciled at once.
    settings.execution.max_workers = 32
    kube.load_configuration()
    metrics.serve(SETTINGS.metrics_port)


@kopf.index("pods", labels={"app.kubernetes.io/managed-by": MANAGED_BY, CLUSTER_LABEL: kopf.PRESENT})
def cluster_pods(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    """Our pods by (namespace, cluster), kept current by one watch: no LIST per reconcile."""
    pod = {
        "metadata": {
            "name": body["metadata"]["name"],
            "labels": dict(labels),
            "annotations": dict(body["metadata"].get("annotations") or {}),
            "deletionTimestamp": body["metadata"].get("deletionTimestamp"),
        },
        "status": {"podIP": (body.get("status") or {}).get("podIP"),
                   "conditions": list((body.get("status") or {}).get("conditions") or [])},
    }
    return {(namespace, labels[CLUSTER_LABEL]): pod}


def _indexed_pods(index: kopf.Index[Any, Any], ref: ClusterRef) -> list[dict[str, Any]]:
    return list(index.get((ref.namespace, ref.name), []))


def _parse_or_fail(body: Any, meta: Any, status: Any, patch: kopf.Patch) -> ClusterSpec | None:
    """The spec, or None after writing Failed status (and one Event per generation)."""
    try:
        return parse_spec(body.get("spec") or {})
    except ParameterError as exc:
        generation = meta.get("generation", 0)
        already_reported = status.get("observedGeneration") == generation and status.get("phase") == "Failed"
        if not already_reported:
            kopf.warn(body, reason="InvalidSpec", message=f"{exc}")
            metrics.ERRORS.labels("spec", "InvalidSpec").inc()
        observed = Observed(generation=generation, spec_error=str(exc))
        new_status = status_patch(_ref(meta), observed, dict(status), _now())
        patch.status.update(new_status)
        metrics.record_status(meta["namespace"], meta["name"], new_status)
        return None


def _api_errors_are_temporary(exc: Exception, handler: str) -> kopf.TemporaryError:
    # 409/429/5xx, dropped connections, timeouts: kopf retries soon; the resource keeps its state.
    if isinstance(exc, ApiException):
        metrics.ERRORS.labels(handler, str(exc.status)).inc()
        return kopf.TemporaryError(f"Kubernetes API {exc.status}: {exc.reason}", delay=5)
    metrics.ERRORS.labels(handler, "connection").inc()
    return kopf.TemporaryError(f"Kubernetes API unreachable: {exc}", delay=2)


@kopf.on.create(*RESOURCE)
@kopf.on.update(*RESOURCE, field="spec")
@kopf.on.resume(*RESOURCE)
def apply_cluster(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
                  logger: logging.Logger, cluster_pods: kopf.Index[Any, Any], **_: Any) -> None:
    """Scheduler Deployment + Service, then the first round of workers and status."""
    metrics.RECONCILES.labels("apply").inc()
    cluster = _parse_or_fail(body, meta, status, patch)
    if cluster is None:
        return
    ref = _ref(meta)
    try:
        if cluster.options.tls:
            kube.ensure_tls_secret(ref)
        for obj in desired_children(ref, cluster):
            if ref.uid in _DELETING:
                return
            kube.apply(obj)
        _converge(body, meta, status, patch, cluster, ref, logger, _indexed_pods(cluster_pods, ref),
                  children_applied=True)
    except API_FAILURES as exc:
        raise _api_errors_are_temporary(exc, "apply") from exc


@kopf.timer(*RESOURCE, interval=SETTINGS.reconcile_interval, initial_delay=SETTINGS.reconcile_interval,
            sharp=False)
def observe_cluster(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
                    logger: logging.Logger, cluster_pods: kopf.Index[Any, Any], **_: Any) -> None:
    """Follow pods and the scheduler: scale, replace, time out, report."""
    if meta.get("deletionTimestamp"):
        return
    metrics.RECONCILES.labels("observe").inc()
    cluster = _parse_or_fail(body, meta, status, patch)
    if cluster is None:
        return
    try:
        ref = _ref(meta)
        _converge(body, meta, status, patch, cluster, ref, logger, _indexed_pods(cluster_pods, ref))
    except API_FAILURES as exc:
        raise _api_errors_are_temporary(exc, "observe") from exc


@kopf.on.delete(*RESOURCE)
def delete_cluster(meta: kopf.Meta, logger: logging.Logger, **_: Any) -> None:
    """Children go now, not when garbage collection gets to them; the resource goes after them."""
    _DELETING.add(meta["uid"])
    metrics.forget(meta["namespace"], meta["name"])
    try:
        left = kube.delete_children_until_gone(_ref(meta))
    except API_FAILURES as exc:
        raise _api_errors_are_temporary(exc, "delete") from exc
    if left:
        raise kopf.TemporaryError(f"children keep coming back: {', '.join(left)}", delay=2)


def _converge(body: kopf.Body, meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch,
              cluster: ClusterSpec, ref: ClusterRef, logger: logging.Logger, pods: list[dict[str, Any]], *,
              children_applied: bool = False) -> None:
    schedulers = [p for p in pods if p["metadata"]["labels"].get(COMPONENT_LABEL) == "scheduler"
                  and not p["metadata"].get("deletionTimestamp")]  # a terminating scheduler is gone
    workers = [p for p in pods if p["metadata"]["labels"].get(COMPONENT_LABEL) == "worker"]
    if ref.uid in _DELETING:
        return
    if not schedulers and not children_applied and not kube.scheduler_deployment_exists(ref):
        # The Deployment makes its pod; if the Deployment itself was deleted, apply again.
        for obj in desired_children(ref, cluster):
            kube.apply(obj)
    ready_scheduler = next((p for p in schedulers if _is_ready(p)), None)
    api = None
    if ready_scheduler is not None and ready_scheduler.get("status", {}).get("podIP"):
        api = SchedulerAPI(f"http://{ready_scheduler['status']['podIP']}:{SETTINGS.dashboard_port}")

    adaptive_target = None
    if api is not None and cluster.options.adaptive:
        try:
            adaptive_target = api.adaptive_target()
        except SchedulerUnavailable as exc:
            logger.info("adaptive target unavailable: %s", exc)
    batch = cluster.params.cluster is not None  # workers are batch jobs the scheduler pod submits
    desired = 0 if batch else desired_workers(cluster, adaptive_target)

    current_hash = template_hash(worker_template(ref, cluster))
    observed_pods = [
        WorkerPod(
            name=p["metadata"]["name"],
            index=int(p["metadata"]["labels"].get(INDEX_LABEL, "0")),
            ready=_is_ready(p),
            template_hash=(p["metadata"].get("annotations") or {}).get(TEMPLATE_HASH),
            terminating=bool(p["metadata"].get("deletionTimestamp")),
        )
        for p in workers
    ]
    plan = plan_workers(observed_pods, desired, current_hash)
    for index in plan.create:
        if ref.uid in _DELETING:  # deleted while this round ran
            return
        kube.create_pod(worker_pod(ref, cluster, index))
    for name in plan.delete_unready:
        kube.delete_pod(ref.namespace, name)
    if plan.retire_count or plan.replace:
        _retire_then_delete(body, ref, api, plan.retire_count, plan.replace, cluster.options.retire_timeout)

    last_activity = _enforce_idle_timeout(body, ref, cluster, api, logger)
    workers_ready = sum(1 for p in observed_pods if p.ready)
    if batch:
        workers_ready, desired = _batch_workers(api)
    observed = Observed(
        generation=meta.get("generation", 0),
        scheduler_exists=bool(schedulers),
        scheduler_ready=ready_scheduler is not None,
        workers_ready=workers_ready,
        workers_desired=desired,
        last_activity=last_activity,
        tls=cluster.options.tls,
    )
    new_status = status_patch(ref, observed, dict(status), _now())
    metrics.record_status(ref.namespace, ref.name, new_status)
    if {k: status.get(k) for k in new_status} != new_status:
        patch.status.update(new_status)


def _batch_workers(api: SchedulerAPI | None) -> tuple[int, int]:
    """Connected batch-job workers and the scheduler's adaptive target (0, 0 while unreachable)."""
    if api is None:
        return 0, 0
    try:
        return len(api.worker_names()), api.adaptive_target()
    except SchedulerUnavailable:
        return 0, 0


_last_warned: dict[tuple[str, str, str], float] = {}


def _warn_sparingly(body: kopf.Body, reason: str, message: str, every: float = 60.0) -> None:
    """A condition seen on every timer round is one Event a minute, not one a second."""
    key = (body["metadata"]["namespace"], body["metadata"]["name"], reason)
    now = time.monotonic()
    if now - _last_warned.get(key, -every) >= every:
        _last_warned[key] = now
        kopf.warn(body, reason=reason, message=message)


def _retire_then_delete(body: kopf.Body, ref: ClusterRef, api: SchedulerAPI | None, count: int,
                        replace: list[str], timeout: float) -> None:
    """Results in worker memory move before any pod holding them is deleted."""
    if api is None:
        _warn_sparingly(body, "ScaleDownWaiting", "scheduler not ready: workers are kept until it can retire them")
        return
    try:
        retired = api.retire_named(replace, timeout) if replace else api.retire(count, timeout)
    except SchedulerUnavailable as exc:
        _warn_sparingly(body, "RetireFailed",
                        f"could not retire workers within {timeout:g} s ({exc}); they keep running")
        return
    for name in retired:
        if name.startswith(f"{ref.name}-worker-"):
            kube.delete_pod(ref.namespace, name)
    wanted = len(replace) or count
    if len(retired) < wanted:
        _warn_sparingly(body, "RetireIncomplete", f"scheduler retired {len(retired)} of {wanted} workers; retrying")


def _enforce_idle_timeout(body: kopf.Body, ref: ClusterRef, cluster: ClusterSpec,
                          api: SchedulerAPI | None, logger: logging.Logger) -> str | None:
    if api is None:
        return None
    try:
        idle_since = api.idle_since()
    except SchedulerUnavailable:
        return None
    if idle_since is None:
        return _now()
    timeout = cluster.params.timeout
    if timeout is not None and time.time() - idle_since >= timeout:
        kopf.info(body, reason="IdleTimeout", message=f"idle for {timeout:g} s: deleting the cluster")
        logger.warning("idle for %s s: deleting %s/%s", timeout, ref.namespace, ref.name)
        kube.delete_cluster(ref)
    return datetime.datetime.fromtimestamp(idle_since, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
