"""The pod index keeps a slim entry per pod (issue 23: 3,000 pods at N=1000): a round must see in it exactly what it
would see in the whole pod, whatever state the pod is in (pure; pods as the API server returns them)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from seamless_dask_operator.decide.observation import pod_view
from seamless_dask_operator.handlers.watching import drop_managed_fields, pod_entry

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
RECENT, LONG_AGO = "2027-01-15T07:58:00Z", "2027-01-14T07:58:00Z"
CLUSTER_UID = "5b0c6c4e-0000-4000-8000-000000000001"


def _condition(kind: str, status: str = "True", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": LONG_AGO, **extra}


def _pod(component: str = "worker", index: str = "3", **status: Any) -> dict[str, Any]:
    """A pod of ours as the API returns it: every label, annotation and field manager the real ones carry."""
    name = "c-scheduler" if component == "scheduler" else f"c-worker-{index}"
    labels = {"app.kubernetes.io/component": component, "app.kubernetes.io/instance": "c",
              "app.kubernetes.io/managed-by": "seamless-dask-operator", "app.kubernetes.io/name": "seamless-dask",
              "dask.org/cluster-name": "c", "dask.org/component": component}
    if component == "worker":
        labels["seamless.dask.org/worker-index"] = index
    body: dict[str, Any] = {
        "metadata": {
            "name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "4711",
            "creationTimestamp": LONG_AGO, "labels": labels,
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
                            "karpenter.sh/do-not-disrupt": "true", "seamless.dask.org/template-hash": "71bb780f7821"},
            "ownerReferences": [{"apiVersion": "seamless.dask.org/v1beta1", "kind": "SeamlessDaskCluster", "name": "c",
                                 "uid": CLUSTER_UID, "controller": True, "blockOwnerDeletion": True}],
            "managedFields": [{"manager": "kubelet", "operation": "Update", "subresource": "status",
                               "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {}}}}],
        },
        "spec": {"containers": [{"name": component, "image": "ghcr.io/seamless-dask/seamless-dask-runtime:0.1.0"}]},
        "status": {
            "phase": "Running", "podIP": "10.1.2.3", "hostIP": "10.0.0.7", "qosClass": "Burstable",
            "startTime": LONG_AGO, "podIPs": [{"ip": "10.1.2.3"}],
            "conditions": [_condition("PodReadyToStartContainers"), _condition("Initialized"),
                           _condition("ContainersReady"), _condition("Ready"), _condition("PodScheduled")],
            "containerStatuses": [{"name": component, "ready": True, "restartCount": 0, "started": True,
                                   "image": "x", "imageID": "x", "containerID": "containerd://x",
                                   "state": {"running": {"startedAt": LONG_AGO}}, "lastState": {}}],
        },
    }
    body["status"].update(status)
    return body


def _not_ready(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"]["conditions"][3]["status"] = "False"
    return pod


def _terminating(pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["deletionTimestamp"] = RECENT
    return pod


def _made_by_a_deployment(pod: dict[str, Any]) -> dict[str, Any]:
    pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "c-scheduler-5d9f", "uid": "rs"}]
    del pod["metadata"]["annotations"]["seamless.dask.org/template-hash"]
    return pod


PODS = {
    "scheduler ready": _pod("scheduler"),
    "worker ready": _pod(),
    "worker not ready": _not_ready(_pod()),
    "unschedulable": _pod(phase="Pending", podIP=None, containerStatuses=[], conditions=[
        _condition("PodScheduled", "False", reason="Unschedulable",
                   message="0/3 nodes are available: 3 Insufficient memory.", lastTransitionTime=RECENT)]),
    "out of memory a moment ago": _not_ready(_pod(containerStatuses=[{
        "name": "worker", "ready": False, "restartCount": 2, "started": False, "image": "x", "imageID": "x",
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}},
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": RECENT}}}])),
    "image cannot be pulled": _pod(phase="Pending", containerStatuses=[{
        "name": "worker", "ready": False, "restartCount": 0, "image": "x:nope", "imageID": "",
        "state": {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:nope"'}},
        "lastState": {}}]),
    "evicted": _pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory."),
    "terminating": _terminating(_pod()),
    "made by an earlier operator's Deployment": _made_by_a_deployment(_pod("scheduler")),
}


@pytest.mark.parametrize("name", PODS)
def test_a_round_sees_in_the_entry_what_it_sees_in_the_pod(name: str) -> None:
    pod = PODS[name]
    entry = pod_entry(pod)
    assert pod_view(entry, NOW) == pod_view(pod, NOW)
    assert entry["metadata"]["owners"] == [o["uid"] for o in pod["metadata"]["ownerReferences"]]


def test_the_entry_keeps_only_what_a_round_reads() -> None:
    entry = pod_entry(PODS["worker ready"])
    assert set(entry["metadata"]["labels"]) == {"dask.org/cluster-name", "dask.org/component",
                                                "seamless.dask.org/worker-index"}
    assert entry["metadata"]["annotations"] == {"seamless.dask.org/template-hash": "71bb780f7821"}
    assert set(entry["status"]["conditions"][0]) == {"type", "status", "lastTransitionTime"}
    assert [c["type"] for c in entry["status"]["conditions"]] == ["Ready", "PodScheduled"], \
        "of five conditions, the two a round reads"
    assert entry["status"]["containerStatuses"] == [{"name": "worker", "ready": True, "restartCount": 0}], \
        "a running container: nothing of its state"
    assert "managedFields" not in json.dumps(entry) and "spec" not in entry


def test_an_earlier_operators_scheduler_can_still_be_adopted() -> None:
    entry = pod_entry(PODS["made by an earlier operator's Deployment"])
    assert entry["legacy"]["replica_set"] == "c-scheduler-5d9f"
    assert "legacy" not in pod_entry(PODS["scheduler ready"])


def test_kopf_keeps_bodies_without_their_field_managers() -> None:
    event: Any = {"type": "MODIFIED", "object": copy.deepcopy(PODS["worker ready"])}
    kept = event["object"]  # the dict kopf keeps as the object's body
    drop_managed_fields(event)
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["labels"] == PODS["worker ready"]["metadata"]["labels"]
    drop_managed_fields({"type": "DELETED", "object": {}})  # nothing to drop: no error
