"""Operator settings from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from seamless_dask_runtime.identity import DASHBOARD_PORT


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...]
    reconcile_interval: float
    dashboard_port: int
    health_port: int
    metrics_port: int
    request_timeout: float
    handler_threads: int

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> OperatorSettings:
        env = dict(os.environ if env is None else env)
        raw_namespaces = env.get("SEAMLESS_DASK_OPERATOR_NAMESPACES", "")
        return cls(
            namespaces=tuple(n.strip() for n in raw_namespaces.split(",") if n.strip()),
            reconcile_interval=float(env.get("SEAMLESS_DASK_OPERATOR_INTERVAL", "5")),
            # Tests run several schedulers on one host; in a cluster each pod has 8787.
            dashboard_port=int(env.get("SEAMLESS_DASK_OPERATOR_DASHBOARD_PORT", str(DASHBOARD_PORT))),
            health_port=int(env.get("SEAMLESS_DASK_OPERATOR_HEALTH_PORT", "8080")),
            metrics_port=int(env.get("SEAMLESS_DASK_OPERATOR_METRICS_PORT", "9090")),
            # A hung API call must not hold a handler thread forever.
            request_timeout=float(env.get("SEAMLESS_DASK_OPERATOR_REQUEST_TIMEOUT", "30")),
            # Sync handlers wait on the API and on schedulers: threads, not CPUs, bound the clusters served at once.
            handler_threads=int(env.get("SEAMLESS_DASK_OPERATOR_HANDLER_THREADS", "32")),
        )


SETTINGS = OperatorSettings.from_environment()
