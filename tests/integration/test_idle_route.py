"""The scheduler's /api/v1/seamless/idle route: a connected client holding futures is activity."""

from __future__ import annotations

import json
import time
import urllib.request

import dask
from distributed import Client, LocalCluster

ROUTES = ["distributed.http.scheduler.api", "seamless_dask_runtime.http_routes"]


def _idle(dashboard: str) -> dict:
    with urllib.request.urlopen(f"{dashboard}/api/v1/seamless/idle", timeout=10) as response:
        return json.loads(response.read())


def test_idle_only_without_clients_and_tasks() -> None:
    with dask.config.set({"distributed.scheduler.http.routes": ROUTES}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                         dashboard_address="127.0.0.1:0") as cluster:
        dashboard = f"http://127.0.0.1:{cluster.scheduler.http_server.port}"
        first = _idle(dashboard)
        assert first["clients"] == 0 and first["tasks"] == 0 and first["idle_since"] is not None
        with Client(cluster) as client:
            held = client.submit(sum, [1, 2, 3])
            assert held.result() == 6
            report = _idle(dashboard)
            assert report["idle_since"] is None and report["clients"] >= 1 and report["tasks"] == 1, report
            del held
            time.sleep(0.5)
            assert _idle(dashboard)["idle_since"] is None, "a connected client alone keeps the cluster alive"
        deadline = time.monotonic() + 10
        while (report := _idle(dashboard))["clients"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert report["idle_since"] is not None and report["idle_since"] > first["idle_since"], report


_kept_inside: list = []


def _client_inside_worker() -> str:
    """What seamless-dask's first transformation does in a Dask worker: a client of its own, kept."""
    from distributed import Client, get_worker

    client = Client(get_worker().scheduler.address, set_as_default=False)
    _kept_inside.append(client)
    return client.id


def test_a_client_inside_a_worker_does_not_keep_the_cluster_busy() -> None:
    """The worker reports the clients of its process (our worker plugin's heartbeat metric); once the
    user's client left, the one inside the worker is not activity, and idle_for counts on the
    scheduler's monotonic clock."""
    from seamless_dask_runtime.plugin import SeamlessWorkerPlugin

    with dask.config.set({"distributed.scheduler.http.routes": ROUTES}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                         dashboard_address="127.0.0.1:0") as cluster:
        dashboard = f"http://127.0.0.1:{cluster.scheduler.http_server.port}"
        with Client(cluster) as client:
            client.register_plugin(SeamlessWorkerPlugin({}))
            inside = client.submit(_client_inside_worker, pure=False).result()
            busy = _idle(dashboard)
            assert busy["idle_for"] is None and busy["clients"] >= 1, busy
        deadline = time.monotonic() + 15
        while (report := _idle(dashboard))["idle_for"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert inside in cluster.scheduler.clients, "the worker's own client is still connected"
        assert report["idle_for"] is not None, f"a client inside a worker kept the cluster busy: {report}"
        assert report["clients"] == 0 and report["internal_clients"] == 1, report
        time.sleep(1.0)
        later = _idle(dashboard)
        assert later["idle_for"] >= report["idle_for"] + 0.9, (report, later)
        assert abs(later["idle_since"] - report["idle_since"]) < 0.5, (report, later)
