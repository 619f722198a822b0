"""Benchmark: how long the operator is away when its leader goes (issue 22; not a timed test).

A fresh control plane (``shared/kube/up.sh``), our CRD, one Ready node and two operator replicas as the chart
runs them (``seamless-dask-operator``, Lease election on). Each trial stops the leader, either killed outright
(SIGKILL: a node lost, an OOM kill) or stopped as Kubernetes stops a pod in a rollout (SIGTERM: the Lease is
released), creates a cluster at that moment and measures:

- handover: stop -> the other replica holds the Lease;
- served: stop -> the new cluster has its pods and a status (``workersDesired``), what a user waits for.

The stopped replica is started again as the follower before the next trial. Printed: median, min and max per
way of stopping, the Lease timings, the machine's load.

Run: ``.venv/bin/python bench/day_two.py [--trials 5] [--code DIR]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION  # noqa: E402
from tests.support import control_plane, waiting  # noqa: E402
from tests.support.kubelet import make_node_ready  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

LEASE = "sdo-bench-election"
NAMESPACE = "day-two"


def start_replica(name: str, kubeconfig: Path, code: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": f"{code}{os.pathsep}{code / 'operator'}",
           "SEAMLESS_DASK_OPERATOR_LEASE": LEASE, "SEAMLESS_DASK_OPERATOR_POD_NAMESPACE": NAMESPACE,
           "SEAMLESS_DASK_OPERATOR_POD_NAME": name, "SEAMLESS_DASK_OPERATOR_METRICS_PORT": "0",
           "SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT": str(free_port())}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", "from seamless_dask_operator.main import run; run()",
                                 f"--liveness-port={free_port()}"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=code)


def holder(coordination: k8s.CoordinationV1Api) -> str | None:
    try:
        lease = coordination.read_namespaced_lease(LEASE, NAMESPACE)
    except k8s.exceptions.ApiException:
        return None
    return (lease.spec.holder_identity or "").split("_")[0] or None


def served(custom: k8s.CustomObjectsApi, core: k8s.CoreV1Api, name: str) -> bool:
    body = custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)
    return (body.get("status") or {}).get("workersDesired") == 1 and bool(
        core.list_namespaced_pod(NAMESPACE, label_selector=f"dask.org/cluster-name={name}").items)


def run(args: argparse.Namespace, scratch: Path) -> dict[str, list[tuple[float, float]]]:
    plane = control_plane.start_control_plane(scratch / "kube")
    code = Path(args.code).resolve() if args.code else REPO
    running: dict[str, subprocess.Popen[bytes]] = {}
    results: dict[str, list[tuple[float, float]]] = {"SIGKILL": [], "SIGTERM": []}
    try:
        api = plane.api_client()
        core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        coordination = k8s.CoordinationV1Api(api)
        k8s.ApiextensionsV1Api(api).create_custom_resource_definition(
            yaml.safe_load((REPO / "crds" / "seamlessdaskclusters.yaml").read_text()))
        make_node_ready(api, "node-1")
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        waiting.wait_for(lambda: core.list_namespaced_service_account(NAMESPACE).items, timeout=30,
                         description="service account")
        for name in ("replica-a", "replica-b"):
            running[name] = start_replica(name, plane.kubeconfig, code, scratch / f"{name}.log")
        for trial in range(args.trials):
            for way in (signal.SIGKILL, signal.SIGTERM):
                leader = waiting.wait_for(lambda: holder(coordination), timeout=60, interval=0.2,
                                          description="a leader")
                # The follower must be up and campaigning before its leader goes.
                time.sleep(args.settle)
                other = next(name for name in running if name != leader)
                name = f"{way.name.lower()}-{trial}"
                stopped_at = time.monotonic()
                running[leader].send_signal(way)
                custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {
                    "apiVersion": f"{GROUP}/{VERSION}", "kind": "SeamlessDaskCluster",
                    "metadata": {"name": name}, "spec": {"workers": {"replicas": 1, "maximum": 1}}})
                waiting.wait_for(lambda other=other: holder(coordination) == other, timeout=60, interval=0.05,
                                 description="the new leader")
                handover = time.monotonic() - stopped_at
                waiting.wait_for(lambda n=name: served(custom, core, n), timeout=60, interval=0.05,
                                 description=f"{name} served")
                results[way.name].append((handover, time.monotonic() - stopped_at))
                running[leader].wait(70)
                running[leader] = start_replica(leader, plane.kubeconfig, code, scratch / f"{leader}.log")
        return results
    finally:
        for proc in running.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        plane.stop()


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):5.1f} s  (min {min(values):.1f}, max {max(values):.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="leader stops of each kind")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds the follower runs before a stop")
    parser.add_argument("--code", help="run the operator from this checkout (default: this one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sdo-day-two-") as scratch:
        results: Any = run(args, Path(scratch))
    from seamless_dask_operator.leadership import ElectionTiming

    timing, load = ElectionTiming(), os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; Lease "
          f"{timing.lease_duration:g} s, renew deadline {timing.renew_deadline:g} s, retry {timing.retry_period:g} s")
    for way, label in (("SIGKILL", "leader killed (node lost)"), ("SIGTERM", "leader stopped (rollout)")):
        rows = results[way]
        print(f"{label}, {len(rows)} trials:")
        print(f"  handover (Lease held by the other)   {summary([h for h, _ in rows])}")
        print(f"  a new cluster served (pods + status) {summary([s for _, s in rows])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
