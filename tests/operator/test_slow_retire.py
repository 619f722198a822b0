"""Retire calls never starve other clusters (issue 14): 33 slow schedulers, a new cluster still served.

The 33 schedulers are one real HTTP server speaking the part of Dask's scheduler API the operator calls
(``/health``, ``get_workers``, ``adaptive_target``, ``seamless/idle``), each on its own loopback address
(the pod IP of its Ready scheduler pod); ``retire_workers`` answers only after a long time, as a scheduler
moving a lot of memory does. Before, each retire call held one of kopf's 32 handler threads for up to
``retireTimeout`` (120 s): 33 of them left no thread for anyone, and a new cluster got nothing.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import Clusters
from tests.support.kubelet import make_pod_ready
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
DASHBOARD_PORT = int(os.environ["SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT"])
SLOW = 33
RETIRE_SECONDS = 90.0  # longer than the test waits for the new cluster


class SlowSchedulers(ThreadingHTTPServer):
    """Answers as the scheduler whose pod IP the client dialled; retire_workers takes RETIRE_SECONDS."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("0.0.0.0", DASHBOARD_PORT), _Handler)
        self.clusters: dict[str, str] = {}  # pod IP -> cluster name
        self.retire_calls: list[str] = []
        self.released = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An operator that hung up before the late answer (its deadline passed, or it stopped) is no error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: SlowSchedulers

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        name = self.server.clusters.get(self.connection.getsockname()[0], "unknown")
        answers = {
            "/health": "ok",
            "/api/v1/get_workers": {"workers": [{"name": f"{name}-worker-0", "address": "tcp://10.0.0.1:1"}]},
            "/api/v1/adaptive_target": {"workers": 0},
            "/api/v1/seamless/idle": {"idle_since": None},  # busy: no idle timeout
        }
        self._answer(answers.get(self.path, {}))

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/api/v1/retire_workers":
            self._answer({})
            return
        ip = self.connection.getsockname()[0]
        self.server.retire_calls.append(ip)
        if self.server.released.wait(RETIRE_SECONDS):  # its memory moved: retired, as Dask answers
            name = self.server.clusters.get(ip, "unknown")
            self._answer({"tcp://10.0.0.1:1": {"name": f"{name}-worker-0"}})


def _ours(server: SlowSchedulers) -> list[str]:
    """Retire calls made to this test's schedulers (clusters of earlier tests may linger while their
    namespaces go, and their schedulers' pod IP, 127.0.0.1, reaches this server too)."""
    return [ip for ip in server.retire_calls if ip in server.clusters]


@pytest.fixture
def slow_schedulers() -> Iterator[SlowSchedulers]:
    server = SlowSchedulers()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


def test_33_slow_retires_do_not_starve_a_new_cluster_elsewhere(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient, slow_schedulers: SlowSchedulers,
        other_namespace: str) -> None:
    names = [f"slow{i}" for i in range(SLOW)]
    for name in names:
        clusters.create(name, {"workers": {"replicas": 1, "maximum": 1}})
    for i, name in enumerate(names):
        pod = wait_for(lambda n=name: clusters.pods(n, "scheduler"), timeout=60, description=f"{name} scheduler")[0]
        wait_for(lambda n=name: clusters.worker_names(n), timeout=60, description=f"{name} worker")
        ip = f"127.0.0.{i + 2}"
        slow_schedulers.clusters[ip] = name
        make_pod_ready(kube_api, clusters.namespace, pod.metadata.name, "node-1", pod_ip=ip)
    for name in names:
        clusters.wait_status(name, lambda s: s.get("phase") == "Running", timeout=60, description="Running")
    # Scale every one down: each scheduler is asked to retire its worker (it knows it), and takes its time.
    for name in names:
        clusters.patch_spec(name, {"workers": {"replicas": 0}})
    # (32 at least: before, kopf's 32 handler threads were all taken then, and the 33rd never got one.)
    wait_for(lambda: len(set(_ours(slow_schedulers))) >= 32, timeout=60, description="32 retire calls")

    started = time.monotonic()
    newcomer = Clusters(kube_api, other_namespace)
    newcomer.create("fresh", {"workers": {"replicas": 2, "maximum": 2}})
    wait_for(lambda: newcomer.children("fresh") == (["fresh-worker-0", "fresh-worker-1"], 1, 1) or None,
             timeout=20, description="the new cluster's children")
    newcomer.wait_status("fresh", lambda s: s.get("workersDesired") == 2 and s.get("phase") == "Starting",
                         timeout=20, description="the new cluster's status")
    assert time.monotonic() - started < 20
    # Retire first, then delete: while the schedulers have not answered, every worker pod is still there,
    # and no scheduler was asked twice.
    assert all(clusters.worker_names(name) == [f"{name}-worker-0"] for name in names)
    wait_for(lambda: len(set(_ours(slow_schedulers))) == SLOW, timeout=30, description=f"{SLOW} retire calls")
    assert sorted(_ours(slow_schedulers)) == sorted(slow_schedulers.clusters)


def test_retired_worker_pod_goes_once_the_scheduler_answers(
        operator: Any, clusters: Clusters, kube_api: client.ApiClient, slow_schedulers: SlowSchedulers) -> None:
    clusters.create("late", {"workers": {"replicas": 1, "maximum": 1}})
    pod = wait_for(lambda: clusters.pods("late", "scheduler"), timeout=30, description="scheduler")[0]
    wait_for(lambda: clusters.worker_names("late"), timeout=30, description="worker")
    slow_schedulers.clusters["127.0.0.2"] = "late"
    make_pod_ready(kube_api, clusters.namespace, pod.metadata.name, "node-1", pod_ip="127.0.0.2")
    clusters.wait_status("late", lambda s: s.get("phase") == "Running", description="Running")
    clusters.patch_spec("late", {"workers": {"replicas": 0}})
    wait_for(lambda: _ours(slow_schedulers), timeout=30, description="retire call")
    time.sleep(3)  # rounds go by while the scheduler moves memory: the worker stays
    assert clusters.worker_names("late") == ["late-worker-0"]
    slow_schedulers.released.set()  # the scheduler answers: the worker is retired
    wait_for(lambda: clusters.worker_names("late") == [], timeout=30, description="worker pod deleted")
    assert len(_ours(slow_schedulers)) == 1
