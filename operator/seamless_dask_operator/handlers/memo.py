"""What the operator keeps between rounds, typed: one :class:`ClusterMemo` per cluster, one :class:`OperatorMemo`.

kopf gives every resource a memo, a shallow copy of the operator-wide one made when the resource is
first seen: the :class:`OperatorMemo` put there at startup is shared by all clusters, and each
cluster's :class:`ClusterMemo` is its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Container
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import kopf

from ..decide import ChildrenView, PodView, Retire
from .following import Follower

# A retire call lasts as long as the scheduler takes to move the workers' memory (up to retireTimeout): it runs
# in this pool, never in kopf's handler threads, so slow schedulers cannot starve the rounds of other clusters.
# One call per cluster at most; threads that wait on a socket cost little, so many clusters retire at once, none
# queued behind another's slow scheduler (up to this many).
RETIRE_THREADS = 256
SEEN_UIDS = 20_000  # more than the pods and Services created within an expectation's lifetime
# How long this operator's own pods and Services count when no listing shows them (with 1,000 clusters starting
# at once on 2 busy CPUs the watch fell more than a minute behind, and a Service taken for deleted was created
# again, a 409, with a false DriftRestored Event). Only a watch event lost for good waits this long.
OBJECT_EXPECTATION_SECONDS = 600.0

View = TypeVar("View")


@dataclass
class Expected(Generic[View]):
    """A pod or Service this operator made, as a round will see it, counted until a round's listing shows it
    (expectations, as Kubernetes' own controllers keep them): a round right after the one that made it neither
    makes it twice (a 409 and a GET) nor calls it deleted by hand (a re-apply and a false DriftRestored).

    The watch showing its uid does not end it at once: the watch runs on kopf's event loop while a round reads
    the index in a thread, so the uid may be marked just after the round took its listing (11 pods made twice
    of 1,500 in one run). It ends one round later, when a listing still lacks it: it came and went (drift).
    """

    view: View
    uid: str
    at: float = field(default_factory=time.monotonic)
    shown: bool = False  # the watch has shown it; the round's listing did not

    def counts(self, listed: bool, seen: Container[str], now: float) -> bool:
        """Whether this round still counts it, the round's listing having it or not."""
        if listed or self.shown or now - self.at > OBJECT_EXPECTATION_SECONDS:
            return False
        self.shown = self.uid in seen
        return True


@dataclass
class OperatorMemo:
    executor: Executor | None = None  # kopf's handler threads, where the follow rounds run too
    settings: kopf.OperatorSettings | None = None
    retirer: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=RETIRE_THREADS, thread_name_prefix="retire"))
    # The clusters' follow rounds (made at the first cluster event, on kopf's event loop): a child's event wakes
    # its cluster's round there.
    follower: Follower | None = None
    # Resources whose CRD is being deleted: kopf no longer serves them, yet a round may still be under way, which
    # would make the children again; a round of one of these does nothing.
    orphaned: set[str] = field(default_factory=set)
    nudger: asyncio.Future[None] | None = None  # the task that nudges deletions kopf lost (lifecycle)
    # The uids of the SeamlessDaskClusters that exist now (a kopf index: lifecycle.live_clusters): nothing is made,
    # nor a loop kept, for one that is gone.
    live: Any = None
    # The uids of our pods and Services the watches have shown lately: an expectation of an object that came and
    # went between two rounds is met too (see ClusterMemo.created).
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def saw(self, uid: str) -> None:
        self.seen[uid] = None
        self.seen.move_to_end(uid)
        while len(self.seen) > SEEN_UIDS:
            self.seen.popitem(last=False)


@dataclass
class ClusterMemo:
    # One round at a time: an apply round and a follow round never see each other half-done.
    round_lock: threading.Lock = field(default_factory=threading.Lock)
    retiring: tuple[Retire, Future[list[str]]] | None = None  # the retire call in flight
    last_posted: dict[str, float] = field(default_factory=dict)  # Event reason -> when (time.time())
    apply_round_at: float | None = None  # time.monotonic() of the last create/update/resume round
    deleting: bool = False  # the delete handler runs: rounds make nothing more
    # time.monotonic() of the first idle answer of a scheduler that does not say for how long (an older image).
    idle_seen_at: float | None = None
    # What this operator did that the watches may not show yet: pods it created (by name), pods it deleted (name
    # -> when), and the Service it applied (as the children a round will see). See Expected.
    created: dict[str, Expected[PodView]] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    service_applied: Expected[ChildrenView] | None = None
    written_status: tuple[float, dict[str, Any]] | None = None  # when, and the .status this operator last wrote
    versions_asked_at: float = float("-inf")  # time.monotonic() the scheduler was last asked for its versions
    follow_delay: float = 0.0  # seconds until its next follow round (decide/pacing.py)
    waited_for_apply: bool = False  # a follow round came due before the create/resume round, and waited a period
    stood_in: bool = False  # a follow round did the create/resume round's work before that round ran


def operator_memo(memo: kopf.Memo) -> OperatorMemo:
    shared: OperatorMemo = memo.setdefault("operator", OperatorMemo())
    return shared


def cluster_memo(memo: kopf.Memo) -> ClusterMemo:
    state: ClusterMemo = memo.setdefault("cluster", ClusterMemo())
    return state
