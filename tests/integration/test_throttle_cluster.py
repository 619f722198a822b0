"""The throttle on real Dask: LocalCluster worker processes, real scheduler/worker CLIs.

No Dask mocks. Epochs are shortened (plugin argument or SEAMLESS_THROTTLE_EPOCH_SECONDS)
so nothing waits 10 s; every test has a hard timeout so a stall fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

import seamless_dask_runtime.throttle as throttle_pkg
from seamless_dask_runtime.throttle import (
    EPOCH_ENV,
    THROTTLE_ENV,
    THROTTLE_PLUGIN_NAME,
    ThrottleClient,
    ThrottleNotInstalledError,
    ThrottlePlugin,
    install,
)
from tests.support.seed001_workload import (
    WorkloadStalled,
    aggregation,
    param_ids,
    run_workload,
    wait_futures,
)

pytestmark = pytest.mark.timeout(120)

PROJECT_ROOT = Path(throttle_pkg.__file__).resolve().parents[2]


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def local_cluster(n_workers: int, threads: int) -> LocalCluster:
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads,
        processes=True,
        dashboard_address=None,
        worker_dashboard_address=None,
    )


@pytest.fixture
def cluster2() -> Iterator[LocalCluster]:
    """2 worker processes x 2 threads; the tests register the throttle themselves."""
    with local_cluster(2, 2) as cluster:
        yield cluster


@pytest.fixture
def client2(cluster2: LocalCluster) -> Iterator[Client]:
    with Client(cluster2, set_as_default=False) as client:
        yield client


def _install_from_env(dask_scheduler) -> dict:  # run_on_scheduler passes the scheduler by name
    install(dask_scheduler)
    return dask_scheduler.handlers[throttle_pkg.protocol.STATS_OP]()


def _permission_inside_task() -> dict:
    """A nested caller: asks from inside a task, through the worker's client."""
    throttle = ThrottleClient()
    with throttle.permission() as permit:
        held = throttle.stats()["in_flight"]
        nested = throttle.client.submit(sum, [1, 2, 3], pure=False).result() if permit else None
    return {"granted": permit is not None, "in_flight_while_held": held, "nested": nested,
            "released": permit.released if permit else None}


# ------------------------------------------------------------------ basics
def test_register_plugin_round_trip_and_idempotent_release(client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=2, epoch_seconds=0.3))
    throttle = ThrottleClient(client2)
    stats = throttle.stats()
    assert stats["workers"] == 2 and stats["throttle"] == 2 and stats["capacity"] == 4
    assert stats["threads"] == 4 and stats["in_flight"] == 0

    permit = throttle.request()
    assert permit is not None and not permit.released
    assert throttle.stats()["in_flight"] == 1
    throttle.release(permit)
    throttle.release(permit)
    permit.release()
    stats = throttle.stats()
    assert stats["in_flight"] == 0 and stats["granted_total"] == 1 and stats["holders"] == 0

    with throttle.permission() as scoped:
        assert scoped is not None and throttle.stats()["in_flight"] == 1
    assert scoped.released and throttle.stats()["in_flight"] == 0
    # Registering again keeps the running instance (and its counters).
    client2.register_plugin(ThrottlePlugin(throttle=7))
    assert throttle.stats()["throttle"] == 2


def test_at_capacity_requests_wait_for_the_epoch(client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=2, epoch_seconds=0.5))
    throttle = ThrottleClient(client2)
    held = [throttle.request(timeout=0) for _ in range(4)]
    assert all(held)
    # timeout=0: no free slot, no waiting.
    start = time.monotonic()
    assert throttle.request(timeout=0) is None
    assert time.monotonic() - start < 0.4
    # Waits for the epoch; all 4 threads are covered by permits -> denied.
    start = time.monotonic()
    assert throttle.request() is None
    assert 0.4 <= time.monotonic() - start < 3.0
    # A timeout shorter than the epoch withdraws the request.
    start = time.monotonic()
    assert throttle.request(timeout=0.1) is None
    assert time.monotonic() - start < 0.45
    stats = throttle.stats()
    assert stats["queued"] == 0 and stats["withdrawn_total"] == 1 and stats["epochs_closed"] == 1
    # A release hands the slot to a waiting request (retry: robust to a slow machine
    # where the epoch closes first; hand-off before the epoch is shown in the scaling test).
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(throttle.request(timeout=10, retry=True)))
    waiter.start()
    wait_until(lambda: throttle.stats()["queued"] == 1, what="queued request")
    throttle.release(held.pop())
    waiter.join(timeout=5)
    assert got and got[0] is not None
    throttle.release_many([*held, got[0]])
    assert throttle.stats()["in_flight"] == 0


def test_epoch_grants_extra_permits_into_idle_threads():
    # 2 workers x 4 threads, throttle 1: capacity 2, ceiling 3, 8 threads.
    with local_cluster(2, 4) as cluster, Client(cluster, set_as_default=False) as client:
        client.register_plugin(ThrottlePlugin(throttle=1, epoch_seconds=0.3))
        throttle = ThrottleClient(client)
        held = throttle.request_many(2)
        assert all(held)
        extra = throttle.request_many(3)
        assert sum(p is not None for p in extra) == 1  # one idle-slot grant per epoch
        stats = throttle.stats()
        assert stats["in_flight"] == 3 and stats["overcommitted_total"] == 1
        assert throttle.request(timeout=2) is None  # at the ceiling now
        throttle.release_many(held + extra)
        assert throttle.stats()["in_flight"] == 0


def test_capacity_follows_workers_when_scaling(cluster2: LocalCluster, client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=3, epoch_seconds=60.0))
    throttle = ThrottleClient(client2)
    assert throttle.stats()["capacity"] == 6
    held = throttle.request_many(6)
    assert all(held)
    # A request at capacity waits (the epoch is long)... until a worker joins.
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(throttle.request()))
    waiter.start()
    wait_until(lambda: throttle.stats()["queued"] == 1, what="queued request")
    cluster2.scale(3)
    client2.wait_for_workers(3, timeout=60)
    wait_until(lambda: throttle.stats()["capacity"] == 9, what="capacity 9")
    waiter.join(timeout=10)
    assert got and got[0] is not None, "new capacity must be handed to the waiting request"
    assert throttle.stats()["workers"] == 3
    cluster2.scale(1)
    wait_until(lambda: throttle.stats()["workers"] == 1, timeout=60, what="scale down to 1")
    stats = throttle.stats()
    assert stats["capacity"] == 3 and stats["in_flight"] == 7  # nothing is revoked
    assert throttle.request(timeout=0) is None
    throttle.release_many([*held, got[0]])
    assert throttle.stats()["in_flight"] == 0
    assert throttle.request(timeout=0) is not None


def test_install_on_a_running_scheduler_reads_its_environment(client2: Client, monkeypatch):
    # LocalCluster's scheduler lives in this process, so its environment is ours.
    monkeypatch.setenv(THROTTLE_ENV, "1")
    monkeypatch.setenv(EPOCH_ENV, "0.2")
    stats = client2.run_on_scheduler(_install_from_env)
    assert stats["capacity"] == 2 and stats["epoch_seconds"] == 0.2
    assert client2.run_on_scheduler(_install_from_env)["capacity"] == 2  # idempotent
    throttle = ThrottleClient(client2)
    a, b = throttle.request(timeout=0), throttle.request(timeout=0)
    assert a and b and throttle.request(timeout=0) is None
    # 4 threads for capacity 2: the epoch may grant one idle thread, up to the ceiling of 3.
    c = throttle.request()
    assert c is not None and throttle.request() is None
    throttle.release_many([a, b, c])


def test_bad_throttle_environment_is_reported_by_name(client2: Client, monkeypatch):
    monkeypatch.setenv(THROTTLE_ENV, "lots")
    with pytest.raises(ValueError, match=THROTTLE_ENV):
        client2.run_on_scheduler(_install_from_env)


# ------------------------------------------------------- clients and tasks
def test_permission_from_inside_a_task(client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=2, epoch_seconds=0.2))
    result = client2.submit(_permission_inside_task, pure=False).result(timeout=60)
    assert result == {"granted": True, "in_flight_while_held": 1, "nested": 6, "released": True}
    assert ThrottleClient(client2).stats()["in_flight"] == 0


def test_async_client_and_async_with(cluster2: LocalCluster):
    async def main() -> dict:
        address = cluster2.scheduler_address  # the cluster object is bound to its own loop
        async with Client(address, asynchronous=True, set_as_default=False) as client:
            await client.register_plugin(ThrottlePlugin(throttle=1, epoch_seconds=0.2))
            throttle = ThrottleClient(client)
            async with throttle.permission() as permit:
                assert permit is not None
                assert (await throttle.stats())["in_flight"] == 1
            first = await throttle.request()
            second = await throttle.request()
            denied = await throttle.request(timeout=0)
            await throttle.release(first)
            await throttle.release(first)
            await throttle.release(second)
            return {"denied": denied, **(await throttle.stats())}

    stats = asyncio.run(main())
    assert stats["denied"] is None and stats["in_flight"] == 0 and stats["granted_total"] == 3


def test_release_when_done_follows_the_future(client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=1, epoch_seconds=0.2))
    throttle = ThrottleClient(client2)
    permit = throttle.request()
    future = client2.submit(time.sleep, 0.3, pure=False)
    throttle.release_when_done(permit, future)
    assert throttle.stats()["in_flight"] == 1
    future.result(timeout=30)
    wait_until(lambda: throttle.stats()["in_flight"] == 0, what="release after the future")
    assert permit.released


def test_disconnecting_client_gets_its_permits_released(cluster2: LocalCluster, client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=2, epoch_seconds=30.0))
    observer = ThrottleClient(client2)
    # A client that closes while holding permits (and a queued request).
    other = Client(cluster2, set_as_default=False)
    leaver = ThrottleClient(other)
    assert all(leaver.request_many(4))
    pending = threading.Thread(target=lambda: leaver.request(), daemon=True)
    pending.start()
    wait_until(lambda: observer.stats()["queued"] == 1, what="queued request of the leaver")
    other.close()
    wait_until(lambda: observer.stats()["in_flight"] == 0, what="release of a closed client")
    stats = observer.stats()
    assert stats["queued"] == 0 and stats["holders"] == 0
    pending.join(timeout=10)


def test_killed_client_process_gets_its_permits_released(cluster2: LocalCluster, client2: Client):
    client2.register_plugin(ThrottlePlugin(throttle=2, epoch_seconds=30.0))
    observer = ThrottleClient(client2)
    script = (
        "import sys, time\n"
        "from distributed import Client\n"
        "from seamless_dask_runtime.throttle import ThrottleClient\n"
        "client = Client(sys.argv[1])\n"
        "permits = ThrottleClient(client).request_many(3, timeout=0)\n"
        "print(sum(p is not None for p in permits), flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, cluster2.scheduler_address],
                            stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "3"
        assert observer.stats()["in_flight"] == 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(lambda: observer.stats()["in_flight"] == 0, what="release after SIGKILL")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_thousand_cycles_from_three_concurrent_clients_leave_no_leak(cluster2: LocalCluster, client2: Client):
    # Capacity 2 for 3 clients: contention, hand-offs, epochs, withdrawals all happen.
    client2.register_plugin(ThrottlePlugin(throttle=1, epoch_seconds=0.05))
    cycles = 1000
    errors: list[BaseException] = []
    granted = [0, 0, 0]

    def worker(index: int) -> None:
        try:
            with Client(cluster2, set_as_default=False) as client:
                throttle = ThrottleClient(client)
                for i in range(cycles):
                    permit = throttle.request(timeout=(None, 0, 0.02)[i % 3])
                    if permit is not None:
                        granted[index] += 1
                        throttle.release(permit)
                        if i % 7 == 0:
                            throttle.release(permit)  # double release is harmless
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    stats = ThrottleClient(client2).stats()
    assert stats["in_flight"] == 0 and stats["queued"] == 0 and stats["holders"] == 0
    assert stats["granted_total"] == sum(granted) > 0
    assert stats["granted_total"] + stats["denied_total"] + stats["withdrawn_total"] == 3 * cycles


# --------------------------------------------------- real CLI processes
def test_dask_scheduler_preload_and_dask_worker_processes(tmp_path: Path):
    scheduler_file = tmp_path / "scheduler.json"
    env = subprocess_env(**{THROTTLE_ENV: "2", EPOCH_ENV: "0.2"})
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(scheduler_file),
         "--preload", "seamless_dask_runtime.throttle.preload"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    worker = None
    try:
        wait_until(lambda: scheduler_file.exists() or scheduler.poll() is not None, timeout=60,
                   what="scheduler file")
        assert scheduler.poll() is None, scheduler.stderr.read() if scheduler.stderr else ""
        worker = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(scheduler_file),
             "--nthreads", "2", "--no-dashboard", "--name", "w0"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with Client(scheduler_file=str(scheduler_file), set_as_default=False, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            throttle = ThrottleClient(client)
            wait_until(lambda: throttle.stats()["workers"] == 1, what="worker seen by the throttle")
            stats = throttle.stats()
            assert stats["throttle"] == 2 and stats["capacity"] == 2 and stats["epoch_seconds"] == 0.2
            assert client.run_on_scheduler(lambda dask_scheduler: THROTTLE_PLUGIN_NAME in dask_scheduler.plugins)
            a, b = throttle.request(), throttle.request()
            assert a and b
            assert throttle.request() is None  # epoch: both threads covered -> denied
            throttle.release_many([a, b])
            result = client.submit(_permission_inside_task, pure=False).result(timeout=60)
            assert result["granted"] and result["nested"] == 6
            assert throttle.stats()["in_flight"] == 0
    finally:
        for proc in (worker, scheduler):  # the worker first: it says goodbye to the scheduler
            if proc is None:
                continue
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# -------------------------------------------------- the seed-001 workload
N_PARAMS, N_REPS, STEPS = 4, 10, 2000


def test_seed001_workload_completes_with_the_throttle():
    """1 worker x 2 threads, every task submits nested work and blocks on it."""
    with local_cluster(1, 2) as cluster, Client(cluster, set_as_default=False) as client:
        client.register_plugin(ThrottlePlugin(throttle=2, epoch_seconds=0.1))
        result = run_workload(client, N_PARAMS, N_REPS, steps=STEPS, mode="throttled", timeout=90)
        result.check(STEPS)
        assert len(result.aggregations) == N_PARAMS
        assert result.simulations == N_PARAMS * N_REPS
        totals = result.totals()
        assert totals["remote_sims"] + totals["local_sims"] == N_PARAMS * N_REPS
        stats = ThrottleClient(client).stats()
        assert stats["in_flight"] == 0 and stats["queued"] == 0
        assert stats["denied_total"] > 0  # nested requests were turned into local work


def _task_states(dask_worker) -> list[tuple[str, str]]:
    return [(ts.key.split("-")[0], ts.state) for ts in dask_worker.state.tasks.values()]


@pytest.mark.timeout(90)
def test_seed001_workload_stalls_without_the_throttle():
    """Same workload, same cluster, no throttle: all threads wait on nested work forever.

    Bounded: a few seconds without a single aggregation finishing, a look at the
    worker (both threads executing aggregations, no simulation ever ran), then
    cancel and tear the cluster down.
    """
    with local_cluster(1, 2) as cluster, Client(cluster, set_as_default=False) as client:
        with pytest.raises(ThrottleNotInstalledError):
            ThrottleClient(client).stats()
        futures = [client.submit(aggregation, pid, N_REPS, STEPS, "nested", pure=False)
                   for pid in param_ids(N_PARAMS)]
        assert not wait_futures(futures, timeout=6)
        assert not any(f.done() for f in futures)
        (states,) = client.run(_task_states).values()
        executing = sorted(prefix for prefix, state in states if state == "executing")
        assert executing == ["aggregation", "aggregation"], states
        assert any(prefix == "simulation" for prefix, _ in states)  # submitted...
        assert not any(prefix == "simulation" and state in ("executing", "memory")
                       for prefix, state in states)  # ...but never got a thread
        client.cancel(futures)

    # The same workload through run_workload reports the stall the same way.
    with local_cluster(1, 2) as cluster, Client(cluster, set_as_default=False) as client:
        with pytest.raises(WorkloadStalled) as info:
            run_workload(client, N_PARAMS, N_REPS, steps=STEPS, mode="nested", timeout=3)
        assert info.value.done == 0 and info.value.total == N_PARAMS
