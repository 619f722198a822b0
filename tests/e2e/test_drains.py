"""Drains and eviction on real pods: a stopped worker's results move; the scheduler is not evicted.

A client on the host holds 60 results (scattered through the scheduler's port-forward: data no task could
recompute). Kubernetes stops worker pods through the Eviction API, as ``kubectl drain``, a node autoscaler
or a descheduler do; the kubelet sends SIGTERM and, after the grace period, SIGKILL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seamless_dask_runtime.model.identity import CLOSE_MARGIN

from .kube import TEST_NAMESPACE, Images, Kube, example, is_ready, small_cluster, wait_until

RESULTS = 60
RETIRE_TIMEOUT = 120  # the default: what a user who says nothing gets


def _values() -> list[bytes]:
    return [f"result {i} ".encode() * 100 for i in range(RESULTS)]


def _evict(kube: Kube, pod: str) -> Any:
    """POST an Eviction for ``pod`` (policy/v1), as kubectl drain does; the completed kubectl call."""
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": TEST_NAMESPACE}}
    return kube.kubectl("create", "--raw", f"/api/v1/namespaces/{TEST_NAMESPACE}/pods/{pod}/eviction", "-f", "-",
                        input=json.dumps(eviction), check=False)


def _cluster(kube: Kube, images: Images, name: str, workers: int) -> None:
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    doc["spec"]["workers"]["replicas"] = workers
    kube.apply(doc)
    kube.wait_running(name, workers)


def _gone(kube: Kube, pod: str) -> bool:
    return kube.get("pod", pod) is None


def test_an_evicted_worker_hands_its_60_results_to_its_replacement(operator_release: str, kube: Kube,
                                                                    images: Images, tmp_path: Path) -> None:
    """The only worker, holding 60 results, is evicted: the operator makes its replacement at once, the evicted
    worker retires into it (the results move) and exits well within its grace period; all 60 come back. The
    scheduler's eviction is refused (its PodDisruptionBudget)."""
    name = "evicted"
    _cluster(kube, images, name, 1)
    try:
        [worker] = [p["metadata"]["name"] for p in kube.pods(name, "worker")]
        pod = kube.get("pod", worker)
        assert pod is not None and pod["spec"]["terminationGracePeriodSeconds"] == RETIRE_TIMEOUT + CLOSE_MARGIN
        with kube.dask_client(name, tmp_path) as client:
            futures = client.scatter(_values())
            assert {client.scheduler_info()["workers"][a]["name"] for (a,) in client.who_has(futures).values()} \
                == {worker}

            refused = _evict(kube, f"{name}-scheduler")
            assert refused.returncode != 0 and "disruption budget" in refused.stderr, refused.stderr

            started = time.monotonic()
            evicted = _evict(kube, worker)
            assert evicted.returncode == 0, evicted.stderr
            wait_until(lambda: _gone(kube, worker), f"evicted {worker} gone", timeout=RETIRE_TIMEOUT + CLOSE_MARGIN)
            took = time.monotonic() - started
            print(f"evicted worker retired into its replacement and exited in {took:.1f} s", flush=True)

            assert client.gather(futures, errors="raise") == _values()
            holders = {client.scheduler_info()["workers"][a]["name"] for (a,) in client.who_has(futures).values()}
            kube.wait_running(name, 1)
            [replacement] = [p["metadata"]["name"] for p in kube.pods(name, "worker")]
            assert replacement != worker and holders == {replacement}, (worker, replacement, holders)
        # Exited by itself (results moved), not killed at the end of its grace period.
        assert took < RETIRE_TIMEOUT, took
    finally:
        kube.delete_cluster(name)


def _node_of(kube: Kube, pod: str) -> str:
    found = kube.get("pod", pod)
    assert found is not None
    return str(found["spec"]["nodeName"])


def _uid(kube: Kube, pod: str) -> str:
    found = kube.get("pod", pod)
    assert found is not None
    return str(found["metadata"]["uid"])


def test_kubectl_drain_keeps_the_scheduler_and_workers_retire_once_there_is_room(
        operator_release: str, kube: Kube, images: Images, tmp_path: Path) -> None:
    """``kubectl drain`` of the cluster's node (its pods only: --pod-selector): the scheduler's eviction is
    refused until drain's timeout, so it keeps running (same pod) and so does the client; both workers are
    evicted. Their replacements cannot start on the cordoned node, and the stopped workers wait, up to their
    retireTimeout, for a worker to take the results. Once there is room (here: the node uncordoned, as when
    another node has capacity) the replacements start, the results move, all 60 come back."""
    name = "drained"
    _cluster(kube, images, name, 2)
    node = _node_of(kube, f"{name}-scheduler")
    scheduler_uid = _uid(kube, f"{name}-scheduler")
    old_workers = sorted(p["metadata"]["name"] for p in kube.pods(name, "worker"))
    try:
        with kube.dask_client(name, tmp_path) as client:
            futures = client.scatter(_values())
            drain = kube.kubectl("drain", node, "--pod-selector", f"dask.org/cluster-name={name}",
                                 "--delete-emptydir-data", "--ignore-daemonsets", "--timeout=25s", check=False,
                                 timeout=120)
            output = drain.stdout + drain.stderr
            assert drain.returncode != 0, output
            assert f"evicting pod {TEST_NAMESPACE}/{name}-scheduler" in output and "disruption budget" in output, \
                output
            for worker in old_workers:
                assert f"evicting pod {TEST_NAMESPACE}/{worker}" in output, output

            scheduler = kube.get("pod", f"{name}-scheduler")
            assert scheduler is not None and scheduler["metadata"]["uid"] == scheduler_uid and is_ready(scheduler)
            # Nowhere to go yet: the stopped workers still hold the results, waiting for a recipient.
            stopping = [p for p in kube.items("pods", TEST_NAMESPACE, f"dask.org/cluster-name={name}")
                        if p["metadata"]["name"] in old_workers]
            assert stopping and all(p["metadata"].get("deletionTimestamp") for p in stopping), stopping

            kube.kubectl("uncordon", node)
            for worker in old_workers:
                wait_until(lambda w=worker: _gone(kube, w), f"drained {worker} gone", timeout=RETIRE_TIMEOUT)
            assert client.gather(futures, errors="raise") == _values()
            kube.wait_running(name, 2)
            assert not set(old_workers) & {p["metadata"]["name"] for p in kube.pods(name, "worker")}
    finally:
        kube.kubectl("uncordon", node, check=False)
        kube.delete_cluster(name)
