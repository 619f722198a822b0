"""``dask scheduler --preload seamless_dask_runtime.scheduler_preload [--parameters JSON]``.

Installs the throttle, registers the Seamless worker plugin scheduler-side (so
every worker that ever connects gets it) and makes the scheduler's adaptive
target Seamless-aware (:mod:`.adaptive`), for ``Adaptive`` and the operator alike.

The parameters (the status-file ``parameters`` as JSON) come from two places:

- ``--parameters JSON``, the preload's own option: an in-process scheduler
  (the wrapper's LocalCluster and dask-jobqueue backends) passes it as
  ``preload_argv`` (:func:`scheduler_options`);
- otherwise the environment variable ``SEAMLESS_DASK_PARAMETERS``, which the
  operator sets on scheduler pods.

Importing this module imports nothing that ``dask scheduler`` has not imported
already: distributed imports a preload in ``Scheduler.__init__``, before the
scheduler listens, and runs :func:`dask_setup` once it listens. The cluster
model (pydantic) is imported in :func:`dask_setup`, so the scheduler's port and
``/health`` (its pod's readiness) open as soon as a bare ``dask scheduler``'s;
connections wait for :func:`dask_setup` to finish, as they always did.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

from .model.identity import PARAMETERS_VARIABLE

if TYPE_CHECKING:
    from .model.parameters import ClusterParameters

__all__ = ["PARAMETERS_VARIABLE", "dask_setup", "scheduler_options"]


def scheduler_options(params: ClusterParameters) -> dict[str, Any]:
    """``Scheduler`` keywords that preload this module with ``params`` (none in pure Dask mode).

    For a scheduler in this process: ``LocalCluster(scheduler_kwargs=...)``,
    dask-jobqueue's ``scheduler_options``. The parameters travel as the
    preload's argument, not through this process's environment.
    """
    from .model.commands import SCHEDULER_PRELOAD
    from .model.parameters import to_status_parameters

    if params.pure_dask:
        return {}
    return {"preload": [SCHEDULER_PRELOAD],
            "preload_argv": [["--parameters", json.dumps(to_status_parameters(params))]]}


@click.command()
@click.option("--parameters", default=None, metavar="JSON",
              help=f"status-file parameters as JSON (default: ${PARAMETERS_VARIABLE})")
async def dask_setup(scheduler: Any, parameters: str | None) -> None:
    from distributed.protocol.pickle import dumps

    from . import adaptive
    from .injection import install_throttle
    from .model import sizing
    from .model.parameters import from_status_parameters
    from .plugin import WORKER_PLUGIN_NAME, SeamlessWorkerPlugin

    raw = parameters if parameters is not None else os.environ.get(PARAMETERS_VARIABLE)
    params = from_status_parameters(json.loads(raw or "{}"))
    if not params.pure_dask:
        adaptive.install(scheduler, default_target_duration=sizing.adaptive_target_duration(params),
                         exclusive=params.exclusive)
    install_throttle(scheduler, throttle=params.transformation_throttle)
    plugin = SeamlessWorkerPlugin.for_parameters(params)
    await scheduler.register_worker_plugin(None, dumps(plugin), name=WORKER_PLUGIN_NAME, idempotent=True)
    # The scheduler's log (a pod's, or the wrapper's): no line per out-of-band poll, one per version skew.
    from .log_filters import drop_out_of_band_calls
    from .version_route import SKEW_PLUGIN_NAME as SKEW_LOG
    from .version_route import VersionSkewLog

    drop_out_of_band_calls()
    scheduler.add_plugin(VersionSkewLog(), name=SKEW_LOG, idempotent=True)
