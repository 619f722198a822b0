"""The scheduler pod: one per cluster, made from the current template (pure).

An outdated or finished scheduler pod is deleted, and the next is made once none is left, not even
a terminating one: never two schedulers for one cluster (a Deployment's Recreate, without its
controller-manager round trips).
"""

from __future__ import annotations

from dataclasses import dataclass

from seamless_dask_runtime.identity import SCHEDULER

from ..builders.objects import ClusterRef, template_hash
from ..builders.scheduler import scheduler_pod, scheduler_template
from ..resource import ClusterSpec
from .notices import Notice
from .observation import Observation
from .plan import CreatePod


@dataclass(frozen=True)
class SchedulerDecision:
    create: CreatePod | None = None
    delete: tuple[str, ...] = ()
    notices: tuple[Notice, ...] = ()


def decide_scheduler(ref: ClusterRef, cluster: ClusterSpec, observation: Observation,
                     edited: frozenset[str]) -> SchedulerDecision:
    template = scheduler_template(ref, cluster)
    current = template_hash(template)
    delete: list[str] = []
    notices: list[Notice] = []
    for pod in observation.scheduler_pods:
        if pod.terminating:
            continue
        if pod.finished or pod.template_hash != current:
            delete.append(pod.name)
            if not pod.finished and "image" not in edited:  # an image change has its own Event below
                notices.append(Notice("Normal", "SchedulerRestart", "the scheduler's template changed: restarting "
                                      "it (clients reconnect; results held only in worker memory are lost)"))
    if "image" in edited and observation.schedulers:
        notices.append(Notice("Normal", "ImageChange",
                              f"image {cluster.options.image}: the scheduler restarts on it, then the workers are "
                              "replaced one at a time, each retired first"))
    create = None if observation.scheduler_pods else CreatePod(SCHEDULER, 0, scheduler_pod(ref, cluster, template))
    return SchedulerDecision(create=create, delete=tuple(delete), notices=tuple(notices))
