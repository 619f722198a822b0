"""Scheduler preload: ``dask scheduler --preload seamless_dask_runtime.throttle.preload``.

Why a preload: scheduler pods and HPC launchers start ``dask scheduler`` from a
command line; the preload puts the throttle there before any client connects,
configured from the scheduler's environment
(``SEAMLESS_WORKER_TRANSFORMATION_THROTTLE``, ``SEAMLESS_THROTTLE_EPOCH_SECONDS``).
"""

from __future__ import annotations

from typing import Any

from .scheduler import install


def dask_setup(scheduler: Any) -> None:
    """Called by Dask with the scheduler being started."""
    if not hasattr(scheduler, "add_plugin") or not hasattr(scheduler, "handlers"):
        raise TypeError(
            "seamless_dask_runtime.throttle.preload is a *scheduler* preload "
            f"(got {type(scheduler).__name__}); use 'dask scheduler --preload ...'"
        )
    install(scheduler)
