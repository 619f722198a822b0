"""API faults (409, 410 Gone on watches, 429, 500, 503, dropped connections) survived by the real operator."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import Clusters
from tests.support.faulty_api import FaultyAPI, report
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
OPERATOR = str(Path(sys.executable).parent / "seamless-dask-operator")


def _exactly_once(clusters: Clusters, name: str, workers: int) -> bool:
    pods, schedulers, services = clusters.children(name)
    return len(pods) == workers and schedulers == services == 1


def test_operator_survives_injected_api_faults(kube_api: client.ApiClient, clusters: Clusters,
                                               control_plane: Any, tmp_path: Path) -> None:
    ca = next(line.split(":", 1)[1].strip() for line in control_plane.kubeconfig.read_text().splitlines()
              if "certificate-authority:" in line)
    server = next(line.split(":", 1)[1].strip() for line in control_plane.kubeconfig.read_text().splitlines()
                  if "server:" in line)
    faulty = FaultyAPI(server, ca, rate=0.2, seed=11).start()
    kubeconfig = faulty.kubeconfig(control_plane.kubeconfig, tmp_path / "faulty-kubeconfig")
    log = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "SEAMLESS_DASK_OPERATOR_METRICS_PORT": "0",
           "SEAMLESS_DASK_OPERATOR_REQUEST_TIMEOUT": "3"}  # the proxy's slow answers (8 s) time out
    with open(log, "wb") as out:
        proc = subprocess.Popen([OPERATOR, "--liveness-port", "0"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        for name, replicas in (("nu", 2), ("xi", 1), ("omicron", 3)):
            clusters.create(name, {"workers": {"replicas": replicas, "maximum": 3}})
        clusters.create("broken", {"unknownTaskDuration": "later"})
        for name, replicas in (("nu", 2), ("xi", 1), ("omicron", 3)):
            wait_for(lambda n=name, r=replicas: _exactly_once(clusters, n, r), timeout=120,
                     description=f"{name}: children exactly once")
            clusters.wait_status(name, lambda s, r=replicas: s.get("workersDesired") == r
                                 and s.get("phase") == "Starting", timeout=120)
        clusters.wait_status("broken", lambda s: s.get("phase") == "Failed", timeout=120)
        clusters.patch_spec("omicron", {"workers": {"replicas": 1}})
        wait_for(lambda: _exactly_once(clusters, "omicron", 1), timeout=120, description="scaled down")
        clusters.delete("xi")
        wait_for(lambda: clusters.children("xi") == ([], 0, 0) or None, timeout=120, description="xi cleaned up")
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        faulty.stop()
    injected = report(faulty)["injected"]
    print("faults injected:", injected)
    assert sum(injected.values()) >= 10 and {"410", "409", "429", "slow"} <= set(injected)  # the faults really happened
