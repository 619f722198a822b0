"""Carry out a round's :class:`Plan`, action by action, and nothing else: no rule of the operator lives here.

What the API server refuses comes back as a :class:`Refusal` (decide says what it means); any other
API failure is a ``kopf.TemporaryError``, retried soon.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf
from urllib3.exceptions import HTTPError

from .. import kube, metrics
from ..api_client import ApiError
from ..builders import ClusterRef
from ..decide import (
    AdoptScheduler,
    ApplyChild,
    CreatePod,
    DeleteCluster,
    DeletePod,
    EnsureTlsSecret,
    PatchStatus,
    PinImage,
    Plan,
    PodView,
    PostEvent,
    PromoteScheduler,
    Refusal,
    RefusalKind,
    Retire,
    api_message,
    children_view,
    pod_view,
    refusal_kind,
)
from ..scheduler_api import SchedulerAPI
from .memo import ClusterMemo, Expected, OperatorMemo


def temporary(exc: Exception, handler: str) -> kopf.TemporaryError:
    """409/429/5xx, dropped connections, timeouts: kopf retries soon; the resource keeps its state."""
    if isinstance(exc, ApiError):
        metrics.ERRORS.labels(handler, str(exc.status)).inc()
        return kopf.TemporaryError(f"Kubernetes API {exc.status}: {exc.reason}", delay=5)
    metrics.ERRORS.labels(handler, "connection").inc()
    return kopf.TemporaryError(f"Kubernetes API unreachable: {exc}", delay=2)


def _call_retire(api: SchedulerAPI, retire: Retire) -> list[str]:
    # retire.timeout is spec.workers.retireTimeout, which the model bounds (MAX_RETIRE_TIMEOUT).
    retired = api.retire_named(list(retire.names), retire.timeout) if retire.names else []
    if retire.count:
        retired += api.retire(retire.count, retire.timeout)
    return retired


def _as_seen(manifest: dict[str, Any], owner_uid: str) -> PodView:
    """A pod just created, as the next round would see it in the watch: not ready, not running yet."""
    meta = manifest["metadata"]
    return pod_view({"metadata": {**meta, "owners": [owner_uid]}, "status": {}}, time.time())


class Execution:
    """One round's actions against the API, the scheduler and kopf."""

    def __init__(self, body: kopf.Body, ref: ClusterRef, api: SchedulerAPI | None, patch: kopf.Patch,
                 state: ClusterMemo, shared: OperatorMemo, handler: str):
        self.body, self.ref, self.api, self.patch = body, ref, api, patch
        self.state, self.shared, self.handler = state, shared, handler

    def gone(self, uid: str) -> bool:
        return self.shared.live is not None and uid not in self.shared.live

    def deleting(self) -> bool:
        # kopf runs the delete handler while a round may still be under way: that round creates nothing more; nor
        # one whose resource is gone (a finalizer removed by hand): garbage collection would delete what it made.
        return self.state.deleting or self.ref.uid in self.shared.orphaned or self.gone(self.ref.uid)

    def run(self, plan: Plan) -> Refusal | None:
        """Every action in order; stops at a refusal, which it returns."""
        try:
            for action in plan:
                if isinstance(action, (ApplyChild, EnsureTlsSecret, CreatePod)) and self.deleting():
                    return None
                self._act(action)
            metrics.record_status(self.ref.namespace, self.ref.name, plan.status)
        except ApiError as exc:
            message = api_message(exc.status, exc.reason, exc.body)
            kind = refusal_kind(exc.status, message)
            if kind is None:
                raise temporary(exc, self.handler) from exc
            return Refusal(kind, message)
        except kube.ForeignObject as exc:
            owners = exc.cluster_owners()
            # Gone: not in the index of live clusters, or a former cluster of this one's name (a name is one object's
            # at a time: this one holds it now, which the index, a watch behind, may not show yet).
            if owners and all(self.gone(uid) or (name == self.ref.name and uid != self.ref.uid)
                              for uid, name in owners):
                # A leftover of a former SeamlessDaskCluster of this name (deleted and made again): garbage; not a
                # clash of names. Removed now, not when garbage collection gets to it.
                kube.delete_leftover(exc)
                raise kopf.TemporaryError(f"{exc.kind} {exc.name} is a leftover of a deleted SeamlessDaskCluster of "
                                          "this name: removed, again in a second", delay=1) from exc
            return Refusal(RefusalKind.NAME_CLASH, str(exc))
        except HTTPError as exc:
            raise temporary(exc, self.handler) from exc
        return None

    def _act(self, action: Any) -> None:
        if isinstance(action, PinImage):
            self.patch.spec["image"] = action.image
        elif isinstance(action, EnsureTlsSecret):
            kube.ensure_tls_secret(self.ref)
        elif isinstance(action, ApplyChild):
            applied = kube.apply(action.manifest, self.ref.uid, action.ours)
            if action.manifest["kind"] == "Service":
                self.state.service_applied = Expected(children_view(action.manifest), applied)
        elif isinstance(action, CreatePod):
            uid = kube.create_pod(action.manifest, self.ref.uid)
            if uid is not None:
                self.state.created[action.name] = Expected(_as_seen(action.manifest, self.ref.uid), uid)
        elif isinstance(action, DeletePod):
            kube.delete_pod(self.ref.namespace, action.name)
            self.state.deleted[action.name] = time.monotonic()
        elif isinstance(action, AdoptScheduler):
            kube.adopt_scheduler(self.ref, action.pod, action.replica_set, action.template_hash)
        elif isinstance(action, PromoteScheduler):
            kube.promote_scheduler(self.ref.namespace, action.name)
        elif isinstance(action, Retire):
            if self.api is not None and self.state.retiring is None:
                self.state.retiring = (action, self.shared.retirer.submit(_call_retire, self.api, action))
        elif isinstance(action, DeleteCluster):
            logging.getLogger(__name__).warning("deleting idle cluster %s/%s", self.ref.namespace, self.ref.name)
            kube.delete_cluster(self.ref)
        elif isinstance(action, PostEvent):
            self._post(action)
        elif isinstance(action, PatchStatus):
            self.patch.status.update(action.status)
            self.state.written_status = (time.monotonic(), dict(action.status))
        else:  # pragma: no cover - a new action without its branch here
            raise TypeError(f"no executor for {action!r}")

    def _post(self, event: PostEvent) -> None:
        # kopf.event, not kopf.info/warn: those are filtered by the posting level, and these Events are for users.
        kopf.event(self.body, type=event.type, reason=event.reason, message=event.message)
        self.state.last_posted[event.reason] = time.time()
        if event.type == "Warning":
            metrics.ERRORS.labels("cluster", event.reason).inc()
