"""What one round does, as typed actions: :func:`decide` returns them, the handlers carry them out in order.

Nothing here decides anything; these are the words a decision is written in. The executor
(``handlers/executing.py``) has one branch per action and no rule of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from seamless_dask_runtime.model.identity import SCHEDULER


@dataclass(frozen=True)
class ApplyChild:
    """Server-side apply of a child object (the scheduler Service, the cluster's NetworkPolicy).

    ``ours``: the watch shows this child, owned by the cluster (applied at once); otherwise it is created, and
    only an object of that name that the cluster owns is applied over.
    """

    manifest: dict[str, Any]
    ours: bool = False


@dataclass(frozen=True)
class EnsureTlsSecret:
    """Make the cluster's certificates when its Secret does not exist (``spec.tls.enabled``)."""


@dataclass(frozen=True)
class PinImage:
    """Write the operator's default image into ``spec.image`` (left out at creation): an upgrade of the operator, or
    a new default of the admin's, changes no running cluster's image."""

    image: str


@dataclass(frozen=True)
class CreatePod:
    """Create the scheduler pod or worker pod ``index``; ``manifest`` is the whole Pod."""

    component: str
    index: int
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class DeletePod:
    name: str


@dataclass(frozen=True)
class AdoptScheduler:
    """Make an earlier layout's scheduler pod the cluster's own: its Deployment and ReplicaSet go (the pod left
    running), the pod gets the cluster as owner and ``template_hash`` (the current one when it runs what the
    current template would: no restart)."""

    pod: str
    replica_set: str
    template_hash: str


@dataclass(frozen=True)
class PromoteScheduler:
    """The new scheduler (a candidate, Ready) takes over: it becomes the one the Service selects."""

    name: str


@dataclass(frozen=True)
class Retire:
    """Ask the scheduler to retire workers (their results move first); a later round deletes the pods it retired."""

    timeout: float  # spec.workers.retireTimeout
    count: int = 0
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeleteCluster:
    """Delete the resource itself (idle past its timeout); its children go with it."""


@dataclass(frozen=True)
class PostEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PatchStatus:
    """Merge into ``.status`` (only written when something in it changed)."""

    status: dict[str, Any]


Action = (PinImage | ApplyChild | EnsureTlsSecret | AdoptScheduler | CreatePod | DeletePod | PromoteScheduler | Retire
          | DeleteCluster | PostEvent | PatchStatus)
A = TypeVar("A", PinImage, ApplyChild, EnsureTlsSecret, AdoptScheduler, CreatePod, DeletePod, PromoteScheduler, Retire,
            DeleteCluster, PostEvent, PatchStatus)


@dataclass(frozen=True)
class Plan:
    """The actions of one round, in the order they are carried out, and the status the round reports.

    ``status`` is what the round saw, written or not (the metrics record it every round); a
    :class:`PatchStatus` among the actions means it changed and is written.
    """

    status: dict[str, Any]
    actions: tuple[Action, ...] = field(default_factory=tuple)
    more: bool = False  # work was left for the next round, which should follow at once

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def of(self, kind: type[A]) -> list[A]:
        return [a for a in self.actions if isinstance(a, kind)]

    @property
    def writes_status(self) -> bool:
        return bool(self.of(PatchStatus))

    @property
    def creates_scheduler(self) -> bool:
        return any(a.component == SCHEDULER for a in self.of(CreatePod))

    @property
    def events(self) -> list[PostEvent]:
        return self.of(PostEvent)
