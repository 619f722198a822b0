"""dask-jobqueue backend: SLURM, PBS, OAR, SGE, LSF, HTCondor with Seamless job scripts."""

from __future__ import annotations

from typing import Any

import dask

from ....model import sizing
from ....model.dask_config import nest, scheduler_dask_config_flat
from ....scheduler_preload import scheduler_options
from ...jobqueue import jobqueue_arguments, system_of
from .base import LaunchRequest, OwnPortsHandle

ADAPT_INTERVAL = "5s"
ADAPT_WAIT_COUNT = 10


class WorkerNameMapping:
    """Maps ``worker-<job id>`` back to the cluster's job name when scaling down.

    Seed 002 names workers after their batch job; SpecCluster knows jobs by
    its own names, so without this map adaptive scale-down never cancels a job.
    """

    async def scale_down(self, workers: Any) -> None:
        by_worker_name = {}
        for name, job in self.workers.items():  # type: ignore[attr-defined]
            job_id = getattr(job, "job_id", None)
            if job_id:
                by_worker_name[f"worker-{job_id}"] = name
        await super().scale_down([by_worker_name.get(w, w) for w in workers])  # type: ignore[misc]


class JobQueueHandle(OwnPortsHandle):
    """The scheduler runs here (it binds the chosen ports); workers are batch jobs whose script goes to the log."""

    def describe(self) -> str | None:
        return str(self.cluster.job_script())


def start(cluster_class: type, request: LaunchRequest) -> JobQueueHandle:
    params = request.params
    kwargs = jobqueue_arguments(params, system_of(cluster_class))
    if request.log_directory is not None:
        kwargs["log_directory"] = request.log_directory
    dask.config.update(dask.config.config, nest(scheduler_dask_config_flat(params)), priority="new")
    mapped = type(f"Seamless{cluster_class.__name__}", (WorkerNameMapping, cluster_class), {})
    cluster = mapped(
        scheduler_options={
            "port": request.scheduler_port,
            "dashboard_address": f":{request.dashboard_port}",
            "host": request.host,
            **scheduler_options(params),
        },
        # dask-jobqueue silences the in-process scheduler below ERROR; the launcher's log
        # should tell when workers register, as the local backend's does.
        silence_logs=False,
        **kwargs,
    )
    minimum = sizing.minimum_workers(params)
    if minimum:
        cluster.scale(minimum)
    # Dask's Adaptive asks the scheduler's adaptive_target, which the preload made
    # Seamless-aware (seamless_dask_runtime.adaptive): the same target the operator uses.
    cluster.adapt(
        minimum=minimum,
        maximum=params.maximum_jobs,
        target_duration=f"{sizing.adaptive_target_duration(params)}s",
        wait_count=ADAPT_WAIT_COUNT,
        interval=ADAPT_INTERVAL,
    )
    return JobQueueHandle(cluster, request)
