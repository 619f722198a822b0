"""Benchmark on a node that runs pods: apply -> first result, N at once, scale, operator cost (not a timed test).

Run with KUBECONFIG pointing at a cluster that runs pods, e.g.
``../shared/kube/node-up.sh`` (its runtime image ``seamless-dask-runtime:dev``
loaded, nothing is pulled; the host must reach pod IPs)::

    .venv/bin/python bench/pods.py [--rounds 5] [--n 5 10] [--only ours|dask-kubernetes|floor]
        [--pure-dask] [--ours-interval S] [--keep-logs]

Three ways to get a Dask scheduler + one worker, each in a namespace of its
own (``bench-pods-*``, created and deleted here), all with the same image and
small requests (50m CPU, 128Mi each):

* ``floor``: the physical floor, a scheduler pod and a worker pod created by
  hand (``dask scheduler``; ``dask worker tcp://SCHEDULER_POD_IP:8786``, the
  worker pod created as soon as the scheduler pod has an IP);
* ``ours``: a ``SeamlessDaskCluster`` (``cores: 1``, ``memory: 1GiB``,
  ``workers: {replicas: 1, maximum: 4}``), our operator running on the host
  (``seamless-dask-operator -n bench-pods-ours``); our CRD is installed if
  absent and left installed;
* ``dask-kubernetes``: a ``DaskCluster`` from ``make_cluster_spec`` (``dask
  scheduler`` / ``dask worker --nthreads 1``), its operator on the host
  (``kopf run -m dask_kubernetes.operator.controller --standalone -n
  bench-pods-dk``); its CRDs (from the wheel's Helm chart) are installed if
  absent and left installed.

Measured (one run, figures printed, nothing asserted):

1. apply -> first result, ``--rounds`` rounds (plus ``--warmup`` unmeasured
   ones), the three kinds alternated per round: from the ``create`` call until
   the scheduler pod is Ready *and* a ``distributed.Client`` on the host,
   connected to the scheduler pod's IP as soon as its port 8786 accepts, has
   seen one worker and computed one task. A pod watch gives where the time
   goes (pod seen, container running, Ready); ``status`` is when the
   resource's status says so (ours: phase Running with workersReady >= 1;
   dask-kubernetes: phase Running and a worker pod Ready).
2. scale 1 -> 3 in the same clusters (``kubectl scale sdc NAME --replicas=3``,
   ``kubectl scale daskworkergroup NAME-default --replicas=3``; floor: two
   more worker pods): time until the first new worker, and both, are
   connected, polled through the Client (``Client.nthreads()`` every 50 ms).
3. N clusters created at once (``--n``), two ends: "status", every resource
   says phase Running with one worker pod Ready (ours: ``.status.phase ==
   Running`` and ``.status.workersReady >= 1``, i.e. its worker passed its
   readiness probe; dask-kubernetes: phase Running, which it writes once the
   Service exists, and a worker pod Ready; its workers have no readiness
   probe, so Ready = container started); "connected", every scheduler pod
   Ready and its ``/json/counts.json`` (a default route) counting a worker.
4. Each operator process: CPU seconds (user+sys) per part and in total, peak
   RSS (VmHWM) and final RSS.

Every round deletes its resources and waits until their pods are gone; every
wait is bounded; the namespaces are deleted at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import operator as op
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes import client as k8s
from kubernetes import watch

KINDS = ("floor", "ours", "dask-kubernetes")
NAMESPACES = {"floor": "bench-pods-floor", "ours": "bench-pods-ours", "dask-kubernetes": "bench-pods-dk"}
IMAGE = os.environ.get("SDO_BENCH_IMAGE", "seamless-dask-runtime:dev")  # --image sets it
REQUESTS = {"cpu": "50m", "memory": "128Mi"}
CLUSTER_LABEL, COMPONENT_LABEL = "dask.org/cluster-name", "dask.org/component"
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from seamless_dask_runtime.model import identity  # noqa: E402

OURS = (identity.GROUP, identity.VERSION, identity.PLURAL)
THEIRS = ("kubernetes.dask.org", "v1", "daskclusters")
THEIR_PLURALS = ("daskclusters", "daskworkergroups", "daskjobs", "daskautoscalers")
NAN = float("nan")


def venv_bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "") -> Any:
    """The first truthy value of ``pred()``; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            value = pred()
            if value:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------- resources


def ours_body(name: str, pure_dask: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": IMAGE, "imagePullPolicy": "IfNotPresent", "cores": 1, "memory": "1GiB",
        "workers": {"replicas": 1, "maximum": 4, "resources": {"requests": dict(REQUESTS)}},
        "scheduler": {"resources": {"requests": dict(REQUESTS)}},
    }
    if pure_dask:
        spec["pureDask"] = True
    return {"apiVersion": "/".join(OURS[:2]), "kind": "SeamlessDaskCluster", "metadata": {"name": name},
            "spec": spec}


def theirs_body(name: str) -> dict[str, Any]:
    from dask_kubernetes.operator import make_cluster_spec

    body: dict[str, Any] = make_cluster_spec(name=name, image=IMAGE, n_workers=1,
                                             resources={"requests": dict(REQUESTS)}, worker_command="dask worker")
    for part in ("worker", "scheduler"):
        for container in body["spec"][part]["spec"]["containers"]:
            container["imagePullPolicy"] = "IfNotPresent"
            if container.get("env") is None:
                container.pop("env", None)
    # The image has `dask scheduler`/`dask worker`; one thread per worker, as ours (cores: 1).
    body["spec"]["scheduler"]["spec"]["containers"][0]["args"] = ["dask", "scheduler", "--host", "0.0.0.0"]
    body["spec"]["worker"]["spec"]["containers"][0]["args"][2:2] = ["--nthreads", "1"]
    return body


def floor_pod(cluster: str, component: str, args: list[str], suffix: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{cluster}-{component}{suffix}",
                     "labels": {CLUSTER_LABEL: cluster, COMPONENT_LABEL: component}},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False, "enableServiceLinks": False,
            "containers": [{"name": component, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "args": args,
                            "resources": {"requests": dict(REQUESTS)}}],
        },
    }


def floor_worker(cluster: str, scheduler_ip: str, index: int) -> dict[str, Any]:
    return floor_pod(cluster, "worker", ["dask", "worker", "--nthreads", "1", f"tcp://{scheduler_ip}:8786"],
                     f"-{index}")


# ----------------------------------------------------------------------------- watches


@dataclass
class PodTrack:
    name: str
    cluster: str
    component: str
    seen: float
    ip: str | None = None
    ip_at: float = NAN
    running_at: float = NAN
    ready_at: float = NAN


class Watcher:
    """Pods and custom resources of one namespace, with the host time each milestone was first seen."""

    def __init__(self, api: k8s.ApiClient, namespace: str, custom: tuple[str, str, str] | None) -> None:
        self.api, self.namespace, self.custom = api, namespace, custom
        self.lock = threading.Lock()
        self.pods: dict[str, PodTrack] = {}  # by uid
        self.live_pods: set[str] = set()  # uids not deleted
        self.objects: dict[str, dict[str, Any]] = {}  # custom resources by name, latest
        self.phase_running: dict[str, float] = {}  # name -> first time phase Running (ours: with workersReady >= 1)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(self._pods_once,), daemon=True)]
        if custom is not None:
            self.threads.append(threading.Thread(target=self._loop, args=(self._custom_once,), daemon=True))
        for thread in self.threads:
            thread.start()

    def _loop(self, once: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                once()
            except Exception:  # expired resourceVersion, dropped connection: list and watch again
                time.sleep(0.2)

    def _pods_once(self) -> None:
        core = k8s.CoreV1Api(self.api)
        listing = core.list_namespaced_pod(self.namespace)
        now = time.time()
        with self.lock:
            self.live_pods = set()
            for pod in listing.items:
                self._pod_event("ADDED", pod, now)
        stream = watch.Watch().stream(core.list_namespaced_pod, self.namespace, timeout_seconds=20,
                                      resource_version=listing.metadata.resource_version)
        for event in stream:
            now = time.time()
            with self.lock:
                self._pod_event(event["type"], event["object"], now)
            if self.stop.is_set():
                return

    def _pod_event(self, kind: str, pod: Any, now: float) -> None:
        uid = pod.metadata.uid
        labels = pod.metadata.labels or {}
        track = self.pods.get(uid)
        if track is None:
            track = self.pods[uid] = PodTrack(pod.metadata.name, labels.get(CLUSTER_LABEL, ""),
                                              labels.get(COMPONENT_LABEL, ""), now)
        if kind == "DELETED":
            self.live_pods.discard(uid)
            return
        self.live_pods.add(uid)
        status = pod.status
        if status is None:
            return
        if status.pod_ip and track.ip is None:
            track.ip, track.ip_at = status.pod_ip, now
        if track.running_at != track.running_at and any(
                c.state is not None and c.state.running is not None for c in status.container_statuses or []):
            track.running_at = now
        if track.ready_at != track.ready_at and not pod.metadata.deletion_timestamp and any(
                c.type == "Ready" and c.status == "True" for c in status.conditions or []):
            track.ready_at = now

    def _custom_once(self) -> None:
        assert self.custom is not None
        group, version, plural = self.custom
        co = k8s.CustomObjectsApi(self.api)
        listing = co.list_namespaced_custom_object(group, version, self.namespace, plural)
        now = time.time()
        with self.lock:
            for obj in listing["items"]:
                self._custom_event("ADDED", obj, now)
        stream = watch.Watch().stream(co.list_namespaced_custom_object, group, version, self.namespace, plural,
                                      timeout_seconds=20, resource_version=listing["metadata"]["resourceVersion"])
        for event in stream:
            now = time.time()
            with self.lock:
                self._custom_event(event["type"], event["object"], now)
            if self.stop.is_set():
                return

    def _custom_event(self, kind: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.objects.pop(name, None)
            return
        self.objects[name] = obj
        status = obj.get("status") or {}
        running = status.get("phase") == "Running"
        if self.custom == OURS:
            running = running and (status.get("workersReady") or 0) >= 1
        if running and name not in self.phase_running:
            self.phase_running[name] = now

    # -- queries

    def tracks(self, cluster: str, component: str) -> list[PodTrack]:
        with self.lock:
            return sorted((t for t in self.pods.values() if t.cluster == cluster and t.component == component),
                          key=lambda t: t.seen)

    def first(self, cluster: str, component: str, attr: str) -> float:
        values = [getattr(t, attr) for t in self.tracks(cluster, component)]
        values = [v for v in values if v == v]
        return min(values) if values else NAN

    def scheduler_ip(self, cluster: str) -> str | None:
        return next((t.ip for t in self.tracks(cluster, "scheduler") if t.ip), None)

    def live_count(self) -> int:
        with self.lock:
            return len(self.live_pods)

    def status_time(self, kind: str, name: str) -> float:
        """When the resource's status said: Running with one worker (dask-kubernetes: and a worker pod Ready)."""
        with self.lock:
            t = self.phase_running.get(name, NAN)
        if kind == "dask-kubernetes":
            t = max(t, self.first(name, "worker", "ready_at"))
        return t

    def close(self) -> None:
        self.stop.set()


# ----------------------------------------------------------------------------- operator processes


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def memory_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return NAN


@dataclass
class OperatorProcess:
    kind: str
    proc: subprocess.Popen[bytes]
    log: Path
    cpu: dict[str, float] = field(default_factory=dict)  # part -> CPU seconds
    hwm_mb: float = NAN
    rss_mb: float = NAN
    _mark: float = 0.0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def account(self, part: str) -> None:
        """CPU since the previous call goes to ``part``; memory is sampled."""
        if not self.alive():
            return
        now = cpu_seconds(self.proc.pid)
        self.cpu[part] = self.cpu.get(part, 0.0) + now - self._mark
        self._mark = now
        self.hwm_mb, self.rss_mb = memory_mb(self.proc.pid, "VmHWM"), memory_mb(self.proc.pid, "VmRSS")

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_operator(kind: str, logdir: Path, interval: float | None) -> OperatorProcess:
    ns = NAMESPACES[kind]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_DASK_OPERATOR_")}
    if kind == "ours":
        command = [venv_bin("seamless-dask-operator"), "--liveness-port", "0", "--namespace", ns]
        env["SEAMLESS_DASK_OPERATOR_METRICS_PORT"] = "0"  # no /metrics port on the host
        if interval is not None:
            env["SEAMLESS_DASK_OPERATOR_INTERVAL"] = str(interval)
    else:
        command = [venv_bin("kopf"), "run", "-m", "dask_kubernetes.operator.controller", "--standalone",
                   "--namespace", ns]
    log = logdir / f"{kind}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(command, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=logdir)
    process = OperatorProcess(kind, proc, log)
    time.sleep(3)  # imports + watches; the warm-up round covers the rest
    if not process.alive():
        raise RuntimeError(f"{kind} operator exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
    process.account("start-up")
    return process


# ----------------------------------------------------------------------------- cluster plumbing


def ensure_crds(api: k8s.ApiClient, files: list[Path], group: str, version: str, plurals: tuple[str, ...],
                who: str) -> None:
    """Create the CRDs in ``files`` that the cluster lacks (left installed), and wait until they are served."""
    ext = k8s.ApiextensionsV1Api(api)
    present = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    created = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition" and doc["metadata"]["name"] not in present:
                ext.create_custom_resource_definition(doc)
                created.append(doc["metadata"]["name"])
    co = k8s.CustomObjectsApi(api)
    for plural in plurals:
        wait_until(lambda p=plural: co.list_cluster_custom_object(group, version, p) is not None, 60, 0.2,
                   f"{plural} listable")
    if created:
        print(f"installed {who} CRDs: {created}", flush=True)


def ensure_their_crds(api: k8s.ApiClient) -> None:
    import dask_kubernetes

    crd_dir = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
    ensure_crds(api, sorted(crd_dir.glob("*.yaml")), THEIRS[0], THEIRS[1], THEIR_PLURALS, "dask-kubernetes")


def ensure_our_crd(api: k8s.ApiClient) -> None:
    ensure_crds(api, [REPO / "crds/seamlessdaskclusters.yaml"], OURS[0], OURS[1], (OURS[2],), "our")


def delete_namespace(api: k8s.ApiClient, ns: str, timeout: float = 180) -> None:
    assert ns.startswith("bench-")
    core = k8s.CoreV1Api(api)
    with contextlib.suppress(k8s.ApiException):
        core.delete_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except k8s.ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout, 0.5, f"namespace {ns} deleted")


def create_namespace(api: k8s.ApiClient, ns: str) -> None:
    assert ns.startswith("bench-")
    core = k8s.CoreV1Api(api)
    with contextlib.suppress(k8s.ApiException):
        core.read_namespace(ns)
        print(f"namespace {ns} left over: deleting it first", flush=True)
        delete_namespace(api, ns)
    core.create_namespace({"metadata": {"name": ns}})
    wait_until(lambda: core.list_namespaced_service_account(ns).items, 30, 0.1, f"default ServiceAccount in {ns}")


def drop_finalizers(api: k8s.ApiClient, ns: str) -> None:
    """Custom resources whose operator is gone would hold the namespace forever."""
    co = k8s.CustomObjectsApi(api)
    for group, version, plural in (OURS, *((THEIRS[0], THEIRS[1], p) for p in THEIR_PLURALS)):
        with contextlib.suppress(k8s.ApiException):
            for obj in co.list_namespaced_custom_object(group, version, ns, plural)["items"]:
                if obj["metadata"].get("finalizers"):
                    co.patch_namespaced_custom_object(group, version, ns, plural, obj["metadata"]["name"],
                                                      {"metadata": {"finalizers": None}})


class Bench:
    def __init__(self, api: k8s.ApiClient, kinds: list[str], pure_dask: bool) -> None:
        self.api, self.kinds, self.pure_dask = api, kinds, pure_dask
        self.core, self.co = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
        self.watchers: dict[str, Watcher] = {}

    def custom(self, kind: str) -> tuple[str, str, str] | None:
        return {"ours": OURS, "dask-kubernetes": THEIRS}.get(kind)

    def create(self, kind: str, name: str) -> None:
        ns = NAMESPACES[kind]
        if kind == "ours":
            self.co.create_namespaced_custom_object(*OURS[:2], ns, OURS[2], ours_body(name, self.pure_dask))
        elif kind == "dask-kubernetes":
            self.co.create_namespaced_custom_object(*THEIRS[:2], ns, THEIRS[2], theirs_body(name))
        else:
            self.core.create_namespaced_pod(ns, floor_pod(name, "scheduler", ["dask", "scheduler"]))

    def delete_all(self, kind: str, timeout: float = 180) -> None:
        """Every resource of the namespace, then until no pod is left."""
        ns = NAMESPACES[kind]
        custom = self.custom(kind)
        if custom is not None:
            for obj in self.co.list_namespaced_custom_object(*custom[:2], ns, custom[2])["items"]:
                with contextlib.suppress(k8s.ApiException):
                    self.co.delete_namespaced_custom_object(*custom[:2], ns, custom[2], obj["metadata"]["name"])
            wait_until(lambda: not self.co.list_namespaced_custom_object(*custom[:2], ns, custom[2])["items"],
                       timeout, 0.2, f"{kind} resources deleted")
        else:
            self.core.delete_collection_namespaced_pod(ns)
        wait_until(lambda: not self.core.list_namespaced_pod(ns).items, timeout, 0.2, f"pods in {ns} gone")

    def scale(self, kind: str, name: str, replicas: int, scheduler_ip: str) -> None:
        ns = NAMESPACES[kind]
        if kind == "floor":
            for index in range(1, replicas):
                self.core.create_namespaced_pod(ns, floor_worker(name, scheduler_ip, index))
            return
        target = f"sdc/{name}" if kind == "ours" else f"daskworkergroup/{name}-default"
        subprocess.run([venv_bin("kubectl"), "-n", ns, "scale", target, f"--replicas={replicas}"], check=True,
                       stdout=subprocess.DEVNULL, timeout=30)


# ----------------------------------------------------------------------------- part 1 + 2: one round


@dataclass
class Round:
    kind: str
    first_result: float = NAN  # max(scheduler Ready, result)
    sched_seen: float = NAN
    sched_running: float = NAN
    sched_ready: float = NAN
    worker_seen: float = NAN
    worker_running: float = NAN
    port_open: float = NAN
    worker_connected: float = NAN
    result: float = NAN
    status: float = NAN
    scale_first: float = NAN
    scale_all: float = NAN
    scale_pod_running: float = NAN
    error: str = ""


def wait_port(ip: str, port: int, timeout: float) -> None:
    def accepts() -> bool:
        with socket.create_connection((ip, port), timeout=0.5):
            return True

    wait_until(accepts, timeout, 0.05, f"{ip}:{port} accepting")


def one_round(bench: Bench, kind: str, name: str, timeout: float) -> Round:
    from distributed import Client

    r = Round(kind)
    w = bench.watchers[kind]
    client: Client | None = None
    try:
        t0 = time.time()
        bench.create(kind, name)
        ip = wait_until(lambda: w.scheduler_ip(name), timeout, 0.02, f"{kind} {name}: scheduler pod IP")
        if kind == "floor":
            bench.core.create_namespaced_pod(NAMESPACES[kind], floor_worker(name, ip, 0))
        wait_port(ip, 8786, timeout)
        r.port_open = time.time() - t0
        client = Client(f"tcp://{ip}:8786", timeout=timeout, set_as_default=False)
        client.wait_for_workers(1, timeout=timeout)
        r.worker_connected = time.time() - t0
        assert client.submit(op.add, 1, 2, pure=False).result(timeout=timeout) == 3
        r.result = time.time() - t0
        wait_until(lambda: w.first(name, "scheduler", "ready_at") == w.first(name, "scheduler", "ready_at"),
                   timeout, 0.05, f"{kind} {name}: scheduler pod Ready")
        r.sched_seen = w.first(name, "scheduler", "seen") - t0
        r.sched_running = w.first(name, "scheduler", "running_at") - t0
        r.sched_ready = w.first(name, "scheduler", "ready_at") - t0
        r.worker_seen = w.first(name, "worker", "seen") - t0
        r.worker_running = w.first(name, "worker", "running_at") - t0
        r.first_result = max(r.sched_ready, r.result)
        if kind != "floor":
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: w.status_time(kind, name) == w.status_time(kind, name), timeout, 0.05,
                           f"{kind} {name}: status Running with a worker")
            r.status = w.status_time(kind, name) - t0

        # Scale 1 -> 3.
        before = {t.name for t in w.tracks(name, "worker")}
        s0 = time.time()
        bench.scale(kind, name, 3, ip)
        wait_until(lambda: len(client.nthreads()) >= 2, timeout, 0.05, f"{kind} {name}: a second worker")
        r.scale_first = time.time() - s0
        wait_until(lambda: len(client.nthreads()) >= 3, timeout, 0.05, f"{kind} {name}: a third worker")
        r.scale_all = time.time() - s0
        new = [t.running_at for t in w.tracks(name, "worker") if t.name not in before and t.running_at == t.running_at]
        r.scale_pod_running = min(new) - s0 if new else NAN
    except Exception as exc:
        r.error = f"{type(exc).__name__}: {exc}"
        print(f"   {kind} {name}: {r.error}", flush=True)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close(timeout=5)
        bench.delete_all(kind)
    return r


# ----------------------------------------------------------------------------- part 3: N at once


@dataclass
class Burst:
    kind: str
    n: int
    done: int = 0
    all_s: float = NAN
    median_s: float = NAN
    connected: int = 0
    connected_all_s: float = NAN
    connected_median_s: float = NAN
    error: str = ""


def scheduler_workers(ip: str) -> int:
    """Workers the scheduler has, from its ``/json/counts.json`` (a default route)."""
    with urllib.request.urlopen(f"http://{ip}:8787/json/counts.json", timeout=0.5) as response:
        return int(json.load(response)["workers"])


def burst(bench: Bench, kind: str, n: int, tag: str, timeout: float) -> Burst:
    b = Burst(kind, n)
    w = bench.watchers[kind]
    names = [f"{tag}-{i:02d}" for i in range(n)]
    connected: dict[str, float] = {}
    try:
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(min(n, 16)) as pool:
            list(pool.map(lambda name: bench.create(kind, name), names))

        def times() -> list[float]:
            return [w.status_time(kind, name) - t0 for name in names]

        def all_done() -> bool:
            for name in names:
                ip = w.scheduler_ip(name)
                if name in connected or ip is None or w.first(name, "scheduler", "ready_at") != w.first(
                        name, "scheduler", "ready_at"):
                    continue
                with contextlib.suppress(OSError, ValueError, KeyError):
                    if scheduler_workers(ip) >= 1:
                        connected[name] = time.time() - t0
            return len(connected) == n and all(t == t for t in times())

        try:
            wait_until(all_done, timeout, 0.1, f"{n} {kind} clusters Running, each with a worker")
        except TimeoutError as exc:
            b.error = str(exc)
        done = [t for t in times() if t == t]
        b.done, b.connected = len(done), len(connected)
        if done:
            b.median_s = statistics.median(done)
        if b.done == n:
            b.all_s = max(done)
        if connected:
            b.connected_median_s = statistics.median(connected.values())
        if b.connected == n:
            b.connected_all_s = max(connected.values())
    except Exception as exc:
        b.error = f"{type(exc).__name__}: {exc}"
    finally:
        bench.delete_all(kind, timeout=300)
    if b.error:
        print(f"   {kind} N={n}: {b.error}", flush=True)
    return b


# ----------------------------------------------------------------------------- report


def stats(values: list[float]) -> tuple[float, float, float]:
    values = [v for v in values if v == v]
    if not values:
        return NAN, NAN, NAN
    return statistics.median(values), min(values), max(values)


def fmt(values: list[float]) -> str:
    med, lo, hi = stats(values)
    return f"{med:6.2f} [{lo:5.2f}-{hi:5.2f}]" if med == med else f"{'n/a':>20s}"


def print_rounds(rounds: list[Round], kinds: list[str]) -> dict[str, float]:
    print("\n1. apply -> first result (s from create; median [min-max] over rounds)")
    columns = [("first result", "first_result"), ("sched pod seen", "sched_seen"),
               ("sched running", "sched_running"), ("sched port open", "port_open"), ("sched Ready", "sched_ready"),
               ("worker pod seen", "worker_seen"), ("worker running", "worker_running"),
               ("worker connected", "worker_connected"), ("task result", "result"), ("status says so", "status")]
    print(f"{'':18s}" + "".join(f"{k:>22s}" for k in kinds))
    medians: dict[str, float] = {}
    for label, attr in columns:
        row = f"{label:18s}"
        for kind in kinds:
            values = [getattr(r, attr) for r in rounds if r.kind == kind and not r.error]
            row += f"{fmt(values):>22s}"
            if attr == "first_result":
                medians[kind] = stats(values)[0]
        print(row)
    print("\n2. scale 1 -> 3 (s from the scale command; Client.nthreads() polled every 50 ms)")
    for label, attr in [("first new worker", "scale_first"), ("both new workers", "scale_all"),
                        ("new pod running", "scale_pod_running")]:
        row = f"{label:18s}"
        for kind in kinds:
            values = [getattr(r, attr) for r in rounds if r.kind == kind and not r.error]
            row += f"{fmt(values):>22s}"
            if attr == "scale_first":
                medians[f"scale:{kind}"] = stats(values)[0]
        print(row)
    failed = [r for r in rounds if r.error]
    if failed:
        print(f"   failed rounds: {[(r.kind, r.error) for r in failed]}")
    return medians


def print_ratios(medians: dict[str, float]) -> None:
    def q(a: str, b: str) -> str:
        x, y = medians.get(a, NAN), medians.get(b, NAN)
        return f"{x / y:.2f}" if x == x and y == y and y else "n/a"

    print(f"\nratios of medians: first result ours/floor {q('ours', 'floor')} (goal <= 1.3), "
          f"dask-kubernetes/ours {q('dask-kubernetes', 'ours')} (goal >= 2); "
          f"scale ours/floor {q('scale:ours', 'scale:floor')}, "
          f"dask-kubernetes/ours {q('scale:dask-kubernetes', 'scale:ours')}")


def print_bursts(bursts: list[Burst]) -> None:
    if not bursts:
        return
    print("\n3. N clusters at once (s from the first create): status = every resource says Running with a worker "
          "Ready; connected = every scheduler pod Ready and its /json/counts.json shows a worker")
    print(f"{'N':>4s}  {'operator':16s}  {'status all':>10s}  {'median':>7s}  {'connected all':>13s}  {'median':>7s}")
    for b in bursts:
        note = f"  ({b.done}/{b.n}, {b.connected}/{b.n}: {b.error})" if b.error else ""
        print(f"{b.n:4d}  {b.kind:16s}  {b.all_s:10.2f}  {b.median_s:7.2f}  {b.connected_all_s:13.2f}  "
              f"{b.connected_median_s:7.2f}{note}")


def print_operators(operators: list[OperatorProcess], wall: float) -> None:
    if not operators:
        return
    parts = list(dict.fromkeys(p for o in operators for p in o.cpu))
    print(f"\n4. operator processes over the run ({wall:.0f} s): CPU seconds (user+sys) per part, memory")
    print(f"{'operator':16s}" + "".join(f"{p:>14s}" for p in parts) + f"{'total':>9s}{'VmHWM MB':>10s}"
          f"{'RSS MB':>9s}")
    for o in operators:
        print(f"{o.kind:16s}" + "".join(f"{o.cpu.get(p, NAN):14.2f}" for p in parts)
              + f"{sum(o.cpu.values()):9.2f}{o.hwm_mb:10.1f}{o.rss_mb:9.1f}")


# ----------------------------------------------------------------------------- main


@contextlib.contextmanager
def namespaces(api: k8s.ApiClient, kinds: list[str]) -> Iterator[None]:
    for kind in kinds:
        create_namespace(api, NAMESPACES[kind])
    try:
        yield
    finally:
        for kind in kinds:
            with contextlib.suppress(Exception):
                drop_finalizers(api, NAMESPACES[kind])
                delete_namespace(api, NAMESPACES[kind])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured apply->result rounds per kind (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default 1)")
    parser.add_argument("--n", type=int, nargs="*", default=[5, 10], help="clusters at once (default: 5 10)")
    parser.add_argument("--only", choices=KINDS, action="append", help="only this kind (repeatable)")
    parser.add_argument("--timeout", type=float, default=120, help="bound of every wait, s (default 120)")
    parser.add_argument("--pure-dask", action="store_true", help="ours with pureDask: true (no scheduler preload)")
    parser.add_argument("--ours-interval", type=float, default=None,
                        help="SEAMLESS_DASK_OPERATOR_INTERVAL for our operator (default: its own, 5 s)")
    parser.add_argument("--image", default=None, help=f"runtime image of every pod (default {IMAGE})")
    parser.add_argument("--keep-logs", action="store_true", help="keep the operators' logs")
    args = parser.parse_args(argv)
    if args.image:
        globals()["IMAGE"] = args.image
    kinds = [k for k in KINDS if not args.only or k in args.only]

    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)  # a Client's reconnect chatter at teardown
    warnings.filterwarnings("ignore", message="Mismatched versions")  # host Python 3.11.x vs the image's
    cfg = k8s.Configuration()
    kubernetes.config.load_kube_config(client_configuration=cfg)
    cfg.connection_pool_maxsize = 32
    api = k8s.ApiClient(cfg)
    bench = Bench(api, kinds, args.pure_dask)
    logdir = Path(tempfile.mkdtemp(prefix="bench-pods-"))
    operators: list[OperatorProcess] = []
    t_start = time.monotonic()
    rounds: list[Round] = []
    bursts: list[Burst] = []
    print(f"kinds {kinds}, rounds {args.rounds} (+{args.warmup} warm-up), N {args.n}; operator logs in {logdir}",
          flush=True)
    try:
        if "ours" in kinds:
            ensure_our_crd(api)
        if "dask-kubernetes" in kinds:
            ensure_their_crds(api)
        with namespaces(api, kinds):
            for kind in kinds:
                bench.watchers[kind] = Watcher(api, NAMESPACES[kind], bench.custom(kind))
            operators = [start_operator(k, logdir, args.ours_interval) for k in kinds if k != "floor"]

            def account(part: str) -> None:
                for o in operators:
                    o.account(part)
                    if not o.alive():
                        raise RuntimeError(f"{o.kind} operator exited:\n{o.log.read_text()[-3000:]}")

            for i in range(args.warmup + args.rounds):
                order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
                for kind in order:
                    r = one_round(bench, kind, f"r{i}", args.timeout)
                    label = "warm-up" if i < args.warmup else f"round {i - args.warmup + 1}"
                    print(f"{label:9s} {kind:16s} first result {r.first_result:6.2f} s (sched Ready "
                          f"{r.sched_ready:5.2f}, worker {r.worker_connected:5.2f}, result {r.result:5.2f}, status "
                          f"{r.status:5.2f}); scale: first {r.scale_first:5.2f}, both {r.scale_all:5.2f}", flush=True)
                    if i >= args.warmup:
                        rounds.append(r)
                account("warm-up" if i < args.warmup else "rounds")
            for j, n in enumerate(args.n):
                order = [k for k in kinds if k != "floor"]
                for kind in order if j % 2 == 0 else order[::-1]:
                    b = burst(bench, kind, n, f"n{n}", max(args.timeout, 30 * n))
                    print(f"N={n:<3d}     {kind:16s} {b.done}/{n} status Running with a worker in {b.all_s:.2f} s "
                          f"(median {b.median_s:.2f}); {b.connected}/{n} connected in {b.connected_all_s:.2f} s "
                          f"(median {b.connected_median_s:.2f})", flush=True)
                    bursts.append(b)
                    account(f"N={n}")
            for kind in kinds:
                if kind != "floor":
                    with contextlib.suppress(Exception):
                        bench.delete_all(kind, timeout=60)
            account("end")
            for o in operators:
                o.stop()
            for kind in kinds:
                drop_finalizers(api, NAMESPACES[kind])
    finally:
        for o in operators:
            o.stop()
        for w in bench.watchers.values():
            w.close()
        if not args.keep_logs:
            shutil.rmtree(logdir, ignore_errors=True)
    medians = print_rounds(rounds, kinds)
    print_ratios(medians)
    print_bursts(bursts)
    print_operators(operators, time.monotonic() - t_start)
    print(f"\ntotal bench time {time.monotonic() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
