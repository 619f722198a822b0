"""Two operators at once: one acts, the Lease's holder; a killed leader is replaced; a stopped one hands over
(issue 22, "More than one replica"). Real operator processes (``seamless-dask-operator``, as the chart runs it)
against the real kube-apiserver; the scheduler is a real HTTP server answering as Dask's does.

Before: with two operators (no election), scaling 4 ready workers to 2 sent two retire calls, retired all 4
and replaced them with 2 empty ones: results held in the retired workers' memory were lost.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from seamless_dask_runtime.model.identity import FINALIZER
from tests.operator.conftest import Clusters
from tests.support.hostile_scheduler import Behaviour, hostile_schedulers
from tests.support.kubelet import make_pod_ready
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
DASHBOARD_PORT = int(os.environ["SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT"])
LEASE = "sdo-election"


class Replica:
    def __init__(self, name: str, control_plane: Any, namespace: str, log: Path, deployment: str = ""):
        self.name, self.log = name, log
        env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "SEAMLESS_DASK_OPERATOR_LEASE": LEASE,
               "SEAMLESS_DASK_OPERATOR_POD_NAMESPACE": namespace, "SEAMLESS_DASK_OPERATOR_POD_NAME": name,
               "SEAMLESS_DASK_OPERATOR_METRICS_PORT": "0", "SEAMLESS_DASK_OPERATOR_DEPLOYMENT": deployment}
        self.proc = subprocess.Popen(
            # This test's namespace only: clusters other tests left in namespaces being deleted would keep rounds
            # in flight, and a leader with a round in flight lets its Lease expire instead of releasing it.
            [sys.executable, "-c", "from seamless_dask_operator.main import run; run()",
             f"--liveness-port={free_port()}", f"--namespace={namespace}"],
            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def holder(kube_api: client.ApiClient, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(LEASE, namespace)
    except client.exceptions.ApiException:
        return None
    return (lease.spec.holder_identity or "").split("_")[0] or None


@contextlib.contextmanager
def replicas(control_plane: Any, namespace: str, tmp_path: Path, deployment: str = "") -> Iterator[dict[str, Replica]]:
    running = {name: Replica(name, control_plane, namespace, tmp_path / f"{name}.log", deployment)
               for name in ("replica-a", "replica-b")}
    try:
        yield running
    finally:
        for replica in running.values():
            replica.stop()


def test_two_replicas_one_acts_and_a_killed_leader_is_replaced(
        control_plane: Any, kube_api: client.ApiClient, clusters: Clusters, tmp_path: Path) -> None:
    ns = clusters.namespace
    with hostile_schedulers(DASHBOARD_PORT) as schedulers, replicas(control_plane, ns, tmp_path) as running:
        leader = wait_for(lambda: holder(kube_api, ns), timeout=60, description="a leader")
        clusters.create("shared", {"workers": {"replicas": 4, "maximum": 4}})
        honest = Behaviour("shared", workers=[f"shared-worker-{i}" for i in range(4)])
        schedulers.behaviours["127.0.3.2"] = honest
        pod = wait_for(lambda: clusters.pods("shared", "scheduler"), timeout=30, description="scheduler")[0]
        make_pod_ready(kube_api, ns, pod.metadata.name, "node-1", pod_ip="127.0.3.2")
        for i in range(4):
            wait_for(lambda i=i: f"shared-worker-{i}" in clusters.worker_names("shared"), timeout=30,
                     description=f"worker {i}")
            make_pod_ready(kube_api, ns, f"shared-worker-{i}", "node-1", pod_ip=f"10.9.0.{i + 1}")
        clusters.wait_status("shared", lambda s: s.get("workersReady") == 4, description="4 ready workers")

        clusters.patch_spec("shared", {"workers": {"replicas": 2}})
        wait_for(lambda: clusters.worker_names("shared") == ["shared-worker-2", "shared-worker-3"], timeout=30,
                 description="2 retired, their pods deleted")
        time.sleep(3)
        retires = [c for c in honest.calls if c.startswith("POST /api/v1/retire_workers")]
        assert len(retires) == 1 and '"n": 2' in retires[0], retires
        assert clusters.worker_names("shared") == ["shared-worker-2", "shared-worker-3"], "no empty replacement"

        # The leader is killed outright: the other replica takes the Lease once it expires (10 s), and serves.
        killed_at = time.monotonic()
        running[leader].stop(signal.SIGKILL)
        other = next(name for name in running if name != leader)
        wait_for(lambda: holder(kube_api, ns) == other, timeout=30, interval=0.2, description="the new leader")
        clusters.create("after", {"workers": {"replicas": 1, "maximum": 1}})
        clusters.wait_status("after", lambda s: s.get("workersDesired") == 1, timeout=30,
                             description="served by the new leader")
        took = time.monotonic() - killed_at
        assert took < 20, f"a killed leader was replaced in {took:.1f} s"
        assert clusters.children("shared") == (["shared-worker-2", "shared-worker-3"], 1, 1)
        print(f"\nkilled leader -> the next one serves a new cluster: {took:.1f} s")


def test_a_stopped_leader_hands_over_at_once_and_keeps_finalizers_when_a_replica_follows(
        control_plane: Any, kube_api: client.ApiClient, clusters: Clusters, tmp_path: Path) -> None:
    ns = clusters.namespace
    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "operator"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "op"}},
                 "template": {"metadata": {"labels": {"app": "op"}},
                              "spec": {"containers": [{"name": "c", "image": "operator"}]}}}})
    with replicas(control_plane, ns, tmp_path, deployment="operator") as running:
        leader = wait_for(lambda: holder(kube_api, ns), timeout=60, description="a leader")
        clusters.create("kept", {"workers": {"replicas": 1, "maximum": 1}})
        wait_for(lambda: clusters.get("kept")["metadata"].get("finalizers") == [FINALIZER], timeout=30,
                 description="finalizer")
        stopped_at = time.monotonic()
        running[leader].stop(signal.SIGTERM)
        other = next(name for name in running if name != leader)
        wait_for(lambda: holder(kube_api, ns) == other, timeout=20, interval=0.2, description="handed over")
        # Handed over by a release, not by waiting for the Lease to expire (the seconds it takes are in
        # bench/day_two.py: a timed assertion here failed on a loaded machine).
        print(f"handover {time.monotonic() - stopped_at:.1f} s after SIGTERM")
        # The successor can take the Lease between the release and its log line (a loaded machine): the line is
        # waited for, not read at once.
        wait_for(lambda: "released Lease" in running[leader].log.read_text(), timeout=15,
                 description=f"'released Lease' in the stopped leader's log: {running[leader].log.read_text()[-1500:]}")
        assert clusters.get("kept")["metadata"].get("finalizers") == [FINALIZER], "a replica follows: kept"
        # Scaled to 0 (as the uninstall hook does): the last replica releases the finalizers.
        apps.patch_namespaced_deployment_scale("operator", ns, {"spec": {"replicas": 0}})
        running[other].stop(signal.SIGTERM)
        assert not clusters.get("kept")["metadata"].get("finalizers"), "no replica follows: released"
    clusters.delete("kept")
    wait_for(lambda: clusters.find("kept") is None, timeout=30, description="deleted without an operator")
