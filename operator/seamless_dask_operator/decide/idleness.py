"""The idle timeout and the last activity, by the wrapper's rule (pure).

Idle means no client connected and no task alive, tracked in the scheduler
(``/api/v1/seamless/idle``); ``timeout`` seconds of it delete the cluster. How long is a
duration measured on one clock (the scheduler's, or the operator's for a scheduler too old to
say): comparing a scheduler's timestamp with the operator's clock deleted a busy cluster whose
scheduler ran an hour behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from seamless_dask_runtime.model.parameters import ClusterParameters

from .notices import Notice
from .observation import SchedulerAnswers
from .status import parse_timestamp, timestamp


@dataclass(frozen=True)
class Idleness:
    last_activity: str | None = None
    delete_cluster: bool = False
    notices: tuple[Notice, ...] = ()


# One idle period asked about twice gives two moments a few milliseconds apart (the answer's age differs): within
# this many seconds of the one already reported it is the same moment, not a new status to write.
SAME_MOMENT = 2.0


def decide_idleness(params: ClusterParameters, answers: SchedulerAnswers, now: float,
                    reported: str | None = None) -> Idleness:
    """``reported``: the ``lastActivity`` in the status now."""
    if answers.busy:
        return Idleness(last_activity=timestamp(now))
    if answers.idle_for is None:
        return Idleness()
    since = now - answers.idle_for
    last_activity = reported if reported is not None and abs(parse_timestamp(reported) - since) <= SAME_MOMENT \
        else timestamp(since)
    if params.timeout is not None and answers.idle_for >= params.timeout:
        return Idleness(last_activity, True,
                        (Notice("Normal", "IdleTimeout", f"idle for {params.timeout:g} s: deleting the cluster"),))
    return Idleness(last_activity)
