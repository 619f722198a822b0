"""The Seamless worker plugin: the worker environment, set before Seamless's own plugin runs.

Registered scheduler-side (see :mod:`.injection`), so every worker gets it,
including workers that join after the first task ran. Pure-Dask clusters
register nothing.

The Seamless worker pool is *not* spawned here. seamless-dask's client
registers its own worker plugin (``seamless-worker-setup``) carrying the
client's remote clients (hashserver, database); that plugin sets
``SEAMLESS_REMOTE_CLIENTS``, configures seamless-dask's permission manager and
then spawns the pool, so every pool process inherits the remote clients. A pool
spawned earlier (as this plugin once did) never gets them, and
``seamless-run`` inside a transformation fails. Scheduler plugins reach a
worker in registration order, and the wrapper registers this one before any
client connects, so the environment below is in place when the pool spawns.

Two more things, for the cluster's life rather than the pool's start:

- the worker reports, in its heartbeat metrics, the clients living in its own
  process (seamless-dask's worker-side client), so that the idle rule
  (:mod:`.activity`) does not take them for users;
- a watchdog (:mod:`.pool_watchdog`) fails the transformations of a Seamless
  pool process that died, and restarts the worker through its nanny.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin

if TYPE_CHECKING:  # workers unpickle this module: keep pydantic off their start-up path
    from .model.parameters import ClusterParameters

# A worker process logs through Dask's handlers only (the wrapper's log gets them): use Dask's worker logger.
log = logging.getLogger("distributed.worker")

WORKER_PLUGIN_NAME = "seamless-worker"


class SeamlessWorkerPlugin(WorkerPlugin):
    """Makes a Dask worker ready for Seamless's own worker plugin.

    ``environment`` comes from :func:`worker_process_environment`: the
    function the job scripts and pod specs use, plus what only a worker
    process may be given (see there); values a job script already exported
    win (they may hold batch-system expansions such as the CPU count).
    """

    name = WORKER_PLUGIN_NAME

    def __init__(self, environment: dict[str, str]):
        self.environment = dict(environment)

    @classmethod
    def for_parameters(cls, params: ClusterParameters) -> SeamlessWorkerPlugin:
        from .model.worker_environment import worker_process_environment

        return cls(worker_process_environment(params))

    async def setup(self, worker: Any) -> None:
        from .activity import INTERNAL_CLIENTS_METRIC, clients_in_worker_process
        from .log_filters import drop_out_of_band_calls
        from .pool_watchdog import PoolWatchdog

        drop_out_of_band_calls()  # the worker's log (the wrapper's, for local workers) stays readable
        for name, value in self.environment.items():
            os.environ.setdefault(name, value)
        log.info("Seamless environment set in Dask worker %s: %s", worker.name,
                 " ".join(f"{name}={os.environ[name]}" for name in sorted(self.environment)))
        worker.metrics[INTERNAL_CLIENTS_METRIC] = clients_in_worker_process
        self._watchdog = PoolWatchdog(worker)
        self._watchdog.start()
        await _report_throttle(worker)

    async def teardown(self, worker: Any) -> None:
        from .activity import INTERNAL_CLIENTS_METRIC

        worker.metrics.pop(INTERNAL_CLIENTS_METRIC, None)
        watchdog = getattr(self, "_watchdog", None)
        if watchdog is not None:
            watchdog.stop()


async def _report_throttle(worker: Any) -> None:
    """Tell the scheduler's throttle this worker's own throttle (its pod or job script set it), so capacity
    follows the workers and a throttle edit needs no new scheduler."""
    from .model.identity import THROTTLE_VARIABLE
    from .throttle.protocol import WORKER_THROTTLE_OP

    value = os.environ.get(THROTTLE_VARIABLE, "")
    if not value.isdigit() or int(value) < 1:
        return  # exclusive and pure-Dask workers are not throttled
    try:
        await getattr(worker.scheduler, WORKER_THROTTLE_OP)(address=worker.address, throttle=int(value))
    except Exception as exc:  # a scheduler without our throttle (plain Dask) has no such handler
        log.debug("Scheduler took no throttle report: %s", exc)
