"""From the cluster model to ``distributed.LocalCluster`` keyword arguments (pure)."""

from __future__ import annotations

from typing import Any

from . import sizing
from .dask_config import port_range_string
from .parameters import ClusterParameters


def local_cluster_arguments(
    params: ClusterParameters, *, host: str, scheduler_port: int, dashboard_port: int
) -> dict[str, Any]:
    """A LocalCluster with ``maximum_jobs`` workers sized like one batch job each.

    As in the original wrapper the local backend does not adapt: local
    workers are cheap and a laptop user wants them ready at once.
    """
    kwargs: dict[str, Any] = {
        "n_workers": params.maximum_jobs,
        "threads_per_worker": sizing.worker_threads(params),
        "processes": True,
        "host": host,
        "scheduler_port": scheduler_port,
        "dashboard_address": f":{dashboard_port}",
        "local_directory": params.tmpdir,
        # LocalCluster silences Dask's INFO lines by default; the wrapper's log should show
        # workers joining and what Seamless's worker plugin did, as the original's does.
        "silence_logs": False,
    }
    ports = port_range_string(params)
    if ports is not None:
        kwargs["worker_port"] = ports
        kwargs["port"] = ports  # the Nanny calls its own port "port"
    lifetime = sizing.lifetime(params)
    if lifetime is not None:
        kwargs["lifetime"] = lifetime
        kwargs["lifetime_stagger"] = params.lifetime_stagger
    resources = sizing.worker_resources(params)
    if resources is not None:
        kwargs["resources"] = resources
    if params.memory is not None:
        kwargs["memory_limit"] = params.memory
    return kwargs
