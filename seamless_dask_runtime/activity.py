"""Inactivity, one rule for wrapper and operator: idle when no client from outside the cluster is connected
and no task is alive.

Clients *inside* the cluster do not count. seamless-dask's worker-side client (made inside each Dask
worker by its first transformation) stays connected for the worker's life, and the wrapper's monitor
lives in the scheduler's process: counted as users, they kept an idle cluster (and its batch job, or
its pods) up until the walltime.

How a client is known to be inside: by the process it lives in, never by its name (seamless-dask's
client has none, and any name can be copied). Each Dask worker reports, in its heartbeat metrics,
the ids of the clients living in its own process (:func:`clients_in_worker_process`, installed by our
worker plugin); the scheduler adds the clients living in its own process. A process that holds both
a scheduler and workers (a user's in-process ``LocalCluster``) is the user's own: its clients count.
A client reported late (between its connection and the next heartbeat, 0.5 s) counts as outside:
the error is on the side of staying up, and that client is then running a task anyway.

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


def _live(instances: Any) -> list[Any]:
    """Instances of a Dask class that are not closed (its WeakSet keeps closed ones until collected)."""
    from distributed.core import Status

    return [item for item in list(instances) if getattr(item, "status", None) not in (Status.closed, "closed")]


def clients_in_this_process() -> list[str]:
    from distributed import Client

    return sorted(client.id for client in _live(Client._instances))


def clients_in_worker_process(worker: Any = None) -> list[str]:
    """Worker heartbeat metric: the clients living in this worker's process (none where a scheduler lives
    here too: then the process is a user's in-process cluster, and its clients are that user's)."""
    from distributed import Scheduler

    return [] if _live(Scheduler._instances) else clients_in_this_process()


def internal_clients(dask_scheduler: Any) -> set[str]:
    """Ids of the clients living inside the cluster: in a worker process, or in the scheduler's."""
    from distributed import Worker

    inside = set(_SCHEDULER_PSEUDO_CLIENTS)
    for ws in dask_scheduler.workers.values():
        reported = ws.metrics.get(INTERNAL_CLIENTS_METRIC)
        if isinstance(reported, (list, tuple)):
            inside.update(str(client) for client in reported)
    if not _live(Worker._instances):  # a dedicated scheduler process (wrapper, scheduler pod)
        inside.update(clients_in_this_process())
    return inside


def scheduler_activity(dask_scheduler: Any, monitor_id: str = "") -> dict[str, int]:
    """Runs on the scheduler (``Client.run_on_scheduler``, the HTTP route): clients from outside, tasks
    alive, workers; ``monitor_id`` is the asking monitor's own client, wherever it lives."""
    inside = internal_clients(dask_scheduler) | {monitor_id}
    outside = [client for client in dask_scheduler.clients if client not in inside]
    tasks = [ts for ts in dask_scheduler.tasks.values() if _task_alive(ts, inside)]
    return {"clients": len(outside), "internal_clients": len(dask_scheduler.clients) - len(outside),
            "tasks": len(tasks), "workers": len(dask_scheduler.workers)}


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
