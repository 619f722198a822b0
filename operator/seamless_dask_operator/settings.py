"""Operator settings from the environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from seamless_dask_runtime.model.identity import DASHBOARD_PORT, DEFAULT_IMAGE

from .options import DEFAULT_MAX_WORKERS, OperatorDefaults
from .pod_policy import PodPolicy


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...]
    reconcile_interval: float
    dashboard_port: int
    health_port: int
    metrics_port: int
    request_timeout: float
    handler_threads: int
    # How many SeamlessDaskClusters kopf processes at once once indexed (0: no bound); see kopf_toggles.
    event_workers: int
    pod_policy: PodPolicy
    # Where the operator's own pods run and their labels (the chart passes them), for the schedulers'
    # NetworkPolicy; empty outside a cluster.
    pod_namespace: str
    pod_labels: dict[str, str]
    # Leader election among replicas (the chart's Lease); empty: this operator is the only one (no election).
    lease_name: str
    pod_name: str
    # The operator's own Deployment: whether another replica will serve the clusters when this one stops.
    deployment_name: str
    # Image of the pods of clusters that leave spec.image unset (the chart's runtimeImage).
    default_image: str = DEFAULT_IMAGE
    # The most workers one cluster may ask for (the chart's maxWorkersPerCluster).
    max_workers: int = DEFAULT_MAX_WORKERS

    @property
    def defaults(self) -> OperatorDefaults:
        return OperatorDefaults(image=self.default_image, max_workers=self.max_workers)

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
            event_workers=int(env.get("SEAMLESS_DASK_OPERATOR_EVENT_WORKERS", "50")),
            # What users may ask for in the pods made for them (the chart's podPolicy, as JSON).
            pod_policy=PodPolicy.from_json(env.get("SEAMLESS_DASK_OPERATOR_POD_POLICY", "")),
            pod_namespace=env.get("SEAMLESS_DASK_OPERATOR_POD_NAMESPACE", ""),
            pod_labels=json.loads(env.get("SEAMLESS_DASK_OPERATOR_POD_LABELS") or "{}"),
            lease_name=env.get("SEAMLESS_DASK_OPERATOR_LEASE", ""),
            pod_name=env.get("SEAMLESS_DASK_OPERATOR_POD_NAME") or env.get("HOSTNAME", ""),
            deployment_name=env.get("SEAMLESS_DASK_OPERATOR_DEPLOYMENT", ""),
            default_image=env.get("SEAMLESS_DASK_OPERATOR_DEFAULT_IMAGE", "").strip() or DEFAULT_IMAGE,
            max_workers=int(env.get("SEAMLESS_DASK_OPERATOR_MAX_WORKERS") or DEFAULT_MAX_WORKERS),
        )


SETTINGS = OperatorSettings.from_environment()
