"""The Seamless worker plugin: throttle environment, Seamless pool, permission resource.

Registered scheduler-side (see :mod:`.injection`), so every worker gets it,
including workers that join after the first task ran. Pure-Dask clusters
register nothing.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin

if TYPE_CHECKING:  # workers unpickle this module: keep pydantic off their start-up path
    from .parameters import ClusterParameters

log = logging.getLogger(__name__)

PLUGIN_NAME = "seamless-worker"
POOL_SWITCH = "SEAMLESS_DASK_WORKER_POOL"  # "0" disables the Seamless pool (tests, pure compute)


class SeamlessWorkerPlugin(WorkerPlugin):
    """Makes a Dask worker a Seamless worker.

    ``environment`` comes from :func:`worker_environment`, the same function
    the job scripts and pod specs use; values a job script already exported
    win (they may hold batch-system expansions such as the CPU count).
    """

    name = PLUGIN_NAME

    def __init__(self, environment: dict[str, str], seamless_workers: int):
        self.environment = dict(environment)
        self.seamless_workers = seamless_workers
        self.pool_plugin: Any = None

    @classmethod
    def for_parameters(cls, params: ClusterParameters) -> SeamlessWorkerPlugin:
        from .worker_environment import worker_environment

        seamless_workers = params.cores or 1
        return cls(worker_environment(params), seamless_workers)

    def setup(self, worker: Any) -> None:
        for name, value in self.environment.items():
            os.environ.setdefault(name, value)
        worker.seamless_plugin = {"environment": dict(self.environment), "pool": False}
        if os.environ.get(POOL_SWITCH, "1") == "0":
            log.info("Seamless worker pool disabled by %s=0", POOL_SWITCH)
            return
        try:
            from seamless_dask.worker_setup import SeamlessWorkerPlugin as PoolPlugin
        except ImportError as exc:
            log.warning("Seamless worker pool not available (%s); running as a plain Dask worker "
                        "with the throttle environment", exc)
            return
        remote_clients = os.environ.get("SEAMLESS_REMOTE_CLIENTS")
        self.pool_plugin = PoolPlugin(
            num_workers=self.seamless_workers,
            remote_clients=json.loads(remote_clients) if remote_clients else None,
        )
        self.pool_plugin.setup(worker)
        worker.seamless_plugin["pool"] = True

    def teardown(self, worker: Any) -> None:
        if self.pool_plugin is not None and hasattr(self.pool_plugin, "teardown"):
            self.pool_plugin.teardown(worker)
        self.pool_plugin = None
