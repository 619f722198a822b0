"""Prometheus metrics of the operator: reconciles, errors, clusters by phase, workers.

Served on ``SEAMLESS_DASK_OPERATOR_METRICS_PORT`` (default 9090, 0 disables);
the chart's ServiceMonitor scrapes it.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, start_http_server

RECONCILES = Counter("seamless_dask_operator_reconciles_total", "Reconcile rounds", ["handler"])
ERRORS = Counter("seamless_dask_operator_errors_total", "Failed reconcile rounds", ["handler", "reason"])
CLUSTER_PHASE = Gauge("seamless_dask_operator_cluster_phase",
                      "1 for the phase each SeamlessDaskCluster is in", ["namespace", "cluster", "phase"])
WORKERS_READY = Gauge("seamless_dask_operator_workers_ready", "Ready workers", ["namespace", "cluster"])
WORKERS_DESIRED = Gauge("seamless_dask_operator_workers_desired", "Desired workers", ["namespace", "cluster"])
PHASES = ("Starting", "Running", "Failed", "Stopping")


_serving: set[int] = set()


def serve(port: int) -> None:
    """Start the /metrics endpoint once per process (an operator restarted in-process reuses it)."""
    if port and port not in _serving:
        start_http_server(port)
        _serving.add(port)


def record_status(namespace: str, cluster: str, status: dict[str, object]) -> None:
    for phase in PHASES:
        CLUSTER_PHASE.labels(namespace, cluster, phase).set(1 if status.get("phase") == phase else 0)
    if isinstance(status.get("workersReady"), int):
        WORKERS_READY.labels(namespace, cluster).set(status["workersReady"])  # type: ignore[arg-type]
    if isinstance(status.get("workersDesired"), int):
        WORKERS_DESIRED.labels(namespace, cluster).set(status["workersDesired"])  # type: ignore[arg-type]


def forget(namespace: str, cluster: str) -> None:
    """A deleted cluster leaves no stale series behind."""
    for phase in PHASES:
        with contextlib.suppress(KeyError):
            CLUSTER_PHASE.remove(namespace, cluster, phase)
    for gauge in (WORKERS_READY, WORKERS_DESIRED):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, cluster)
