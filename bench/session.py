"""What the operator benches share: a control plane with an audit log of the operator's requests, an optional
simulated fleet, the operator as a process of its own, watches of the namespace, and the audit tallies.

Not a bench itself: ``reconcile.py``, ``restart.py``, ``foreign_pods.py`` and ``scale.py`` use it.

* The control plane is ``shared/kube/up.sh`` (``$SDO_KUBE_UP``), fresh per run, with an audit log of
  the operator's ServiceAccount only (level Metadata: who, verb, resource, response code; no bodies),
  so the API server does not also log the fleet's and the controller-manager's requests.
* ``fleet=True``: ``tests/support/fleet.py``'s simulated fleet (PODS ARE SIMULATED: the real
  kube-scheduler places them on fake nodes, a kubelet stand-in makes them Running and Ready) and the
  stand-in answers the schedulers' HTTP API (idle, honest, on loopback addresses), so workers become
  Ready and rounds that ask a scheduler get an answer at once.
* The operator runs under a ServiceAccount of its own (cluster-admin), cluster-wide, with a free
  metrics port (a busy 9090 on a shared machine would stop it, as it should).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from seamless_dask_runtime.model import identity  # noqa: E402
from tests.support import audit, control_plane, waiting  # noqa: E402
from tests.support.fleet import simulated_fleet  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

NAMESPACE = "bench"
OPERATOR_NS, OPERATOR_SA = "bench-operator", "operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
CLUSTER_LABEL, COMPONENT_LABEL = "dask.org/cluster-name", "dask.org/component"
WORKERGROUP_LABEL = "dask.org/workergroup-name"
SIMULATED = ("PODS ARE SIMULATED: no container runs (real kube-apiserver, kube-controller-manager and "
             "kube-scheduler; a kubelet stand-in makes pods Running/Ready and answers the Dask schedulers' HTTP API)")
READ_VERBS = ("get", "list", "watch")

AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["{OPERATOR_USER}"]
- level: None
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def venv_bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


# ----------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """user+sys of the process and its waited-for children (NaN once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, field: str = "VmHWM") -> float:
    """``VmHWM`` (peak resident memory) or ``VmRSS`` (now) of the process, MB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 90) -> tuple[int | None, float]:
    """SIGTERM; its exit code and the seconds it took to exit (SIGKILL after ``timeout``: code None)."""
    if proc.poll() is not None:
        return proc.returncode, 0.0
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return proc.returncode, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None, time.monotonic() - t0


# ----------------------------------------------------------------------------- operators


@dataclasses.dataclass(frozen=True)
class Operator:
    """How to install, run, feed and check one operator."""

    name: str
    group: str
    version: str
    plural: str
    kind: str
    crd_files: tuple[Path, ...]
    command: tuple[str, ...]
    body: Callable[[str], dict[str, Any]]
    extra_plurals: tuple[str, ...] = ()  # other custom resources of the group to watch


def ours_body(name: str, replicas: int = 1, maximum: int = 2) -> dict[str, Any]:
    from seamless_dask_runtime.model.identity import API_VERSION, KIND

    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"workers": {"replicas": replicas, "maximum": maximum}}}


def theirs_body(name: str) -> dict[str, Any]:
    from dask_kubernetes.operator import make_cluster_spec

    return make_cluster_spec(name=name, image="ghcr.io/dask/dask:latest", n_workers=1)


def operators(ours_command: str | None = None) -> dict[str, Operator]:
    """``ours`` (``seamless-dask-operator``, as its image runs it) and ``dask-kubernetes`` (as its Dockerfile
    runs it, plus ``--standalone``: ours has no peering either)."""
    out = {"ours": Operator(
        name="ours", group=identity.GROUP, version=identity.VERSION, plural=identity.PLURAL,
        kind="SeamlessDaskCluster", crd_files=(REPO / "crds/seamlessdaskclusters.yaml",),
        command=(ours_command or venv_bin("seamless-dask-operator"), "--liveness-port", "0"), body=ours_body)}
    with contextlib.suppress(ImportError):
        import dask_kubernetes

        helm_crds = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm/dask-kubernetes-operator/crds"
        out["dask-kubernetes"] = Operator(
            name="dask-kubernetes", group="kubernetes.dask.org", version="v1", plural="daskclusters",
            kind="DaskCluster", crd_files=tuple(sorted(helm_crds.glob("*.yaml"))),
            command=(venv_bin("kopf"), "run", "-m", "dask_kubernetes.operator.controller", "--standalone",
                     "--all-namespaces"),
            body=theirs_body, extra_plurals=("daskworkergroups",))
    return out


# ----------------------------------------------------------------------------- cluster plumbing


def admin_client(kubeconfig: Path, pool: int = 32) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return k8s.ApiClient(cfg)


def install_crds(api: k8s.ApiClient, op: Operator, timeout: float = 60) -> None:
    ext = k8s.ApiextensionsV1Api(api)
    names = []
    for path in op.crd_files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                ext.create_custom_resource_definition(doc)
                names.append(doc["metadata"]["name"])

    def established() -> bool:
        for name in names:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    waiting.wait_for(established, timeout, 0.1, description=f"CRDs {names} established")
    co = k8s.CustomObjectsApi(api)
    wanted = {op.plural, *op.extra_plurals}
    waiting.wait_for(lambda: wanted <= {r.name for r in co.get_api_resources(op.group, op.version).resources},
                     timeout, 0.1, description="CRDs in discovery", ignore=(Exception,))
    # ...and listable: right after creation the API server answers 429 "storage is (re)initializing".
    for plural in wanted:
        waiting.wait_for(lambda p=plural: co.list_cluster_custom_object(op.group, op.version, p) is not None,
                         timeout, 0.1, description=f"{plural} listable", ignore=(Exception,))


def make_namespace(api: k8s.ApiClient, name: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    waiting.wait_for(lambda: core.list_namespaced_service_account(name).items, 60, 0.1,
                     description=f"default ServiceAccount in {name}")


# ----------------------------------------------------------------------------- watching the namespace


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


class RawWatch:
    """List, then watch, one kind as raw JSON; ``on_list(objects)`` after each (re)list, ``on_event(type, obj)``
    for each change. A 410 or a broken connection lists again."""

    def __init__(self, call: Callable[..., Any], on_list: Callable[[list[dict[str, Any]]], None],
                 on_event: Callable[[str, dict[str, Any]], None], name: str):
        self._call, self._on_list, self._on_event = call, on_list, on_event
        self._stop = threading.Event()
        self._response: Any = None
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._response.shutdown()
        self._thread.join(10)

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = json.loads(self._call(limit=500, _continue=token, _preload_content=False,
                                         _request_timeout=60).data)
            items += page["items"]
            token = page["metadata"].get("continue")
            if not token:
                break
        self._on_list(items)
        self.synced.set()
        return str(page["metadata"]["resourceVersion"])

    def _run(self) -> None:
        from kubernetes.watch.watch import iter_resp_lines

        while not self._stop.is_set():
            try:
                version = self._list()
                while not self._stop.is_set():
                    self._response = self._call(watch=True, resource_version=version, allow_watch_bookmarks=True,
                                                timeout_seconds=290, _preload_content=False,
                                                _request_timeout=(10, 330))
                    try:
                        for line in iter_resp_lines(self._response):
                            if self._stop.is_set() or not line:
                                continue
                            event = json.loads(line)
                            if event["type"] == "ERROR":
                                raise RuntimeError(event["object"].get("message"))
                            version = event["object"]["metadata"]["resourceVersion"]
                            if event["type"] != "BOOKMARK":
                                self._on_event(event["type"], event["object"])
                    finally:
                        self._response.close()
                        self._response.release_conn()
            except Exception:
                if not self._stop.wait(1.0):
                    continue


@dataclasses.dataclass
class PodSeen:
    cluster: str
    component: str
    ready: bool
    uid: str


class Namespace:
    """The bench's view of the namespace (watches, not polls: a poll of 2,000 pods every 0.25 s would load the
    API server the operators share): custom resources, Services, Deployments, pods; and when each pod of
    ours was first seen Ready."""

    def __init__(self, api: k8s.ApiClient, op: Operator, namespace: str = NAMESPACE):
        self.lock = threading.Lock()
        self.primary: dict[str, dict[str, Any]] = {}  # name -> {"status", "finalizers", "spec"}
        self.extra: dict[str, set[str]] = {p: set() for p in op.extra_plurals}
        self.services: set[str] = set()
        self.deployments: dict[str, str | None] = {}  # name -> worker group label
        self.pods: dict[str, PodSeen] = {}
        self.by_cluster: dict[tuple[str, str], dict[str, PodSeen]] = collections.defaultdict(dict)
        self.worker_groups: collections.Counter[str] = collections.Counter()  # worker Deployments per group
        self.pod_uids: dict[str, set[str]] = collections.defaultdict(set)  # every uid a pod name ever had
        self.seen_at: dict[str, float] = {}  # pod name -> when first seen
        self.ready_at: dict[str, float] = {}
        core, apps, co = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.CustomObjectsApi(api)
        ns = namespace

        def keyed(store: Callable[[dict[str, Any]], None], forget: Callable[[str], None],
                  reset: Callable[[], None]) -> tuple[Callable[..., None], Callable[..., None]]:
            def on_list(items: list[dict[str, Any]]) -> None:
                with self.lock:
                    reset()
                    for item in items:
                        store(item)

            def on_event(kind: str, item: dict[str, Any]) -> None:
                with self.lock:
                    if kind == "DELETED":
                        forget(item["metadata"]["name"])
                    else:
                        store(item)
            return on_list, on_event

        def store_primary(o: dict[str, Any]) -> None:
            self.primary[o["metadata"]["name"]] = {"status": o.get("status") or {}, "spec": o.get("spec") or {},
                                                   "finalizers": o["metadata"].get("finalizers") or []}

        def store_pod(o: dict[str, Any]) -> None:
            name, labels = o["metadata"]["name"], o["metadata"].get("labels") or {}
            seen = PodSeen(labels.get(CLUSTER_LABEL, ""), labels.get(COMPONENT_LABEL, ""), _ready(o),
                           o["metadata"]["uid"])
            forget_pod(name)
            self.pods[name] = seen
            self.by_cluster[(seen.cluster, seen.component)][name] = seen
            self.pod_uids[name].add(seen.uid)
            self.seen_at.setdefault(name, time.time())
            if seen.ready:
                self.ready_at.setdefault(name, time.time())

        def forget_pod(name: str) -> None:
            old = self.pods.pop(name, None)
            if old is not None:
                self.by_cluster[(old.cluster, old.component)].pop(name, None)

        def reset_pods() -> None:
            self.pods.clear()
            self.by_cluster.clear()

        def forget_deployment(name: str) -> None:
            group = self.deployments.pop(name, None)
            if group:
                self.worker_groups[group] -= 1

        def store_deployment(o: dict[str, Any]) -> None:
            forget_deployment(o["metadata"]["name"])
            group = (o["metadata"].get("labels") or {}).get(WORKERGROUP_LABEL)
            self.deployments[o["metadata"]["name"]] = group
            if group:
                self.worker_groups[group] += 1

        def reset_deployments() -> None:
            self.deployments.clear()
            self.worker_groups.clear()

        self.watches = [
            RawWatch(lambda **kw: co.list_namespaced_custom_object(op.group, op.version, ns, op.plural, **kw),
                     *keyed(store_primary, lambda n: self.primary.pop(n, None), self.primary.clear), "primary"),
            RawWatch(lambda **kw: core.list_namespaced_service(ns, **kw),
                     *keyed(lambda o: self.services.add(o["metadata"]["name"]), self.services.discard,
                            self.services.clear), "services"),
            RawWatch(lambda **kw: core.list_namespaced_pod(ns, **kw),
                     *keyed(store_pod, forget_pod, reset_pods), "pods"),
            RawWatch(lambda **kw: apps.list_namespaced_deployment(ns, **kw),
                     *keyed(store_deployment, forget_deployment, reset_deployments),
                     "deployments"),
        ]
        for plural, names in self.extra.items():
            self.watches.append(RawWatch(
                lambda p=plural, **kw: co.list_namespaced_custom_object(op.group, op.version, ns, p, **kw),
                *keyed(lambda o, s=names: s.add(o["metadata"]["name"]), names.discard, names.clear), plural))
        for watch in self.watches:
            if not watch.synced.wait(60):
                raise TimeoutError(f"the bench's watch {watch._thread.name} did not list within 60 s")

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()

    def pods_of(self, cluster: str, component: str) -> list[PodSeen]:
        return list(self.by_cluster.get((cluster, component), {}).values())


def ours_missing(ns: Namespace, name: str, ready: bool) -> list[str]:
    """What cluster ``name`` lacks to have converged (``ready``: its pods Ready and the status saying so)."""
    missing = []
    resource = ns.primary.get(name)
    if resource is None:
        return ["resource"]
    schedulers, workers = ns.pods_of(name, "scheduler"), ns.pods_of(name, "worker")
    if not schedulers:
        missing.append("scheduler pod")
    if f"{name}-scheduler" not in ns.services:
        missing.append("Service")
    if not workers:
        missing.append("worker pod")
    status = resource["status"]
    desired = (resource["spec"].get("workers") or {}).get("replicas", 1)
    if ready:
        if status.get("phase") != "Running":
            missing.append(f"phase={status.get('phase')}")
        if status.get("workersReady") != desired:
            missing.append(f"workersReady={status.get('workersReady')}")
    elif status.get("phase") not in ("Starting", "Running"):
        missing.append(f"phase={status.get('phase')}")
    if status.get("workersDesired") != desired:
        missing.append(f"workersDesired={status.get('workersDesired')}")
    return missing


def theirs_missing(ns: Namespace, name: str, ready: bool) -> list[str]:
    missing = []
    resource = ns.primary.get(name)
    if resource is None:
        return ["resource"]
    schedulers, workers = ns.pods_of(name, "scheduler"), ns.pods_of(name, "worker")
    if not schedulers:
        missing.append("scheduler pod")
    if f"{name}-scheduler" not in ns.services:
        missing.append("Service")
    if not workers:
        missing.append("worker pod")
    if f"{name}-scheduler" not in ns.deployments:
        missing.append("scheduler Deployment")
    if f"{name}-default" not in ns.extra.get("daskworkergroups", set()):
        missing.append("DaskWorkerGroup")
    if ns.worker_groups[f"{name}-default"] < 1:
        missing.append("worker Deployment")
    phase = resource["status"].get("phase")
    if ready:
        if phase != "Running":
            missing.append(f"phase={phase}")
        if not any(p.ready for p in schedulers):
            missing.append("scheduler pod Ready")
        if not any(p.ready for p in workers):
            missing.append("worker pod Ready")
    elif phase not in ("Pending", "Running"):
        missing.append(f"phase={phase}")
    return missing


# ----------------------------------------------------------------------------- audit tallies


def _ts(event: dict[str, Any]) -> float:
    value = event.get("requestReceivedTimestamp") or event.get("stageTimestamp")
    return dt.datetime.fromisoformat(value).timestamp() if value else 0.0


def request_key(event: dict[str, Any]) -> tuple[str, str]:
    ref = event.get("objectRef") or {}
    if ref.get("resource"):
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    else:
        resource = str(event.get("requestURI", "")).split("?", 1)[0]
        if resource.startswith("/api"):
            resource = "/api*"  # discovery: /api, /api/v1, /apis, /apis/GROUP/VERSION
    return str(event.get("verb", "")), resource


def _user(event: dict[str, Any]) -> str:
    imp = event.get("impersonatedUser") or {}
    return imp.get("username") or (event.get("user") or {}).get("username", "")


def operator_requests(audit_log: Path) -> list[tuple[float, dict[str, Any]]]:
    """The operator's requests (time received, audit event), in order."""
    if not audit_log.exists():
        return []
    return sorted(((_ts(e), e) for e in audit.read_audit_events(audit_log) if _user(e) == OPERATOR_USER),
                  key=lambda pair: pair[0])


def code(event: dict[str, Any]) -> int:
    return int((event.get("responseStatus") or {}).get("code") or 0)


def tally(events: Iterable[tuple[float, dict[str, Any]]], t0: float, t1: float, name: str | None = None,
          only: Callable[[dict[str, Any]], bool] | None = None) -> collections.Counter[tuple[str, str]]:
    """Requests received in [t0, t1] per (verb, resource), optionally only those naming cluster ``name``."""
    pattern = re.compile(re.escape(name) + r"(?![0-9])") if name else None
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for ts, event in events:
        if not t0 <= ts <= t1 or (only is not None and not only(event)):
            continue
        if pattern is not None:
            ref_name = (event.get("objectRef") or {}).get("name") or ""
            uri = urllib.parse.unquote(str(event.get("requestURI", "")))
            if not (pattern.match(ref_name) or pattern.search(uri.split("?", 1)[-1] if "?" in uri else "")):
                continue
        counts[request_key(event)] += 1
    return counts


def is_write(event: dict[str, Any]) -> bool:
    return event.get("verb") not in READ_VERBS


def is_duplicate_create(event: dict[str, Any]) -> bool:
    return event.get("verb") == "create" and code(event) == 409


def fmt_counter(counter: collections.Counter[Any], scale: float = 1.0) -> str:
    def label(key: Any) -> str:
        return " ".join(map(str, key)) if isinstance(key, tuple) else str(key)
    return ", ".join(f"{label(k)} {c / scale:.3g}" for k, c in sorted(counter.items(), key=lambda kv: (-kv[1],
                                                                                                   str(kv[0]))))


def kube_events(api: k8s.ApiClient, namespace: str = NAMESPACE) -> collections.Counter[tuple[str, str]]:
    """Events the operators posted (source kopf) in the namespace, per (type, reason), repeats counted."""
    answer = json.loads(k8s.CoreV1Api(api).list_namespaced_event(namespace, _preload_content=False).data)
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in answer["items"]:
        source = (event.get("source") or {}).get("component") or event.get("reportingComponent") or ""
        if source != "kopf":
            continue
        repeats = (event.get("series") or {}).get("count") or event.get("count") or 1
        counts[(event.get("type") or "", event.get("reason") or "")] += int(repeats)
    return counts


# ----------------------------------------------------------------------------- a session


@dataclasses.dataclass
class Options:
    fleet: bool = False
    nodes: int = 50
    node_cpu: str = "128"  # 1,000 clusters (1.25 CPU each) or one of 2,000 workers (1 CPU each) fit 50 nodes
    node_memory: str = "1Ti"
    node_pods: int = 250
    busy: bool = False  # the fleet's schedulers have a client connected (never idle)
    ours_command: str | None = None
    operator_env: dict[str, str] = dataclasses.field(default_factory=dict)
    keep: bool = False


class Session:
    """One control plane (+ fleet) for one operator kind; the operator can be started and stopped in it."""

    def __init__(self, op: Operator, workdir: Path, options: Options):
        self.op, self.workdir, self.options = op, workdir, options
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "operator.log"
        self.dask_port = free_port() if options.fleet else None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Session:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        audit_dir = (self.workdir / "audit").resolve()
        audit_dir.mkdir()
        (audit_dir / "policy.yaml").write_text(AUDIT_POLICY)
        self.audit_log = audit_dir / "audit.log"
        extra = (f"--audit-policy-file={audit_dir / 'policy.yaml'} --audit-log-path={self.audit_log} "
                 "--audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=0")
        saved = os.environ.get("KUBE_APISERVER_EXTRA_ARGS")
        os.environ["KUBE_APISERVER_EXTRA_ARGS"] = " ".join(filter(None, [saved, extra]))
        try:
            self.cp = control_plane.start_control_plane(self.workdir / "kube")
        finally:
            if saved is None:
                os.environ.pop("KUBE_APISERVER_EXTRA_ARGS", None)
            else:
                os.environ["KUBE_APISERVER_EXTRA_ARGS"] = saved
        self._stack.callback(self.cp.stop)
        self._stack.callback(self.stop_operator)
        self.api = admin_client(self.cp.kubeconfig)
        install_crds(self.api, self.op)
        make_namespace(self.api, NAMESPACE)
        self.kubeconfig = audit.make_service_account_kubeconfig(self.api, self.cp.kubeconfig, OPERATOR_NS,
                                                                OPERATOR_SA, self.workdir / "operator.kubeconfig")
        if self.options.fleet:
            o = self.options
            self.fleet = self._stack.enter_context(simulated_fleet(
                self.cp.kubeconfig, nodes=o.nodes, cpu=o.node_cpu, memory=o.node_memory, max_pods=o.node_pods,
                dask_port=self.dask_port, dask_busy=o.busy, workdir=self.workdir / "fleet"))
        else:
            self.fleet = None
        self.ns = Namespace(self.api, self.op)
        self._stack.callback(self.ns.stop)

    def operator_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_DASK_OPERATOR_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        if self.op.name == "ours":
            env["SEAMLESS_DASK_OPERATOR_METRICS_PORT"] = str(free_port())
            if self.dask_port:
                env["SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT"] = str(self.dask_port)
            env.update(self.options.operator_env)
            env.update(extra or {})
        return {k: v for k, v in env.items() if v}

    def start_operator(self, env: dict[str, str] | None = None, wait: bool = True) -> float:
        """Start the operator; with ``wait``, return once it watches its resource and opened no new watch for
        1.5 s (seconds from the start)."""
        with self.log.open("ab") as fh:
            fh.write(f"\n===== start {time.strftime('%H:%M:%S')}\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(self.op.command, env=self.operator_env(env), stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir)
        self.started_at = time.time()
        return self.wait_watching() if wait else 0.0

    def wait_watching(self, timeout: float = 120, settle: float = 1.5) -> float:
        assert self.proc is not None
        t0, watched, changed = time.time(), 0, time.monotonic()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.op.name} operator exited ({self.proc.returncode}):\n{self.log_tail()}")
            requests = [e for ts, e in operator_requests(self.audit_log) if ts >= self.started_at]
            now_watched = {request_key(e)[1] for e in requests if e.get("verb") == "watch"}
            if len(now_watched) != watched:
                watched, changed = len(now_watched), time.monotonic()
            if self.op.plural in now_watched and time.monotonic() - changed >= settle:
                return time.time() - self.started_at
            time.sleep(0.2)
        raise TimeoutError(f"{self.op.name} operator did not start watching {self.op.plural} within {timeout:g} s:\n"
                           f"{self.log_tail()}")

    def stop_operator(self, timeout: float = 90) -> tuple[int | None, float]:
        if self.proc is None:
            return None, 0.0
        result = stop_process(self.proc, timeout)
        self.proc = None
        return result

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def create(self, names: list[str], body: Callable[[str], dict[str, Any]] | None = None,
               threads: int = 16) -> float:
        """Create the resources at once from a thread pool; the seconds it took."""
        co = k8s.CustomObjectsApi(self.api)
        make = body or self.op.body
        t0 = time.time()

        def one(name: str) -> None:
            co.create_namespaced_custom_object(self.op.group, self.op.version, NAMESPACE, self.op.plural,
                                               make(name), _preload_content=False).drain_conn()

        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(min(len(names), threads)) as pool:
            list(pool.map(one, names))
        return time.time() - t0

    def wait_converged(self, names: list[str], t0: float, timeout: float, ready: bool,
                       interval: float = 0.25) -> tuple[dict[str, float], dict[str, str]]:
        """Until every cluster converged (seconds after ``t0`` for each) or ``timeout``; what the others lack."""
        missing_of = ours_missing if self.op.name == "ours" else theirs_missing
        done: dict[str, float] = {}
        missing: dict[str, str] = {}
        while True:
            now = time.time()
            with self.ns.lock:
                for name in names:
                    if name in done:
                        continue
                    what = missing_of(self.ns, name, ready)
                    if what:
                        missing[name] = ", ".join(what)
                    else:
                        done[name] = now - t0
                        missing.pop(name, None)
            if len(done) == len(names) or now - t0 >= timeout or (self.proc is not None and self.proc.poll()
                                                                   is not None):
                return done, missing
            time.sleep(interval)

    def requests(self) -> list[tuple[float, dict[str, Any]]]:
        time.sleep(0.5)  # the audit backend writes the last lines
        return operator_requests(self.audit_log)

    def scheduler_calls(self) -> int:
        """HTTP calls the fleet's schedulers answered so far (0 without a fleet)."""
        if self.fleet is None:
            return 0
        stats = self.fleet.stats()
        return sum(v for k, v in (stats.get("scheduler_calls") or {}).items() if k != "no scheduler at that address")


@contextlib.contextmanager
def py_spy(pid: int, out: Path, idle: bool = False, rate: int = 50) -> Iterator[None]:
    """``py-spy record`` of ``pid`` into ``out`` (collapsed stacks, one line per stack) while the block runs.

    By default only the thread holding the GIL is sampled: where the process's Python CPU goes (one thread at a
    time runs Python; C code that releases the GIL, TLS for one, is not seen). ``idle``: every thread, waiting
    or not (where its wall time goes)."""
    mode = ["--idle"] if idle else ["--gil"]
    command = [venv_bin("py-spy"), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate),
               "--nonblocking", "--threads", "-o", str(out), *mode]
    with (out.parent / f"{out.name}.log").open("wb") as log:
        spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
