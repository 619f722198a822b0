"""Names shared by the scheduler side and the client side, and the environment knobs.

Kept apart from :mod:`.scheduler` so that clients (and tasks on workers) can
speak the protocol without importing scheduler internals.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from ..model.identity import THROTTLE_VARIABLE
from .policy import DEFAULT_EPOCH_SECONDS, DEFAULT_THROTTLE

THROTTLE_PLUGIN_NAME = "seamless-throttle"

# Scheduler comm handlers (reached through ``client.scheduler.<op>(...)``).
REQUEST_OP = "seamless_throttle_request"
RELEASE_OP = "seamless_throttle_release"
STATS_OP = "seamless_throttle_stats"
WORKER_THROTTLE_OP = "seamless_throttle_worker"  # a worker tells the scheduler its own throttle

# Same variable the job scripts and pod specs export (seed 002).
THROTTLE_ENV = THROTTLE_VARIABLE
EPOCH_ENV = "SEAMLESS_THROTTLE_EPOCH_SECONDS"


def throttle_from_environment(env: Mapping[str, str] | None = None) -> int:
    """Transformations per worker from ``SEAMLESS_WORKER_TRANSFORMATION_THROTTLE`` (default 3).

    A bad value is an operator error that would silently change capacity, so it
    raises ``ValueError`` naming the variable instead of falling back.
    """
    env = os.environ if env is None else env
    raw = env.get(THROTTLE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_THROTTLE
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{THROTTLE_ENV} must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{THROTTLE_ENV} must be a positive integer, got {raw!r}")
    return value


def epoch_seconds_from_environment(env: Mapping[str, str] | None = None) -> float:
    """Epoch length from ``SEAMLESS_THROTTLE_EPOCH_SECONDS`` (default 10 s; tests shorten it)."""
    env = os.environ if env is None else env
    raw = env.get(EPOCH_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_EPOCH_SECONDS
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{EPOCH_ENV} must be a number of seconds >= 0, got {raw!r}") from None
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{EPOCH_ENV} must be a number of seconds >= 0, got {raw!r}")
    return value
