"""A ResourceQuota that forbids a child: QuotaExceeded with the API server's words (capacity, not failure: never
Failed), one Event, recovered by itself when lifted (issue 22)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import Clusters
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube


def test_a_quota_forbidding_the_tls_secret_is_shown_and_lifting_it_recovers(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient) -> None:
    core, ns = clusters.core, clusters.namespace
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "no-secrets"},
                                               "spec": {"hard": {"count/secrets": "0"}}})
    clusters.create("quota", {"workers": {"replicas": 1}, "tls": {"enabled": True}})
    status = clusters.wait_status("quota", lambda s: s.get("reason") == "QuotaExceeded", description="QuotaExceeded")
    assert status["phase"] == "Starting", status
    assert "quota" in status["message"] and "secrets" in status["message"], status["message"]
    time.sleep(4)  # several rounds: still one Event, and no scheduler without its certificates
    assert len([e for e in clusters.events("quota") if e.reason == "QuotaExceeded"]) == 1
    assert clusters.status("quota")["phase"] != "Failed"
    assert clusters.children("quota") == ([], 0, 0)

    core.delete_namespaced_resource_quota("no-secrets", ns)
    clusters.wait_status("quota", lambda s: s.get("phase") == "Starting", timeout=60, description="recovered")
    wait_for(lambda: clusters.children("quota")[1:] == (1, 1), timeout=30, description="scheduler and Service")
    assert "ca.pem" in (core.read_namespaced_secret("quota-tls", ns).data or {})


def test_a_full_pod_quota_is_waited_out_and_the_workers_come_when_it_frees(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient) -> None:
    core, ns = clusters.core, clusters.namespace
    core.create_namespaced_resource_quota(ns, {"metadata": {"name": "two-pods"}, "spec": {"hard": {"pods": "2"}}})
    clusters.create("room", {"workers": {"replicas": 3, "maximum": 3}})
    status = clusters.wait_status("room", lambda s: s.get("reason") == "QuotaExceeded", description="QuotaExceeded")
    assert status["phase"] != "Failed" and "exceeded quota" in status["message"], status
    assert clusters.children("room")[1] == 1 and len(clusters.worker_names("room")) == 1
    core.patch_namespaced_resource_quota("two-pods", ns, {"spec": {"hard": {"pods": "10"}}})
    wait_for(lambda: len(clusters.worker_names("room")) == 3, timeout=60, description="the workers, quota freed")
    clusters.wait_status("room", lambda s: s.get("reason") != "QuotaExceeded", description="said no more")
