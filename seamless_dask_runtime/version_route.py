"""Scheduler HTTP route ``/api/v1/seamless/versions``, and a scheduler plugin that logs a skew as it arrives.

The route answers :func:`seamless_dask_runtime.version_skew.skew_report` for
the scheduler, its workers and its connected clients (the versions each
reported when it connected), so the operator can say ``VersionSkew`` without
a Dask client. Enabled by listing this module in
``distributed.scheduler.http.routes`` (the operator's scheduler pods do).

:class:`VersionSkewLog` writes one WARNING line to the scheduler's log when a
client or worker connects with other versions; the wrapper installs it on the
schedulers that run in its own process, so the line is in the launcher's log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.http.utils import RequestHandler
from distributed.versions import get_versions

from .version_skew import newcomer_warning, skew_report

SKEW_PLUGIN_NAME = "seamless-version-skew"
# A scheduler's own lines go through Dask's scheduler logger, which the wrapper's log and a pod's log carry.
log = logging.getLogger("distributed.scheduler")


def scheduler_report(scheduler: Any) -> dict[str, Any]:
    """Versions of the scheduler, its workers and its clients, and how they mismatch."""
    workers = {address: (str(ws.name), ws.versions) for address, ws in scheduler.workers.items()}
    clients = {client: cs.versions for client, cs in scheduler.clients.items()}
    return skew_report(get_versions(), workers, clients)


class VersionsHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps(scheduler_report(self.server)))


routes: list[tuple[str, type, dict[str, Any]]] = [("/api/v1/seamless/versions", VersionsHandler, {})]


class VersionSkewLog(SchedulerPlugin):
    """One WARNING line per client or worker that connects with versions other than the scheduler's."""

    name = SKEW_PLUGIN_NAME

    def add_client(self, scheduler: Any, client: str) -> None:
        state = scheduler.clients.get(client)
        self._check("client", client, state.versions if state is not None else None)

    def add_worker(self, scheduler: Any, worker: str) -> None:
        state = scheduler.workers.get(worker)
        if state is not None:
            self._check("worker", f"{state.name} ({worker})" if state.name != worker else worker, state.versions)

    @staticmethod
    def _check(role: str, name: str, reported: Any) -> None:
        line = newcomer_warning(role, name, get_versions(), reported)
        if line is not None:
            log.warning("%s", line)


def log_version_skew(cluster: Any) -> None:
    """Install :class:`VersionSkewLog` on the scheduler of ``cluster``, which runs in this process."""
    scheduler = cluster.scheduler

    async def add() -> None:  # on the cluster's event loop, whose thread iterates the scheduler's plugins
        scheduler.add_plugin(VersionSkewLog(), name=SKEW_PLUGIN_NAME, idempotent=True)

    cluster.sync(add)
