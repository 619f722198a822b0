"""SIGTERM to a real ``dask worker`` (what Kubernetes sends a stopped pod): its results survive.

Real ``dask scheduler`` and ``dask worker`` processes, started as worker pods start them (``--preload-nanny
seamless_dask_runtime.drain``, the retire budget in the environment); a client outside holds results on one
worker; SIGTERM goes to the ``dask worker`` process alone, as the container runtime sends it to the
container's first process. Plain ``dask worker`` loses those results (its nanny closes the worker at once).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from seamless_dask_runtime.model.commands import STOP_SIGNAL_PRELOAD
from seamless_dask_runtime.model.identity import CLOSE_MARGIN, RETIRE_BUDGET_VARIABLE
from tests.support.ports import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
DASK = str(Path(sys.executable).parent / "dask")
RESULTS = 60
VALUES = [bytes([i % 256]) * 1000 + str(i).encode() for i in range(RESULTS)]


class Processes:
    """The scheduler and workers of one test, each a real process."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.scheduler = self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--dashboard-address", f"127.0.0.1:{free_port()}"], "scheduler")

    def _start(self, command: list[str], log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.tmp_path / f"{log}.log", "wb") as out:
            proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    def worker(self, name: str, budget: float = 30, drain: bool = True) -> subprocess.Popen[bytes]:
        """``dask worker`` as a worker pod runs it (``drain``: with the preload, as the operator starts it)."""
        preload = ["--preload-nanny", STOP_SIGNAL_PRELOAD] if drain else []
        return self._start([DASK, "worker", "--nthreads", "1", "--name", name, "--host", "127.0.0.1",
                            "--dashboard-address", f"127.0.0.1:{free_port()}", *preload, self.address],
                           name, {RETIRE_BUDGET_VARIABLE: str(budget)})

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


def _address_of(client: Client, name: str) -> str:
    return wait_for(lambda: next((a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
                                  if w["name"] == name), None), 60, description=f"worker {name} joined")


def _hold_results(client: Client, name: str) -> list:
    """60 results, all on worker ``name`` (scattered there: a client's data no task could recompute)."""
    futures = client.scatter(VALUES, workers=[_address_of(client, name)])
    assert set(client.who_has(futures).values()) == {(_address_of(client, name),)}
    return futures


def _exit_code(proc: subprocess.Popen[bytes], timeout: float) -> int:
    return proc.wait(timeout=timeout)


def test_a_stopped_worker_moves_its_results_to_another(processes: Processes) -> None:
    stopped = processes.worker("stopped")
    processes.worker("other")
    with Client(processes.address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        futures = _hold_results(client, "stopped")
        started = time.monotonic()
        stopped.send_signal(signal.SIGTERM)
        assert _exit_code(stopped, 30 + CLOSE_MARGIN) == 0, processes.log("stopped")
        took = time.monotonic() - started
        assert client.gather(futures, errors="raise") == VALUES
        assert set(client.who_has(futures).values()) == {(_address_of(client, "other"),)}
        assert [w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()] == ["other"]
    assert "retired on SIGTERM" in processes.log("stopped")
    assert took < 15, f"retiring 60 small results took {took:.1f} s"


def test_a_stopped_only_worker_waits_for_its_replacement(processes: Processes) -> None:
    """The operator makes a stopped pod's replacement at once: the results wait for it, within the budget."""
    stopped = processes.worker("stopped")
    with Client(processes.address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=60)
        futures = _hold_results(client, "stopped")
        stopped.send_signal(signal.SIGTERM)
        time.sleep(3)
        assert stopped.poll() is None, "the worker left before anyone could take its results"
        processes.worker("replacement")
        assert _exit_code(stopped, 60) == 0, processes.log("stopped")
        assert client.gather(futures, errors="raise") == VALUES
        assert set(client.who_has(futures).values()) == {(_address_of(client, "replacement"),)}


def test_with_nowhere_to_go_the_worker_still_stops_within_its_grace_period(processes: Processes) -> None:
    """No other worker ever comes (a single node drained): the results are lost, but the worker exits by
    itself before the grace period ends (no SIGKILL), and says why."""
    budget = 4
    stopped = processes.worker("stopped", budget=budget)
    with Client(processes.address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=60)
        futures = _hold_results(client, "stopped")
        started = time.monotonic()
        stopped.send_signal(signal.SIGTERM)
        assert _exit_code(stopped, budget + CLOSE_MARGIN) == 0, processes.log("stopped")
        assert budget - 1 <= time.monotonic() - started < budget + CLOSE_MARGIN
        wait_for(lambda: all(f.status != "finished" for f in futures), 30, description="results lost")
    log = processes.log("stopped")
    assert "No other worker took the results" in log, log


def test_plain_dask_worker_loses_them(processes: Processes) -> None:
    """What the preload fixes: without it, SIGTERM closes the worker at once and its results are gone."""
    stopped = processes.worker("stopped", drain=False)
    processes.worker("other", drain=False)
    with Client(processes.address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        futures = _hold_results(client, "stopped")
        stopped.send_signal(signal.SIGTERM)
        _exit_code(stopped, 30)
        wait_for(lambda: all(f.status != "finished" for f in futures), 30, description="results lost")


def test_a_worker_retired_by_a_scale_down_stops_at_once(processes: Processes) -> None:
    """The operator retires a worker through the scheduler's API (which leaves it running), then deletes its
    pod: the SIGTERM finds nothing left to retire, and the worker exits without waiting out its budget."""
    budget = 60
    stopped = processes.worker("scaled-down", budget=budget)
    processes.worker("other", budget=budget)
    with Client(processes.address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        futures = _hold_results(client, "scaled-down")
        assert client.retire_workers(workers=[_address_of(client, "scaled-down")])  # as /api/v1/retire_workers
        started = time.monotonic()
        stopped.send_signal(signal.SIGTERM)
        assert _exit_code(stopped, budget) == 0, processes.log("scaled-down")
        assert time.monotonic() - started < 20
        assert client.gather(futures, errors="raise") == VALUES
    # Either the scheduler no longer knew it, or its nanny was already closing (the retirement closes a worker
    # that the scheduler has let go): nothing was retired twice.
    log = processes.log("scaled-down")
    assert "not registered with the scheduler" in log or "retiring 0 worker(s)" in log, log
    assert "retired on SIGTERM" not in log, log
