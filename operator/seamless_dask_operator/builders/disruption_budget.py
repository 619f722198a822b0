"""The scheduler's PodDisruptionBudget: no voluntary eviction of a running scheduler.

A scheduler that stops takes every result of its cluster with it (the workers
hold them, but only the scheduler knows where), and it cannot retire: there is
no second one to hand over to. So eviction (``kubectl drain``, a node
autoscaler's scale-down, a descheduler) is refused for it while it is Ready: a
drain of its node waits until the cluster is deleted, or an admin deletes the
pod (deletion ignores budgets; the operator then makes a new scheduler).
Workers need no budget to survive eviction one at a time: each retires through
the scheduler when told to stop (``seamless_dask_runtime.drain``).

``unhealthyPodEvictionPolicy: AlwaysAllow``: a scheduler that is not Ready
(crash-looping, its image missing) holds no clients' results worth a stuck
drain, and Kubernetes' default would block the drain for ever.
"""

from __future__ import annotations

from typing import Any

from seamless_dask_runtime.model.identity import SCHEDULER

from .objects import ClusterRef, metadata, selector


def scheduler_disruption_budget(ref: ClusterRef) -> dict[str, Any]:
    """Named like the scheduler's Service; it selects the pod the Service selects (not a rollout's candidate)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ref, ref.scheduler_name, SCHEDULER),
        "spec": {
            "minAvailable": 1,
            "selector": {"matchLabels": selector(ref, SCHEDULER)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
