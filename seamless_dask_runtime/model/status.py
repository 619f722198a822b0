"""The status of a cluster, independent of where it is written."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(str, Enum):
    """Kubernetes spelling; :attr:`status_word` is the status file's."""

    STARTING = "Starting"
    RUNNING = "Running"
    FAILED = "Failed"
    STOPPING = "Stopping"

    @property
    def status_word(self) -> str:
        return self.value.lower()


@dataclass(frozen=True)
class ClusterStatus:
    """Phase plus what a client needs to reach the cluster."""

    phase: Phase
    scheduler_port: int | None = None
    dashboard_port: int | None = None
    scheduler_address: str | None = None
    dashboard_url: str | None = None
    workers_ready: int | None = None
    workers_desired: int | None = None
    reason: str | None = None
    message: str | None = None

    def status_file_fields(self) -> dict[str, object]:
        """The keys the original wrapper writes (``status``, ``port``, ``dashboard_port``) and ours."""
        fields: dict[str, object] = {"status": self.phase.status_word}
        if self.scheduler_port is not None:
            fields["port"] = self.scheduler_port
        if self.dashboard_port is not None:
            fields["dashboard_port"] = self.dashboard_port
        if self.scheduler_address is not None:
            fields["scheduler_address"] = self.scheduler_address
        if self.dashboard_url is not None:
            fields["dashboard_url"] = self.dashboard_url
        if self.message is not None:
            fields["error"] = self.message
        return fields
