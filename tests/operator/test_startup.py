"""A start that cannot succeed stops the operator at once, with its reason (issues 23 and 25).

Before, a busy metrics port failed kopf's startup step, which kopf retried 60 s later while the
operator watched nothing, and said nothing a user would see in time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

pytestmark = pytest.mark.kube


def test_a_busy_metrics_port_stops_the_operator_with_the_reason(control_plane: Any, kube_api: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig),
               "SEAMLESS_DASK_OPERATOR_METRICS_PORT": str(port)}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", "from seamless_dask_operator.main import run; run()",
                               "--liveness-port", "0"], env=env, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("seamless-dask-operator: cannot start:") and str(port) in last, last
    assert "SEAMLESS_DASK_OPERATOR_METRICS_PORT" in last
    assert took < 30, f"stopped after {took:.1f} s, not at once"
