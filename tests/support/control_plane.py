"""A real Kubernetes control plane for the tests, envtest-style (start, borrow, stop).

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
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

import kubernetes
from kubernetes import client as k8s

from .waiting import wait_for

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
