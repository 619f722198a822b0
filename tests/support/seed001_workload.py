"""The seed-001 workload in miniature, for the throttle's tests and benchmark.

Why a module and not a test file: Dask workers must import these functions
(tasks submit them again from inside tasks); the test suite and
bench/throttle.py share it. Not part of the product.

Shape: ``n_params`` aggregations; each aggregation needs ``n_reps``
replicate simulations; each simulation needs one "kernel". As in Seamless,
each level *submits* the level below from inside its task and waits for it.

Modes:

- ``throttled``: every submission first asks the throttle; denied work runs
  locally in the asking thread. The driver holds a permit per aggregation.
- ``nested``: submits and blocks (``get_client()`` + ``result()``), no
  throttle: the seed-001 thread starvation when threads are few.
- ``secede``: nested through ``worker_client()`` (secede/rejoin), no throttle.
- ``flat``: plain Dask graph, no nesting (sims -> aggregation dependencies).
"""

from __future__ import annotations

import concurrent.futures
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, get_client, worker_client

from seamless_dask_runtime.throttle.client import ThrottleClient

MODES = ("throttled", "nested", "secede", "flat")


class WorkloadStalled(TimeoutError):
    """The workload did not finish in time (the deadlock this package prevents)."""

    def __init__(self, message: str, done: int, total: int) -> None:
        super().__init__(message)
        self.done = done
        self.total = total


def kernel(pid: str, rep: int, steps: int) -> float:
    """Deterministic CPU work standing in for a simulation's inner computation."""
    x = zlib.crc32(f"{pid}/{rep}".encode())
    for _ in range(steps):
        x = (1103515245 * x + 12345) & 0xFFFFFFFF
    return x / 2**32


def expected_value(pid: str, rep: int, steps: int) -> float:
    return kernel(pid, rep, steps)


def simulation(pid: str, rep: int, steps: int, mode: str, nested_timeout: float | None = None) -> dict:
    """One replicate: submits its kernel (or not, per mode) and waits for it."""
    remote = False
    if mode == "throttled":
        throttle = ThrottleClient()
        permit = throttle.request(timeout=nested_timeout)
        if permit is None:
            value = kernel(pid, rep, steps)
        else:
            try:
                value = throttle.client.submit(kernel, pid, rep, steps, pure=False).result()
                remote = True
            finally:
                throttle.release(permit)
    elif mode == "nested":
        value = get_client().submit(kernel, pid, rep, steps, pure=False).result()
        remote = True
    elif mode == "secede":
        with worker_client() as client:
            value = client.submit(kernel, pid, rep, steps, pure=False).result()
        remote = True
    else:
        value = kernel(pid, rep, steps)
    return {"pid": pid, "rep": rep, "value": value, "kernel_remote": remote}


def aggregation(pid: str, n_reps: int, steps: int, mode: str, nested_timeout: float | None = None) -> dict:
    """Runs (submits) all replicates of one parameter set and aggregates them."""
    sims: list[dict] = []
    remote_sims = 0
    if mode == "throttled":
        throttle = ThrottleClient()
        client = throttle.client
        permits = throttle.request_many(n_reps, timeout=nested_timeout)  # one epoch at most
        futures = []
        for rep, permit in enumerate(permits):
            if permit is None:
                permit = throttle.request(timeout=0)  # a slot may have freed up since
            if permit is None:
                sims.append(simulation(pid, rep, steps, mode, nested_timeout))
                continue
            future = client.submit(simulation, pid, rep, steps, mode, nested_timeout, pure=False)
            throttle.release_when_done(permit, future)
            futures.append(future)
        sims.extend(client.gather(futures))
        remote_sims = len(futures)
    elif mode in ("nested", "secede"):
        if mode == "nested":
            client = get_client()
            futures = [client.submit(simulation, pid, rep, steps, mode, pure=False) for rep in range(n_reps)]
            sims = client.gather(futures)
        else:
            with worker_client() as client:
                futures = [client.submit(simulation, pid, rep, steps, mode, pure=False)
                           for rep in range(n_reps)]
                sims = client.gather(futures)
        remote_sims = n_reps
    else:
        raise ValueError(f"aggregation() does not run in mode {mode!r}")
    return summarize(pid, sims, remote_sims)


def aggregate_flat(pid: str, *sims: dict) -> dict:
    """Aggregation of the flat graph: Dask hands it the finished replicates."""
    return summarize(pid, list(sims), len(sims))


def summarize(pid: str, sims: list[dict], remote_sims: int) -> dict:
    values = [s["value"] for s in sims]
    return {
        "pid": pid,
        "reps": sorted(s["rep"] for s in sims),
        "mean": sum(values) / len(values) if values else float("nan"),
        "remote_sims": remote_sims,
        "local_sims": len(sims) - remote_sims,
        "remote_kernels": sum(bool(s["kernel_remote"]) for s in sims),
        "values": {s["rep"]: s["value"] for s in sims},
    }


@dataclass
class WorkloadResult:
    """What the driver got back, plus the bookkeeping the tests assert on."""

    mode: str
    n_params: int
    n_reps: int
    wall_seconds: float
    aggregations: list[dict] = field(repr=False)

    @property
    def simulations(self) -> int:
        return sum(len(a["reps"]) for a in self.aggregations)

    def totals(self) -> dict[str, int]:
        keys = ("remote_sims", "local_sims", "remote_kernels")
        return {k: sum(a[k] for a in self.aggregations) for k in keys}

    def check(self, steps: int) -> None:
        """Every aggregation and every replicate accounted for, with the right values."""
        pids = sorted(a["pid"] for a in self.aggregations)
        if pids != sorted(param_ids(self.n_params)):
            raise AssertionError(f"aggregations missing: got {pids}")
        for agg in self.aggregations:
            if agg["reps"] != list(range(self.n_reps)):
                raise AssertionError(f"{agg['pid']}: replicates {agg['reps']}")
            for rep, value in agg["values"].items():
                if value != expected_value(agg["pid"], rep, steps):
                    raise AssertionError(f"{agg['pid']}/{rep}: wrong value {value}")


def wait_futures(futures: list[Any], timeout: float | None, poll: float = 0.05) -> bool:
    """True once all futures are done, False after ``timeout`` (works without a default client)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not all(future.done() for future in futures):
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def param_ids(n_params: int) -> list[str]:
    return [f"p{index:03d}" for index in range(n_params)]


def run_workload(
    client: Client,
    n_params: int,
    n_reps: int,
    *,
    steps: int = 2000,
    mode: str = "throttled",
    timeout: float | None = None,
    nested_timeout: float | None = None,
) -> WorkloadResult:
    """Run the workload from the driver; raise :class:`WorkloadStalled` after ``timeout``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pids = param_ids(n_params)
    start = time.perf_counter()
    if mode == "throttled":
        throttle = ThrottleClient(client)

        def top_level(pid: str) -> Any:
            # Top-level work belongs on the cluster: keep asking rather than run locally.
            return throttle.call(aggregation, pid, n_reps, steps, mode, nested_timeout, retry=True)

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, n_params))
        try:
            jobs = [pool.submit(top_level, pid) for pid in pids]
            done, pending = concurrent.futures.wait(jobs, timeout=timeout)
            if pending:
                raise WorkloadStalled(f"{len(done)}/{len(jobs)} aggregations after {timeout}s",
                                      len(done), len(jobs))
            aggregations = [job.result() for job in jobs]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    else:
        if mode == "flat":
            futures = []
            for pid in pids:
                sims = [client.submit(simulation, pid, rep, steps, mode, pure=False) for rep in range(n_reps)]
                futures.append(client.submit(aggregate_flat, pid, *sims, pure=False))
        else:
            futures = [client.submit(aggregation, pid, n_reps, steps, mode, pure=False) for pid in pids]
        if not wait_futures(futures, timeout):
            done = sum(future.done() for future in futures)
            client.cancel(futures)
            raise WorkloadStalled(f"{done}/{len(futures)} aggregations after {timeout}s",
                                  done, len(futures)) from None
        aggregations = client.gather(futures)
    return WorkloadResult(mode, n_params, n_reps, time.perf_counter() - start, aggregations)
