"""The protocol every backend follows: ``Backend.start(target, request)`` returns a :class:`ClusterHandle`.

The CLI only talks to a handle, in this order: ``ports_taken`` (retry on
other ports?), ``inject_runtime``, ``running_status`` (written to the status
file), ``describe`` (logged), ``supervise`` (until idle or stopped), ``close``.

- :class:`ClusterHandle`: a Dask cluster whose scheduler takes the ports the
  wrapper chose; the wrapper's own idle monitor supervises it.
- :class:`OwnPortsHandle`: the scheduler runs in this process (LocalCluster,
  dask-jobqueue) and binds the chosen ports itself, so a port taken by another
  process shows after start.
- :class:`InjectingHandle`: a scheduler the wrapper did not configure (generic,
  dask-kubernetes): plugin, throttle and adaptive target arrive through a client.
- Kubernetes' ``OperatorSupervisedHandle`` (:mod:`.kubernetes`): the operator
  reports the status and watches idleness.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ....activity import IdleTracker, scheduler_activity
from ....model.parameters import ClusterParameters
from ....model.status import ClusterStatus, Phase

ACTIVITY_INTERVAL = 1.0

log = logging.getLogger("seamless-dask-wrapper")


@dataclass(frozen=True)
class LaunchRequest:
    """What every backend needs besides the parameters."""

    params: ClusterParameters
    host: str
    scheduler_port: int
    dashboard_port: int
    log_directory: str | None = None
    status_path: str | None = None
    stop: threading.Event | None = None  # set by a stop signal; long waits give up on it


class ClusterHandle:
    """A started cluster, supervised by the wrapper's idle monitor; its scheduler is on the chosen ports."""

    def __init__(self, cluster: Any, request: LaunchRequest) -> None:
        self.cluster = cluster
        self.request = request

    def ports_taken(self) -> bool:
        """Whether another process took a chosen port while the cluster started (then retry on others)."""
        return False

    def inject_runtime(self) -> None:
        """Get the Seamless worker plugin, throttle and adaptive target onto the scheduler, if start did not."""

    def running_status(self) -> ClusterStatus:
        return ClusterStatus(Phase.RUNNING, scheduler_port=self.request.scheduler_port,
                             dashboard_port=self.request.dashboard_port,
                             scheduler_address=self.cluster.scheduler_address,
                             dashboard_url=self.cluster.dashboard_link)

    def describe(self) -> str | None:
        """What to show in the log besides the addresses (a job script), if anything."""
        return None

    def supervise(self, stop: threading.Event, timeout: float | None) -> str | None:
        """Block until idle for ``timeout`` (why it stopped) or until ``stop`` is set (None)."""
        from distributed import Client

        tracker = IdleTracker(timeout)
        with Client(self.cluster, set_as_default=False, name="seamless-dask-wrapper-monitor") as monitor:
            while not stop.wait(ACTIVITY_INTERVAL):
                try:
                    activity = monitor.run_on_scheduler(scheduler_activity, monitor_id=monitor.id)
                except Exception as exc:  # a slow or restarting scheduler is not idleness
                    log.warning("scheduler activity unavailable: %r", exc)
                    activity = None
                if tracker.observe(activity, time.monotonic()):
                    return f"idle for {timeout:g} s"
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cluster.close()


def port_of(url: str | None) -> int | None:
    from urllib.parse import urlparse

    try:
        return urlparse(url or "").port
    except ValueError:
        return None


class OwnPortsHandle(ClusterHandle):
    """A scheduler in this process that binds the chosen ports itself."""

    def ports_taken(self) -> bool:
        # Dask moves a dashboard whose port is taken elsewhere, outside the range: not ours to report.
        return port_of(self.cluster.dashboard_link) not in (None, self.request.dashboard_port)

    def inject_runtime(self) -> None:
        # The scheduler logs here, in the launcher's log: a client or worker of other versions gets a WARNING line.
        from ....version_route import log_version_skew

        log_version_skew(self.cluster)


class InjectingHandle(ClusterHandle):
    """A scheduler started without our preload: Seamless mode injects the runtime through a client."""

    def inject_runtime(self) -> None:
        if self.request.params.pure_dask:
            return
        from ....injection import inject_into_cluster

        inject_into_cluster(self.cluster, self.request.params)


@dataclass(frozen=True)
class Backend:
    """A named way to start what a cluster string names."""

    name: str
    starter: Callable[[Any, LaunchRequest], ClusterHandle]

    def start(self, target: Any, request: LaunchRequest) -> ClusterHandle:
        return self.starter(target, request)
