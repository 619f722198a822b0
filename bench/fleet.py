"""Benchmark and self-check of the simulated fleet: the real kube-scheduler, fake nodes, a kubelet stand-in.

PODS ARE SIMULATED: no container runs. The control plane (``shared/kube/up.sh``: etcd,
kube-apiserver, kube-controller-manager) and the kube-scheduler are real; the "kubelet" is
``tests/support/fleet.py``'s stand-in, which marks bound pods Running and Ready (no probe is run)
and finalizes deleted ones. Figures are for this machine, printed with its load; nothing is asserted.

Default run (plain pods)::

    .venv/bin/python bench/fleet.py [--pods 2000] [--nodes 50]

starts a control plane and the fleet, creates ``--pods`` pods (one busybox container, requests
10m CPU and 16Mi) into one namespace from a thread pool, and prints: time until all are Ready (and
per pod, create -> Ready), the scheduler's placement over the nodes, time until all are gone after
they are deleted (one graceful delete each, from the thread pool), the stand-in's throughput, lag,
CPU seconds and peak RSS, and the CPU seconds of the scheduler, kube-apiserver, etcd and
kube-controller-manager in the run.

Our operator on the fleet::

    .venv/bin/python bench/fleet.py --operator [--clusters 50]

runs ``kopf run --standalone --all-namespaces -m seamless_dask_operator.handlers`` (admin
kubeconfig), creates ``--clusters`` SeamlessDaskClusters ``{"workers": {"replicas": 2, "maximum": 2}}``
at once and prints how long until every one says phase Running with workersReady 2, the
operator's CPU seconds and peak RSS, then deletes them all and times until their pods are gone.
The schedulers it dials for worker names and idleness do not exist (the pods are simulated): those
calls fail and the rounds go on, as they do while a real scheduler is unreachable.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import control_plane, waiting  # noqa: E402
from tests.support.fleet import (  # noqa: E402
    PodWatch,
    admin_client,
    process_cpu_seconds,
    process_peak_rss_mb,
    simulated_fleet,
)
from tests.support.ports import free_port  # noqa: E402

NAMESPACE = "bench-fleet"
SIMULATED = "PODS ARE SIMULATED: no container runs (real kube-apiserver + kube-scheduler, kubelet stand-in)"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s"


class PodTracker:
    """The bench's own view of the namespace's pods (one watch): when each was seen Ready, and gone."""

    def __init__(self, api: Any, namespace: str):
        self.seen_at: dict[str, float] = {}
        self.ready_at: dict[str, float] = {}
        self.gone_at: dict[str, float] = {}
        self.node: dict[str, str] = {}
        self._changed = threading.Condition()
        self.watch = PodWatch(api, self._event, namespace=namespace, name="bench-watch").start()
        self.watch.synced.wait(60)

    def _event(self, kind: str, pod: dict[str, Any]) -> None:
        name, now = pod["metadata"]["name"], time.monotonic()
        with self._changed:
            if kind == "DELETED":
                self.gone_at.setdefault(name, now)
            else:
                self.seen_at.setdefault(name, now)
                node = (pod.get("spec") or {}).get("nodeName")
                if node:
                    self.node[name] = node
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in (pod.get("status") or {}).get("conditions") or [])
                if ready:
                    self.ready_at.setdefault(name, now)
            self._changed.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def stop(self) -> None:
        self.watch.stop()


def plain_pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "bench-fleet"}},
            "spec": {"terminationGracePeriodSeconds": 30,
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "infinity"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def control_plane_cpu(cp: control_plane.ControlPlane) -> dict[str, float]:
    out = {}
    for name in ("apiserver", "etcd", "controller-manager"):
        with contextlib.suppress(OSError, ValueError):
            assert cp.workdir is not None
            out[name] = process_cpu_seconds(int((cp.workdir / f"{name}.pid").read_text()))
    return out


def print_fleet(stats: dict[str, Any], cpu_before: dict[str, float], cpu_after: dict[str, float]) -> None:
    print(f"kubelet stand-in: {stats.get('start', 0)} started, {stats.get('ready', 0)} made Ready later, "
          f"{stats.get('finalize', 0)} finalized, {stats.get('failed', 0)} failed, {stats.get('retries', 0)} retries; "
          f"{stats.get('start_per_second')} starts/s, {stats.get('finalize_per_second')} finalizes/s; start lag "
          f"p50 {stats.get('start_lag_p50')} s, p99 {stats.get('start_lag_p99')} s, max {stats.get('start_lag_max')} s;"
          f" peak {stats.get('peak_in_flight')} in flight; {stats.get('watch_events')} watch events, "
          f"{stats.get('watch_relists')} relists")
    print(f"kubelet stand-in process: {stats.get('cpu_seconds', float('nan')):.1f} CPU s, "
          f"peak RSS {stats.get('peak_rss_mb', float('nan')):.0f} MB; kube-scheduler: "
          f"{stats.get('scheduler_cpu_seconds', float('nan')):.1f} CPU s, "
          f"peak RSS {stats.get('scheduler_peak_rss_mb', float('nan')):.0f} MB")
    spent = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
    print("control plane CPU s in the run: " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))


def make_namespace(api: Any, name: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    waiting.wait_for(lambda: core.list_namespaced_service_account(name).items, 60, 0.1,
                     description=f"default ServiceAccount in {name}")


# ----------------------------------------------------------------------------- plain pods


def run_pods(cp: control_plane.ControlPlane, args: argparse.Namespace, workdir: Path) -> None:
    api = admin_client(cp.kubeconfig, pool=args.threads + 4)
    core = k8s.CoreV1Api(api)
    make_namespace(api, NAMESPACE)
    t = time.monotonic()
    with simulated_fleet(cp.kubeconfig, nodes=args.nodes, cpu=args.node_cpu, memory=args.node_memory,
                         start_delay=args.start_delay,
                         ready_delay=args.ready_delay, threads=args.standin_threads, workdir=workdir / "fleet",
                         up_script=args.kube_up) as fleet:
        print(f"fleet up in {time.monotonic() - t:.1f} s: {args.nodes} nodes ({args.node_cpu} CPU, "
              f"{args.node_memory}, 250 pods each), kube-scheduler healthy; {load()}", flush=True)
        tracker = PodTracker(api, NAMESPACE)
        cpu0 = control_plane_cpu(cp)
        names = [f"pod-{i:05d}" for i in range(args.pods)]
        created_at: dict[str, float] = {}

        def create(name: str) -> None:
            created_at[name] = time.monotonic()
            core.create_namespaced_pod(NAMESPACE, plain_pod(name), _preload_content=False).drain_conn()

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(create, names))
        t_created = time.monotonic() - t0
        print(f"{args.pods} pods created in {t_created:.1f} s ({args.pods / t_created:.0f}/s, "
              f"{args.threads} threads)", flush=True)
        all_ready = tracker.wait(lambda: len(tracker.ready_at) >= args.pods, args.timeout)
        t_ready = max(tracker.ready_at.values(), default=t0) - t0
        per_pod = [tracker.ready_at[n] - created_at[n] for n in names if n in tracker.ready_at]
        print(f"{'all' if all_ready else 'NOT all:'} {len(tracker.ready_at)}/{args.pods} Ready "
              f"{t_ready:.1f} s after the first create ({len(tracker.ready_at) / t_ready:.0f} pods/s); "
              f"create -> Ready per pod: {quantiles(per_pod)}", flush=True)
        spread = collections.Counter(tracker.node.values())
        counts = sorted(spread.values())
        if counts:
            print(f"placement: {len(spread)}/{args.nodes} nodes used; pods per node min {counts[0]}, "
                  f"median {statistics.median(counts):.0f}, max {counts[-1]}", flush=True)

        deleted_at: dict[str, float] = {}

        def delete(name: str) -> None:
            deleted_at[name] = time.monotonic()
            core.delete_namespaced_pod(name, NAMESPACE, _preload_content=False).drain_conn()

        t1 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(delete, names))
        t_deletes = time.monotonic() - t1
        all_gone = tracker.wait(lambda: len(tracker.gone_at) >= args.pods, args.timeout)
        t_gone = max(tracker.gone_at.values(), default=t1) - t1
        per_pod = [tracker.gone_at[n] - deleted_at[n] for n in names if n in tracker.gone_at]
        print(f"{'all' if all_gone else 'NOT all:'} {len(tracker.gone_at)}/{args.pods} gone {t_gone:.1f} s after "
              f"the first delete (graceful, 30 s grace: the stand-in finalizes; deletes sent in {t_deletes:.1f} s); "
              f"delete -> gone per pod: {quantiles(per_pod)}", flush=True)
        tracker.stop()
        cpu1 = control_plane_cpu(cp)
        print_fleet(fleet.stop(), cpu0, cpu1)


# ----------------------------------------------------------------------------- our operator


def install_crd(api: Any) -> None:
    from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION

    ext = k8s.ApiextensionsV1Api(api)
    body = yaml.safe_load((REPO / "crds/seamlessdaskclusters.yaml").read_text())
    ext.create_custom_resource_definition(body)

    def established() -> bool:
        crd = ext.read_custom_resource_definition(body["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    waiting.wait_for(established, 60, 0.1, description="CRD established")
    co = k8s.CustomObjectsApi(api)
    waiting.wait_for(lambda: co.list_cluster_custom_object(GROUP, VERSION, PLURAL) is not None, 60, 0.1,
                     description="CRD listable", ignore=(Exception,))


def start_operator(kubeconfig: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], Path, float]:
    """The operator as tests/operator runs it, in a process of its own; returns once its liveness answers."""
    import urllib.request

    port = free_port()
    log = workdir / "operator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_DASK_OPERATOR_")}
    env.update(KUBECONFIG=str(kubeconfig), SEAMLESS_DASK_OPERATOR_METRICS_PORT=str(free_port()))
    kopf = Path(sys.executable).parent / "kopf"
    t0 = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen([str(kopf if kopf.exists() else "kopf"), "run", "--standalone", "--all-namespaces",
                                 "-m", "seamless_dask_operator.handlers", f"--liveness=http://127.0.0.1:{port}/healthz"],
                                env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)

    def live() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status == 200

    waiting.wait_for(live, 90, 0.2, description="operator liveness", ignore=(OSError,))
    time.sleep(2.0)  # its watches start right after the startup handlers
    return proc, log, time.monotonic() - t0


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_operator(cp: control_plane.ControlPlane, args: argparse.Namespace, workdir: Path) -> None:
    from seamless_dask_runtime.model.identity import API_VERSION, CLUSTER_LABEL, GROUP, KIND, PLURAL, VERSION

    api = admin_client(cp.kubeconfig, pool=args.threads + 4)
    co, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    install_crd(api)
    make_namespace(api, NAMESPACE)
    t = time.monotonic()
    with simulated_fleet(cp.kubeconfig, nodes=args.nodes, cpu=args.node_cpu, memory=args.node_memory,
                         start_delay=args.start_delay,
                         ready_delay=args.ready_delay, threads=args.standin_threads, workdir=workdir / "fleet",
                         up_script=args.kube_up) as fleet:
        print(f"fleet up in {time.monotonic() - t:.1f} s: {args.nodes} nodes ({args.node_cpu} CPU, "
              f"{args.node_memory}, 250 pods each); {load()}", flush=True)
        proc, log, startup = start_operator(cp.kubeconfig, workdir)
        print(f"operator live in {startup:.1f} s (kopf run --standalone --all-namespaces "
              f"-m seamless_dask_operator.handlers)", flush=True)
        try:
            names = [f"sdc-{i:04d}" for i in range(args.clusters)]
            cpu_op0, cpu0 = process_cpu_seconds(proc.pid), control_plane_cpu(cp)
            tracker = PodTracker(api, NAMESPACE)
            body = {"apiVersion": API_VERSION, "kind": KIND, "spec": {"workers": {"replicas": 2, "maximum": 2}}}
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda n: co.create_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, PLURAL, {**body, "metadata": {"name": n}}), names))
            print(f"{args.clusters} SeamlessDaskClusters created in {time.monotonic() - t0:.1f} s", flush=True)
            done: dict[str, float] = {}
            phases: collections.Counter[str] = collections.Counter()
            deadline = t0 + args.timeout
            while len(done) < len(names) and time.monotonic() < deadline and proc.poll() is None:
                items = co.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
                now = time.monotonic()
                phases = collections.Counter()
                for item in items:
                    status = item.get("status") or {}
                    phases[f"{status.get('phase')}/{status.get('workersReady')}"] += 1
                    if status.get("phase") == "Running" and status.get("workersReady") == 2:
                        done.setdefault(item["metadata"]["name"], now - t0)
                time.sleep(0.5)
            print(f"{'all' if len(done) == len(names) else 'NOT all:'} {len(done)}/{len(names)} Running with "
                  f"workersReady 2 after {max(done.values(), default=float('nan')):.1f} s; per cluster "
                  f"{quantiles(list(done.values()))}; phase/workersReady at the end {dict(phases)}", flush=True)
            milestones(tracker, done, names, t0)
            by_cluster = collections.Counter(
                (p.metadata.labels or {}).get(CLUSTER_LABEL) for p in core.list_namespaced_pod(NAMESPACE).items)
            spread = collections.Counter(tracker.node.values())
            print(f"pods: {sum(by_cluster.values())} ({min(by_cluster.values(), default=0)}-"
                  f"{max(by_cluster.values(), default=0)} per cluster) on {len(spread)} nodes; "
                  f"operator so far {process_cpu_seconds(proc.pid) - cpu_op0:.1f} CPU s, "
                  f"peak RSS {process_peak_rss_mb(proc.pid):.0f} MB", flush=True)

            t1 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
                list(pool.map(lambda n: co.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, n),
                              names))

            def all_gone() -> bool:
                left = co.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
                return not left and not core.list_namespaced_pod(NAMESPACE).items

            with contextlib.suppress(TimeoutError):
                waiting.wait_for(all_gone, args.timeout, 0.5, description="clusters and pods gone")
            print(f"deleted: clusters and their pods {'gone' if all_gone() else 'NOT gone'} "
                  f"{time.monotonic() - t1:.1f} s after the deletes", flush=True)
            tracker.stop()
            cpu_op, rss_op = process_cpu_seconds(proc.pid) - cpu_op0, process_peak_rss_mb(proc.pid)
            cpu1 = control_plane_cpu(cp)
        finally:
            stop_process(proc)
        text = log.read_text(errors="replace")
        print(f"operator: {cpu_op:.1f} CPU s (create to deleted), peak RSS {rss_op:.0f} MB; log: "
              f"{text.count('Traceback')} tracebacks, {text.count('scheduler did not answer')} "
              f"'scheduler did not answer' (simulated pods have no Dask scheduler)", flush=True)
        print_fleet(fleet.stop(), cpu0, cpu1)


def milestones(tracker: PodTracker, done: dict[str, float], names: list[str], t0: float) -> None:
    """Where each cluster's time went: its pods seen (made by the operator), Ready (the stand-in), status."""
    rows: dict[str, list[float]] = collections.defaultdict(list)
    for name in names:
        pods = [p for p in tracker.seen_at if p.startswith(f"{name}-")]
        scheduler = [tracker.seen_at[p] - t0 for p in pods if p.endswith("-scheduler")]
        workers = [tracker.seen_at[p] - t0 for p in pods if "-worker-" in p]
        ready = [tracker.ready_at[p] - t0 for p in pods if p in tracker.ready_at]
        if scheduler:
            rows["scheduler pod created"].append(min(scheduler))
        if len(workers) >= 2:
            rows["2nd worker pod created"].append(sorted(workers)[1])
        if len(ready) >= 3:
            rows["3 pods Ready"].append(max(ready))
        if name in done:
            rows["status Running, workersReady 2"].append(done[name])
    for what, values in rows.items():
        print(f"   {what:32s} (s after the first create): {quantiles(values)}, first {min(values):.2f} s",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=2000, help="plain pods to create (default 2000)")
    parser.add_argument("--nodes", type=int, default=50, help="fake nodes (default 50)")
    parser.add_argument("--node-cpu", default="32", help="each node's CPU capacity (default 32)")
    parser.add_argument("--node-memory", default="128Gi", help="each node's memory capacity (default 128Gi)")
    parser.add_argument("--threads", type=int, default=16, help="the bench's creating threads (default 16)")
    parser.add_argument("--standin-threads", type=int, default=16, help="the kubelet stand-in's (default 16)")
    parser.add_argument("--start-delay", type=float, default=0.0, help="bound -> Running, seconds (default 0)")
    parser.add_argument("--ready-delay", type=float, default=0.0, help="Running -> Ready, seconds (default 0)")
    parser.add_argument("--operator", action="store_true", help="run our operator on the fleet instead")
    parser.add_argument("--clusters", type=int, default=50, help="SeamlessDaskClusters with --operator (default 50)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per wait (default 600)")
    parser.add_argument("--kube-up",
                        default=os.environ.get(control_plane.ENV_UP_SCRIPT) or str(REPO.parent / "shared/kube/up.sh"),
                        help="up.sh of the local control plane")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    args = parser.parse_args(argv)
    os.environ[control_plane.ENV_UP_SCRIPT] = args.kube_up  # always a fresh control plane, never $KUBECONFIG's

    print(SIMULATED, flush=True)
    print(f"start: {load()}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir="/tmp"))
    t0 = time.monotonic()
    cp = control_plane.start_control_plane(scratch / "kube")
    print(f"control plane up in {cp.startup_seconds:.1f} s", flush=True)
    try:
        (run_operator if args.operator else run_pods)(cp, args, scratch)
    finally:
        cp.stop()
        if args.keep:
            print(f"logs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"end: {load()}; total {time.monotonic() - t0:.0f} s")
    print(SIMULATED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
