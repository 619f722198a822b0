"""A simulated fleet for scale runs on a control plane without kubelets (``shared/kube/up.sh``).

Pods are simulated: no container runs, no probe is run, no network exists. What is real is every
API call and the decisions of the real ``kube-scheduler``:

* **kube-scheduler**, the binary ``node-up.sh`` runs (from the same cache, unpacked the same way),
  started here with leader election off and a client QPS fit for thousands of pods. It places
  pods by their requests, the nodes' capacity, selectors and affinities, and reports the pods it
  cannot place (condition PodScheduled False, reason Unschedulable).
* **N fake Nodes** (default 50; 32 CPU, 128Gi, 250 pods each), Ready, with ``spec.podCIDR`` a /24 of
  their own, their Leases in ``kube-node-lease`` renewed every 10 s and their Ready condition's
  heartbeat re-posted every 5 min, as a kubelet does: the node-lifecycle controller (off in up.sh,
  on in ordinary clusters) keeps them Ready and untainted.
* **A kubelet stand-in** for all of them: ONE list+watch over bound pods (``spec.nodeName!=``, all
  namespaces); a pod on one of its nodes goes Running (podIP from its node's /24, hostIP, startTime,
  running container statuses) ``start_delay`` s after it was seen bound, and Ready ``ready_delay`` s
  later (0: in the same status update, as a kubelet reports a pod without readiness probe). A pod
  being deleted is finalized as a kubelet does once its containers stopped: deleted with
  ``gracePeriodSeconds: 0`` (UID precondition), ``stop_delay`` s after its deletion began. Status
  updates carry the pod's UID as a precondition, as the kubelet's do. Work runs on a thread pool
  sharing one connection pool; the stand-in counts its throughput, lag, CPU and peak memory.
* **Dask schedulers' answers** (``dask_port``, optional): scheduler pods get loopback addresses and
  the stand-in answers an operator's HTTP calls to them as an honest, idle scheduler would, from what
  it knows of the cluster's pods (:mod:`.fleet_schedulers`): rounds do not wait on connect timeouts.

:func:`simulated_fleet` runs the stand-in (nodes, heartbeats, watch) and the scheduler as two
processes, so their CPU and memory are their own, and stops both::

    with simulated_fleet(control_plane.kubeconfig, nodes=50) as fleet:
        ...                      # pods created now are scheduled, Running and Ready
        print(fleet.stats())     # the stand-in's counters, CPU seconds, peak RSS; the scheduler's

``python -m tests.support.fleet --kubeconfig K ...`` runs the stand-in alone (what
:func:`simulated_fleet` starts); it prints one ``READY {...}`` line once its nodes are Ready and
its watch runs, and writes its stats to ``--stats-file`` every second and on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import heapq
import ipaddress
import json
import logging
import os
import resource
import select
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .fleet_schedulers import (
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    LOOPBACK_RANGE,
    SCHEDULER_COMPONENTS,
    WORKER_COMPONENT,
    SchedulerBook,
    SchedulerServer,
    loopback_cidr,
)
from .ports import free_port

log = logging.getLogger("fleet")

REPO = Path(__file__).resolve().parents[2]
ENV_UP_SCRIPT = "SDO_KUBE_UP"
SMP = "application/strategic-merge-patch+json"

#: Every fake Node carries this label ("true"): tests pin pods to the fleet with a nodeSelector.
SIMULATED_LABEL = "fleet.seamless.dask.org/simulated"
#: Pods' addresses: node i gets the i-th /24 of this range (16,384 nodes); it overlaps neither
#: up.sh's Services (10.96.0.0/16) nor node-up.sh's pod bridge (10.244.0.0/24).
POD_RANGE = ipaddress.IPv4Network("10.128.0.0/10")
#: Nodes' InternalIPs: node i gets the (i+1)-th address of this range.
NODE_RANGE = ipaddress.IPv4Network("10.64.0.0/16")
LEASE_RENEW_SECONDS = 10.0  # a kubelet's: a quarter of the Lease's 40 s duration
STATUS_REPORT_SECONDS = 300.0  # a kubelet's nodeStatusReportFrequency when nothing changed


class FleetUnavailable(RuntimeError):
    """A part of the fleet cannot start here (no kube-scheduler binary); tests should skip."""


class FleetError(RuntimeError):
    """A part of the fleet was found but did not start or answer."""


# ----------------------------------------------------------------------------- binaries


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "local-kube"


def _bin_cache(version: str) -> Path:
    """Where up.sh and node-up.sh unpack the binaries (``KUBE_BIN_CACHE`` or ``$XDG_CACHE_HOME/local-kube/V``)."""
    explicit = os.environ.get("KUBE_BIN_CACHE")
    return Path(explicit) if explicit else _cache_root() / version


def kube_binary(name: str, up_script: Path | str | None = None) -> Path:
    """The ``name`` binary (e.g. ``kube-scheduler``) of the control plane ``up_script`` starts.

    As up.sh and node-up.sh do: ``bin/VERSION`` beside the script names the version, the binaries are
    unpacked from ``bin/NAME.zst`` (with ``zstd``) into the cache once per machine. Without a script
    (``$SDO_KUBE_UP`` unset): the cache's newest version, then ``$PATH``. Nothing is downloaded.

    Raises:
        FleetUnavailable: no such binary here.
    """
    script = up_script or os.environ.get(ENV_UP_SCRIPT, "").strip()
    if script:
        kube_dir = Path(script).resolve().parent
        packed = kube_dir / "bin" / f"{name}.zst"
        version_file = kube_dir / "bin" / "VERSION"
        if version_file.is_file():
            target = _bin_cache(version_file.read_text().strip()) / name
            if not os.access(target, os.X_OK) and packed.is_file():
                _unpack(packed, target)
            if os.access(target, os.X_OK):
                return target
    candidates: list[Path] = []
    if os.environ.get("KUBE_BIN_CACHE"):
        candidates.append(Path(os.environ["KUBE_BIN_CACHE"]) / name)
    cache_root = _cache_root()
    candidates += sorted(cache_root.glob(f"*/{name}"), reverse=True) if cache_root.is_dir() else []
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FleetUnavailable(
        f"no {name} binary: set {ENV_UP_SCRIPT} to shared/kube/up.sh (its bin/{name}.zst is unpacked into "
        f"{cache_root}/VERSION), or put {name} on PATH"
    )


def _unpack(packed: Path, target: Path) -> None:
    if shutil.which("zstd") is None:
        raise FleetUnavailable(f"{packed} needs zstd to unpack (apt-get install zstd)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    subprocess.run(["zstd", "-q", "-d", "-f", str(packed), "-o", str(tmp)], check=True)
    tmp.chmod(0o755)
    tmp.replace(target)


# ----------------------------------------------------------------------------- processes


def process_cpu_seconds(pid: int) -> float:
    """user + sys of a live process so far (NaN when there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a live process (NaN when there is none)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclasses.dataclass
class ManagedProcess:
    """A process of the fleet: its log, CPU seconds and peak memory while it lives, a clean stop."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """user + sys so far (NaN once it exited)."""
        return process_cpu_seconds(self.proc.pid)

    def peak_rss_mb(self) -> float:
        """VmHWM (NaN once it exited)."""
        return process_peak_rss_mb(self.proc.pid)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` s; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


SCHEDULER_CONFIG = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
  qps: {qps}
  burst: {burst}
leaderElection:
  leaderElect: false
"""


def start_kube_scheduler(
    kubeconfig: Path | str,
    workdir: Path | str,
    *,
    qps: float = 500,
    burst: int = 1000,
    up_script: Path | str | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> ManagedProcess:
    """Start the real kube-scheduler against ``kubeconfig`` (needs the rights of system:kube-scheduler;
    the admin kubeconfig of up.sh will do) and wait until its ``/healthz`` answers ok.

    Leader election is off (one scheduler per control plane: don't start a second). Its client may
    send ``qps`` requests per second (bursts of ``burst``): the default 50 would bind 10,000 pods in
    200 s at best. Its log is ``workdir/kube-scheduler.log``.
    """
    binary = kube_binary("kube-scheduler", up_script)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "kube-scheduler.yaml"
    config.write_text(SCHEDULER_CONFIG.format(kubeconfig=Path(kubeconfig).resolve(), qps=qps, burst=burst))
    port = free_port()
    log_path = workdir / "kube-scheduler.log"
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(
            [str(binary), "--config", str(config),
             "--authentication-kubeconfig", str(kubeconfig), "--authorization-kubeconfig", str(kubeconfig),
             "--bind-address", "127.0.0.1", "--secure-port", str(port), "--v", "0", *extra_args],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    scheduler = ManagedProcess("kube-scheduler", proc, log_path)
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # its serving certificate is self-signed, on loopback
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not scheduler.alive():
            raise FleetError(f"kube-scheduler exited ({proc.returncode}):\n{scheduler.log_tail()}")
        with contextlib.suppress(OSError):
            url = f"https://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=2, context=unverified) as answer:
                if answer.read().strip() == b"ok":
                    return scheduler
        time.sleep(0.2)
    scheduler.stop()
    raise FleetError(f"kube-scheduler not healthy within {timeout:g} s:\n{scheduler.log_tail()}")


# ----------------------------------------------------------------------------- nodes and addresses (pure)


@dataclasses.dataclass(frozen=True)
class FakeNode:
    name: str
    index: int
    address: str  # InternalIP, the pods' hostIP
    pod_cidr: ipaddress.IPv4Network


def fake_nodes(count: int, prefix: str = "sim-node-") -> list[FakeNode]:
    """``count`` nodes named ``PREFIX000``..., each with an InternalIP and a /24 of pod addresses."""
    if not 0 < count <= 2 ** (24 - POD_RANGE.prefixlen):
        raise ValueError(f"nodes must be between 1 and {2 ** (24 - POD_RANGE.prefixlen)}, not {count}")
    width = max(3, len(str(count - 1)))
    first_pod = int(POD_RANGE.network_address)
    return [
        FakeNode(
            name=f"{prefix}{i:0{width}d}",
            index=i,
            address=str(NODE_RANGE.network_address + i + 1),
            pod_cidr=ipaddress.IPv4Network((first_pod + (i << 8), 24)),
        )
        for i in range(count)
    ]


class PodAddresses:
    """A node's pod IPs: one per live pod, handed out again once that pod is gone (like host-local IPAM)."""

    def __init__(self, cidr: ipaddress.IPv4Network):
        hosts = list(cidr.hosts())
        self._free = deque(str(ip) for ip in hosts[1:])  # the first is the node's bridge
        self._used: dict[str, str] = {}

    def take(self, uid: str) -> str:
        """The pod's address (the same one on every call)."""
        if uid not in self._used:
            if not self._free:
                raise RuntimeError("no pod address left on this node")
            self._used[uid] = self._free.popleft()
        return self._used[uid]

    def keep(self, uid: str, ip: str) -> None:
        """A pod already running with ``ip`` (seen after a restart or a relist) keeps it."""
        if uid not in self._used and ip in self._free:
            self._free.remove(ip)
            self._used[uid] = ip

    def holders(self) -> list[str]:
        """UIDs of the pods holding an address."""
        return list(self._used)

    def release(self, uid: str) -> None:
        ip = self._used.pop(uid, None)
        if ip is not None:
            self._free.append(ip)

    def __len__(self) -> int:
        return len(self._used)


#: A kubelet's steps for one pod, in order; a step is taken once per pod.
START, READY, FINALIZE = 1, 2, 3
STEP_NAMES = {START: "start", READY: "ready", FINALIZE: "finalize"}


def _is_ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def kubelet_step(pod: Mapping[str, Any]) -> int | None:
    """What a kubelet does next for a pod bound to its node (pure): :data:`START` a Pending pod,
    mark a Running one :data:`READY`, :data:`FINALIZE` one being deleted; None: nothing."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return FINALIZE
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Pending":
        return START
    if phase == "Running" and not _is_ready(status):
        return READY
    return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- list + watch


class WatchGone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class PodWatch:
    """List, then watch, pods as raw JSON (no model objects: thousands of events per second).

    ``on_event(type, pod)`` is called in the watch's thread for every ADDED/MODIFIED/DELETED, and
    for every pod of each (re)list with type ``"LISTED"``; ``on_list(pods)`` after each list with
    all of them. A 410 or a broken connection lists again. ``synced`` is set after the first list.
    """

    def __init__(
        self,
        api: Any,
        on_event: Callable[[str, dict[str, Any]], None],
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        on_list: Callable[[list[dict[str, Any]]], None] | None = None,
        name: str = "pod-watch",
    ):
        from kubernetes import client as k8s

        self._core = k8s.CoreV1Api(api)
        self._on_event, self._on_list = on_event, on_list
        self._namespace = namespace
        self._selectors = {k: v for k, v in (("field_selector", field_selector),
                                             ("label_selector", label_selector)) if v}
        self._stop = threading.Event()
        self._response: Any = None
        self.synced = threading.Event()
        self.relists = 0
        self.events = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()  # unblocks the read in the watch's thread
        self._thread.join(10)

    def _call(self, **kwargs: Any) -> Any:
        kwargs.update(self._selectors, _preload_content=False)
        if self._namespace:
            return self._core.list_namespaced_pod(self._namespace, **kwargs)
        return self._core.list_pod_for_all_namespaces(**kwargs)

    def _list(self) -> str:
        pods: list[dict[str, Any]] = []
        token = None
        while True:
            page = json.loads(self._call(limit=500, _continue=token, _request_timeout=60).data)
            pods += page["items"]
            token = page["metadata"].get("continue")
            if not token:
                break
        for pod in pods:
            self._on_event("LISTED", pod)
        if self._on_list is not None:
            self._on_list(pods)
        self.synced.set()
        return str(page["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> str:
        from kubernetes.watch.watch import iter_resp_lines

        self._response = self._call(watch=True, resource_version=version, allow_watch_bookmarks=True,
                                    timeout_seconds=290, _request_timeout=(10, 330))
        try:
            for line in iter_resp_lines(self._response):
                if self._stop.is_set():
                    break
                if not line:
                    continue
                event = json.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchGone(obj.get("message"))
                    raise RuntimeError(f"watch error: {obj}")
                version = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    self.events += 1
                    self._on_event(kind, obj)
        finally:
            # Closed, not handed back to the pool: a watch left early has unread data on its connection.
            self._response.close()
            self._response.release_conn()
            self._response = None
        return version

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list()
                while not self._stop.is_set():
                    version = self._watch(version)
            except WatchGone:
                pass
            except Exception as exc:
                if self._stop.is_set():
                    break
                log.warning("pod watch broke (%s: %s); listing again", type(exc).__name__, exc)
                self._stop.wait(1.0)
            self.relists += 1


# ----------------------------------------------------------------------------- the kubelet stand-in


def admin_client(kubeconfig: Path | str, pool: int = 16) -> Any:
    """A ``kubernetes`` ApiClient for ``kubeconfig`` whose connection pool holds ``pool`` connections."""
    import kubernetes
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return k8s.ApiClient(cfg)


@dataclasses.dataclass(frozen=True)
class _PodRef:
    """What a step needs of a pod (not the pod: thousands wait in the queue)."""

    namespace: str
    name: str
    uid: str
    node: str
    containers: tuple[tuple[str, str | None], ...]
    init_containers: tuple[tuple[str, str | None], ...]
    cluster: str = ""  # its Dask cluster and component labels (the scheduler answers need them)
    component: str = ""


def _pod_ref(pod: Mapping[str, Any]) -> _PodRef:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    labels = meta.get("labels") or {}
    return _PodRef(
        namespace=meta["namespace"], name=meta["name"], uid=meta["uid"], node=spec["nodeName"],
        containers=tuple((c["name"], c.get("image")) for c in spec.get("containers") or []),
        init_containers=tuple((c["name"], c.get("image")) for c in spec.get("initContainers") or []),
        cluster=labels.get(CLUSTER_LABEL, ""), component=labels.get(COMPONENT_LABEL, ""),
    )


RETRIABLE = (429, 500, 502, 503, 504)


class KubeletStandIn:
    """Kubelets for ``nodes``: register them, keep them Ready, run their pods' lifecycle (see module doc)."""

    def __init__(
        self,
        kubeconfig: Path | str,
        nodes: list[FakeNode],
        *,
        capacity: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        start_delay: float = 0.0,
        ready_delay: float = 0.0,
        stop_delay: float = 0.0,
        threads: int = 16,
        dask_port: int | None = None,
        dask_busy: bool = False,
    ):
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        self._ApiException = ApiException
        self.nodes = {n.name: n for n in nodes}
        self.capacity = {"cpu": "32", "memory": "128Gi", "pods": "250", "ephemeral-storage": "500Gi",
                         **(capacity or {})}
        self.labels = {SIMULATED_LABEL: "true", **(labels or {})}
        self.start_delay, self.ready_delay, self.stop_delay = start_delay, ready_delay, stop_delay
        self.api = admin_client(kubeconfig, pool=threads + 4)
        self._core = k8s.CoreV1Api(self.api)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="kubelet")
        self._addresses = {n.name: PodAddresses(n.pod_cidr) for n in nodes}
        # Dask schedulers answered on this machine (dask_port): their pods get loopback addresses.
        self.schedulers = SchedulerBook(busy=dask_busy) if dask_port else None
        self._scheduler_server = SchedulerServer(self.schedulers, dask_port) if self.schedulers and dask_port else None
        self._loopback = {n.name: PodAddresses(loopback_cidr(n.index)) for n in nodes} if self.schedulers else {}
        self._steps: dict[str, int] = {}  # uid -> furthest step queued
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_wake = threading.Condition(self._lock)
        self._seq = 0
        self._stop = threading.Event()
        self._node_uids: dict[str, str] = {}
        self.watch = PodWatch(self.api, self._on_event, field_selector="spec.nodeName!=",
                              on_list=self._on_list, name="kubelet-watch")
        # counters (under _lock)
        self.counts = {"start": 0, "ready": 0, "finalize": 0, "gone": 0, "retries": 0, "failed": 0,
                       "lease_renewals": 0}
        self._lags: list[float] = []  # seconds from due to done, per start
        self._span: dict[str, list[float]] = {}  # step -> [first done, last done]
        self._in_flight = self.peak_in_flight = 0
        self.started_at = time.monotonic()

    # -- nodes

    def register_nodes(self) -> None:
        """Create the Nodes (Ready, capacity, podCIDR, untainted) and their Leases, in parallel."""
        from .kubelet import clear_not_ready_taint, make_node_ready, renew_node_lease

        def one(node: FakeNode) -> None:
            created = make_node_ready(self.api, node.name, labels=self.labels, capacity=self.capacity,
                                      address=node.address, pod_cidr=str(node.pod_cidr))
            self._node_uids[node.name] = created.metadata.uid
            renew_node_lease(self.api, node.name, created.metadata.uid)
            clear_not_ready_taint(self.api, node.name)  # the node-lifecycle controller's part (off in up.sh)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, self.nodes.values()))

    def _heartbeats(self) -> None:
        from .kubelet import renew_node_lease

        last_status = time.monotonic()
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            report_status = time.monotonic() - last_status >= STATUS_REPORT_SECONDS
            for name in self.nodes:
                if self._stop.is_set():
                    return
                try:
                    renew_node_lease(self.api, name, self._node_uids.get(name))
                    if report_status:
                        self._core.patch_node_status(name, {"status": {"conditions": [
                            {"type": "Ready", "status": "True", "reason": "KubeletReady",
                             "lastHeartbeatTime": _now()}]}}, _content_type=SMP, _preload_content=False
                        ).drain_conn()
                    with self._lock:
                        self.counts["lease_renewals"] += 1
                except Exception as exc:
                    log.warning("heartbeat of %s failed: %s", name, exc)
            if report_status:
                last_status = time.monotonic()

    def delete_nodes(self) -> None:
        """Delete the Nodes (their Leases go with them: the Node owns its Lease)."""
        def one(name: str) -> None:
            with contextlib.suppress(self._ApiException):
                self._core.delete_node(name, _preload_content=False).drain_conn()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, self.nodes))

    # -- pods: decide in the watch thread, act in the pool

    def _on_list(self, pods: list[dict[str, Any]]) -> None:
        live = {p["metadata"]["uid"] for p in pods}
        with self._lock:
            for uid in [u for u in self._steps if u not in live]:
                del self._steps[uid]
            for addresses in (*self._addresses.values(), *self._loopback.values()):
                for uid in [u for u in addresses.holders() if u not in live]:
                    addresses.release(uid)

    def _on_event(self, kind: str, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.nodes:
            return
        uid = pod["metadata"]["uid"]
        if self.schedulers is not None:
            self.schedulers.pod_event(kind, pod)
        if kind == "DELETED":
            with self._lock:
                self._steps.pop(uid, None)
                self._addresses[node].release(uid)
                if self._loopback:
                    self._loopback[node].release(uid)
                self.counts["gone"] += 1
            return
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            with self._lock:
                self._pool_of(node, ip).keep(uid, ip)
        step = kubelet_step(pod)
        if step is None:
            return
        with self._lock:
            if self._steps.get(uid, 0) >= step:
                return
            self._steps[uid] = step
        delay = {START: self.start_delay, READY: self.ready_delay, FINALIZE: self.stop_delay}[step]
        self._queue(step, _pod_ref(pod), time.monotonic() + delay)

    def _queue(self, step: int, ref: _PodRef, due: float) -> None:
        def run() -> None:
            self._pool.submit(self._act, step, ref, due)

        if due <= time.monotonic():
            with self._lock:
                self._in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            run()
            return
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            self._seq += 1
            heapq.heappush(self._timers, (due, self._seq, run))
            self._timer_wake.notify()

    def _timer_loop(self) -> None:
        with self._lock:
            while not self._stop.is_set():
                if not self._timers:
                    self._timer_wake.wait(1.0)
                    continue
                due = self._timers[0][0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._timer_wake.wait(min(wait, 1.0))
                    continue
                _, _, run = heapq.heappop(self._timers)
                run()

    def _act(self, step: int, ref: _PodRef, due: float) -> None:
        outcome = "failed"
        try:
            outcome = self._with_retries(step, ref)
        finally:
            now = time.monotonic()
            with self._lock:
                self._in_flight -= 1
                if outcome == "done":
                    self.counts[STEP_NAMES[step]] += 1
                    self._span.setdefault(STEP_NAMES[step], [now, now])[1] = now
                    if step == START:
                        self._lags.append(now - due)
                elif outcome == "failed":
                    self.counts["failed"] += 1
                    if self._steps.get(ref.uid) == step:
                        self._steps[ref.uid] = step - 1  # a later event may try again

    def _with_retries(self, step: int, ref: _PodRef, attempts: int = 6) -> str:
        """``done``, ``skipped`` (the pod is gone or was replaced) or ``failed``."""
        for attempt in range(attempts):
            try:
                if step == FINALIZE:
                    self._core.delete_namespaced_pod(
                        ref.name, ref.namespace,
                        body={"gracePeriodSeconds": 0, "preconditions": {"uid": ref.uid}},
                        _preload_content=False).drain_conn()
                else:
                    self._patch_status(step, ref)
                return "done"
            except self._ApiException as exc:
                if exc.status in (404, 409):  # gone, or another pod of that name now: nothing to do
                    return "skipped"
                if exc.status not in RETRIABLE:
                    log.warning("%s %s/%s: %s %s", STEP_NAMES[step], ref.namespace, ref.name, exc.status,
                                exc.reason)
                    break
            except Exception as exc:  # connection reset, timeout
                log.info("%s %s/%s: %s, retrying", STEP_NAMES[step], ref.namespace, ref.name, exc)
            with self._lock:
                self.counts["retries"] += 1
            if self._stop.wait(min(0.2 * 2**attempt, 5.0)):
                break
        return "failed"

    def _pool_of(self, node: str, ip: str) -> PodAddresses:
        """The node's addresses ``ip`` is one of (its loopback ones are its schedulers')."""
        if self._loopback and ipaddress.ip_address(ip) in LOOPBACK_RANGE:
            return self._loopback[node]
        return self._addresses[node]

    def _patch_status(self, step: int, ref: _PodRef) -> None:
        from .kubelet import running_pod_status

        scheduler = self.schedulers is not None and ref.component in SCHEDULER_COMPONENTS and bool(ref.cluster)
        with self._lock:
            ip = (self._loopback if scheduler else self._addresses)[ref.node].take(ref.uid)
        ready = step == READY or self.ready_delay <= 0
        # The scheduler answers, and a worker is connected, before the watch shows them Running and Ready.
        if scheduler and step == START and self.schedulers is not None:
            self.schedulers.scheduler_started(ip, ref.namespace, ref.cluster)
        if ready and self.schedulers is not None and ref.component == WORKER_COMPONENT and ref.cluster:
            self.schedulers.worker_ready(ref.namespace, ref.cluster, ref.name, ip)
        status = running_pod_status(
            ref.namespace, ref.name, list(ref.containers), list(ref.init_containers), ip,
            self.nodes[ref.node].address, _now(), ready=ready,
            conditions=("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"))
        if step == READY:  # the start time and IPs are the first update's
            status = {"conditions": status["conditions"], "containerStatuses": status["containerStatuses"]}
        # The UID in the patch is a precondition (as the kubelet's status manager sends it).
        body = {"metadata": {"uid": ref.uid}, "status": status}
        self._core.patch_namespaced_pod_status(ref.name, ref.namespace, body, _content_type=SMP,
                                               _preload_content=False).drain_conn()

    # -- life

    def start(self, timeout: float = 60.0) -> None:
        """Register the nodes, start heartbeats, timers and the watch; return once the first list is done."""
        if self._scheduler_server is not None:
            self._scheduler_server.start()
        self.register_nodes()
        for target, name in ((self._heartbeats, "heartbeats"), (self._timer_loop, "timers")):
            threading.Thread(target=target, name=name, daemon=True).start()
        self.watch.start()
        if not self.watch.synced.wait(timeout):
            raise FleetError(f"the stand-in's pod watch did not list within {timeout:g} s")

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._timer_wake.notify_all()
        self.watch.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._scheduler_server is not None:
            self._scheduler_server.stop()

    def stats(self) -> dict[str, Any]:
        """Counters, throughput, lag, and this process's CPU seconds and peak RSS."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            lags = sorted(self._lags)
            # Throughput of each step: how many, over the time from its first to its last.
            rates = {f"{step}_per_second": round((self.counts[step] - 1) / (last - first), 1)
                     for step, (first, last) in self._span.items() if last > first}
            out: dict[str, Any] = {
                **self.counts,
                **rates,
                "nodes": len(self.nodes),
                "pods_on_nodes": sum(len(a) for a in self._addresses.values()),
                "in_flight": self._in_flight,
                "peak_in_flight": self.peak_in_flight,
                "start_lag_p50": round(statistics.median(lags), 4) if lags else None,
                "start_lag_p99": round(lags[int(0.99 * (len(lags) - 1))], 4) if lags else None,
                "start_lag_max": round(lags[-1], 4) if lags else None,
            }
        if self.schedulers is not None:
            out.update(self.schedulers.stats())
        out.update(watch_events=self.watch.events, watch_relists=self.watch.relists,
                   cpu_seconds=round(usage.ru_utime + usage.ru_stime, 2),
                   peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
                   uptime_seconds=round(time.monotonic() - self.started_at, 1))
        return out


# ----------------------------------------------------------------------------- the fleet (two processes)


@dataclasses.dataclass
class Fleet:
    """A running simulated fleet: see :func:`simulated_fleet`."""

    nodes: list[FakeNode]
    labels: dict[str, str]
    kubelet: ManagedProcess
    scheduler: ManagedProcess | None
    stats_file: Path
    workdir: Path
    final_stats: dict[str, Any] | None = None
    dask_port: int | None = None  # where the schedulers' HTTP API answers (None: it does not)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def stats(self) -> dict[str, Any]:
        """The stand-in's counters (written every second; final after :meth:`stop`), and both
        processes' CPU seconds and peak RSS (MB)."""
        if self.final_stats is not None:
            return self.final_stats
        out: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            out = json.loads(self.stats_file.read_text())
        out["cpu_seconds"] = self.kubelet.cpu_seconds()
        out["peak_rss_mb"] = self.kubelet.peak_rss_mb()
        if self.scheduler is not None:
            out["scheduler_cpu_seconds"] = self.scheduler.cpu_seconds()
            out["scheduler_peak_rss_mb"] = self.scheduler.peak_rss_mb()
        return out

    def stop(self) -> dict[str, Any]:
        """Stop the scheduler, then the stand-in (which deletes its nodes unless told to keep them);
        the final stats. Idempotent."""
        if self.final_stats is not None:
            return self.final_stats
        scheduler_cpu = scheduler_rss = float("nan")
        if self.scheduler is not None:
            scheduler_cpu, scheduler_rss = self.scheduler.cpu_seconds(), self.scheduler.peak_rss_mb()
            self.scheduler.stop()
        self.kubelet.stop(timeout=60)
        final: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            final = json.loads(self.stats_file.read_text())
        final.update(scheduler_cpu_seconds=scheduler_cpu, scheduler_peak_rss_mb=scheduler_rss)
        self.final_stats = final
        return final


@contextlib.contextmanager
def simulated_fleet(
    kubeconfig: Path | str,
    nodes: int = 50,
    *,
    prefix: str = "sim-node-",
    cpu: str = "32",
    memory: str = "128Gi",
    max_pods: int = 250,
    labels: Mapping[str, str] | None = None,
    start_delay: float = 0.0,
    ready_delay: float = 0.0,
    stop_delay: float = 0.0,
    threads: int = 16,
    dask_port: int | None = None,
    dask_busy: bool = False,
    scheduler: bool = True,
    scheduler_qps: float = 500,
    keep_nodes: bool = False,
    workdir: Path | str | None = None,
    up_script: Path | str | None = None,
    timeout: float = 120.0,
) -> Iterator[Fleet]:
    """Start the kubelet stand-in for ``nodes`` fake Nodes, then the real kube-scheduler; stop both at exit.

    Pods are simulated (no container runs). ``kubeconfig`` needs rights over nodes, leases and pods
    (up.sh's admin kubeconfig). Node names are ``PREFIX000``...; every node is labelled
    :data:`SIMULATED_LABEL` plus ``labels``. ``scheduler=False`` leaves placement to someone else.
    The nodes are deleted at exit unless ``keep_nodes``. Logs and stats go to ``workdir`` (a new
    temporary directory, removed at exit, when not given). ``dask_port``: Dask scheduler pods get
    loopback addresses and the stand-in answers their HTTP API on that port, honestly for each cluster
    (:mod:`.fleet_schedulers`; ``dask_busy``: each has a client connected).

    Raises:
        FleetUnavailable: no kube-scheduler binary here.
        FleetError: a part did not start (its log tail in the message).
    """
    own_workdir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="sim-fleet-")) if workdir is None else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    if scheduler:
        kube_binary("kube-scheduler", up_script)  # FleetUnavailable before anything started
    node_list = fake_nodes(nodes, prefix)
    node_labels = {SIMULATED_LABEL: "true", **(labels or {})}
    stats_file = work / "kubelet-stats.json"
    log_path = work / "kubelet-standin.log"
    command = [
        sys.executable, "-m", "tests.support.fleet", "--kubeconfig", str(Path(kubeconfig).resolve()),
        "--nodes", str(nodes), "--prefix", prefix, "--cpu", cpu, "--memory", memory,
        "--max-pods", str(max_pods), "--start-delay", str(start_delay), "--ready-delay", str(ready_delay),
        "--stop-delay", str(stop_delay), "--threads", str(threads), "--stats-file", str(stats_file),
        *[arg for key, value in (labels or {}).items() for arg in ("--label", f"{key}={value}")],
        *(["--keep-nodes"] if keep_nodes else []),
        *(["--dask-port", str(dask_port)] if dask_port else []), *(["--dask-busy"] if dask_busy else []),
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with log_path.open("wb") as fh:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=fh, stdin=subprocess.DEVNULL,
                                env=env, cwd=REPO)
    fleet = Fleet(nodes=node_list, labels=node_labels, kubelet=ManagedProcess("kubelet-standin", proc, log_path),
                  scheduler=None, stats_file=stats_file, workdir=work, dask_port=dask_port)
    try:
        _wait_ready_line(fleet.kubelet, timeout)
        if scheduler:
            fleet.scheduler = start_kube_scheduler(kubeconfig, work, qps=scheduler_qps,
                                                   burst=int(2 * scheduler_qps), up_script=up_script)
        yield fleet
    finally:
        fleet.stop()
        if own_workdir:
            shutil.rmtree(work, ignore_errors=True)


def _wait_ready_line(kubelet: ManagedProcess, timeout: float) -> None:
    assert kubelet.proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffered = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([kubelet.proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(kubelet.proc.stdout.fileno(), 4096)
            buffered += chunk
            if b"READY" in buffered:
                return
            if not chunk:
                break
        elif not kubelet.alive():
            break
    kubelet.stop()
    raise FleetError(f"the kubelet stand-in did not become ready within {timeout:g} s "
                     f"(exit {kubelet.proc.returncode}):\n{kubelet.log_tail()}")


# ----------------------------------------------------------------------------- the stand-in's process


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fleet",
                                     description="A kubelet stand-in for N fake nodes (pods are simulated).")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--prefix", default="sim-node-")
    parser.add_argument("--cpu", default="32")
    parser.add_argument("--memory", default="128Gi")
    parser.add_argument("--max-pods", type=int, default=250)
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--ready-delay", type=float, default=0.0)
    parser.add_argument("--stop-delay", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--stats-file", type=Path)
    parser.add_argument("--keep-nodes", action="store_true", help="leave the Nodes behind at exit")
    parser.add_argument("--dask-port", type=int, default=None,
                        help="answer for Dask scheduler pods on this port (they get loopback addresses)")
    parser.add_argument("--dask-busy", action="store_true", help="the answering schedulers have a client")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    labels = dict(item.split("=", 1) for item in args.label)
    standin = KubeletStandIn(
        args.kubeconfig, fake_nodes(args.nodes, args.prefix),
        capacity={"cpu": args.cpu, "memory": args.memory, "pods": str(args.max_pods)}, labels=labels,
        start_delay=args.start_delay, ready_delay=args.ready_delay, stop_delay=args.stop_delay,
        threads=args.threads, dask_port=args.dask_port, dask_busy=args.dask_busy)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    t0 = time.monotonic()
    standin.start()
    log.info("%d nodes Ready, pod watch running (%.1f s)", args.nodes, time.monotonic() - t0)
    print("READY " + json.dumps({"nodes": args.nodes, "seconds": round(time.monotonic() - t0, 2)}), flush=True)
    last_report = (0, time.monotonic())
    while not stop.wait(1.0):
        stats = standin.stats()
        if args.stats_file:
            _write_json(args.stats_file, stats)
        done = stats["start"] + stats["ready"] + stats["finalize"]
        if done != last_report[0] and time.monotonic() - last_report[1] >= 10:
            rate = (done - last_report[0]) / (time.monotonic() - last_report[1])
            log.info("steps %d (%.0f/s over the last %.0f s); %s", done, rate, time.monotonic() - last_report[1],
                     json.dumps(stats))
            last_report = (done, time.monotonic())
    standin.stop()
    if not args.keep_nodes:
        standin.delete_nodes()
    stats = standin.stats()
    if args.stats_file:
        _write_json(args.stats_file, stats)
    log.info("stopped: %s", json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
