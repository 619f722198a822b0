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


def _start(control_plane: Any, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", "from seamless_dask_operator.main import run; run()",
                           "--liveness-port", "0"], env={**os.environ, "KUBECONFIG": str(control_plane.kubeconfig),
                                                          **env}, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("seamless-dask-operator: cannot start:"), last
    return last


def test_a_busy_metrics_port_stops_the_operator_with_the_reason(control_plane: Any, kube_api: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, took = _start(control_plane, SEAMLESS_DASK_OPERATOR_METRICS_PORT=str(port))
    last = _last_line(done)
    assert str(port) in last and "SEAMLESS_DASK_OPERATOR_METRICS_PORT" in last, last
    assert took < 30, f"stopped after {took:.1f} s, not at once"


def test_a_negative_cluster_bound_stops_the_operator_with_the_reason(control_plane: Any, kube_api: Any) -> None:
    # Taken as it is, it would let no cluster be processed once the operator is indexed: a silent stall.
    done, took = _start(control_plane, SEAMLESS_DASK_OPERATOR_EVENT_WORKERS="-1",
                        SEAMLESS_DASK_OPERATOR_METRICS_PORT="0")
    last = _last_line(done)
    assert "SEAMLESS_DASK_OPERATOR_EVENT_WORKERS=-1" in last and "0 for no bound" in last, last
    assert took < 30, f"stopped after {took:.1f} s, not at once"
