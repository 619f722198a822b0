"""Inactivity, one rule for wrapper and operator: idle when no client but ours is connected, no task alive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The scheduler's own client for fire_and_forget tasks is not a user.
_INTERNAL_CLIENTS = ("fire-and-forget",)


def scheduler_activity(dask_scheduler: Any, monitor_id: str) -> dict[str, int]:
    """Runs on the scheduler (``Client.run_on_scheduler``): clients, tasks, workers."""
    clients = [c for c in dask_scheduler.clients if c != monitor_id and c not in _INTERNAL_CLIENTS]
    tasks = [ts for ts in dask_scheduler.tasks.values() if ts.state not in ("released", "forgotten")]
    return {"clients": len(clients), "tasks": len(tasks), "workers": len(dask_scheduler.workers)}


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
