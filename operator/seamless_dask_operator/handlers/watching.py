"""What the operator watches: its pods and scheduler Services (kopf indexes), and pod changes that wake a round.

One watch per kind keeps the indexes current, so a round lists nothing. The API server filters the
watches by our labels (:data:`SELECTOR`): other applications' pods in a watched namespace are never
streamed nor parsed. An index keeps only what a round reads of an object, not the object, and the
indexers are coroutines: they run on kopf's event loop at once, never queued behind handler threads
that wait on the API. kopf keeps the last body of every object whose worker idles: its ``managedFields``, which
nothing here reads, are dropped as each event arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from seamless_dask_runtime.model.identity import (
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    GROUP,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
    TEMPLATE_HASH_ANNOTATION,
    VERSION,
    WORKER_INDEX_LABEL,
)

from ..builders.objects import container_signature
from ..decide import children_view
from .memo import operator_memo

RESOURCE = (GROUP, VERSION, PLURAL)  # the SeamlessDaskClusters
OURS: dict[str, Any] = {MANAGED_BY_LABEL: MANAGED_BY, CLUSTER_LABEL: kopf.PRESENT}
# The same, as the server-side label selector of the pod and Service watches (kopf's labels= filter is
# applied by the operator, after the API server streamed everything).
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{CLUSTER_LABEL}"
WATCHED = (("v1", "pods"), ("v1", "services"))


def filter_watches_on_the_server(settings: kopf.OperatorSettings) -> None:
    for resource in WATCHED:
        settings.watching.label_selectors[resource] = SELECTOR


# What a round reads of a pod (decide/observation.py, pod_problems.py). With 1,000 clusters the index holds 3,000
# pods: their other labels, annotations, conditions and fields were most of each entry.
POD_LABELS = (CLUSTER_LABEL, COMPONENT_LABEL, WORKER_INDEX_LABEL)
POD_ANNOTATIONS = (TEMPLATE_HASH_ANNOTATION,)
POD_STATUS_FIELDS = ("podIP", "phase", "reason", "message")
CONDITIONS_READ = ("Ready", "PodScheduled")  # readiness; why a pod is not scheduled
CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")
CONTAINER_FIELDS = ("name", "ready", "restartCount")
CONTAINER_STATES = ("waiting", "terminated")  # a running container's state says nothing a round reads


def _picked(mapping: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The given keys of ``mapping`` that have a value (a round reads them with ``.get``: absent is None)."""
    return {key: mapping[key] for key in keys if mapping.get(key) is not None}


def drop_managed_fields(event: kopf.RawEvent) -> None:
    """Drop the object's ``managedFields`` from kopf's raw event, which kopf keeps as the object's last body while
    its worker idles: half of a cluster's body (four field managers), read by nobody here."""
    metadata: Any = (event.get("object") or {}).get("metadata")  # a TypedDict that does not list the field
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)


def _container_summary(container: dict[str, Any]) -> dict[str, Any]:
    summary = _picked(container, CONTAINER_FIELDS)
    state = _picked(container.get("state") or {}, CONTAINER_STATES)
    last = _picked(container.get("lastState") or {}, ("terminated",))
    if state:
        summary["state"] = state
    if last:
        summary["lastState"] = last
    return summary


def _pod_status_summary(status: dict[str, Any]) -> dict[str, Any]:
    """What readiness and pod problems are read from; the rest of a pod's status is not kept."""
    summary = _picked(status, POD_STATUS_FIELDS)
    conditions = [_picked(c, CONDITION_FIELDS) for c in status.get("conditions") or []
                  if c.get("type") in CONDITIONS_READ]
    if conditions:
        summary["conditions"] = conditions
    for kind in ("initContainerStatuses", "containerStatuses"):
        if status.get(kind):
            summary[kind] = [_container_summary(c) for c in status[kind]]
    return summary


def owner_uids(body: Mapping[str, Any]) -> list[str]:
    return [o.get("uid") for o in body["metadata"].get("ownerReferences") or []]


def _made_elsewhere(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A pod an earlier operator's Deployment made (owned by a ReplicaSet, no template hash of ours): which one, and
    what it runs, so that it can be adopted (see decide/scheduler.py)."""
    owners = body["metadata"].get("ownerReferences") or []
    replica_set = next((o.get("name") for o in owners if o.get("kind") == "ReplicaSet"), None)
    containers = (body.get("spec") or {}).get("containers") or []
    if replica_set is None or not containers:
        return None
    return {"replica_set": replica_set, "signature": container_signature(dict(containers[0]))}


def pod_entry(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the pod index keeps of a pod: the fields a round reads (decide/observation.py, pod_problems.py)."""
    metadata = body["metadata"]
    pod = {
        "metadata": {
            "name": metadata["name"],
            "labels": _picked(metadata.get("labels") or {}, POD_LABELS),
            "annotations": _picked(metadata.get("annotations") or {}, POD_ANNOTATIONS),
            "owners": owner_uids(body),
        },
        "status": _pod_status_summary(body.get("status") or {}),
    }
    if metadata.get("deletionTimestamp"):
        pod["metadata"]["deletionTimestamp"] = metadata["deletionTimestamp"]
    legacy = _made_elsewhere(body)
    if legacy is not None:
        pod["legacy"] = legacy
    return pod


@kopf.index("v1", "pods", labels=OURS)
async def cluster_pods(namespace: str | None, labels: kopf.Labels, body: kopf.Body, memo: kopf.Memo,
                       **_: Any) -> dict[Any, Any]:
    """Our pods by (namespace, cluster), kept current by one watch: no LIST per reconcile."""
    operator_memo(memo).saw(body["metadata"]["uid"])
    return {(namespace, labels[CLUSTER_LABEL]): pod_entry(body)}


@kopf.index("v1", "services", labels=OURS)
async def cluster_services(namespace: str | None, labels: kopf.Labels, body: kopf.Body, memo: kopf.Memo,
                           **_: Any) -> dict[Any, Any]:
    """Our scheduler Services, kept current by one watch: a Service deleted or edited is seen."""
    operator_memo(memo).saw(body["metadata"]["uid"])
    return {(namespace, labels[CLUSTER_LABEL]): {
        "name": body["metadata"]["name"],
        "owners": owner_uids(body),
        "view": children_view(body),
    }}


@dataclass(frozen=True)
class Indexes:
    """kopf's indexes of our pods and scheduler Services, by (namespace, cluster)."""

    pods: kopf.Index[Any, Any]
    services: kopf.Index[Any, Any]

    @classmethod
    def of(cls, handler_kwargs: dict[str, Any]) -> Indexes:
        """kopf passes each index to a handler as a keyword argument named after its function."""
        return cls(pods=handler_kwargs["cluster_pods"], services=handler_kwargs["cluster_services"])


@kopf.on.event("v1", "pods", labels=OURS)
@kopf.on.event("v1", "services", labels=OURS)
async def child_changed(type: str, event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels,
                        body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A pod of ours changed (bound, Ready, failed, deleted), or a scheduler Service (edited, deleted): its
    cluster's round runs now, not a period later (a steady cluster's period is long: decide/pacing.py).

    Objects the operator creates (ADDED) and the initial listing (None) wake nothing: the round that made them
    knows.
    """
    drop_managed_fields(event)
    follower = operator_memo(memo).follower
    if type not in ("MODIFIED", "DELETED") or follower is None:
        return
    # Not for the children of a former cluster of this name (deleted and made again): woken by their deletion, the
    # new one's first round would run before its create round, while they still exist.
    clusters = [o.get("uid") for o in body["metadata"].get("ownerReferences") or [] if o.get("kind") == KIND]
    follower.wake((namespace or "", labels[CLUSTER_LABEL]), clusters)
