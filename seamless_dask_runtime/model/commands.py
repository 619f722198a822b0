"""Command lines of the Dask scheduler and workers, for pods and job scripts alike.

The Seamless worker plugin is injected scheduler-side (``--preload`` of
:mod:`seamless_dask_runtime.scheduler_preload` registers it for every current
and future worker), so worker command lines stay exactly as seed 002 shows.
"""

from __future__ import annotations

from . import sizing
from .dask_config import port_range_string
from .identity import COMM_PORT, DASHBOARD_PORT
from .parameters import ClusterParameters

SCHEDULER_PRELOAD = "seamless_dask_runtime.scheduler_preload"
# Loaded by a worker pod's nanny: SIGTERM retires the worker through the scheduler (see drain.py). Job scripts keep
# seed 002's command line: there the worker lifetime retires workers before the walltime.
STOP_SIGNAL_PRELOAD = "seamless_dask_runtime.drain"


def worker_arguments(params: ClusterParameters, *, name: str | None = None) -> list[str]:
    """``dask worker`` flags (without the scheduler address), in seed 002's order."""
    args = ["--nthreads", str(sizing.worker_threads(params))]
    processes = sizing.worker_processes(params)
    if processes > 1:
        args += ["--nworkers", str(processes)]
    if params.explicit_tmpdir:
        args += ["--local-directory", params.tmpdir]
    ports = port_range_string(params)
    if ports is not None:
        args += ["--worker-port", ports, "--nanny-port", ports]
    if name is not None:
        args += ["--name", name]
    return args


def worker_command(params: ClusterParameters, scheduler_address: str, *, name: str | None = None) -> list[str]:
    """The whole ``dask worker`` command line."""
    return ["dask", "worker", *worker_arguments(params, name=name), scheduler_address]


def scheduler_command(
    params: ClusterParameters,
    *,
    port: int = COMM_PORT,
    dashboard_port: int = DASHBOARD_PORT,
    host: str | None = None,
) -> list[str]:
    """The ``dask scheduler`` command line; Seamless mode preloads the plugin and throttle."""
    command = ["dask", "scheduler", "--port", str(port), "--dashboard-address", f":{dashboard_port}"]
    if host is not None:
        command += ["--host", host]
    if not params.pure_dask:
        command += ["--preload", SCHEDULER_PRELOAD]
    return command
