"""Session fixtures for the real parts: a Kubernetes control plane and a Slurm cluster.

Both are started only when asked (``SDO_KUBE_UP`` / ``KUBECONFIG``, ``SDO_SLURM=1``,
as ``.ci/run`` does) and skip with their reason otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

# Operator settings are read at import; the tests run several schedulers on one
# host, so the dashboard port the operator dials is a free one, and rounds are fast.
os.environ.setdefault("SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT", str(free_port()))
os.environ.setdefault("SEAMLESS_DASK_OPERATOR_INTERVAL", "1")
os.environ.setdefault("SEAMLESS_DASK_OPERATOR_METRICS_PORT", str(free_port()))
os.environ.setdefault("SEAMLESS_THROTTLE_EPOCH_SECONDS", "1")
# Commands such as `dask worker` come from the same environment as this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

CRD = Path(__file__).parent.parent / "crds" / "seamlessdaskclusters.yaml"


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.support.control_plane import ControlPlaneUnavailable, start_control_plane

    try:
        plane = start_control_plane(tmp_path_factory.mktemp("kube"))
    except ControlPlaneUnavailable as exc:
        pytest.skip(str(exc))
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def kube_api(control_plane: object) -> Iterator[object]:
    """An API client with the CRD installed and one Ready node."""
    import yaml
    from kubernetes import client

    from tests.support.kubelet import make_node_ready
    from tests.support.waiting import wait_for

    api = control_plane.api_client()  # type: ignore[attr-defined]
    extensions = client.ApiextensionsV1Api(api)
    body = yaml.safe_load(CRD.read_text())
    try:
        extensions.create_custom_resource_definition(body)
    except client.exceptions.ApiException as exc:
        if exc.status != 409:
            raise
    def established() -> bool:
        crd = extensions.read_custom_resource_definition(body["metadata"]["name"])
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(established, timeout=30, interval=0.2, description="CRD established")
    make_node_ready(api, "node-1")
    yield api


@pytest.fixture(scope="session")
def slurm() -> Iterator[None]:
    """A usable Slurm; one this session started is stopped at its end (``SDO_SLURM_KEEP=1`` keeps it)."""
    from tests.support.slurm import keep_running, require_slurm, stop_slurm

    started = require_slurm()
    yield
    if started and not keep_running():
        stop_slurm()
