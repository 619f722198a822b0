"""``dask scheduler --preload seamless_dask_runtime.scheduler_preload``.

Installs the throttle, registers the Seamless worker plugin scheduler-side (so
every worker that ever connects gets it) and makes the scheduler's adaptive
target Seamless-aware (:mod:`.adaptive`), for ``Adaptive`` and the operator alike. The parameters come from the
environment variable ``SEAMLESS_DASK_PARAMETERS`` (the status-file
``parameters`` as JSON), which the operator sets on scheduler pods.
"""

from __future__ import annotations

import json
import os
from typing import Any

from distributed.protocol.pickle import dumps

from . import adaptive, sizing
from .identity import PARAMETERS_VARIABLE
from .injection import install_throttle
from .parameters import from_status_parameters
from .plugin import PLUGIN_NAME, SeamlessWorkerPlugin

__all__ = ["PARAMETERS_VARIABLE", "dask_setup"]


async def dask_setup(scheduler: Any) -> None:
    params = from_status_parameters(json.loads(os.environ.get(PARAMETERS_VARIABLE) or "{}"))
    if not params.pure_dask:
        adaptive.install(scheduler, default_target_duration=sizing.adaptive_target_duration(params),
                         exclusive=params.exclusive)
    install_throttle(scheduler, throttle=params.transformation_throttle)
    plugin = SeamlessWorkerPlugin.for_parameters(params)
    await scheduler.register_worker_plugin(None, dumps(plugin), name=PLUGIN_NAME, idempotent=True)
