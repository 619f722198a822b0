"""The anti-deadlock throttle ("permission manager") of seed 002.

Capacity = ``SEAMLESS_WORKER_TRANSFORMATION_THROTTLE`` x connected workers.
Below capacity a permit is granted at once; at capacity requests are batched
per epoch (10 s) and granted according to cluster load; a denied caller runs
its work locally, so nested transformations cannot starve worker threads
(seed 001). See :mod:`.policy` for the exact rules.

- :mod:`.policy` - pure state machine (:class:`PermissionPolicy`).
- :mod:`.scheduler` - :class:`ThrottlePlugin` and :func:`install` (scheduler side).
- :mod:`.client` - :class:`ThrottleClient` (drivers and tasks).
- :mod:`.preload` - ``dask scheduler --preload seamless_dask_runtime.throttle.preload``.
"""

from __future__ import annotations

from .client import Permission, PermissionScope, ThrottleClient, ThrottleNotInstalledError
from .policy import Outcome, PermissionDecision, PermissionPolicy, Status
from .protocol import (
    EPOCH_ENV,
    THROTTLE_ENV,
    THROTTLE_PLUGIN_NAME,
    epoch_seconds_from_environment,
    throttle_from_environment,
)
from .scheduler import ThrottlePlugin, cluster_load, install

__all__ = [
    "EPOCH_ENV",
    "THROTTLE_ENV",
    "THROTTLE_PLUGIN_NAME",
    "Outcome",
    "Permission",
    "PermissionDecision",
    "PermissionPolicy",
    "PermissionScope",
    "Status",
    "ThrottleClient",
    "ThrottleNotInstalledError",
    "ThrottlePlugin",
    "cluster_load",
    "epoch_seconds_from_environment",
    "install",
    "throttle_from_environment",
]
