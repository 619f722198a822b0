"""The operator SIGKILLed at random points of create, scale and delete converges: nothing twice, nothing left."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import Clusters
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
OPERATOR = str(Path(sys.executable).parent / "seamless-dask-operator")


def _start(control_plane: Any, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "SEAMLESS_DASK_OPERATOR_METRICS_PORT": "0"}
    with open(log, "ab") as out:
        return subprocess.Popen([OPERATOR, "--liveness-port", "0"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _kill_soon(proc: subprocess.Popen[bytes], rng: random.Random) -> None:
    time.sleep(rng.uniform(0.2, 2.5))  # somewhere in start-up, a handler, or a timer round
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_sigkilled_operator_converges_without_duplicates_or_orphans(
    kube_api: client.ApiClient, clusters: Clusters, control_plane: Any, tmp_path: Path
) -> None:
    rng = random.Random(7)
    log = tmp_path / "operator.log"
    clusters.create("mu", {"workers": {"replicas": 3, "maximum": 4}})
    for _ in range(4):  # create, interrupted again and again
        _kill_soon(_start(control_plane, log), rng)
    clusters.patch_spec("mu", {"workers": {"replicas": 1}})
    for _ in range(3):  # scale down, interrupted
        _kill_soon(_start(control_plane, log), rng)

    proc = _start(control_plane, log)
    try:
        wait_for(lambda: clusters.children("mu") == (["mu-worker-0"], 1, 1) or None, timeout=60,
                 description="one worker, one scheduler pod, one Service")
        clusters.wait_status("mu", lambda s: s.get("workersDesired") == 1 and s.get("phase") == "Starting")
        clusters.delete("mu")
        _kill_soon(proc, rng)  # and once more in the middle of the deletion
        proc = _start(control_plane, log)
        wait_for(lambda: clusters.find("mu") is None, timeout=60, description="resource deleted, finalizer cleared")
        wait_for(lambda: clusters.children("mu") == ([], 0, 0), timeout=60, description="no child left")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert "Traceback" not in log.read_text().replace("KeyboardInterrupt", "")
