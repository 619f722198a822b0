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
