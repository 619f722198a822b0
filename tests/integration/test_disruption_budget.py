"""The scheduler's PodDisruptionBudget on the real kube-apiserver and its disruption controller: the Eviction
API refuses a Ready scheduler and lets an unready one go (a crash-looping scheduler does not block a drain)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from kubernetes import client as k8s
from seamless_dask_operator.builders import ClusterRef, scheduler_disruption_budget, scheduler_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.model.identity import API_VERSION, GROUP, KIND, PLURAL, VERSION
from tests.support.kubelet import SMP, make_pod_ready, running_pod_status
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    name = f"pdb-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _evict(core: k8s.CoreV1Api, namespace: str, pod: str) -> int:
    """The Eviction API's answer for ``pod``: 201 evicted, 429 refused by a budget."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    try:
        core.create_namespaced_pod_eviction(pod, namespace, body)
    except k8s.exceptions.ApiException as exc:
        assert exc.status != 429 or "disruption budget" in (exc.body or ""), exc.body
        return int(exc.status)
    return 201


def _budget_status(policy: k8s.PolicyV1Api, namespace: str, name: str) -> dict[str, Any]:
    budget = policy.read_namespaced_pod_disruption_budget(name, namespace)
    status = budget.status
    if status is None or status.observed_generation != budget.metadata.generation:
        return {}
    return {"healthy": status.current_healthy, "allowed": status.disruptions_allowed}


def test_a_ready_scheduler_is_not_evicted_and_an_unready_one_is(kube_api: k8s.ApiClient, namespace: str) -> None:
    core, policy = k8s.CoreV1Api(kube_api), k8s.PolicyV1Api(kube_api)
    # A real owner, so that garbage collection leaves the children alone (no operator runs here).
    owner = k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "kept"},
                                            "spec": {}})
    ref = ClusterRef("kept", namespace, owner["metadata"]["uid"])
    core.create_namespaced_pod(namespace, scheduler_pod(ref, parse_spec({})))
    policy.create_namespaced_pod_disruption_budget(namespace, scheduler_disruption_budget(ref))

    make_pod_ready(kube_api, namespace, ref.scheduler_name, "node-1")
    wait_for(lambda: _budget_status(policy, namespace, ref.scheduler_name) == {"healthy": 1, "allowed": 0},
             timeout=60, description="the budget counts the Ready scheduler")
    assert _evict(core, namespace, ref.scheduler_name) == 429

    # Its readiness probe fails (a crash loop, say): a drain may take it.
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = running_pod_status(namespace, ref.scheduler_name, [("scheduler", "image")], [], "127.0.0.1",
                                "127.0.0.1", now, ready=False)
    core.patch_namespaced_pod_status(ref.scheduler_name, namespace, {"status": status}, _content_type=SMP)
    wait_for(lambda: _budget_status(policy, namespace, ref.scheduler_name).get("healthy") == 0, timeout=60,
             description="the budget sees the scheduler unready")
    assert _evict(core, namespace, ref.scheduler_name) == 201
