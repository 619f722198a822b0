"""Envtest-style helpers: a real Kubernetes control plane for the tests.

A pytest session fixture starts (or borrows) a control plane with
:func:`start_control_plane`; tests then talk to a real kube-apiserver,
kube-controller-manager and etcd (v1.36, see ``shared/TESTING.md``). There is
no kubelet and no scheduler, so :func:`make_node_ready` and
:func:`make_pod_ready` do a kubelet's job for the pods a test needs Ready.

Selection of the control plane, as controller-runtime's envtest does it:

* ``SDO_KUBE_UP=/path/to/up.sh``: run it with ``DIR=workdir``; ``stop()``
  runs the ``down.sh`` beside it (which also removes ``workdir``).
* else ``KUBECONFIG=...``: use that cluster as it is; ``stop()`` does nothing.
  Careful: tests create Nodes and other cluster-scoped objects there.
* else: :class:`ControlPlaneUnavailable`, which the fixture turns into a skip.

A fixture (in a ``conftest.py``)::

    @pytest.fixture(scope="session")
    def control_plane(tmp_path_factory):
        try:
            cp = start_control_plane(tmp_path_factory.mktemp("kube"))
        except ControlPlaneUnavailable as exc:
            pytest.skip(str(exc))
        yield cp
        cp.stop()

For request counting, ``start_control_plane(workdir, audit=True)`` turns on
an audit log (level Metadata for every request) and :func:`count_requests`
counts its entries per ``(verb, resource)``, optionally only those of one
user (see :func:`make_service_account_kubeconfig` to give a client a user of
its own: the kubeconfig's ``admin`` user is shared with the
kube-controller-manager).

Also: :func:`use_kubeconfig` (run ``kopf.testing.KopfRunner`` under it: the
``kubernetes`` library freezes ``$KUBECONFIG`` at import) and
:func:`prime_garbage_collector` (wait until the GC knows a new CRD type).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import kubernetes
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

__all__ = [
    "AUDIT_POLICY",
    "ControlPlane",
    "ControlPlaneError",
    "ControlPlaneUnavailable",
    "api_client",
    "count_requests",
    "make_node_ready",
    "make_pod_ready",
    "make_pods_ready",
    "make_service_account_kubeconfig",
    "prime_garbage_collector",
    "read_audit_events",
    "start_control_plane",
    "use_kubeconfig",
    "wait_for",
]

T = TypeVar("T")

ENV_UP_SCRIPT = "SDO_KUBE_UP"
SMP = "application/strategic-merge-patch+json"

#: Audit policy: one event per request (stage ResponseComplete, plus
#: ResponseStarted for watches, which :func:`count_requests` de-duplicates),
#: at level Metadata (who, verb, resource; no bodies).
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
"""


class ControlPlaneUnavailable(RuntimeError):
    """No control plane is configured here; tests that need one should skip."""


class ControlPlaneError(RuntimeError):
    """A control plane was configured but could not be started or reached."""


@dataclass
class ControlPlane:
    """A running (or borrowed) Kubernetes control plane.

    Attributes:
        kubeconfig: kubeconfig of a cluster-admin user (``admin``).
        workdir: the ``up.sh`` directory, or ``None`` for a borrowed cluster.
        audit_log: the kube-apiserver's JSON audit log, or ``None`` when
            auditing is off (always off for a borrowed cluster).
        startup_seconds: wall time ``up.sh`` plus readiness took (0 if borrowed).
        managed: whether :meth:`stop` tears the control plane down.
    """

    kubeconfig: Path
    workdir: Path | None = None
    audit_log: Path | None = None
    startup_seconds: float = 0.0
    managed: bool = False
    down_script: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    def env(self) -> dict[str, str]:
        """A copy of ``os.environ`` with ``KUBECONFIG`` pointing here (for subprocesses)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def api_client(self) -> k8s.ApiClient:
        """A new ``kubernetes`` ApiClient authenticated as cluster admin."""
        return api_client(self.kubeconfig)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the control plane if this process started it; idempotent.

        ``down.sh`` removes ``workdir`` (and with it a default-placed
        ``audit_log``): read what you need before calling this.
        """
        if self._stopped or not self.managed or self.workdir is None:
            self._stopped = True
            return
        self._stopped = True
        if self.down_script is not None and self.down_script.exists():
            subprocess.run(
                ["bash", str(self.down_script), str(self.workdir)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        else:
            _kill_pidfiles(self.workdir)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_client(kubeconfig: Path | str) -> k8s.ApiClient:
    """A new ``kubernetes`` ApiClient for ``kubeconfig`` (not touching global config)."""
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


@contextlib.contextmanager
def use_kubeconfig(kubeconfig: Path | str) -> Iterator[Path]:
    """Point ``$KUBECONFIG`` *and* the ``kubernetes`` library's default at ``kubeconfig``.

    ``kubernetes.config`` reads ``$KUBECONFIG`` once, at import time, into
    ``kube_config.KUBE_CONFIG_DEFAULT_LOCATION``; setting the variable later
    (as a fixture does) is not seen by ``load_kube_config()`` -- e.g. kopf's
    ``login_via_client`` then fails, or silently logs in with the kubeconfig
    that was current at import. Use this around an in-process operator
    (``kopf.testing.KopfRunner``). Restores both on exit.
    """
    from kubernetes.config import kube_config

    path = Path(kubeconfig)
    old_env = os.environ.get("KUBECONFIG")
    old_default = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    os.environ["KUBECONFIG"] = str(path)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    try:
        yield path
    finally:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = old_default
        if old_env is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old_env


def start_control_plane(
    workdir: Path,
    *,
    audit: bool = False,
    audit_dir: Path | None = None,
    timeout: float = 120.0,
) -> ControlPlane:
    """Start a control plane in ``workdir`` (via ``$SDO_KUBE_UP``) or borrow ``$KUBECONFIG``.

    Args:
        workdir: the ``DIR`` given to ``up.sh``; created if missing. ``stop()``
            removes it (``down.sh`` does).
        audit: turn on the kube-apiserver audit log (policy :data:`AUDIT_POLICY`)
            through ``KUBE_APISERVER_EXTRA_ARGS``; ignored for a borrowed cluster
            (``audit_log`` is then ``None``).
        audit_dir: where the audit policy and log go (default ``workdir/audit``,
            which ``stop()`` removes; give a directory outside ``workdir`` to
            keep the log after ``stop()``).
        timeout: seconds allowed for ``up.sh`` and for the cluster to be usable.

    Returns:
        A :class:`ControlPlane` whose API server answers and whose ``default``
        namespace has its ``default`` ServiceAccount (so pods can be created).

    Raises:
        ControlPlaneUnavailable: neither ``SDO_KUBE_UP`` nor ``KUBECONFIG`` is
            set, or ``KUBECONFIG`` names a missing file or an unreachable server.
        ControlPlaneError: ``SDO_KUBE_UP`` is set but the control plane did not
            start (the message carries the tail of its logs).
    """
    up = os.environ.get(ENV_UP_SCRIPT, "").strip()
    if up:
        return _start_managed(Path(up), Path(workdir), audit, audit_dir, timeout)
    kubeconfig = os.environ.get("KUBECONFIG", "").strip()
    if kubeconfig:
        return _borrow(kubeconfig, min(timeout, 15.0))
    raise ControlPlaneUnavailable(
        f"no Kubernetes control plane: set {ENV_UP_SCRIPT}=/path/to/shared/kube/up.sh "
        "to start one (etcd + kube-apiserver + kube-controller-manager on loopback), "
        "or KUBECONFIG to use an existing cluster"
    )


def _start_managed(
    up: Path, workdir: Path, audit: bool, audit_dir: Path | None, timeout: float
) -> ControlPlane:
    if not up.is_file():
        raise ControlPlaneError(f"{ENV_UP_SCRIPT}={up}: no such file")
    workdir.mkdir(parents=True, exist_ok=True)
    workdir = workdir.resolve()
    env = dict(os.environ)
    extra = env.get("KUBE_APISERVER_EXTRA_ARGS", "")
    audit_log: Path | None = None
    if audit:
        adir = (audit_dir or workdir / "audit").resolve()
        if any(ch.isspace() for ch in str(adir)):
            # up.sh word-splits KUBE_APISERVER_EXTRA_ARGS; quotes would be literal.
            raise ControlPlaneError(f"audit directory may not contain whitespace: {adir}")
        adir.mkdir(parents=True, exist_ok=True)
        policy = adir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        audit_log = adir / "audit.log"
        extra = " ".join(
            filter(
                None,
                [
                    extra,
                    f"--audit-policy-file={policy}",
                    f"--audit-log-path={audit_log}",
                    "--audit-log-format=json",
                    "--audit-log-mode=blocking",
                    "--audit-log-maxsize=0",
                ],
            )
        )
    if extra:
        env["KUBE_APISERVER_EXTRA_ARGS"] = extra
    cp = ControlPlane(
        kubeconfig=workdir / "kubeconfig",
        workdir=workdir,
        audit_log=audit_log,
        managed=True,
        down_script=up.parent / "down.sh",
    )
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            ["bash", str(up), str(workdir)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        logs = _log_tails(workdir)
        cp.stop()
        raise ControlPlaneError(f"{up} did not finish within {timeout:.0f} s\n{logs}") from None
    if proc.returncode != 0 or not cp.kubeconfig.is_file():
        logs = _log_tails(workdir)
        cp.stop()
        raise ControlPlaneError(
            f"{up} {workdir} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}\n{logs}"
        )
    atexit.register(cp.stop)
    try:
        _wait_usable(cp.kubeconfig, max(1.0, timeout - (time.monotonic() - t0)))
    except TimeoutError as exc:
        logs = _log_tails(workdir)
        cp.stop()
        raise ControlPlaneError(f"control plane in {workdir} not usable: {exc}\n{logs}") from None
    cp.startup_seconds = time.monotonic() - t0
    return cp


def _borrow(kubeconfig: str, timeout: float) -> ControlPlane:
    first = kubeconfig.split(os.pathsep)[0]
    path = Path(first).expanduser()
    if not path.is_file():
        raise ControlPlaneUnavailable(f"KUBECONFIG={kubeconfig}: no such file")
    try:
        with contextlib.closing(api_client(path)) as ac:
            k8s.VersionApi(ac).get_code(_request_timeout=timeout)
    except Exception as exc:
        raise ControlPlaneUnavailable(
            f"KUBECONFIG={kubeconfig}: API server not reachable: {type(exc).__name__}: {exc}"
        ) from exc
    return ControlPlane(kubeconfig=path, managed=False)


def _wait_usable(kubeconfig: Path, timeout: float) -> None:
    """Wait until pods can be created: the ``default`` ServiceAccount exists."""
    with contextlib.closing(api_client(kubeconfig)) as ac:
        core = k8s.CoreV1Api(ac)

        def default_sa() -> bool:
            core.read_namespaced_service_account("default", "default", _request_timeout=5)
            return True

        wait_for(
            default_sa,
            timeout=timeout,
            interval=0.1,
            description="ServiceAccount default/default (kube-controller-manager up)",
            ignore=(Exception,),
        )


def _log_tails(workdir: Path, lines: int = 15) -> str:
    out = []
    for name in ("apiserver.log", "controller-manager.log", "etcd.log"):
        p = workdir / name
        if p.is_file():
            tail = p.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {p} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(out)


def _kill_pidfiles(workdir: Path) -> None:
    for name in ("controller-manager", "apiserver", "etcd"):
        pidfile = workdir / f"{name}.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- polling


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    *,
    description: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Args:
        predicate: called with no arguments, at least once.
        timeout: seconds before giving up.
        interval: seconds between calls.
        description: what is awaited, for the error message.
        ignore: exception types that count as "not yet" instead of propagating.

    Raises:
        TimeoutError: with the description, the last value and the last
            ignored exception.
    """
    what = description or getattr(predicate, "__name__", repr(predicate))
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    calls = 0
    while True:
        calls += 1
        try:
            last = predicate()
            last_exc = None
            if last:
                return last
        except ignore as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    detail = f"last value {last!r}"
    if last_exc is not None:
        detail = f"last error {type(last_exc).__name__}: {str(last_exc)[:300]}"
    raise TimeoutError(f"timed out after {timeout:g} s ({calls} tries) waiting for {what}; {detail}")


# ------------------------------------------------------------------ kubelet stand-ins


def _core(api: k8s.CoreV1Api | k8s.ApiClient) -> k8s.CoreV1Api:
    return api if isinstance(api, k8s.CoreV1Api) else k8s.CoreV1Api(api)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_node_ready(
    api: k8s.CoreV1Api | k8s.ApiClient,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    capacity: dict[str, str] | None = None,
    address: str = "127.0.0.1",
) -> k8s.V1Node:
    """Create Node ``name`` (or reuse it) and patch its status to Ready, as a kubelet would.

    Nothing marks it NotReady later: up.sh runs the controller-manager without
    the node-lifecycle controller, so no heartbeats are needed.
    """
    core = _core(api)
    cap = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    cap.update(capacity or {})
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **(labels or {}),
    }
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels},
    }
    try:
        core.create_node(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    now = _now()
    status = {
        "capacity": cap,
        "allocatable": cap,
        "addresses": [
            {"type": "InternalIP", "address": address},
            {"type": "Hostname", "address": name},
        ],
        "conditions": [
            {
                "type": t,
                "status": "True" if t == "Ready" else "False",
                "reason": "KubeletReady" if t == "Ready" else f"KubeletHasNo{t}",
                "message": "set by tests.support.kube",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
        ],
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": "v1.36.2",
            "kubeProxyVersion": "",
            "containerRuntimeVersion": "fake://0",
            "bootID": "",
            "kernelVersion": "",
            "machineID": "",
            "osImage": "",
            "systemUUID": "",
        },
    }
    return core.patch_node_status(name, {"status": status}, _content_type=SMP)


def make_pod_ready(
    api: k8s.CoreV1Api | k8s.ApiClient,
    namespace: str,
    pod_name: str,
    node_name: str,
    pod_ip: str = "127.0.0.1",
) -> k8s.V1Pod:
    """Do what scheduler + kubelet would: bind the pod to ``node_name``, mark it Running and Ready.

    Binds with a ``pods/binding`` Binding when ``spec.nodeName`` is empty (as
    kube-scheduler does); a pod already on ``node_name`` is left there, one on
    another node raises ``ValueError``. Then patches ``status``: phase Running,
    conditions PodScheduled/Initialized/ContainersReady/Ready True, podIP(s),
    hostIP, and a ready, running ``containerStatuses`` entry per container
    (init containers: terminated, Completed). Returns the updated pod.

    Note: with a loopback ``pod_ip`` (the default, handy when the pod's
    process runs locally) the controller-manager cannot publish the pod in a
    Service's Endpoints/EndpointSlices ("may not be in the loopback range");
    pass a non-loopback IP such as ``10.244.0.5`` when a test needs them.
    """
    core = _core(api)
    pod = core.read_namespaced_pod(pod_name, namespace)
    if not pod.spec.node_name:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod_name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        # The server answers with a Status, not a Binding: don't deserialize.
        core.create_namespaced_pod_binding(pod_name, namespace, binding, _preload_content=False)
    elif pod.spec.node_name != node_name:
        raise ValueError(
            f"pod {namespace}/{pod_name} is already bound to {pod.spec.node_name}, not {node_name}"
        )
    now = _now()
    started = {"running": {"startedAt": now}}
    containers = [
        {
            "name": c.name,
            "image": c.image or "",
            "imageID": f"fake://{c.image or ''}",
            "containerID": f"fake://{namespace}_{pod_name}_{c.name}",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": started,
        }
        for c in pod.spec.containers
    ]
    init_containers = [
        {
            "name": c.name,
            "image": c.image or "",
            "imageID": f"fake://{c.image or ''}",
            "containerID": f"fake://{namespace}_{pod_name}_{c.name}",
            "ready": True,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": now,
                    "finishedAt": now,
                }
            },
        }
        for c in pod.spec.init_containers or []
    ]
    conditions = [
        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": pod_ip,
        "hostIPs": [{"ip": pod_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": containers,
    }
    if init_containers:
        status["initContainerStatuses"] = init_containers
    return core.patch_namespaced_pod_status(pod_name, namespace, {"status": status}, _content_type=SMP)


def make_pods_ready(
    api: k8s.CoreV1Api | k8s.ApiClient,
    namespace: str,
    node_name: str,
    label_selector: str = "",
    pod_ip: str = "127.0.0.1",
) -> list[str]:
    """:func:`make_pod_ready` every not-yet-Running pod matching ``label_selector``; their names."""
    core = _core(api)
    done = []
    for pod in core.list_namespaced_pod(namespace, label_selector=label_selector).items:
        if pod.metadata.deletion_timestamp or (pod.status and pod.status.phase == "Running"):
            continue
        make_pod_ready(core, namespace, pod.metadata.name, node_name, pod_ip)
        done.append(pod.metadata.name)
    return done


def prime_garbage_collector(
    api: k8s.ApiClient,
    api_version: str,
    kind: str,
    plural: str,
    namespace: str = "default",
    *,
    spec: dict[str, Any] | None = None,
    timeout: float = 90.0,
) -> float:
    """Wait until the garbage collector handles owners of a (new) custom resource type.

    The kube-controller-manager rediscovers resource types every 30 s. A child
    whose owner of a not-yet-known type is deleted goes into the GC's retry
    backoff (5 ms doubling), so it is collected 10, 20 or ~41 s later, not
    within 30 s. This helper creates probe owners (``spec`` as given, for CRDs
    with required fields) with a ConfigMap child, deletes each owner and
    returns as soon as one probe child is collected promptly (< 2 s) -- at most
    ~30 s after the CRD was created. Leftover probes are cleaned up. Call it
    before starting an operator that would react to the probe objects.

    Returns:
        Seconds waited.
    """
    group, _, version = api_version.rpartition("/")
    co = k8s.CustomObjectsApi(api)
    core = k8s.CoreV1Api(api)
    t0 = time.monotonic()
    deadline = t0 + timeout
    probes: list[str] = []

    def child_gone(name: str) -> bool:
        try:
            core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    try:
        while time.monotonic() < deadline:
            name = f"gc-probe-{os.getpid()}-{len(probes)}"
            body: dict[str, Any] = {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": name, "labels": {"tests.support.kube/gc-probe": "true"}},
            }
            if spec is not None:
                body["spec"] = spec
            owner = co.create_namespaced_custom_object(group, version, namespace, plural, body)
            probes.append(name)
            ref = {
                "apiVersion": api_version,
                "kind": kind,
                "name": name,
                "uid": owner["metadata"]["uid"],
            }
            core.create_namespaced_config_map(
                namespace, {"metadata": {"name": name, "ownerReferences": [ref]}}
            )
            co.delete_namespaced_custom_object(group, version, namespace, plural, name)
            try:
                wait_for(lambda n=name: child_gone(n), 2.0, 0.05, description=name)
            except TimeoutError:
                continue
            return time.monotonic() - t0
        raise TimeoutError(
            f"garbage collector did not collect children of {kind} ({api_version}) within {timeout:g} s"
        )
    finally:
        for name in probes:
            with contextlib.suppress(ApiException):
                core.delete_namespaced_config_map(name, namespace)


# ------------------------------------------------------------------- users and audit


def make_service_account_kubeconfig(
    api: k8s.ApiClient,
    base_kubeconfig: Path | str,
    namespace: str,
    name: str,
    out: Path,
    *,
    cluster_role: str | None = "cluster-admin",
    expiration_seconds: int = 86400,
) -> Path:
    """Create ServiceAccount ``namespace/name``, bind it, write a kubeconfig for it to ``out``.

    The client using ``out`` is ``system:serviceaccount:NAMESPACE:NAME`` in
    the audit log and for RBAC (so its requests can be counted apart from the
    tests' and the controller-manager's, which all use ``admin``).

    Args:
        api: a cluster-admin ApiClient.
        base_kubeconfig: kubeconfig whose current cluster (server, CA) to reuse.
        cluster_role: ClusterRole to bind cluster-wide (ClusterRoleBinding
            ``NAMESPACE-NAME``), or ``None`` to bind nothing (bring your own RBAC).
        expiration_seconds: lifetime of the TokenRequest token.
    """
    core = k8s.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespace({"metadata": {"name": namespace}})
    try:
        core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    if cluster_role:
        body = {
            "metadata": {"name": f"{namespace}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        }
        try:
            k8s.RbacAuthorizationV1Api(api).create_cluster_role_binding(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
    tr = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": expiration_seconds}}
    )
    base = yaml.safe_load(Path(base_kubeconfig).read_text())
    ctx_name = base["current-context"]
    ctx = next(c["context"] for c in base["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in base["clusters"] if c["name"] == ctx["cluster"])
    cluster = dict(cluster)
    ca = cluster.get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster["certificate-authority"] = str((Path(base_kubeconfig).parent / ca).resolve())
    user = f"system:serviceaccount:{namespace}:{name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": tr.status.token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {"cluster": "cluster", "user": user, "namespace": namespace},
            }
        ],
        "current-context": "sa",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def _parse_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


def read_audit_events(audit_log: Path | str) -> Iterable[dict[str, Any]]:
    """Yield the audit log's events (JSON lines), one per request.

    Watches and other long requests log two stages (ResponseStarted and
    ResponseComplete): only the first event of each ``auditID`` is yielded.
    A torn last line (being written) is skipped.
    """
    seen: set[str] = set()
    with open(audit_log, encoding="utf-8") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            audit_id = event.get("auditID", "")
            if audit_id in seen:
                continue
            seen.add(audit_id)
            yield event


def _effective_user(event: dict[str, Any]) -> str:
    imp = event.get("impersonatedUser") or {}
    return imp.get("username") or (event.get("user") or {}).get("username", "")


def count_requests(
    audit_log: Path | str,
    user: str | None = None,
    since: dt.datetime | float | None = None,
    *,
    user_agent: str | None = None,
) -> collections.Counter[tuple[str, str]]:
    """Count API requests in ``audit_log`` per ``(verb, resource)``.

    ``resource`` is the plural resource name, with ``/subresource`` when there
    is one (``pods/status``, ``seamlessdaskclusters/status``); requests to
    non-resource URLs (discovery such as ``/apis``) count under their path.
    ``verb`` is the API verb (get, list, watch, create, update, patch, delete,
    deletecollection).

    Args:
        audit_log: path from :attr:`ControlPlane.audit_log`.
        user: only requests by this user (the impersonated one, if any), e.g.
            ``system:serviceaccount:ns:operator``. Note ``admin`` is shared by
            the kube-controller-manager and the tests.
        since: only requests received at or after this time (aware datetime,
            naive = local time, or a ``time.time()`` epoch).
        user_agent: only requests whose User-Agent starts with this (kopf
            sends ``kopf/<version>``).
    """
    if isinstance(since, dt.datetime):
        since = since.timestamp()
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for event in read_audit_events(audit_log):
        if user is not None and _effective_user(event) != user:
            continue
        if user_agent is not None and not str(event.get("userAgent", "")).startswith(user_agent):
            continue
        if since is not None:
            ts = event.get("requestReceivedTimestamp") or event.get("stageTimestamp")
            if ts and _parse_ts(ts) < since:
                continue
        ref = event.get("objectRef")
        if ref and ref.get("resource"):
            resource = ref["resource"]
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
        else:
            resource = str(event.get("requestURI", "")).split("?", 1)[0]
        counts[(str(event.get("verb", "")), resource)] += 1
    return counts
