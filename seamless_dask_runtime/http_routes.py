"""Scheduler HTTP route ``/api/v1/seamless/idle``: idleness by the wrapper's rule, for the operator.

Dask's own ``/api/v1/check_idle`` ignores connected clients, so a client
holding futures in worker memory looked idle and its cluster was deleted.
This route applies :mod:`seamless_dask_runtime.activity`'s rule (no
client connected and no task alive), the same on both paths: the wrapper and
the operator shut a cluster down for the same reason. The idle clock lives
in the scheduler, so an operator restart does not reset it.

The answer: ``clients`` (from outside the cluster), ``internal_clients``,
``tasks``, ``workers``, ``idle_for`` (seconds idle on the scheduler's own
monotonic clock, ``null`` while active: compare it with a timeout, it does not
depend on any clock agreeing with another) and ``idle_since`` (the same moment
on the scheduler's wall clock, kept for older readers; a scheduler clock that
is off makes it wrong by as much).

Enabled by listing this module in ``distributed.scheduler.http.routes``
(the operator's scheduler pods do).
"""

from __future__ import annotations

import json
import time
from typing import Any

from distributed.http.utils import RequestHandler

from .activity import IdleTracker, scheduler_activity

_TRACKER_ATTRIBUTE = "_seamless_idle_tracker"


def idle_report(scheduler: Any, monotonic: float, wall: float) -> dict[str, Any]:
    """Activity now, and for how long (and since when) the scheduler has been idle (None: it is not).

    ``monotonic`` and ``wall`` are the scheduler's two clocks read at the same moment.
    """
    tracker = getattr(scheduler, _TRACKER_ATTRIBUTE, None)
    if tracker is None:
        tracker = IdleTracker(timeout=None)
        setattr(scheduler, _TRACKER_ATTRIBUTE, tracker)
    activity = scheduler_activity(scheduler)
    tracker.observe(activity, monotonic)
    idle_for = tracker.idle_for(monotonic)
    return {**activity, "idle_for": idle_for, "idle_since": None if idle_for is None else wall - idle_for}


class IdleHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(idle_report(self.server, time.monotonic(), time.time())))


routes: list[tuple[str, type, dict[str, Any]]] = [("/api/v1/seamless/idle", IdleHandler, {})]

# ``/api/v1/seamless/versions`` (:mod:`.version_route`) rides along here, so schedulers already listing this
# module get it without a new entry in their routes (whose change would restart every scheduler).
from .version_route import routes as _version_routes  # noqa: E402

routes += _version_routes
