"""End-to-end on a kind cluster: helm install, apply, compute, scale, delete.

Runs when ``kind`` and a Docker engine (``docker info``) are available (the
GitHub workflow .github/workflows/e2e-kind.yml), and skips with the reason
otherwise. Run it with ``pytest -m e2e tests/e2e -v``.

Steps: create a kind cluster from ``kind-config.yaml`` (or use an existing
one), build the operator and runtime images and ``kind load`` them, ``helm
install`` the chart with that operator image, ``helm test`` it, ``kubectl
apply -f examples/minimal.yaml``, wait for ``.status.phase == Running``,
port-forward the scheduler Service and compute with ``distributed.Client``,
``kubectl scale sdc minimal --replicas=2`` and wait for ``workersReady == 2``,
delete the resource and check that no pod, Deployment or Service labelled
``dask.org/cluster-name=minimal`` remains, then ``helm uninstall``.

Environment variables:

``SDO_E2E_CLUSTER``
    Name of an existing kind cluster to use; it is neither created nor
    deleted. Unset: create ``seamless-dask-e2e`` from kind-config.yaml and
    delete it afterwards.
``SDO_E2E_KEEP_CLUSTER=1``
    Keep the cluster this suite created (for debugging).
``SDO_E2E_OPERATOR_IMAGE``
    Operator image (default ``seamless-dask-operator:e2e``).
``SDO_E2E_RUNTIME_IMAGE``
    Scheduler/worker image (default: the CRD's default ``spec.image``, so that
    examples/minimal.yaml is applied unchanged).
``SDO_E2E_SKIP_BUILD=1``
    Do not ``docker build`` (the images exist locally already); they are
    still ``kind load``-ed.
``SDO_E2E_NAMESPACE``
    Namespace of the SeamlessDaskCluster (default ``default``).
``SDO_E2E_TIMEOUT``
    Seconds allowed for each wait (default 300).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "seamless-dask-operator"
CRD = REPO / "crds" / "seamlessdaskclusters.yaml"
MINIMAL = REPO / "examples" / "minimal.yaml"
KIND_CONFIG = REPO / "kind-config.yaml"
RELEASE = "sdo-e2e"
OPERATOR_NAMESPACE = "seamless-dask-system"
NAME = "minimal"
TIMEOUT = float(os.environ.get("SDO_E2E_TIMEOUT", "300"))

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]


def _tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _why_not() -> str | None:
    """The reason this suite cannot run here, or None."""
    if _tool("kind") is None:
        return "kind is not on PATH (the e2e suite needs kind and a Docker engine; see e2e-kind.yml)"
    if _tool("docker") is None:
        return "docker is not on PATH: no Docker engine for kind"
    try:
        info = subprocess.run([_tool("docker"), "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` failed: {exc}"
    if info.returncode != 0:
        return f"no Docker engine: `docker info` exited {info.returncode}"
    for name in ("kubectl", "helm"):
        if _tool(name) is None:
            return f"{name} is not on PATH"
    return None


def sh(*cmd: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT, check: bool = True,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}; last value {last!r}")


def default_runtime_image() -> str:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["image"][
        "default"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A kind cluster; yields the environment (KUBECONFIG) of its commands."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    kind = _tool("kind")
    existing = os.environ.get("SDO_E2E_CLUSTER", "").strip()
    name = existing or yaml.safe_load(KIND_CONFIG.read_text()).get("name", "seamless-dask-e2e")
    created = False
    if not existing:
        clusters = sh(kind, "get", "clusters").stdout.split()
        if name not in clusters:
            sh(kind, "create", "cluster", "--name", name, "--config", str(KIND_CONFIG), "--wait", "120s",
               timeout=600)
            created = True
    kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
    kubeconfig.write_text(sh(kind, "get", "kubeconfig", "--name", name).stdout)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "SDO_KIND_NAME": name}
    try:
        yield env
    finally:
        if created and os.environ.get("SDO_E2E_KEEP_CLUSTER") != "1":
            sh(kind, "delete", "cluster", "--name", name, check=False, timeout=300)


@pytest.fixture(scope="module")
def images(kind_cluster: dict[str, str]) -> dict[str, str]:
    """Build both images (runtime with the client's distributed version) and load them into kind."""
    import distributed

    operator_image = os.environ.get("SDO_E2E_OPERATOR_IMAGE", "seamless-dask-operator:e2e")
    runtime_image = os.environ.get("SDO_E2E_RUNTIME_IMAGE", default_runtime_image())
    docker, kind = _tool("docker"), _tool("kind")
    if os.environ.get("SDO_E2E_SKIP_BUILD") != "1":
        sh(docker, "build", "-f", str(REPO / "operator" / "Dockerfile"), "-t", operator_image, str(REPO),
           timeout=1800)
        sh(docker, "build", "-f", str(REPO / "images" / "runtime" / "Dockerfile"),
           "--build-arg", f"DASK_VERSION={distributed.__version__}", "-t", runtime_image, str(REPO),
           timeout=1800)
    sh(kind, "load", "docker-image", operator_image, runtime_image, "--name", kind_cluster["SDO_KIND_NAME"],
       timeout=900)
    return {"operator": operator_image, "runtime": runtime_image}


@pytest.fixture(scope="module")
def installed(kind_cluster: dict[str, str], images: dict[str, str]) -> Iterator[dict[str, str]]:
    helm, env = _tool("helm"), kind_cluster
    repository, _, tag = images["operator"].rpartition(":")
    try:
        sh(helm, "install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
           "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
           "--set", "image.pullPolicy=Never", "--wait", "--timeout", f"{int(TIMEOUT)}s", env=env,
           timeout=TIMEOUT + 60)
        yield env
    finally:
        sh(helm, "uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait", env=env, check=False)


def sdc_field(env: dict[str, str], namespace: str, jsonpath: str) -> str:
    proc = sh(_tool("kubectl"), "get", "sdc", NAME, "-n", namespace, "-o", f"jsonpath={{{jsonpath}}}",
              env=env, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@contextlib.contextmanager
def port_forward(env: dict[str, str], namespace: str, target: str, remote: int, log: Path) -> Iterator[int]:
    """``kubectl port-forward`` in the background (output to a file: a pipe could fill up)."""
    local = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [_tool("kubectl"), "port-forward", "-n", namespace, target, f"{local}:{remote}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        def forwarding() -> bool:
            assert proc.poll() is None, f"kubectl port-forward exited: {log.read_text()}"
            return "Forwarding from" in log.read_text()

        wait_until(forwarding, f"port-forward {target}", timeout=60, interval=0.5)
        yield local
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_kind_end_to_end(installed: dict[str, str], images: dict[str, str], tmp_path: Path) -> None:
    from distributed import Client

    env = installed
    kubectl, helm = _tool("kubectl"), _tool("helm")
    namespace = os.environ.get("SDO_E2E_NAMESPACE", "default")
    sh(kubectl, "create", "namespace", namespace, env=env, check=False)

    # The chart's own test: CRD served to the operator's ServiceAccount, /healthz answers.
    sh(helm, "test", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--logs", env=env)

    if images["runtime"] == default_runtime_image():
        sh(kubectl, "apply", "-n", namespace, "-f", str(MINIMAL), env=env)
    else:  # another runtime image: the same example with spec.image set
        docs = list(yaml.safe_load_all(MINIMAL.read_text()))
        docs[0]["spec"]["image"] = images["runtime"]
        sh(kubectl, "apply", "-n", namespace, "-f", "-", env=env, input=yaml.safe_dump_all(docs))
    try:
        wait_until(lambda: sdc_field(env, namespace, ".status.phase") == "Running", "phase Running")
        assert sdc_field(env, namespace, ".status.schedulerAddress").startswith(f"tcp://{NAME}-scheduler.")

        with port_forward(env, namespace, f"svc/{NAME}-scheduler", 8786, tmp_path / "pf.log") as port, Client(
            f"tcp://127.0.0.1:{port}", timeout=60, direct_to_workers=False
        ) as client:
            client.wait_for_workers(1, timeout=TIMEOUT)
            squares = client.map(pow, range(10), [2] * 10)
            assert client.submit(sum, squares).result(timeout=120) == sum(i * i for i in range(10))
            throttles = client.run(os.getenv, "SEAMLESS_WORKER_TRANSFORMATION_THROTTLE")
            assert set(throttles.values()) == {"3"}, throttles  # the throttle environment reached the workers

        sh(kubectl, "scale", "sdc", NAME, "-n", namespace, "--replicas=2", env=env)
        wait_until(lambda: sdc_field(env, namespace, ".status.workersReady") == "2", "workersReady 2")
    finally:
        described = sh(kubectl, "get", "sdc,pods,deployments,services", "-n", namespace, "-o", "wide",
                       env=env, check=False)
        print(described.stdout, described.stderr)
        sh(kubectl, "delete", "sdc", NAME, "-n", namespace, "--wait=true", f"--timeout={int(TIMEOUT)}s",
           env=env, check=False)

    def nothing_left() -> bool:
        out = sh(kubectl, "get", "pods,deployments,services", "-n", namespace,
                 "-l", f"dask.org/cluster-name={NAME}", "-o", "json", env=env).stdout
        return json.loads(out)["items"] == []

    wait_until(nothing_left, f"no pods/deployments/services labelled dask.org/cluster-name={NAME}")
