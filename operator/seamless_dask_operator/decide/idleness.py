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
from .status import timestamp


@dataclass(frozen=True)
class Idleness:
    last_activity: str | None = None
    delete_cluster: bool = False
    notices: tuple[Notice, ...] = ()


def decide_idleness(params: ClusterParameters, answers: SchedulerAnswers, now: float) -> Idleness:
    if answers.busy:
        return Idleness(last_activity=timestamp(now))
    if answers.idle_for is None:
        return Idleness()
    last_activity = timestamp(now - answers.idle_for)
    if params.timeout is not None and answers.idle_for >= params.timeout:
        return Idleness(last_activity, True,
                        (Notice("Normal", "IdleTimeout", f"idle for {params.timeout:g} s: deleting the cluster"),))
    return Idleness(last_activity)
