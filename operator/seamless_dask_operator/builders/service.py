"""The scheduler Service: comm 8786 and dashboard 8787, ClusterIP unless asked."""

from __future__ import annotations

from typing import Any

from seamless_dask_runtime.model.identity import COMM_PORT, DASHBOARD_PORT, SCHEDULER

from ..resource import ClusterSpec
from .objects import ClusterRef, metadata, selector


def scheduler_service(ref: ClusterRef, cluster: ClusterSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ref, ref.scheduler_name, SCHEDULER),
        "spec": {
            "type": cluster.options.service_type,
            "selector": selector(ref, SCHEDULER),
            # Workers dial the Service name as soon as they start: let them reach the scheduler the moment it
            # listens instead of after its first passed probe (one scheduler pod; Dask clients retry anyway).
            "publishNotReadyAddresses": True,
            "ports": [
                {"name": "tcp-comm", "port": COMM_PORT, "targetPort": "tcp-comm", "protocol": "TCP"},
                {"name": "http-dashboard", "port": DASHBOARD_PORT, "targetPort": "http-dashboard",
                 "protocol": "TCP"},
            ],
        },
    }
