"""When a cluster's next follow round runs (pure).

A pod or Service change wakes the round at once (the watches); what only a round's own questions
see is the scheduler's side: its adaptive target, its idleness, its workers. A cluster that is
steady (Running, every worker Ready, nothing done, nothing in flight) is asked less often the
longer it stays steady, up to a ceiling that grows with the fleet: with 1,000 clusters a round
every 5 s each was 200 rounds a second, 50 CPU-s a minute of an operator with nothing to do.

The ceiling keeps what a user waits for: an adaptive (or batch) cluster is asked at least every
:data:`ADAPTIVE_CEILING` s (a client's new work starts workers as soon as with dask-kubernetes'
10 s autoscaler), a cluster with an idle timeout at least every quarter of it, and no cluster
less often than every :data:`QUIET_CEILING` s.
"""

from __future__ import annotations

from seamless_dask_runtime.model.parameters import ParameterError
from seamless_dask_runtime.model.status import Phase

from ..resource import ClusterSpec
from .plan import Plan

# Seconds of the follow interval each cluster of the fleet adds to a steady cluster's ceiling: the fleet's steady
# rounds stay near 1 / FLEET_SPACING a second (20) however many clusters there are; fewer than
# base interval / FLEET_SPACING clusters (100 at 5 s) are not slowed at all.
FLEET_SPACING = 0.05
QUIET_CEILING = 60.0
ADAPTIVE_CEILING = 10.0


def steady(plan: Plan, retiring: bool) -> bool:
    """Nothing done, nothing left, nothing in flight, and the cluster as asked: Running, every worker Ready."""
    status = plan.status
    return (not plan.actions and not plan.more and not retiring
            and status.get("phase") == Phase.RUNNING.value
            and status.get("workersReady") == status.get("workersDesired"))


def ceiling(cluster: ClusterSpec | ParameterError, fleet: int, base: float) -> float:
    """The longest a steady cluster of a fleet of ``fleet`` clusters waits for its next round."""
    longest = min(max(base, fleet * FLEET_SPACING), QUIET_CEILING)
    if isinstance(cluster, ParameterError):
        return longest  # nothing to follow until the spec is edited (which starts a round by itself)
    if cluster.options.adaptive or cluster.params.cluster is not None:
        longest = min(longest, max(base, ADAPTIVE_CEILING))
    if cluster.params.timeout is not None:
        longest = min(longest, max(base, cluster.params.timeout / 4))
    return longest


def next_follow_delay(plan: Plan, *, retiring: bool, previous: float, base: float, limit: float) -> float:
    """Seconds until the next follow round: at once when work was left, ``base`` after any change, and doubling
    (up to ``limit``, :func:`ceiling`) while the cluster stays steady."""
    if plan.more:
        return 0.0
    if not steady(plan, retiring):
        return base
    return min(max(previous, base / 2) * 2, max(limit, base))
