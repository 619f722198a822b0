"""Benchmark: N clusters created at once, our operator vs the dask-kubernetes operator (not a timed test).

For each (operator, N) a fresh control plane (``shared/kube/up.sh``: etcd,
kube-apiserver with an audit log, kube-controller-manager; no kubelet, so pods
stay Pending) is started, the operator's CRDs are installed, and the operator
runs as a separate process under a ServiceAccount of its own (cluster-admin),
so the audit log tells its requests apart from the bench's and the
controller-manager's. Once its watches are set up, N custom resources are
created at once into one namespace from a thread pool, and the bench polls
until every cluster has converged:

* ``ours`` (``seamless-dask-operator``, ``spec.workers: {replicas: 1, maximum: 2}``):
  scheduler pod (the operator makes it), Service, 1 worker pod, and
  ``.status.phase`` Starting (or Running) with ``workersDesired`` = 1.
* ``dask-kubernetes`` (``kopf run -m dask_kubernetes.operator.controller``,
  ``make_cluster_spec(name, n_workers=1)``): scheduler Deployment, its pod,
  Service, DaskWorkerGroup ``NAME-default``, its worker Deployment and worker
  pod, and ``.status.phase`` Pending or Running (``Created`` is written before
  the children, so it does not count).

Figures per run: wall time from the first create to the last converged
cluster; operator CPU seconds (user+sys, children included) in that window;
peak RSS (VmHWM) of the operator process; API requests by the operator's user
in that window per cluster (all verbs; also without Events), its breakdown
per verb/resource for the cluster that converged at the median time (requests
naming it: its objects or a label selector on it) next to the window's
average per cluster; requests made before the first create (discovery, lists,
watches: "setup"); and requests per cluster per minute in an idle window
after convergence (timers). Discovery requests (``/api``, ``/apis/...``) are
counted together as ``get /api*``.

Both operators are started cluster-wide and in kopf's standalone mode (no
peering), with kopf's default (INFO) logging to a file.

Run: ``.venv/bin/python bench/reconcile.py [--n 20 100] [--only ours|dask-kubernetes|both]``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from kubernetes import client as k8s

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from seamless_dask_runtime import identity  # noqa: E402
from tests.support import audit, control_plane, waiting  # noqa: E402

NAMESPACE = "bench"
OPERATOR_NS, OPERATOR_SA = "bench-operator", "operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"
CLUSTER_LABEL, COMPONENT_LABEL = "dask.org/cluster-name", "dask.org/component"
WORKERGROUP_LABEL = "dask.org/workergroup-name"
POLL_INTERVAL = 0.25


# ----------------------------------------------------------------------------- operators


@dataclass(frozen=True)
class Operator:
    """How to install, run, feed and check one operator."""

    name: str
    group: str
    version: str
    plural: str
    crd_files: tuple[Path, ...]
    command: tuple[str, ...]
    body: Callable[[str], dict[str, Any]]
    converged: Callable[[str, State], str | None]  # None when converged, else what is missing
    extra_plurals: tuple[str, ...] = ()  # other custom resources of the group to poll


OPERATOR_COMMAND: list[str | None] = [None]  # set from --operator-command
OPERATOR_ENV: dict[str, str] = {}  # our operator's environment on top of the bench's (--operator-env)


def _venv_bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else (shutil.which(name) or name)


def ours_body(name: str) -> dict[str, Any]:
    from seamless_dask_runtime.identity import API_VERSION, KIND

    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"workers": {"replicas": 1, "maximum": 2}}}


def theirs_body(name: str) -> dict[str, Any]:
    from dask_kubernetes.operator import make_cluster_spec

    return make_cluster_spec(name=name, image="ghcr.io/dask/dask:latest", n_workers=1)


@dataclass
class State:
    """One poll of the namespace."""

    primary: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    workergroups: set[str] = field(default_factory=set)
    scheduler_pods: collections.Counter[str] = field(default_factory=collections.Counter)
    worker_pods: collections.Counter[str] = field(default_factory=collections.Counter)
    worker_deployments: collections.Counter[str] = field(default_factory=collections.Counter)


def _common_missing(name: str, state: State) -> list[str]:
    missing = []
    if name not in state.primary:
        missing.append("resource")
    if not state.scheduler_pods[name]:
        missing.append("scheduler pod")
    if f"{name}-scheduler" not in state.services:
        missing.append("Service")
    if state.worker_pods[name] < 1:
        missing.append("worker pod")
    return missing


def ours_converged(name: str, state: State) -> str | None:
    missing = _common_missing(name, state)
    status = (state.primary.get(name) or {}).get("status") or {}
    if status.get("phase") not in ("Starting", "Running"):
        missing.append(f"phase={status.get('phase')}")
    elif status.get("workersDesired") != 1:
        missing.append(f"workersDesired={status.get('workersDesired')}")
    return ", ".join(missing) or None


def theirs_converged(name: str, state: State) -> str | None:
    missing = _common_missing(name, state)
    if f"{name}-scheduler" not in state.deployments:
        missing.append("scheduler Deployment")
    if f"{name}-default" not in state.workergroups:
        missing.append("DaskWorkerGroup")
    if state.worker_deployments[f"{name}-default"] < 1:
        missing.append("worker Deployment")
    status = (state.primary.get(name) or {}).get("status") or {}
    if status.get("phase") not in ("Pending", "Running"):
        missing.append(f"phase={status.get('phase')}")
    return ", ".join(missing) or None


def _operators() -> dict[str, Operator]:
    import dask_kubernetes

    dk = Path(dask_kubernetes.__file__).parent
    helm_crds = dk / "operator/deployment/helm/dask-kubernetes-operator/crds"
    theirs_crds = tuple(helm_crds / f"{p}.yaml" for p in ("daskclusters", "daskworkergroups", "daskjobs",
                                                           "daskautoscalers"))
    if not all(p.is_file() for p in theirs_crds):  # file names without the plural "s"
        theirs_crds = tuple(sorted(helm_crds.glob("*.yaml")))
    return {
        "ours": Operator(
            name="ours", group=identity.GROUP, version=identity.VERSION, plural=identity.PLURAL,
            crd_files=(REPO / "crds/seamlessdaskclusters.yaml",),
            command=(OPERATOR_COMMAND[0] or _venv_bin("seamless-dask-operator"), "--liveness-port", "0"),
            body=ours_body, converged=ours_converged,
        ),
        "dask-kubernetes": Operator(
            name="dask-kubernetes", group="kubernetes.dask.org", version="v1", plural="daskclusters",
            crd_files=theirs_crds,
            # As its Dockerfile runs it, plus --standalone (no KopfPeering CRD; ours is standalone too).
            command=(_venv_bin("kopf"), "run", "-m", "dask_kubernetes.operator.controller",
                     "--standalone", "--all-namespaces"),
            body=theirs_body, converged=theirs_converged, extra_plurals=("daskworkergroups",),
        ),
    }


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
    # ...and served by discovery, which is what kopf scans at start-up.
    wanted = {op.plural, *op.extra_plurals}
    waiting.wait_for(lambda: wanted <= {r.name for r in k8s.CustomObjectsApi(api).get_api_resources(
        op.group, op.version).resources}, timeout, 0.1, description="CRDs in discovery", ignore=(Exception,))
    # ...and listable: right after creation the API server answers 429 "storage is (re)initializing".
    co = k8s.CustomObjectsApi(api)
    for plural in wanted:
        waiting.wait_for(lambda p=plural: co.list_cluster_custom_object(op.group, op.version, p) is not None,
                    timeout, 0.1, description=f"{plural} listable", ignore=(Exception,))


def make_namespace(api: k8s.ApiClient, name: str) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    waiting.wait_for(lambda: core.list_namespaced_service_account(name).items, 30, 0.1,
                description=f"default ServiceAccount in {name}")


def poll_state(api: k8s.ApiClient, op: Operator) -> State:
    def items(call: Callable[..., Any], *args: Any) -> list[dict[str, Any]]:
        return json.loads(call(*args, _preload_content=False).data)["items"]

    core, apps, co = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.CustomObjectsApi(api)
    state = State()
    for obj in items(co.list_namespaced_custom_object, op.group, op.version, NAMESPACE, op.plural):
        state.primary[obj["metadata"]["name"]] = obj
    for plural in op.extra_plurals:
        state.workergroups = {o["metadata"]["name"] for o in items(
            co.list_namespaced_custom_object, op.group, op.version, NAMESPACE, plural)}
    for dep in items(apps.list_namespaced_deployment, NAMESPACE):
        state.deployments.add(dep["metadata"]["name"])
        group = (dep["metadata"].get("labels") or {}).get(WORKERGROUP_LABEL)
        if group:
            state.worker_deployments[group] += 1
    state.services = {s["metadata"]["name"] for s in items(core.list_namespaced_service, NAMESPACE)}
    for pod in items(core.list_namespaced_pod, NAMESPACE):
        labels = pod["metadata"].get("labels") or {}
        cluster, component = labels.get(CLUSTER_LABEL), labels.get(COMPONENT_LABEL)
        if cluster and component == "scheduler":
            state.scheduler_pods[cluster] += 1
        elif cluster and component == "worker":
            state.worker_pods[cluster] += 1
    return state


# ----------------------------------------------------------------------------- the operator process


def cpu_seconds(pid: int) -> float:
    """user+sys of the process, its live descendants and its waited-for children."""
    try:
        import psutil
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick  # utime stime cutime cstime
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:4])
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:2])
    return total


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """Peak resident memory of the process (``VmRSS``: now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_operator_up(proc: subprocess.Popen[bytes], audit_log: Path, op: Operator, log: Path,
                     timeout: float = 60, settle: float = 1.5) -> float:
    """Until the operator watches its resource and has opened no new watch for ``settle`` s."""
    t0 = time.monotonic()
    watched: set[str] = set()
    changed = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{op.name} operator exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        now_watched = {res for (verb, res), _ in audit.count_requests(audit_log, user=OPERATOR_USER).items()
                       if verb == "watch"}
        if now_watched != watched:
            watched, changed = now_watched, time.monotonic()
        if op.plural in watched and time.monotonic() - changed >= settle:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError(f"{op.name} operator did not start watching {op.plural} within {timeout:g} s:\n"
                       f"{log.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# ----------------------------------------------------------------------------- audit tallies


def _ts(event: dict[str, Any]) -> float:
    value = event.get("requestReceivedTimestamp") or event.get("stageTimestamp")
    return dt.datetime.fromisoformat(value).timestamp() if value else 0.0


def _key(event: dict[str, Any]) -> tuple[str, str]:
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


def operator_events(audit_log: Path) -> list[tuple[float, dict[str, Any]]]:
    return [(_ts(e), e) for e in audit.read_audit_events(audit_log) if _user(e) == OPERATOR_USER]


def tally(events: Iterable[tuple[float, dict[str, Any]]], t0: float, t1: float,
          name: str | None = None) -> collections.Counter[tuple[str, str]]:
    """Requests received in [t0, t1], optionally only those naming cluster ``name``."""
    pattern = re.compile(re.escape(name) + r"(?![0-9])") if name else None
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for ts, event in events:
        if not t0 <= ts <= t1:
            continue
        if pattern is not None:
            ref_name = (event.get("objectRef") or {}).get("name") or ""
            uri = urllib.parse.unquote(str(event.get("requestURI", "")))
            if not (pattern.match(ref_name) or pattern.search(uri.split("?", 1)[-1] if "?" in uri else "")):
                continue
        counts[_key(event)] += 1
    return counts


# ----------------------------------------------------------------------------- one run


@dataclass
class Result:
    operator: str
    n: int
    converged: int = 0
    wall: float = float("nan")
    cpu: float = float("nan")
    rss_mb: float = float("nan")
    rss_idle_mb: float = float("nan")  # VmRSS at the end of the idle window
    requests: int = 0
    requests_no_events: int = 0
    setup_requests: int = 0
    total_requests: int = 0
    idle_per_cluster_min: float = float("nan")
    startup_s: float = float("nan")
    apply_s: float = float("nan")
    median_s: float = float("nan")
    last_write_s: float = float("nan")
    one_name: str = ""
    phases: collections.Counter[str] = field(default_factory=collections.Counter)
    missing: collections.Counter[str] = field(default_factory=collections.Counter)
    one: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    window: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    setup: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    idle: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    note: str = ""

    @property
    def per_cluster(self) -> float:
        return self.requests / self.n


def names_for(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"bench-{i:0{width}d}" for i in range(n)]


def run_one(op: Operator, n: int, scratch: Path, timeout: float, idle: float) -> Result:
    result = Result(op.name, n)
    workdir = scratch / f"{op.name}-{n}"
    workdir.mkdir(parents=True)
    cp = control_plane.start_control_plane(workdir / "kube", audit=True, audit_dir=workdir / "audit")
    assert cp.audit_log is not None
    proc: subprocess.Popen[bytes] | None = None
    log = workdir / "operator.log"
    try:
        api = admin_client(cp.kubeconfig)
        install_crds(api, op)
        make_namespace(api, NAMESPACE)
        kubeconfig = audit.make_service_account_kubeconfig(api, cp.kubeconfig, OPERATOR_NS, OPERATOR_SA,
                                                        workdir / "operator.kubeconfig")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAMLESS_DASK_OPERATOR_")}
        env["KUBECONFIG"] = str(kubeconfig)
        if op.name == "ours":
            env.update(OPERATOR_ENV)
            env = {k: v for k, v in env.items() if v}
        with log.open("wb") as fh:
            proc = subprocess.Popen(op.command, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=workdir)
        result.startup_s = wait_operator_up(proc, cp.audit_log, op, log)

        names = names_for(n)
        co = k8s.CustomObjectsApi(api)
        cpu0 = cpu_seconds(proc.pid)
        t_apply = time.time()
        with concurrent.futures.ThreadPoolExecutor(min(n, 16)) as pool:
            list(pool.map(lambda name: co.create_namespaced_custom_object(
                op.group, op.version, NAMESPACE, op.plural, op.body(name)), names))
        result.apply_s = time.time() - t_apply

        done: dict[str, float] = {}
        missing: dict[str, str] = {}
        state = State()
        deadline = t_apply + timeout
        while True:
            state = poll_state(api, op)
            now = time.time()
            for name in names:
                if name in done:
                    continue
                what = op.converged(name, state)
                if what is None:
                    done[name] = now - t_apply
                    missing.pop(name, None)
                else:
                    missing[name] = what
            if len(done) == n or now >= deadline or proc.poll() is not None:
                break
            time.sleep(POLL_INTERVAL)
        t_end = time.time()
        result.cpu = cpu_seconds(proc.pid) - cpu0 if proc.poll() is None else float("nan")
        result.rss_mb = peak_rss_mb(proc.pid) if proc.poll() is None else float("nan")
        result.converged = len(done)
        result.wall = max(done.values()) if len(done) == n else t_end - t_apply
        result.median_s = statistics.median(done.values()) if done else float("nan")
        result.phases = collections.Counter(str((o.get("status") or {}).get("phase")) for o in state.primary.values())
        for what in missing.values():
            for part in what.split(", "):
                result.missing[part] += 1
        if proc.poll() is not None:
            result.note = f"operator exited ({proc.returncode}) during the run"

        t_idle0 = time.time()
        time.sleep(idle)
        t_idle1 = time.time()
        if proc.poll() is None:
            result.rss_idle_mb = peak_rss_mb(proc.pid, "VmRSS")
        if result.converged == n:
            final = poll_state(api, op)
            result.phases = collections.Counter(
                str((o.get("status") or {}).get("phase")) for o in final.primary.values())
        stop_process(proc)
        time.sleep(0.5)  # let the audit backend write the last lines

        events = operator_events(cp.audit_log)
        t_conv = t_apply + result.wall
        result.window = tally(events, t_apply, t_conv)
        result.requests = sum(result.window.values())
        result.requests_no_events = sum(c for (_, res), c in result.window.items() if res != "events")
        # One typical cluster: the one that converged at the median time (the first ones are atypically quick).
        ordered = sorted(done, key=done.__getitem__)
        result.one_name = ordered[len(ordered) // 2] if ordered else names[0]
        result.one = tally(events, t_apply, t_conv, result.one_name)
        writes = [ts for ts, e in events if t_apply <= ts <= t_conv and e.get("verb") not in ("get", "list", "watch")]
        result.last_write_s = max(writes) - t_apply if writes else float("nan")
        result.setup = tally(events, 0, t_apply)
        result.setup_requests = sum(result.setup.values())
        result.idle = tally(events, t_idle0, t_idle1)
        result.idle_per_cluster_min = sum(result.idle.values()) / n / (t_idle1 - t_idle0) * 60
        result.total_requests = len(events)
        with contextlib.suppress(OSError):
            if "Traceback" in log.read_text(errors="replace"):
                result.note = (result.note + "; " if result.note else "") + f"Traceback in {log}"
        return result
    finally:
        if proc is not None:
            stop_process(proc)
        cp.stop()


# ----------------------------------------------------------------------------- report


def fmt_counter(counter: collections.Counter[tuple[str, str]], scale: float = 1.0) -> str:
    return ", ".join(f"{verb} {res} {c / scale:.3g}" for (verb, res), c in
                     sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])))


def print_details(r: Result) -> None:
    print(f"\n== {r.operator}, N={r.n}: {r.converged}/{r.n} converged in {r.wall:.2f} s "
          f"(median cluster {r.median_s:.2f} s; operator's last write at {r.last_write_s:.2f} s; creates sent in "
          f"{r.apply_s:.2f} s; operator up in {r.startup_s:.1f} s)", flush=True)
    if r.missing:
        print(f"   NOT converged: {dict(r.missing)}")
    print(f"   phases at the end: {dict(r.phases)}; operator memory: peak {r.rss_mb:.1f} MB, "
          f"{r.rss_idle_mb:.1f} MB after the idle window")
    print(f"   requests in the create window: {r.requests} ({r.per_cluster:.2f}/cluster, "
          f"{r.requests_no_events / r.n:.2f}/cluster without Events)")
    print(f"   median cluster {r.one_name} (requests naming it): {sum(r.one.values())}: {fmt_counter(r.one)}")
    print(f"   window average per cluster: {fmt_counter(r.window, r.n)}")
    print(f"   setup before the first create: {r.setup_requests}: {fmt_counter(r.setup)}")
    print(f"   idle after convergence: {r.idle_per_cluster_min:.2f} requests/cluster/min: {fmt_counter(r.idle)}")
    print(f"   operator total requests (setup+create+idle+shutdown): {r.total_requests}")
    if r.note:
        print(f"   note: {r.note}")


def print_table(results: list[Result]) -> None:
    print("\n    N  operator          converged  wall_s  cpu_s  rss_MB  req/cluster  (no events)  "
          "setup_req  idle req/cl/min")
    for r in results:
        print(f"{r.n:5d}  {r.operator:16s}  {r.converged:4d}/{r.n:<4d}  {r.wall:6.2f}  {r.cpu:5.2f}  "
              f"{r.rss_mb:6.1f}  {r.per_cluster:11.2f}  {r.requests_no_events / r.n:11.2f}  "
              f"{r.setup_requests:9d}  {r.idle_per_cluster_min:15.2f}")
    by = {(r.operator, r.n): r for r in results}
    ratio_lines = []
    for n in sorted({r.n for r in results}):
        ours, theirs = by.get(("ours", n)), by.get(("dask-kubernetes", n))
        if ours is None or theirs is None:
            continue

        def q(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b else "n/a"

        ratio_lines.append(f"{n:5d}  ours/theirs: wall {q(ours.wall, theirs.wall)}, cpu {q(ours.cpu, theirs.cpu)}, "
                           f"rss {q(ours.rss_mb, theirs.rss_mb)}, req/cluster {q(ours.per_cluster, theirs.per_cluster)}"
                           f" (no events {q(ours.requests_no_events, theirs.requests_no_events)})")
    if ratio_lines:
        print("\n" + "\n".join(ratio_lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[20, 100], help="clusters per run (default: 20 100)")
    parser.add_argument("--only", choices=("ours", "dask-kubernetes", "both"), default="both")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per run to converge (default 120)")
    parser.add_argument("--idle", type=float, default=12, help="seconds watched after convergence (default 12)")
    parser.add_argument("--kube-up",
                        default=os.environ.get(control_plane.ENV_UP_SCRIPT) or str(REPO.parent / "shared/kube/up.sh"),
                        help="up.sh of the local control plane")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (operator logs)")
    parser.add_argument("--operator-command", default=None,
                        help="our operator's executable, e.g. from a venv with only '.[operator]' installed "
                             "(as in its image); default: this venv's seamless-dask-operator")
    parser.add_argument("--operator-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of our operator (repeatable), e.g. SEAMLESS_DASK_OPERATOR_HANDLER_THREADS=8 "
                             "or MALLOC_ARENA_MAX=2; an empty value unsets the variable")
    args = parser.parse_args(argv)
    OPERATOR_COMMAND[0] = args.operator_command
    OPERATOR_ENV.update(item.split("=", 1) for item in args.operator_env)
    os.environ[control_plane.ENV_UP_SCRIPT] = args.kube_up  # always a fresh control plane, never $KUBECONFIG's

    operators = _operators()
    kinds = ["ours", "dask-kubernetes"] if args.only == "both" else [args.only]
    scratch = Path(tempfile.mkdtemp(prefix="bench-reconcile-", dir="/tmp"))
    print(f"scratch: {scratch}; runs: {[(k, n) for n in args.n for k in kinds]}", flush=True)
    results = []
    t0 = time.monotonic()
    try:
        for n in args.n:
            for kind in kinds:
                result = run_one(operators[kind], n, scratch, args.timeout, args.idle)
                print_details(result)
                results.append(result)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    print_table(results)
    print(f"\ntotal bench time {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
