"""The scheduler preload makes a real scheduler answer ``adaptive_target`` with the Seamless policy:
over RPC (what ``Adaptive`` in the jobqueue backend calls) and over the HTTP API (what the operator calls)."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster
from distributed.scheduler import Scheduler

from seamless_dask_runtime.model.parameters import from_status_parameters
from seamless_dask_runtime.scheduler_preload import scheduler_options

pytestmark = pytest.mark.timeout(120)

ROUTES = ["distributed.http.scheduler.api", "distributed.http.health"]
BURST = 30


@pytest.fixture(autouse=True)
def keep_environment() -> Iterator[None]:
    """In-process workers run our worker plugin, which sets worker variables in *this* process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def transformation(gate: Any, i: int) -> int:
    return i


@pytest.fixture
def cluster_without_workers(request: pytest.FixtureRequest) -> Iterator[tuple[Client, str]]:
    """A scheduler with the preload of ``request.param`` parameters and no worker yet (a cold burst)."""
    params = from_status_parameters(request.param)
    with dask.config.set({"distributed.scheduler.http.routes": ROUTES,
                          "distributed.scheduler.unknown-task-duration": "1m"}), \
            LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0",
                         scheduler_kwargs=scheduler_options(params)) as cluster, \
            Client(cluster) as client:
        yield client, f"http://127.0.0.1:{cluster.scheduler.http_server.port}"


def submit_burst(client: Client) -> list[Any]:
    """Seamless's shape: each transformation (``base`` prefix) waits on an input task."""
    gate = client.submit(time.sleep, 0, key="thin-gate")
    return [client.submit(transformation, gate, i, key=f"base_{i}") for i in range(BURST)]


def wait_for_burst(client: Client) -> None:
    deadline = time.monotonic() + 10
    while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) < BURST + 1:
        assert time.monotonic() < deadline, "the burst did not reach the scheduler"
        time.sleep(0.05)


def targets(client: Client, dashboard: str) -> dict[str, int]:
    def on_scheduler(dask_scheduler: Scheduler) -> tuple[int, int]:
        return dask_scheduler.adaptive_target(), Scheduler.adaptive_target(dask_scheduler, target_duration=600)

    wait_for_burst(client)
    rpc, plain = client.run_on_scheduler(on_scheduler)
    with urllib.request.urlopen(f"{dashboard}/api/v1/adaptive_target", timeout=10) as response:
        http = int(json.loads(response.read())["workers"])
    return {"rpc": rpc, "http": http, "plain dask": plain}


@pytest.mark.parametrize("cluster_without_workers",
                         [{"cores": 1, "target-duration": "10m", "unknown-task-duration": "1m"}], indirect=True)
def test_a_cold_burst_asks_for_workers_by_waiting_work(cluster_without_workers: tuple[Client, str]) -> None:
    client, dashboard = cluster_without_workers
    futures = submit_burst(client)
    got = targets(client, dashboard)
    # 31 tasks x 60 s unknown duration over 600 s per worker: 4 workers, asked by RPC and HTTP alike.
    assert got["rpc"] == got["http"] == 4, got
    # Plain Dask counts only the one ready task: one worker, then scales up late.
    assert got["plain dask"] == 1, got
    client.cancel(futures)


@pytest.mark.parametrize("cluster_without_workers", [{"cores": 1, "pure_dask": True}], indirect=True)
def test_pure_dask_keeps_plain_dask_adapt(cluster_without_workers: tuple[Client, str]) -> None:
    client, dashboard = cluster_without_workers
    futures = submit_burst(client)
    got = targets(client, dashboard)
    assert got["rpc"] == got["http"] == got["plain dask"] == 1, got
    client.cancel(futures)


def test_adapt_scales_a_burst_by_the_seamless_target() -> None:
    """``cluster.adapt()`` (what the jobqueue backend calls) follows the preloaded target."""
    params = from_status_parameters({"cores": 1, "target-duration": "10m", "unknown-task-duration": "1m"})
    with dask.config.set({"distributed.scheduler.unknown-task-duration": "1m"}), \
            LocalCluster(n_workers=0, processes=False, threads_per_worker=1, dashboard_address=":0",
                         scheduler_kwargs=scheduler_options(params)) as cluster, \
            Client(cluster) as client:
        cluster.adapt(minimum=0, maximum=3, interval="200ms", target_duration="600s")
        gate = client.submit(time.sleep, 5, key="thin-gate")  # the burst waits on it
        futures = [client.submit(transformation, gate, i, key=f"base_{i}") for i in range(BURST)]
        deadline = time.monotonic() + 30
        while len(cluster.scheduler.workers) < 3:
            assert time.monotonic() < deadline, f"adapt stopped at {len(cluster.scheduler.workers)} workers"
            time.sleep(0.1)
        assert client.gather(futures) == list(range(BURST))


def test_a_cluster_we_did_not_start_gets_the_same_target() -> None:
    """Generic and dask-kubernetes backends inject through a client instead of the preload."""
    from seamless_dask_runtime.injection import inject_into_cluster

    with dask.config.set({"distributed.scheduler.unknown-task-duration": "1m"}), \
            LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        inject_into_cluster(cluster, from_status_parameters({"cores": 1}))
        futures = submit_burst(client)
        wait_for_burst(client)
        assert client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.adaptive_target()) == 4
        client.cancel(futures)


def test_an_idle_cluster_holding_results_keeps_a_worker() -> None:
    """Seamless keeps results hot in worker memory (seed 000): idle is not "scale to zero" while they exist."""
    params = from_status_parameters({"cores": 1})
    with LocalCluster(n_workers=2, processes=False, dashboard_address=":0",
                      scheduler_kwargs=scheduler_options(params)) as cluster, \
            Client(cluster) as client:
        def target() -> int:
            return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.adaptive_target())

        assert target() == 0  # idle, nothing held: both workers may go
        held = client.submit(bytes, 10_000, key="fat_checksum-held")
        held.result()
        assert target() >= 1  # idle, but a result lives in memory
