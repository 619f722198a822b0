"""Benchmark of the anti-deadlock throttle on a real LocalCluster (not a timed test).

1. Permission round trip: median and p99 of request and of release over N
   requests (below capacity: the immediate-grant path every caller pays).
2. Grants per second: request+release cycles, one requester and 4 concurrent
   requesters (each its own Dask client, like separate Seamless processes).
3. The seed-001 workload (default 20 parameter sets x 200 replicates + 20
   aggregations, every level submitted from inside the level above) on a small
   cluster (1 worker x 2 threads):
   - ``throttled``: nested submission behind the throttle (denied -> local);
   - ``flat``: plain distributed, the same work as a flat graph without nesting.
     This is the fair baseline: it is what the work costs when Dask alone
     schedules it and nothing can starve;
   - ``secede``: plain distributed with nesting via ``worker_client()``
     (secede/rejoin), the stock-Dask way to nest, for reference;
   - ``nested`` (blocking nesting, no throttle) is not timed: it stalls (seed 001).

Run: ``PYTHONPATH=. python bench/throttle.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from seamless_dask_runtime.throttle import ThrottleClient, ThrottlePlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the workload is the tests' (not in the product)
from tests.support.seed001_workload import WorkloadStalled, run_workload


@contextmanager
def cluster_with_throttle(workers: int, threads: int, throttle: int, epoch: float) -> Iterator[Client]:
    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                      dashboard_address=None, worker_dashboard_address=None) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.register_plugin(ThrottlePlugin(throttle=throttle, epoch_seconds=epoch))
            yield client


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def requester(address: str, cycles: int, start: Any, out: Any) -> None:
    """One requesting process: warm up, wait for the start signal, time request/release cycles."""
    with Client(address, set_as_default=False) as client:
        throttle = ThrottleClient(client)
        for _ in range(50):  # warm the connection pool
            throttle.release(throttle.request())
        start.wait()
        req, rel = [], []
        begin = time.perf_counter()
        for _ in range(cycles):
            t0 = time.perf_counter()
            permit = throttle.request()
            t1 = time.perf_counter()
            throttle.release(permit)
            rel.append(time.perf_counter() - t1)
            req.append(t1 - t0)
            assert permit is not None
        out.put((req, rel, time.perf_counter() - begin))


def run_requesters(address: str, processes: int, cycles: int) -> tuple[list[float], list[float], float]:
    """Requesters in their own processes (the scheduler's process only serves)."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=requester, args=(address, cycles, start, out)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    time.sleep(3.0)  # let them connect and warm up
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    req = [x for r in results for x in r[0]]
    rel = [x for r in results for x in r[1]]
    return req, rel, processes * cycles / max(r[2] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--params", type=int, default=20)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20000, help="kernel work (~0.1 us/step)")
    parser.add_argument("--epoch", type=float, default=0.1, help="epoch seconds (default in production: 10)")
    parser.add_argument("--nested-timeout", type=float, default=0.0,
                        help="wait of nested requests at capacity: 0 = take a free slot or run "
                             "locally at once; omit the epoch wait (-1 = wait for the epoch)")
    parser.add_argument("--skip-workload", action="store_true")
    args = parser.parse_args()
    nested_timeout = None if args.nested_timeout < 0 else args.nested_timeout

    print("Throttle round trip (LocalCluster 2 workers x 3 threads, throttle 3, capacity 6; "
          "requesters in separate processes)")
    with cluster_with_throttle(2, 3, 3, 10.0) as client:
        address = client.scheduler.address
        req, rel, seq = run_requesters(address, 1, args.requests)
        _, _, par = run_requesters(address, 4, args.requests // 2)
        stats = ThrottleClient(client).stats()
    ms = 1000.0
    print(f"  {'measure':<34}{'median':>10}{'p99':>10}")
    print(f"  {'request (granted at once) ms':<34}{statistics.median(req) * ms:>10.3f}"
          f"{percentile(req, 99) * ms:>10.3f}")
    print(f"  {'release ms':<34}{statistics.median(rel) * ms:>10.3f}{percentile(rel, 99) * ms:>10.3f}")
    print(f"  {'grants/s, 1 requester':<34}{seq:>10.0f}")
    print(f"  {'grants/s, 4 concurrent requesters':<34}{par:>10.0f}")
    print(f"  leak check: in_flight={stats['in_flight']} queued={stats['queued']}")

    if args.skip_workload:
        return
    shape = f"{args.params} x {args.reps} sims + {args.params} aggs, steps={args.steps}"
    print(f"\nSeed-001 workload ({shape}) on 1 worker x 2 threads, throttle 2, epoch {args.epoch}s, "
          f"nested timeout {nested_timeout}")
    print(f"  {'mode':<12}{'wall s':>9}{'remote sims':>13}{'local sims':>12}{'remote kernels':>16}")
    for mode in ("flat", "secede", "throttled"):
        with cluster_with_throttle(1, 2, 2, args.epoch) as client:
            try:
                result = run_workload(client, args.params, args.reps, steps=args.steps, mode=mode,
                                      timeout=1800, nested_timeout=nested_timeout)
            except WorkloadStalled as exc:
                print(f"  {mode:<12}{'stalled':>9}  {exc}")
                continue
            result.check(args.steps)
            totals = result.totals()
            print(f"  {mode:<12}{result.wall_seconds:>9.2f}{totals['remote_sims']:>13}"
                  f"{totals['local_sims']:>12}{totals['remote_kernels']:>16}")
    print("  nested (blocking, no throttle): stalls; see test_seed001_workload_stalls_without_the_throttle")


if __name__ == "__main__":
    main()
