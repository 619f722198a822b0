"""Getting the worker plugin, the throttle and the adaptive target onto a scheduler: two routes, one result.

- :func:`inject_into_cluster`: the wrapper's clusters run their scheduler in
  this process; a client registers the plugin and installs the throttle.
- :mod:`.scheduler_preload`: ``--preload`` (pods, and the wrapper's in-process
  schedulers) does the same from the scheduler's side, reading the parameters
  from its ``--parameters`` argument or, on pods, the environment.
"""

from __future__ import annotations

from typing import Any

from .model.parameters import ClusterParameters
from .plugin import WORKER_PLUGIN_NAME, SeamlessWorkerPlugin


def install_throttle(dask_scheduler: Any, throttle: int | None = None) -> None:
    """Runs on the scheduler; idempotent. ``throttle`` per worker, else from the scheduler's environment."""
    from .throttle import install

    install(dask_scheduler, throttle=throttle)


def install_adaptive(dask_scheduler: Any, default_target_duration: float, exclusive: bool) -> None:
    """Runs on the scheduler: its ``adaptive_target`` becomes the Seamless one (:mod:`.adaptive`)."""
    from . import adaptive

    adaptive.install(dask_scheduler, default_target_duration=default_target_duration, exclusive=exclusive)


def inject_into_cluster(cluster: Any, params: ClusterParameters) -> None:
    """Register the Seamless worker plugin for current and future workers, the throttle and the adaptive target."""
    from distributed import Client

    from .model.sizing import adaptive_target_duration

    with Client(cluster, set_as_default=False, name="seamless-dask-wrapper-setup") as client:
        client.run_on_scheduler(install_throttle, throttle=params.transformation_throttle)
        client.run_on_scheduler(install_adaptive, default_target_duration=adaptive_target_duration(params),
                                exclusive=params.exclusive)
        client.register_plugin(SeamlessWorkerPlugin.for_parameters(params), name=WORKER_PLUGIN_NAME)
