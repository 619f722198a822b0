"""Any other Dask cluster: configured through Dask config, as the original wrapper did.

Its scheduler did not preload our runtime, so Seamless mode injects it through a client
(:class:`.base.InjectingHandle`).
"""

from __future__ import annotations

from typing import Any

import dask
from distributed.deploy.cluster import Cluster

from ....model.dask_config import nest, scheduler_dask_config_flat
from ....model.parameters import ParameterError
from ...jobqueue import BATCH_SYSTEMS, jobqueue_arguments
from .base import InjectingHandle, LaunchRequest


def _jobqueue_config(request: LaunchRequest) -> dict[str, Any]:
    # Lets a site's own JobQueueCluster factory read the same job settings.
    config: dict[str, Any] = {}
    for system in BATCH_SYSTEMS:
        try:
            kwargs = jobqueue_arguments(request.params, system)
        except ParameterError:
            continue
        kwargs.pop("job_cls")
        kwargs.pop("seamless_worker_args")
        config[system] = {key.replace("_", "-"): value for key, value in kwargs.items()}
        config[system]["scheduler-options"] = {
            "port": request.scheduler_port,
            "dashboard_address": f":{request.dashboard_port}",
            "host": request.host,
        }
    return config


class GenericHandle(InjectingHandle):
    """Also shows the job script of a site's own dask-jobqueue factory."""

    def describe(self) -> str | None:
        job_script = getattr(self.cluster, "job_script", None)
        return str(job_script()) if callable(job_script) else None


def start(target: Any, request: LaunchRequest) -> GenericHandle:
    dask.config.update(dask.config.config, nest(scheduler_dask_config_flat(request.params)), priority="new")
    dask.config.update(dask.config.config, {"jobqueue": _jobqueue_config(request)}, priority="new")
    cluster = target if isinstance(target, Cluster) else target()
    if not isinstance(cluster, Cluster):
        raise TypeError(f"the cluster string's factory returned a {type(cluster).__name__}, not a Dask Cluster")
    return GenericHandle(cluster, request)
