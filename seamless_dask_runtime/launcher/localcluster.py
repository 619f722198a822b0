"""From the cluster model to ``distributed.LocalCluster`` keyword arguments (pure)."""

from __future__ import annotations

from typing import Any

from ..model import sizing
from ..model.dask_config import port_range_string
from ..model.parameters import ClusterParameters, FieldError, ParameterError

# A local worker is a nanny and a worker process on this machine, and the local backend starts them all at once,
# each importing Dask (about a CPU-second): many per CPU and the nannies' start-up times out (40 on 2 busy CPUs
# failed after 2 minutes; 10**6 never finished and stayed `starting`). Four per CPU keeps oversubscription a
# user may want (Seamless workers wait on I/O too) and starts in seconds.
LOCAL_WORKERS_PER_CPU = 4


# A local worker's nanny lives in the wrapper's process and restarts its worker itself (a lifetime restart, the
# pool watchdog's restart after a crashed transformation). SpecCluster's lost-worker timer, meant for batch jobs,
# closes the nanny of any worker name absent from the scheduler 15 s after an earlier removal of that name: when
# that falls inside a restart, the new worker runs with no nanny, and the next crashed transformation hung every
# later one (issue 26). Here the timer never fires; a user's own ``extra_dask_config`` still wins.
LOCAL_CLUSTER_DASK_CONFIG: dict[str, Any] = {"distributed.deploy.lost-worker-timeout": "3650d"}


def check_local_workers(params: ClusterParameters, available_cpus: int) -> None:
    """Refuse, before anything starts, more local workers than this machine can start at once."""
    limit = LOCAL_WORKERS_PER_CPU * max(1, available_cpus)
    if params.maximum_jobs > limit:
        raise ParameterError([FieldError(
            "parameters.maximum_jobs", params.maximum_jobs,
            f"the local backend starts every worker at once as processes on this machine, which offers "
            f"{available_cpus} CPUs: at most {limit} ({LOCAL_WORKERS_PER_CPU} per CPU) start here; lower "
            "maximum_jobs, or run the workers elsewhere (e.g. dask_jobqueue::SLURMCluster or a SeamlessDaskCluster)")])


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
