"""The idle rule on a scheduler's state (pure): which clients and tasks count, and the route's clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seamless_dask_runtime.activity import INTERNAL_CLIENTS_METRIC, scheduler_activity
from seamless_dask_runtime.http_routes import idle_report


@dataclass(frozen=True)
class Wanter:
    client_key: str


@dataclass
class Task:
    state: str
    who_wants: set = field(default_factory=set)


@dataclass
class WorkerSeen:
    metrics: dict[str, Any]


@dataclass
class Scheduler:
    clients: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    workers: dict[str, WorkerSeen] = field(default_factory=dict)


def worker_with(*clients: str) -> WorkerSeen:
    return WorkerSeen({INTERNAL_CLIENTS_METRIC: list(clients), "cpu": 1.0})


def test_clients_reported_by_workers_and_the_monitor_are_not_users() -> None:
    scheduler = Scheduler(clients={"Client-inside": None, "Client-monitor": None, "fire-and-forget": None},
                          workers={"tcp://w": worker_with("Client-inside")})
    assert scheduler_activity(scheduler, monitor_id="Client-monitor") == {
        "clients": 0, "internal_clients": 2, "tasks": 0, "workers": 1}
    # The monitor is remembered: the HTTP route (which asks with no id) skips it too.
    assert scheduler_activity(scheduler)["clients"] == 0
    scheduler.clients["Client-user"] = None
    assert scheduler_activity(scheduler)["clients"] == 1


def test_a_worker_without_the_metric_reports_nobody() -> None:
    scheduler = Scheduler(clients={"Client-a": None}, workers={"tcp://w": WorkerSeen({"cpu": 1.0})})
    assert scheduler_activity(scheduler)["clients"] == 1


def test_tasks_count_while_they_have_work_or_an_outside_client_wants_them() -> None:
    inside, user = Wanter("Client-inside"), Wanter("Client-user")
    scheduler = Scheduler(clients={"Client-inside": None}, workers={"tcp://w": worker_with("Client-inside")},
                          tasks={"cached": Task("memory", {inside}), "gone": Task("released"),
                                 "erred-inside": Task("erred", {inside})})
    assert scheduler_activity(scheduler)["tasks"] == 0
    for state in ("waiting", "queued", "processing", "no-worker"):
        scheduler.tasks["work"] = Task(state, {inside})
        assert scheduler_activity(scheduler)["tasks"] == 1, state
    del scheduler.tasks["work"]
    scheduler.tasks["held"] = Task("memory", {inside, user})
    assert scheduler_activity(scheduler)["tasks"] == 1


def test_idle_for_runs_on_the_monotonic_clock_whatever_the_wall_clock_does() -> None:
    scheduler = Scheduler()
    assert idle_report(scheduler, monotonic=100.0, wall=5000.0)["idle_for"] == 0.0
    # The scheduler's wall clock is set back an hour; idleness still counts 30 s.
    later = idle_report(scheduler, monotonic=130.0, wall=5030.0 - 3600)
    assert later["idle_for"] == 30.0 and later["idle_since"] == 5000.0 - 3600
    scheduler.clients["Client-user"] = None
    busy = idle_report(scheduler, monotonic=131.0, wall=1431.0)
    assert busy["idle_for"] is None and busy["idle_since"] is None
    del scheduler.clients["Client-user"]
    assert idle_report(scheduler, monotonic=140.0, wall=1440.0)["idle_for"] == 0.0
