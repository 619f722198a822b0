"""The real kopf operator on the real kube-apiserver: children, status, scaling, deletion, bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from seamless_dask_operator.builders import ClusterRef, worker_pod
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION
from tests.operator.conftest import Clusters
from tests.support.kubelet import make_pod_ready
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def _owned_by(obj: Any, uid: str) -> bool:
    return [r.uid for r in obj.metadata.owner_references or []] == [uid]


def test_create_makes_owned_children_and_starting_status(operator: Any, clusters: Clusters) -> None:
    created = clusters.create("alpha", {"cores": 2, "workers": {"replicas": 2, "maximum": 4}})
    uid = created["metadata"]["uid"]
    status = clusters.wait_status("alpha", lambda s: s.get("workersDesired") == 2, description="first status")
    assert status["phase"] == "Starting"
    assert status["schedulerAddress"] == f"tcp://alpha-scheduler.{clusters.namespace}.svc:8786"
    # The operator writes its default image into spec.image (an upgrade then changes no running cluster's image):
    # generation 2, which the status has observed.
    current = clusters.get("alpha")
    assert current["spec"]["image"] and current["metadata"]["generation"] == 2
    clusters.wait_status("alpha", lambda s: s.get("observedGeneration") == 2, description="generation 2 observed")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["SchedulerReady"]["status"] == "False"
    assert conditions["SpecValid"]["status"] == "True"

    scheduler = clusters.core.read_namespaced_pod("alpha-scheduler", clusters.namespace)
    service = clusters.core.read_namespaced_service("alpha-scheduler", clusters.namespace)
    assert _owned_by(scheduler, uid) and _owned_by(service, uid)
    assert {p.port for p in service.spec.ports} == {8786, 8787}
    assert service.spec.type == "ClusterIP"
    workers = wait_for(lambda: clusters.worker_names("alpha") == ["alpha-worker-0", "alpha-worker-1"] and
                       clusters.pods("alpha", "worker"), timeout=20, description="two worker pods")
    assert all(_owned_by(p, uid) for p in workers)
    env = {e.name: e.value for e in workers[0].spec.containers[0].env}
    assert env["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"] == "3"


def test_ready_scheduler_pod_means_running(operator: Any, clusters: Clusters, kube_api: client.ApiClient) -> None:
    clusters.create("beta", {"workers": {"replicas": 0}})
    clusters.wait_status("beta", lambda s: s.get("phase") == "Starting")
    pod = wait_for(lambda: clusters.pods("beta", "scheduler"), timeout=20, description="scheduler pod")[0]
    make_pod_ready(kube_api, clusters.namespace, pod.metadata.name, "node-1", pod_ip="10.244.0.9")
    status = clusters.wait_status("beta", lambda s: s.get("phase") == "Running", description="Running")
    assert {c["type"]: c["status"] for c in status["conditions"]}["SchedulerReady"] == "True"


def test_scale_by_spec_and_by_scale_subresource(operator: Any, clusters: Clusters, control_plane: Any) -> None:
    clusters.create("gamma", {"workers": {"replicas": 1, "maximum": 5}})
    wait_for(lambda: clusters.worker_names("gamma") == ["gamma-worker-0"], timeout=20, description="1 worker")
    clusters.patch_spec("gamma", {"workers": {"replicas": 3}})
    wait_for(lambda: len(clusters.worker_names("gamma")) == 3, timeout=20, description="3 workers")
    subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", clusters.namespace,
                    "scale", "sdc", "gamma", "--replicas=2"], check=True, capture_output=True)
    # Not-ready pods hold no results: they go without a retirement round.
    wait_for(lambda: len(clusters.worker_names("gamma")) == 2, timeout=20, description="2 workers")
    assert clusters.wait_status("gamma", lambda s: s.get("workersDesired") == 2)["workersDesired"] == 2


def test_kubectl_get_shows_printer_columns(operator: Any, clusters: Clusters, control_plane: Any) -> None:
    clusters.create("delta", {"workers": {"replicas": 1}})
    clusters.wait_status("delta", lambda s: "phase" in s)
    out = subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", clusters.namespace,
                          "get", "sdc"], check=True, capture_output=True, text=True).stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "READY", "DESIRED", "SCHEDULER", "REASON", "AGE"]
    assert row.split()[:4] == ["delta", "Starting", "0", "1"]
    assert row.split()[5] == "SchedulerNotReady"  # pods stay Pending on an API server without a kubelet


def test_delete_removes_children_and_clears_finalizer(operator: Any, clusters: Clusters) -> None:
    clusters.create("eps", {"workers": {"replicas": 2, "maximum": 2}})
    wait_for(lambda: len(clusters.worker_names("eps")) == 2, timeout=20, description="workers")
    assert clusters.get("eps")["metadata"]["finalizers"] == ["seamless.dask.org/finalizer"]
    clusters.delete("eps")
    wait_for(lambda: clusters.find("eps") is None, timeout=30, description="resource gone (finalizer cleared)")
    wait_for(lambda: not clusters.pods("eps", "worker") and not clusters.pods("eps", "scheduler"),
             timeout=30, description="pods gone")
    assert not clusters.core.list_namespaced_service(clusters.namespace).items


def test_child_created_while_deleting_goes_before_the_resource(operator: Any, clusters: Clusters) -> None:
    """A reconcile in flight when the delete began creates one more worker pod (kopf runs both at once).

    The operator deletes it itself, and the resource goes only after it: "deleting
    the resource removes everything" must not wait for garbage collection, which
    on a freshly installed CRD takes 30 s or more to notice the owner is gone.
    """
    spec = {"workers": {"replicas": 1, "maximum": 1}}
    uid = clusters.create("zeta", spec)["metadata"]["uid"]
    wait_for(lambda: clusters.worker_names("zeta") and clusters.pods("zeta", "scheduler"), timeout=20,
             description="worker and scheduler pods")
    clusters.delete("zeta")
    wait_for(lambda: not clusters.core.list_namespaced_service(clusters.namespace).items
             and not clusters.pods("zeta", "worker"), timeout=20, interval=0.02,
             description="the delete handler's first round (Service, then pods)")
    # Exactly what the in-flight reconcile would create: the operator's own worker pod builder.
    late = worker_pod(ClusterRef("zeta", clusters.namespace, uid), parse_spec(spec), 7)
    clusters.core.create_namespaced_pod(clusters.namespace, late)
    wait_for(lambda: clusters.find("zeta") is None, timeout=30, interval=0.02, description="resource gone")
    assert clusters.worker_names("zeta") == [], "the resource went before its late child"


def test_invalid_spec_gives_condition_and_event_and_operator_survives(operator: Any, clusters: Clusters) -> None:
    clusters.create("bad", {"unknownTaskDuration": "whenever", "workers": {"replicas": 1}})
    status = clusters.wait_status("bad", lambda s: s.get("phase") == "Failed", description="Failed")
    condition = {c["type"]: c for c in status["conditions"]}["SpecValid"]
    assert condition["status"] == "False" and condition["reason"] == "InvalidSpec"
    assert "spec.unknownTaskDuration" in condition["message"]
    events = wait_for(lambda: clusters.events("bad"), timeout=20, description="InvalidSpec event")
    assert any(e.reason == "InvalidSpec" and "spec.unknownTaskDuration" in e.message for e in events)
    assert not clusters.pods("bad", "worker")
    # The operator is alive: a valid cluster next to it reconciles, and fixing the spec recovers.
    clusters.create("good", {"workers": {"replicas": 1}})
    clusters.wait_status("good", lambda s: s.get("phase") == "Starting")
    clusters.patch_spec("bad", {"unknownTaskDuration": "2m"})
    clusters.wait_status("bad", lambda s: s.get("phase") == "Starting", description="recovered")
    assert len([e for e in clusters.events("bad") if e.reason == "InvalidSpec"]) == 1


def test_child_refused_by_the_api_fails_once_and_recovers_when_fixed(operator: Any, clusters: Clusters) -> None:
    """A worker pod the API server refuses (422): Failed with the API's own words, one Event, no retry loop.

    Requests above limits pass the CRD's schema (each quantity is valid alone) and only the pod's validation
    sees them together."""
    clusters.create("refused", {"workers": {"replicas": 1, "resources": {"requests": {"memory": "2Gi"},
                                                                         "limits": {"memory": "1Gi"}}}})
    status = clusters.wait_status("refused", lambda s: s.get("phase") == "Failed", description="Failed")
    assert status["reason"] == "RejectedByAPI" and "resources.requests" in status["message"], status["message"]
    assert "less than or equal to memory limit" in status["message"], status["message"]
    time.sleep(4)  # several rounds later: still one Event, and the spec is not retried
    assert len([e for e in clusters.events("refused") if e.reason == "RejectedByAPI"]) == 1
    clusters.patch_spec("refused", {"workers": {"replicas": 1, "resources": {"requests": {"memory": "1Gi"}}}})
    clusters.wait_status("refused", lambda s: s.get("phase") == "Starting", description="recovered")
    wait_for(lambda: len(clusters.pods("refused", "worker")) == 1, timeout=20, description="the worker pod")


def test_name_clash_fails_and_never_touches_what_is_not_ours(operator: Any, clusters: Clusters) -> None:
    """A Service named like a child, and a pod with the cluster's label, both made by someone else."""
    ns = clusters.namespace
    clusters.core.create_namespaced_service(ns, {
        "metadata": {"name": "clash-scheduler", "labels": {"app": "theirs"}},
        "spec": {"ports": [{"port": 1234}], "selector": {"app": "theirs"}}})
    clusters.core.create_namespaced_pod(ns, {
        "metadata": {"name": "theirs", "labels": {"dask.org/cluster-name": "clash"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    clusters.create("clash", {"workers": {"replicas": 1}})
    status = clusters.wait_status("clash", lambda s: s.get("phase") == "Failed", description="Failed")
    assert status["reason"] == "NameClash" and f"Service {ns}/clash-scheduler" in status["message"]
    events = wait_for(lambda: [e for e in clusters.events("clash") if e.reason == "NameClash"], timeout=20,
                      description="NameClash event")
    assert len(events) == 1
    service = clusters.core.read_namespaced_service("clash-scheduler", ns)
    assert not service.metadata.owner_references and [p.port for p in service.spec.ports] == [1234]
    assert not clusters.pods("clash", "worker"), "no workers for a cluster without its own scheduler Service"
    clusters.delete("clash")
    wait_for(lambda: clusters.find("clash") is None, timeout=30, description="resource gone")
    assert clusters.core.read_namespaced_service("clash-scheduler", ns).metadata.uid == service.metadata.uid
    assert clusters.core.read_namespaced_pod("theirs", ns).metadata.deletion_timestamp is None


def test_a_pod_named_and_labelled_like_the_scheduler_is_not_taken_for_it(operator: Any, clusters: Clusters) -> None:
    """Someone else's pod with the scheduler's name and all our labels: a NameClash, never counted nor deleted."""
    ns = clusters.namespace
    labels = {"app.kubernetes.io/managed-by": "seamless-dask-operator", "dask.org/cluster-name": "mimic",
              "dask.org/component": "scheduler"}
    theirs = clusters.core.create_namespaced_pod(ns, {
        "metadata": {"name": "mimic-scheduler", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    clusters.create("mimic", {"workers": {"replicas": 1}})
    status = clusters.wait_status("mimic", lambda s: s.get("phase") == "Failed", description="Failed")
    assert status["reason"] == "NameClash" and f"Pod {ns}/mimic-scheduler" in status["message"], status
    clusters.delete("mimic")
    wait_for(lambda: clusters.find("mimic") is None, timeout=30, description="resource gone")
    pod = clusters.core.read_namespaced_pod("mimic-scheduler", ns)
    assert pod.metadata.uid == theirs.metadata.uid and pod.metadata.deletion_timestamp is None


def test_kubectl_scale_on_an_adaptive_cluster_says_the_scheduler_rules(operator: Any, clusters: Clusters,
                                                                      control_plane: Any) -> None:
    clusters.create("adapt", {"workers": {"adaptive": True, "minimum": 0, "maximum": 3}})
    clusters.wait_status("adapt", lambda s: "phase" in s)
    subprocess.run([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", clusters.namespace, "scale",
                    "sdc", "adapt", "--replicas=2"], check=True, capture_output=True)
    events = wait_for(lambda: [e for e in clusters.events("adapt") if e.reason == "AdaptiveScaling"], timeout=20,
                      description="AdaptiveScaling event")
    assert "replicas 2 is not used" in events[0].message
    assert not clusters.pods("adapt", "worker"), "the scheduler's target (none yet) rules"


def test_drift_by_hand_is_restored(operator: Any, clusters: Clusters) -> None:
    """A Service deleted, a Service made a NodePort: both undone, and said."""
    ns = clusters.namespace
    clusters.create("drift", {"workers": {"replicas": 1}})
    wait_for(lambda: clusters.children("drift")[2] == 1, timeout=20, description="children")
    clusters.core.delete_namespaced_service("drift-scheduler", ns)
    wait_for(lambda: _service_type(clusters, "drift-scheduler") == "ClusterIP", timeout=30,
             description="Service restored")
    clusters.core.patch_namespaced_service("drift-scheduler", ns, {"spec": {"type": "NodePort"}})
    wait_for(lambda: _service_type(clusters, "drift-scheduler") == "ClusterIP", timeout=30,
             description="Service type restored")
    wait_for(lambda: [e for e in clusters.events("drift") if e.reason == "DriftRestored"], timeout=30,
             description="a DriftRestored Event (kopf posts Events from its own queue)")


def _service_type(clusters: Clusters, name: str) -> str | None:
    try:
        return clusters.core.read_namespaced_service(name, clusters.namespace).spec.type
    except client.ApiException:
        return None


def test_schema_refuses_what_it_can(kube_api: client.ApiClient, clusters: Clusters) -> None:
    for spec, fragment in [
        ({"cores": 0}, "spec.cores"),
        ({"workers": {"minimum": 3, "maximum": 2}}, "workers.minimum must not exceed workers.maximum"),
        ({"workers": {"replicas": 9, "maximum": 2}}, "workers.replicas must not exceed workers.maximum"),
        ({"exclusive": True, "jobCores": 2}, "jobCores must not be set when exclusive is true"),
        ({"scheduler": {"serviceType": "Public"}}, "serviceType"),
    ]:
        with pytest.raises(client.exceptions.ApiException) as info:
            clusters.create("refused", spec)
        assert info.value.status == 422 and fragment in info.value.body, info.value.body


def test_operator_restart_mid_create_creates_no_duplicates(operator_factory: Any, clusters: Clusters) -> None:
    clusters.create("zeta", {"workers": {"replicas": 3, "maximum": 3}})
    with operator_factory():
        # Stop as soon as the first child exists: mid-reconcile.
        wait_for(lambda: clusters.core.list_namespaced_service(clusters.namespace).items, timeout=20,
                 interval=0.05, description="the first child (the Service)")
    with operator_factory():
        wait_for(lambda: len(clusters.worker_names("zeta")) == 3, timeout=20, description="3 workers")
        clusters.wait_status("zeta", lambda s: s.get("workersDesired") == 3)
    assert clusters.worker_names("zeta") == ["zeta-worker-0", "zeta-worker-1", "zeta-worker-2"]
    assert len(clusters.core.list_namespaced_service(clusters.namespace).items) == 1
    assert len(clusters.pods("zeta", "scheduler")) == 1


def test_scheduler_loss_leaves_running_and_recovers(operator: Any, clusters: Clusters,
                                                    kube_api: client.ApiClient) -> None:
    clusters.create("eta", {"workers": {"replicas": 0}})
    pod = wait_for(lambda: clusters.pods("eta", "scheduler"), timeout=20, description="scheduler pod")[0]
    make_pod_ready(kube_api, clusters.namespace, pod.metadata.name, "node-1", pod_ip="10.244.0.10")
    clusters.wait_status("eta", lambda s: s.get("phase") == "Running")

    clusters.core.delete_namespaced_pod(pod.metadata.name, clusters.namespace, grace_period_seconds=0)
    status = clusters.wait_status("eta", lambda s: s.get("phase") == "Starting", description="left Running")
    assert {c["type"]: c["reason"] for c in status["conditions"]}["SchedulerReady"] in (
        "SchedulerNotReady", "SchedulerMissing")
    new = wait_for(lambda: [p for p in clusters.pods("eta", "scheduler") if p.metadata.uid != pod.metadata.uid],
                   timeout=30, description="replacement scheduler pod")[0]
    assert new.metadata.name == "eta-scheduler"
    make_pod_ready(kube_api, clusters.namespace, new.metadata.name, "node-1", pod_ip="10.244.0.11")
    clusters.wait_status("eta", lambda s: s.get("phase") == "Running", description="Running again")

    # Evicted (the kubelet's phase Failed): its containers never run again, so it is replaced too.
    clusters.core.patch_namespaced_pod_status("eta-scheduler", clusters.namespace, {"status": {
        "phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.",
        "conditions": [{"type": "Ready", "status": "False"}]}})
    third = wait_for(lambda: [p for p in clusters.pods("eta", "scheduler")
                              if p.metadata.uid not in (pod.metadata.uid, new.metadata.uid)],
                     timeout=30, description="scheduler pod after the eviction")
    assert len(third) == 1 and third[0].status.phase == "Pending"


def test_deleted_worker_pod_is_replaced(operator: Any, clusters: Clusters) -> None:
    clusters.create("theta", {"workers": {"replicas": 2, "maximum": 2}})
    wait_for(lambda: len(clusters.worker_names("theta")) == 2, timeout=20, description="2 workers")
    before = {p.metadata.name: p.metadata.uid for p in clusters.pods("theta", "worker")}
    clusters.core.delete_namespaced_pod("theta-worker-0", clusters.namespace, grace_period_seconds=0)

    def replaced() -> bool:
        now = {p.metadata.name: p.metadata.uid for p in clusters.pods("theta", "worker")}
        return len(now) == 2 and now.get("theta-worker-1") == before["theta-worker-1"] and \
            set(now.values()) != set(before.values())

    wait_for(replaced, timeout=20, description="a new pod in place of the deleted worker")


def test_operator_metrics_count_reconciles_and_phases(operator: Any, clusters: Clusters) -> None:
    import os
    import urllib.request

    clusters.create("iota", {"workers": {"replicas": 1}})
    clusters.wait_status("iota", lambda s: s.get("phase") == "Starting")
    port = os.environ["SEAMLESS_DASK_OPERATOR_METRICS_PORT"]

    def scraped() -> str:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        return text if f'cluster="iota",namespace="{clusters.namespace}",phase="Starting"}} 1.0' in text else ""

    text = wait_for(scraped, timeout=20, description="metrics with the cluster's phase")
    assert 'seamless_dask_operator_reconciles_total{handler="apply"}' in text
    assert f'seamless_dask_operator_workers_desired{{cluster="iota",namespace="{clusters.namespace}"}} 1.0' in text


def test_tls_certificates_are_made_once_and_kept_in_an_owned_secret(operator_factory: Any,
                                                                      clusters: Clusters) -> None:
    created = clusters.create("kappa", {"tls": {"enabled": True}, "workers": {"replicas": 1, "maximum": 2}})
    with operator_factory():
        status = clusters.wait_status("kappa", lambda s: "phase" in s)
        assert status["schedulerAddress"].startswith("tls://")
        secret = wait_for(lambda: clusters.core.read_namespaced_secret("kappa-tls", clusters.namespace),
                          timeout=20, description="TLS secret")
    assert _owned_by(secret, created["metadata"]["uid"])
    assert set(secret.data) == {"ca.pem", "tls.crt", "tls.key"}
    worker = wait_for(lambda: clusters.pods("kappa", "worker"), timeout=20, description="worker")[0]
    assert any(v.secret and v.secret.secret_name == "kappa-tls" for v in worker.spec.volumes)
    with operator_factory():  # a restarted operator keeps the certificates the pods already use
        clusters.patch_spec("kappa", {"workers": {"replicas": 2}})
        wait_for(lambda: len(clusters.worker_names("kappa")) == 2, timeout=20, description="2 workers")
    assert clusters.core.read_namespaced_secret("kappa-tls", clusters.namespace).data == secret.data


def test_cluster_pods_are_admitted_under_restricted_pod_security(operator: Any, kube_api: client.ApiClient) -> None:
    """The API server's own PodSecurity admission, enforcing the restricted profile, lets every pod in."""
    import uuid

    core = client.CoreV1Api(kube_api)
    name = f"restricted-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}})
    try:
        wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30, description="service account")
        secured = Clusters(kube_api, name)
        secured.create("lambda", {"tls": {"enabled": True}, "workers": {"replicas": 2, "maximum": 2}})
        wait_for(lambda: len(secured.worker_names("lambda")) == 2, timeout=30, description="worker pods admitted")
        wait_for(lambda: secured.pods("lambda", "scheduler"), timeout=30, description="scheduler pod admitted")
        replica_sets = client.AppsV1Api(kube_api).list_namespaced_replica_set(name).items
        assert all(not any(c.type == "ReplicaFailure" for c in rs.status.conditions or []) for rs in replica_sets)
        secured.delete("lambda")  # before the namespace, so the operator is not left writing into a dying one
        wait_for(lambda: not secured.custom.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)["items"],
                 timeout=30, description="cluster deleted")
    finally:
        core.delete_namespace(name)


def test_worker_that_cannot_be_retired_is_reported_not_killed(operator: Any, clusters: Clusters,
                                                               kube_api: client.ApiClient) -> None:
    """The scheduler pod is Ready but its API does not answer (a partition): scale-down must not delete."""
    clusters.create("nu", {"workers": {"replicas": 2, "maximum": 2, "retireTimeout": 3}})
    scheduler = wait_for(lambda: clusters.pods("nu", "scheduler"), timeout=20, description="scheduler pod")[0]
    make_pod_ready(kube_api, clusters.namespace, scheduler.metadata.name, "node-1", pod_ip="127.0.0.1")
    wait_for(lambda: len(clusters.worker_names("nu")) == 2, timeout=20, description="2 workers")
    for name in clusters.worker_names("nu"):
        make_pod_ready(kube_api, clusters.namespace, name, "node-1", pod_ip="127.0.0.1")
    clusters.wait_status("nu", lambda s: s.get("workersReady") == 2)
    clusters.patch_spec("nu", {"workers": {"replicas": 1}})
    events = wait_for(lambda: [e for e in clusters.events("nu") if e.reason == "RetireFailed"], timeout=30,
                      description="RetireFailed event")
    assert "keep running" in events[0].message
    time.sleep(5)  # several timer rounds: still one Event, still both pods
    assert len([e for e in clusters.events("nu") if e.reason == "RetireFailed"]) == 1
    assert clusters.worker_names("nu") == ["nu-worker-0", "nu-worker-1"]  # nothing killed behind its back
