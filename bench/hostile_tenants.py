"""Benchmark: healthy tenants' reconcile latency and the operator's memory while other tenants' schedulers
drip or flood their answers (issue 21; not a timed test).

A fresh control plane (``shared/kube/up.sh``), our CRD, one Ready node, and the operator as its own process
(``kopf run -m seamless_dask_operator.handlers``, the production reconcile interval unless
``--interval``). ``--hostile`` tenants (half drip a byte per second, half flood 300 MB answers) get
scheduler pods made Ready at loopback addresses where one HTTP server plays their schedulers
(tests/support/hostile_scheduler.py). Once every hostile cluster reports ``SchedulerUnresponsive``, a
healthy tenant creates ``--rounds`` clusters, one after the other, in its own namespace; for each, the time
from create to its children and ``.status`` (Starting, 1 worker desired).

Printed: the healthy clusters' latency (median, min, max), the operator's RSS before the hostile tenants and
its peak (VmHWM), the chart's memory limit, the machine's load. ``--code DIR`` runs the operator from
another checkout (an older commit, say) to compare side by side.

Run: ``.venv/bin/python bench/hostile_tenants.py [--hostile 10] [--rounds 5] [--code DIR]``.
"""

from __future__ import annotations

import argparse
import os
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
from tests.support.hostile_scheduler import Behaviour, hostile_schedulers  # noqa: E402
from tests.support.kubelet import make_node_ready, make_pod_ready  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

CHART_MEMORY_LIMIT_MB = 512  # charts/seamless-dask-operator/values.yaml resources.limits.memory


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def create(custom: k8s.CustomObjectsApi, namespace: str, name: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SeamlessDaskCluster", "metadata": {"name": name},
        "spec": {"workers": {"replicas": 1, "maximum": 1}}})


def status(custom: k8s.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status") or {}


def namespace(core: k8s.CoreV1Api, name: str) -> None:
    core.create_namespace({"metadata": {"name": name}})
    waiting.wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30,
                     description=f"{name} service account")


def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    plane = control_plane.start_control_plane(scratch / "kube")
    port = free_port()
    proc = None
    try:
        api = plane.api_client()
        core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        k8s.ApiextensionsV1Api(api).create_custom_resource_definition(
            yaml.safe_load((REPO / "crds" / "seamlessdaskclusters.yaml").read_text()))
        time.sleep(2)  # established
        make_node_ready(api, "node-1")
        for ns in ("hostile", "healthy"):
            namespace(core, ns)
        code = Path(args.code).resolve() if args.code else REPO
        env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig),
               "PYTHONPATH": f"{code}{os.pathsep}{code / 'operator'}",
               "SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT": str(port),
               "SEAMLESS_DASK_OPERATOR_METRICS_PORT": "0",
               "SEAMLESS_DASK_OPERATOR_INTERVAL": str(args.interval)}
        log = scratch / "operator.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces",
                                     "-m", "seamless_dask_operator.handlers"], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=code)
        time.sleep(5)
        before = rss_mb(proc.pid, "VmRSS")
        with hostile_schedulers(port) as server:
            names = [f"{'drip' if i % 2 == 0 else 'flood'}-{i}" for i in range(args.hostile)]
            for name in names:
                create(custom, "hostile", name)
            for i, name in enumerate(names):
                pod = waiting.wait_for(lambda n=name: core.list_namespaced_pod(
                    "hostile", label_selector=f"dask.org/cluster-name={n},dask.org/component=scheduler").items,
                    timeout=60, description=f"{name} scheduler pod")[0]
                ip = f"127.0.2.{i + 2}"
                server.behaviours[ip] = (Behaviour(name, drip_seconds=1.0) if name.startswith("drip")
                                         else Behaviour(name, flood_bytes=300 << 20))
                make_pod_ready(api, "hostile", pod.metadata.name, "node-1", pod_ip=ip)
            unresponsive_since = time.monotonic()

            def reported() -> int:
                return sum(status(custom, "hostile", n).get("reason") == "SchedulerUnresponsive" for n in names)

            # An older operator may never say it: then the healthy tenant goes on after a minute of hostility.
            while reported() < len(names) and time.monotonic() - unresponsive_since < 60:
                time.sleep(0.5)
            all_reported = (reported(), time.monotonic() - unresponsive_since)
            latencies = []
            for r in range(args.rounds):
                name = f"fresh-{r}"
                started = time.monotonic()
                create(custom, "healthy", name)
                waiting.wait_for(lambda n=name: status(custom, "healthy", n).get("workersDesired") == 1
                                 and core.list_namespaced_pod("healthy", label_selector=f"dask.org/cluster-name={n}")
                                 .items, timeout=300, interval=0.05, description=f"{name} status")
                latencies.append(time.monotonic() - started)
            peak = rss_mb(proc.pid, "VmHWM")
        return {"latencies": latencies, "rss_before": before, "rss_peak": peak, "all_reported": all_reported}
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        plane.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hostile", type=int, default=10, help="tenants whose schedulers drip or flood")
    parser.add_argument("--rounds", type=int, default=5, help="healthy clusters created, one after the other")
    parser.add_argument("--interval", type=float, default=5.0, help="the operator's reconcile interval")
    parser.add_argument("--code", help="run the operator from this checkout (default: this one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sdo-hostile-") as scratch:
        result = run(args, Path(scratch))
    lat = result["latencies"]
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} on "
          f"{os.cpu_count()} CPUs; operator from {args.code or 'this checkout'}, interval {args.interval:g} s")
    count, seconds = result["all_reported"]
    print(f"{args.hostile} hostile tenants ({(args.hostile + 1) // 2} drip 1 byte/s, {args.hostile // 2} flood "
          f"300 MB): {count} reported SchedulerUnresponsive after {seconds:.1f} s")
    print(f"healthy tenant, new cluster -> children + status: median {statistics.median(lat):.2f} s, "
          f"min {min(lat):.2f} s, max {max(lat):.2f} s over {len(lat)} (goal: within 2 s)")
    print(f"operator RSS: {result['rss_before']:.0f} MB before the hostile tenants, peak {result['rss_peak']:.0f} MB "
          f"(chart limit {CHART_MEMORY_LIMIT_MB} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
