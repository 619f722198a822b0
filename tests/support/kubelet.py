"""Kubelet stand-ins for an API server without kubelet: Nodes, Ready pods, a primed garbage collector."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .waiting import wait_for

SMP = "application/strategic-merge-patch+json"


# ------------------------------------------------------------------ kubelet stand-ins


def _core(api: k8s.CoreV1Api | k8s.ApiClient) -> k8s.CoreV1Api:
    return api if isinstance(api, k8s.CoreV1Api) else k8s.CoreV1Api(api)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_node_ready(
    api: k8s.CoreV1Api | k8s.ApiClient,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    capacity: dict[str, str] | None = None,
    address: str = "127.0.0.1",
    pod_cidr: str | None = None,
) -> k8s.V1Node:
    """Create Node ``name`` (or reuse it) and patch its status to Ready, as a kubelet would.

    Nothing marks it NotReady later: up.sh runs the controller-manager without
    the node-lifecycle controller, so no heartbeats are needed (where that
    controller runs, :func:`renew_node_lease` every 10 s keeps the node Ready,
    as a kubelet does). ``pod_cidr`` sets ``spec.podCIDR`` on a new Node (the
    node-IPAM controller that would assign it is off in up.sh too).
    """
    core = _core(api)
    cap = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    cap.update(capacity or {})
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **(labels or {}),
    }
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
    }
    if pod_cidr:
        body["spec"] = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    try:
        core.create_node(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    now = _now()
    status = {
        "capacity": cap,
        "allocatable": cap,
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ],
        "conditions": [
            {
                "type": t,
                "status": "True" if t == "Ready" else "False",
                "reason": "KubeletReady" if t == "Ready" else f"KubeletHasNo{t}",
                "message": "set by tests.support.kubelet",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
        ],
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": "v1.36.2",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "fake://0",
            "bootID": "",
            "kernelVersion": "",
            "machineID": "",
            "osImage": "",
            "systemUUID": "",
        },
    }
    return core.patch_node_status(name, {"status": status}, _content_type=SMP)


def clear_not_ready_taint(api: k8s.CoreV1Api | k8s.ApiClient, name: str) -> None:
    """Remove the ``node.kubernetes.io/not-ready`` taint from Node ``name``, as the node-lifecycle
    controller does once a node reports Ready. The API server's admission taints every new Node so;
    up.sh runs no node-lifecycle controller, so a Node made Ready here keeps the taint, and the
    kube-scheduler places nothing on it (without a toleration) until it is removed."""
    core = _core(api)
    node = core.read_node(name)
    taints = node.spec.taints or []
    kept = [t for t in taints if t.key != "node.kubernetes.io/not-ready"]
    if len(kept) != len(taints):
        patch = {"spec": {"taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in kept] or None}}
        core.patch_node(name, patch, _content_type="application/merge-patch+json")


def make_pod_ready(
    api: k8s.CoreV1Api | k8s.ApiClient,
    namespace: str,
    pod_name: str,
    node_name: str,
    pod_ip: str = "127.0.0.1",
) -> k8s.V1Pod:
    """Do what scheduler + kubelet would: bind the pod to ``node_name``, mark it Running and Ready.

    Binds with a ``pods/binding`` Binding when ``spec.nodeName`` is empty (as
    kube-scheduler does); a pod already on ``node_name`` is left there, one on
    another node raises ``ValueError``. Then patches ``status``: phase Running,
    conditions PodScheduled/Initialized/ContainersReady/Ready True, podIP(s),
    hostIP, and a ready, running ``containerStatuses`` entry per container
    (init containers: terminated, Completed). Returns the updated pod.

    Note: with a loopback ``pod_ip`` (the default, handy when the pod's
    process runs locally) the controller-manager cannot publish the pod in a
    Service's Endpoints/EndpointSlices ("may not be in the loopback range");
    pass a non-loopback IP such as ``10.244.0.5`` when a test needs them.
    """
    core = _core(api)
    pod = core.read_namespaced_pod(pod_name, namespace)
    if not pod.spec.node_name:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod_name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        # The server answers with a Status, not a Binding: don't deserialize.
        core.create_namespaced_pod_binding(pod_name, namespace, binding, _preload_content=False)
    elif pod.spec.node_name != node_name:
        raise ValueError(
            f"pod {namespace}/{pod_name} is already bound to {pod.spec.node_name}, not {node_name}"
        )
    containers = [(c.name, c.image) for c in pod.spec.containers]
    init_containers = [(c.name, c.image) for c in pod.spec.init_containers or []]
    status = running_pod_status(namespace, pod_name, containers, init_containers, pod_ip, pod_ip, _now())
    return core.patch_namespaced_pod_status(pod_name, namespace, {"status": status}, _content_type=SMP)


def running_pod_status(
    namespace: str,
    pod_name: str,
    containers: list[tuple[str, str | None]],
    init_containers: list[tuple[str, str | None]],
    pod_ip: str,
    host_ip: str,
    now: str,
    *,
    ready: bool = True,
    conditions: tuple[str, ...] = ("PodScheduled", "Initialized", "ContainersReady", "Ready"),
) -> dict[str, Any]:
    """The ``status`` a kubelet reports for a started pod (pure): phase Running, its IPs, one
    running container status per ``(name, image)`` of ``containers`` and a Completed one per init
    container. ``ready=False``: started but not (yet) passing readiness (ContainersReady and Ready
    False, containers ``ready: false``)."""

    def fake_ids(name: str, image: str | None) -> dict[str, str]:
        return {
            "name": name,
            "image": image or "",
            "imageID": f"fake://{image or ''}",
            "containerID": f"fake://{namespace}_{pod_name}_{name}",
        }

    container_statuses = [
        {**fake_ids(name, image), "ready": ready, "started": True, "restartCount": 0,
         "state": {"running": {"startedAt": now}}}
        for name, image in containers
    ]
    init_statuses = [
        {**fake_ids(name, image), "ready": True, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}}}
        for name, image in init_containers
    ]
    not_yet = ("ContainersReady", "Ready")
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [
            {"type": t, "status": "True" if ready or t not in not_yet else "False",
             "lastProbeTime": None, "lastTransitionTime": now}
            for t in conditions
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": container_statuses,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status


def renew_node_lease(
    api: k8s.ApiClient,
    name: str,
    node_uid: str | None = None,
    duration_seconds: int = 40,
) -> None:
    """Create or renew Node ``name``'s Lease in ``kube-node-lease``: the heartbeat a kubelet sends
    every 10 s, which the node-lifecycle controller reads to keep a node Ready and untainted. With
    ``node_uid`` a new Lease is owned by the Node (deleted with it, as a kubelet's is)."""
    coordination = k8s.CoordinationV1Api(api)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        coordination.patch_namespaced_lease(
            name, "kube-node-lease", {"spec": {"renewTime": now, "holderIdentity": name}},
            _preload_content=False,
        ).drain_conn()
        return
    except ApiException as exc:
        if exc.status != 404:
            raise
    metadata: dict[str, Any] = {"name": name, "namespace": "kube-node-lease"}
    if node_uid:
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_seconds, "renewTime": now},
    }
    coordination.create_namespaced_lease("kube-node-lease", body, _preload_content=False).drain_conn()


def make_pods_ready(
    api: k8s.CoreV1Api | k8s.ApiClient,
    namespace: str,
    node_name: str,
    label_selector: str = "",
    pod_ip: str = "127.0.0.1",
) -> list[str]:
    """:func:`make_pod_ready` every not-yet-Running pod matching ``label_selector``; their names."""
    core = _core(api)
    done = []
    for pod in core.list_namespaced_pod(namespace, label_selector=label_selector).items:
        if pod.metadata.deletion_timestamp or (pod.status and pod.status.phase == "Running"):
            continue
        make_pod_ready(core, namespace, pod.metadata.name, node_name, pod_ip)
        done.append(pod.metadata.name)
    return done


def prime_garbage_collector(
    api: k8s.ApiClient,
    api_version: str,
    kind: str,
    plural: str,
    namespace: str = "default",
    *,
    spec: dict[str, Any] | None = None,
    timeout: float = 90.0,
) -> float:
    """Wait until the garbage collector handles owners of a (new) custom resource type.

    The kube-controller-manager rediscovers resource types every 30 s. A child
    whose owner of a not-yet-known type is deleted goes into the GC's retry
    backoff (5 ms doubling), so it is collected 10, 20 or ~41 s later, not
    within 30 s. This helper creates probe owners (``spec`` as given, for CRDs
    with required fields) with a ConfigMap child, deletes each owner and
    returns as soon as one probe child is collected promptly (< 2 s) -- at most
    ~30 s after the CRD was created. Leftover probes are cleaned up. Call it
    before starting an operator that would react to the probe objects.

    Returns:
        Seconds waited.
    """
    group, _, version = api_version.rpartition("/")
    co = k8s.CustomObjectsApi(api)
    core = k8s.CoreV1Api(api)
    t0 = time.monotonic()
    deadline = t0 + timeout
    probes: list[str] = []

    def child_gone(name: str) -> bool:
        try:
            core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    try:
        while time.monotonic() < deadline:
            name = f"gc-probe-{os.getpid()}-{len(probes)}"
            body: dict[str, Any] = {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": name, "labels": {"tests.support.kubelet/gc-probe": "true"}},
            }
            if spec is not None:
                body["spec"] = spec
            owner = co.create_namespaced_custom_object(group, version, namespace, plural, body)
            probes.append(name)
            ref = {
                "apiVersion": api_version,
                "kind": kind,
                "name": name,
                "uid": owner["metadata"]["uid"],
            }
            core.create_namespaced_config_map(
                namespace, {"metadata": {"name": name, "ownerReferences": [ref]}}
            )
            co.delete_namespaced_custom_object(group, version, namespace, plural, name)
            try:
                wait_for(lambda n=name: child_gone(n), 2.0, 0.05, description=name)
            except TimeoutError:
                continue
            return time.monotonic() - t0
        raise TimeoutError(
            f"garbage collector did not collect children of {kind} ({api_version}) within {timeout:g} s"
        )
    finally:
        for name in probes:
            with contextlib.suppress(ApiException):
                core.delete_namespaced_config_map(name, namespace)
