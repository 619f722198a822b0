"""A ResourceQuota that forbids a child: Failed with the API server's words, one Event, recovered when lifted."""

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
    status = clusters.wait_status("quota", lambda s: s.get("phase") == "Failed", description="Failed")
    assert status["reason"] == "Forbidden", status
    assert "quota" in status["message"] and "secrets" in status["message"], status["message"]
    time.sleep(4)  # several rounds: still one Event, and no scheduler without its certificates
    assert len([e for e in clusters.events("quota") if e.reason == "Forbidden"]) == 1
    assert clusters.children("quota") == ([], 0, 0)

    core.delete_namespaced_resource_quota("no-secrets", ns)
    clusters.wait_status("quota", lambda s: s.get("phase") == "Starting", timeout=60, description="recovered")
    wait_for(lambda: clusters.children("quota")[1:] == (1, 1), timeout=30, description="scheduler and Service")
    assert "ca.pem" in (core.read_namespaced_secret("quota-tls", ns).data or {})
