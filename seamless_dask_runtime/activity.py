"""Inactivity, one rule for wrapper and operator: idle when no client from outside the cluster is connected
and no task is alive.

Clients *inside* the cluster do not count. seamless-dask's worker-side client (made inside each Dask
worker by its first transformation) stays connected for the worker's life, and the wrapper's monitor
lives in the scheduler's process: counted as users, they kept an idle cluster (and its batch job, or
its pods) up until the walltime.

How a client is known to be inside: by the process it lives in, never by its name (seamless-dask's
client has none, and any name can be copied). Each Dask worker reports, in its heartbeat metrics,
the ids of the clients living in its own process (:func:`clients_in_worker_process`, installed by our
worker plugin). A worker that shares its process with a scheduler (a user's in-process
``LocalCluster``) reports none: that process is the user's, and so are its clients. A client reported
late (between its connection and the next heartbeat, 0.5 s) counts as outside: the error is on the
side of staying up, and that client is then running a task anyway. On the scheduler's side the only
clients of the cluster's own are the wrapper's idle monitor, known by the id it polls with (and
remembered, so that the HTTP route skips it too), and Dask's ``fire-and-forget`` pseudo-client; the
scheduler's process is not ruled out as a whole, since a user's ``LocalCluster`` puts the user's
client there.

A task counts while it has work to do or holds a result an outside client wants; a result held only
by an inside client (seamless-dask's worker-side caches) is not activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Heartbeat metric under which a worker reports the ids of the clients living in its process.
INTERNAL_CLIENTS_METRIC = "seamless_internal_clients"
# The scheduler's own pseudo-client for fire_and_forget tasks is not a user.
_SCHEDULER_PSEUDO_CLIENTS = ("fire-and-forget",)
_RESULT_STATES = ("memory", "erred")
_MONITORS_ATTRIBUTE = "_seamless_idle_monitors"


def _live(instances: Any) -> list[Any]:
    """Instances of a Dask class that are not closed (its WeakSet keeps closed ones until collected)."""
    from distributed.core import Status

    return [item for item in list(instances) if getattr(item, "status", None) not in (Status.closed, "closed")]


def clients_in_worker_process(worker: Any = None) -> list[str]:
    """Worker heartbeat metric: the clients living in this worker's process (none where a scheduler lives
    here too: then the process is a user's in-process cluster, and its clients are that user's)."""
    from distributed import Client, Scheduler

    return [] if _live(Scheduler._instances) else sorted(client.id for client in _live(Client._instances))


def internal_clients(dask_scheduler: Any) -> set[str]:
    """Ids of the clients of the cluster's own: in a worker process, the wrapper's monitors, Dask's."""
    inside = set(_SCHEDULER_PSEUDO_CLIENTS) | getattr(dask_scheduler, _MONITORS_ATTRIBUTE, set())
    for ws in dask_scheduler.workers.values():
        reported = ws.metrics.get(INTERNAL_CLIENTS_METRIC)
        if isinstance(reported, (list, tuple)):
            inside.update(str(client) for client in reported)
    return inside


def scheduler_activity(dask_scheduler: Any, monitor_id: str = "") -> dict[str, int]:
    """Runs on the scheduler (``Client.run_on_scheduler``, the HTTP route): clients from outside, tasks
    alive, workers; ``monitor_id`` is the asking monitor's own client, remembered as one of the cluster's."""
    if monitor_id:
        monitors: set[str] = getattr(dask_scheduler, _MONITORS_ATTRIBUTE, set())
        setattr(dask_scheduler, _MONITORS_ATTRIBUTE, monitors | {monitor_id})
    inside = internal_clients(dask_scheduler)
    outside = [client for client in dask_scheduler.clients if client not in inside]
    own = [client for client in dask_scheduler.clients if client in inside and client not in _SCHEDULER_PSEUDO_CLIENTS]
    tasks = [ts for ts in dask_scheduler.tasks.values() if _task_alive(ts, inside)]
    return {"clients": len(outside), "internal_clients": len(own), "tasks": len(tasks),
            "workers": len(dask_scheduler.workers)}


def _task_alive(ts: Any, inside: set[str]) -> bool:
    if ts.state in ("released", "forgotten"):
        return False
    if ts.state not in _RESULT_STATES:
        return True  # waiting, queued, processing, no-worker: work to do
    wanted_by = {cs.client_key for cs in ts.who_wants or ()}
    return not wanted_by or not wanted_by <= inside


@dataclass
class IdleTracker:
    """Decides when ``timeout`` seconds of inactivity have passed (clock injected)."""

    timeout: float | None
    idle_since: float | None = None

    def observe(self, activity: dict[str, int] | None, now: float) -> bool:
        """Feed one observation; True once the cluster has been idle for ``timeout``.

        ``None`` (the scheduler did not answer) counts as activity: a busy
        scheduler is never shut down for being slow to reply.
        """
        active = activity is None or activity["clients"] > 0 or activity["tasks"] > 0
        if active:
            self.idle_since = None
            return False
        if self.idle_since is None:
            self.idle_since = now
        return self.timeout is not None and now - self.idle_since >= self.timeout

    def idle_for(self, now: float) -> float | None:
        """Seconds idle at ``now`` (same clock as :meth:`observe`); None while active."""
        return None if self.idle_since is None else max(0.0, now - self.idle_since)
