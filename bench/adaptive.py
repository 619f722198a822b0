"""Seamless adaptive target vs plain Dask adapt on the same bursty, Seamless-shaped workload.

Both runs: a LocalCluster that starts with no worker and adapts (as the
jobqueue backend does: ``cluster.adapt(target_duration=10m x cores)``), the
same parameters and the same workload; "seamless" adds the scheduler preload
(:mod:`seamless_dask_runtime.adaptive`), "plain" does not. The workload is
shaped like seamless-dask's graphs: each transformation is a ``base_<checksum>``
task (a prefix of its own, so no duration is ever learned, as with real
Seamless) waiting on a small input task; with ``--depth 2`` each transformation's
input is another transformation's result (a two-step pipeline), so half of a
burst waits on the other half. Bursts arrive with pauses between
them. Prints per run the time to finish and the worker-seconds used (workers
alive x time, sampled), then medians and ratios.

    .venv/bin/python bench/adaptive.py [--rounds 3] [--bursts 3] [--burst 16] [--seconds 3] [--gap 8] [--depth 2]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import threading
import time
import uuid
from typing import Any

import dask
from distributed import Client, LocalCluster

from seamless_dask_runtime.model.parameters import from_status_parameters
from seamless_dask_runtime.model.sizing import adaptive_target_duration, worker_threads
from seamless_dask_runtime.scheduler_preload import scheduler_options

PARAMETERS = {"cores": 1, "transformation_throttle": 2, "maximum_jobs": 4,
              "unknown-task-duration": "1m", "target-duration": "10m"}


def load_input(i: int) -> int:
    return i


def transformation(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value


class WorkerSeconds:
    """Integrates the number of workers over time by sampling the scheduler."""

    def __init__(self, cluster: LocalCluster, period: float = 0.2):
        self.cluster, self.period, self.total, self.peak = cluster, period, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.period):
            now = time.monotonic()
            count = len(self.cluster.scheduler.workers)
            self.total += count * (now - last)
            self.peak = max(self.peak, count)
            last = now

    def __enter__(self) -> WorkerSeconds:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def one_run(mode: str, args: argparse.Namespace) -> dict[str, float]:
    params = from_status_parameters(PARAMETERS)
    preload = scheduler_options(params) if mode == "seamless" else {}
    with dask.config.set({"distributed.scheduler.unknown-task-duration": params.unknown_task_duration}), \
            LocalCluster(n_workers=0, threads_per_worker=worker_threads(params), processes=True,
                         dashboard_address=":0", scheduler_kwargs=preload) as cluster, \
            Client(cluster) as client:
        cluster.adapt(minimum=0, maximum=params.maximum_jobs, interval="1s", wait_count=3,
                      target_duration=f"{adaptive_target_duration(params)}s")
        started = time.monotonic()
        with WorkerSeconds(cluster) as usage:
            futures = []
            for burst in range(args.bursts):
                if burst:
                    time.sleep(args.gap)
                for i in range(args.burst):
                    checksum = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
                    value = client.submit(load_input, i, key=f"thin-{checksum}")
                    for step in range(args.depth):
                        value = client.submit(transformation, value, args.seconds, key=f"base_{checksum}{step}")
                    futures.append(value)
            client.gather(futures)
            finished = time.monotonic() - started
        return {"seconds": finished, "worker_seconds": usage.total, "peak_workers": usage.peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bursts", type=int, default=3)
    parser.add_argument("--burst", type=int, default=16, help="transformations per burst")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of one transformation")
    parser.add_argument("--gap", type=float, default=8.0, help="pause between bursts")
    parser.add_argument("--depth", type=int, default=2, help="transformations in each pipeline")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"seamless": [], "plain": []}
    for round_ in range(args.rounds):
        for mode in ("seamless", "plain") if round_ % 2 == 0 else ("plain", "seamless"):
            result = one_run(mode, args)
            results[mode].append(result)
            print(f"round {round_ + 1} {mode:8s} finish {result['seconds']:6.1f} s  worker-seconds "
                  f"{result['worker_seconds']:6.1f}  peak workers {result['peak_workers']}", flush=True)
    print(f"\n{args.bursts} bursts x {args.burst} pipelines of {args.depth} transformations x {args.seconds:g} s, "
          f"gap {args.gap:g} s, "
          f"{args.rounds} rounds; parameters {PARAMETERS}")
    print(f"{'policy':10s} {'finish (median)':>16s} {'worker-s (median)':>18s} {'peak (median)':>14s}")
    medians = {}
    for mode, runs in results.items():
        medians[mode] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"{mode:10s} {medians[mode]['seconds']:14.1f} s {medians[mode]['worker_seconds']:16.1f} s "
              f"{medians[mode]['peak_workers']:14.0f}")
    print(f"seamless/plain: finish {medians['seamless']['seconds'] / medians['plain']['seconds']:.2f}, "
          f"worker-seconds {medians['seamless']['worker_seconds'] / medians['plain']['worker_seconds']:.2f}")


if __name__ == "__main__":
    main()
