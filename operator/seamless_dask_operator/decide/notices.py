"""Events a round wants to post, and which of them it posts now (pure).

A condition seen every round (a scheduler not ready to retire, a retire call that keeps failing,
a Service edited by hand again and again) is said at most once per interval; the Events of the
last rounds come back in the observation (``last_posted``), so the rule lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..pod_problems import PodProblem, same_problem, summary
from .plan import PostEvent
from .status import UNRESPONSIVE, unresponsive_message

# How often a condition that persists is said again.
REPEAT_EVERY = 60.0


@dataclass(frozen=True)
class Notice:
    type: str  # Normal or Warning
    reason: str
    message: str
    # A condition seen every round is posted at most once per this many seconds (None: post it).
    at_most_every: float | None = None


def warning_every_minute(reason: str, message: str) -> Notice:
    return Notice("Warning", reason, message, REPEAT_EVERY)


def events_to_post(notices: Iterable[Notice], last_posted: Mapping[str, float], now: float) -> list[PostEvent]:
    """The notices that are due: every one-off notice, a repeated one once per its interval."""
    due: list[PostEvent] = []
    for notice in notices:
        if notice.at_most_every is not None:
            last = last_posted.get(notice.reason)
            if last is not None and now - last < notice.at_most_every:
                continue
        due.append(PostEvent(notice.type, notice.reason, notice.message))
    return due


def pod_problem_notices(problems: list[PodProblem], old_conditions: list[dict[str, object]]) -> list[Notice]:
    """One Event when a new kind of pod problem appears, not one per round nor per kubelet back-off."""
    if not problems:
        return []
    before = next((c for c in old_conditions if c.get("type") == "PodsHealthy"), None)
    if before is not None and before.get("status") == "False" and same_problem(str(before.get("reason")),
                                                                                 problems[0].reason):
        return []
    return [Notice("Warning", problems[0].reason, summary(problems))]


def unresponsive_notices(error: str | None, old_conditions: list[dict[str, object]]) -> list[Notice]:
    """One Event when a ready scheduler stops answering the operator as it should (said again at most once a
    minute if it flaps)."""
    if error is None:
        return []
    before = next((c for c in old_conditions if c.get("type") == "SchedulerResponsive"), None)
    if before is not None and before.get("status") == "False":
        return []
    return [warning_every_minute(UNRESPONSIVE, unresponsive_message(error))]


def version_skew_notices(versions: tuple[bool, str] | None, old_conditions: list[dict[str, object]]) -> list[Notice]:
    """One Event when another distributed/dask release joins the cluster (a client's or an image's)."""
    if versions is None or not versions[0]:
        return []
    before = next((c for c in old_conditions if c.get("type") == "VersionSkew"), None)
    if before is not None and before.get("status") == "True" and before.get("message") == versions[1]:
        return []
    return [Notice("Warning", "VersionSkew", versions[1])]


WAITING_FOR_CAPACITY = "WaitingForCapacity"


def capacity_notices(waiting: list[PodProblem], problems: list[PodProblem],
                     old_conditions: list[dict[str, object]]) -> list[Notice]:
    """One Normal Event when pods start waiting for room (not a Warning: nothing is wrong yet)."""
    if not waiting or problems:
        return []
    before = next((c for c in old_conditions if c.get("type") == "PodsHealthy"), None)
    if before is not None and before.get("reason") == WAITING_FOR_CAPACITY:
        return []
    return [Notice("Normal", WAITING_FOR_CAPACITY, summary(waiting))]
