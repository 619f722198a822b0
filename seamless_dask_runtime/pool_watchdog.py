"""In each Dask worker: notice a Seamless pool process that died, fail what it ran, restart the worker.

seamless-dask's worker plugin spawns a pool of Seamless worker processes inside the Dask worker
(seamless-transformer's ``ProcessManager``); a transformation runs in one of them. When one dies
under a running transformation (``os._exit``, a segfault, the OOM killer), seamless-transformer
(0.6) retries it in the pool, and a race in its retry (the dispatch clears the handle's ready flag
before the failure handler reads it, which then drops the handle instead of respawning it) leaves the
dead process in the pool: the transformation, and every later one routed to it, waits for ever, and
the client gets neither a value nor an error. Where the respawn does happen, the retry runs the
transformation that killed the process again, up to 12 times, before a ``ConnectionClosed`` reaches
the client. The sound fix is upstream (respawn regardless, and fail the process's transformations
instead of re-running them).

What this module does from outside, in the Dask worker, with Dask's own mechanisms:

1. A watchdog thread waits on the pool processes' sentinels (so it wakes when one exits, without
   reaping it). Which transformation ran in the process that died comes from a dispatch log: the
   pool's own bookkeeping forgets a transformation's process as soon as the process dies (its retry
   moves it on), so a snapshot taken after the death, or before a dispatch that died at once, missed
   it; the crasher then went back to the scheduler and took the next worker down too.
2. When a pool process exits that Seamless did not stop itself (shutdown, or the restart of a
   cancelled transformation), the Dask tasks of the transformations it was running fail with an
   error that says so (exit status or signal), through the worker's state machine, as if the task
   had raised: the client's ``.run()`` raises it.
3. The Dask worker then retires (the scheduler copies its results to other workers where there are
   any; its other tasks go back to the scheduler) and closes; its nanny starts a fresh one, whose
   pool seamless-dask's plugin spawns again. That is Dask's own ``lifetime-restart`` path, without
   waiting for the worker threads stuck on the dead process.

It reads seamless-transformer's private attributes (the pool manager, which transformation runs
where) and wraps one of its methods on the pool's instance (``_remember_active_handle``, to log each
dispatch as it happens); if they are not there (another version), it logs once and watches nothing.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_sentinels
from typing import Any

# A worker process logs through Dask's handlers only (the wrapper's log gets them).
log = logging.getLogger("distributed.worker")

SNAPSHOT_INTERVAL = 0.1
_FIND_POOL_INTERVAL = 0.5


@dataclass(frozen=True)
class PoolDeath:
    """A pool process that exited while the pool still needed it."""

    name: str
    pid: int | None
    exitcode: int | None
    transformations: frozenset[str]  # tf checksums (hex) running in it
    process: Any = field(default=None, compare=False, repr=False)

    def reason(self) -> str:
        return describe_exit(self.exitcode)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "exited (status unknown)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the out-of-memory killer?)" if -exitcode == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with status {exitcode}"


def failure_message(death: PoolDeath, worker_name: str) -> str:
    others = len(death.transformations) - 1
    shared = (f" {others} other transformation{'s' if others > 1 else ''} ran in the same process and "
              "failed with it: one of them may have caused it." if others > 0 else "")
    return (f"The Seamless worker process that ran this transformation (pid {death.pid}, pool process "
            f"{death.name} of Dask worker {worker_name}) {death.reason()}.{shared} The Dask worker is "
            "restarted with a fresh pool.")


def task_keys_of(transformations: Iterable[str], executing: Iterable[str]) -> list[str]:
    """The Dask keys (``base_...-<tf checksum>``, seamless-dask's) running these transformations."""
    suffixes = tuple(f"-{tf}" for tf in transformations)
    return sorted(key for key in executing if isinstance(key, str) and key.startswith("base_")
                  and suffixes and key.endswith(suffixes))


def _pool_manager() -> Any:
    """seamless-transformer's pool in this process, once seamless-dask's plugin spawned it (else None)."""
    import sys

    module = sys.modules.get("seamless_transformer.worker")
    return None if module is None else getattr(module, "_worker_manager", None)


def _running(manager: Any) -> tuple[dict[str, set[str]], set[str]]:
    """Pool process name -> tf checksums running in it, and every tf checksum still being dispatched
    (retries included): seamless-transformer's own bookkeeping."""
    with manager._active_dispatch_lock:
        active = {tf: set(names) for tf, names in manager._active_handles.items()}
        dispatching = set(manager._active_dispatches)
    by_process: dict[str, set[str]] = {}
    for tf, names in active.items():
        for name in names:
            by_process.setdefault(name, set()).add(tf)
    return by_process, dispatching


class DispatchLog:
    """Pool process name -> transformations dispatched to it that have not finished yet.

    Recorded when seamless-transformer hands a transformation to a process (its
    ``_remember_active_handle``, wrapped on the pool's instance), and kept until the transformation's
    dispatch ends: unlike the pool's own bookkeeping, a process's death does not erase it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_process: dict[str, set[str]] = {}
        # Recorded during the last two snapshot intervals: kept whatever the snapshots said (the Dask thread
        # registers a dispatch just after handing it over; under load the process can die before that).
        self._fresh: dict[str, set[str]] = {}
        self._previous: dict[str, set[str]] = {}

    @classmethod
    def installed_on(cls, manager: Any) -> DispatchLog:
        """The log of this pool, wrapping its dispatch bookkeeping once (a second watchdog reuses it)."""
        existing = getattr(manager, "_seamless_dask_dispatch_log", None)
        if isinstance(existing, DispatchLog):
            return existing
        dispatches = cls()
        remember = manager._remember_active_handle

        def remember_and_log(tf_checksum_hex: str, handle: Any) -> None:
            dispatches.record(handle.name, tf_checksum_hex)
            remember(tf_checksum_hex, handle)

        manager._remember_active_handle = remember_and_log
        manager._seamless_dask_dispatch_log = dispatches
        return dispatches

    def record(self, process_name: str, tf_checksum_hex: str) -> None:
        with self._lock:
            self._fresh.setdefault(process_name, set()).add(tf_checksum_hex)

    def unfinished(self, process_name: str, dispatching: set[str]) -> set[str]:
        """What was handed to this process and is still being dispatched (possibly retried elsewhere)."""
        with self._lock:
            return ((self._by_process.get(process_name, set()) & dispatching)
                    | self._previous.get(process_name, set()) | self._fresh.get(process_name, set()))

    def forget_finished(self, dispatching: set[str]) -> None:
        """After a snapshot: drop what is no longer dispatched (run again later, it may land in another
        process); what was recorded since the one before is judged at the next one."""
        with self._lock:
            for name, transformations in self._previous.items():
                self._by_process[name] = self._by_process.get(name, set()) | transformations
            self._by_process = {name: kept for name, transformations in self._by_process.items()
                                if (kept := transformations & dispatching)}
            self._previous, self._fresh = self._fresh, {}


def _deliberate(manager: Any, handle: Any, process: Any, exitcode: int | None,
                transformations: set[str]) -> bool:
    """Seamless stopped it itself: at shutdown, or to reclaim the slot of a cancelled transformation
    (``ProcessManager.restart_worker``: SIGTERM, with the handle marked as restarting or already
    holding the new process). A clean exit is never a crash."""
    inner = getattr(manager, "_manager", None)
    if exitcode == 0 or getattr(inner, "_closing", False) or getattr(handle, "closing", False):
        return True
    if exitcode == -signal.SIGTERM and (handle.restarting or handle.process is not process):
        return True
    with manager._active_dispatch_lock:
        return bool(transformations & set(manager._cancelled_checksums))


class PoolWatchdog:
    """Watches the Seamless pool of one Dask worker process; acts on the first death, once."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self._stop = threading.Event()
        self._judged: weakref.WeakSet[Any] = weakref.WeakSet()  # dead processes already dealt with

    def start(self) -> None:
        threading.Thread(target=self._run, name="seamless-pool-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            death = self._watch()
        except AttributeError as exc:  # another seamless-transformer: its pool looks different
            log.warning("Seamless pool watchdog off in Dask worker %s: %r", self.worker.name, exc)
            return
        if death is not None:
            self.worker.loop.add_callback(self._recover, death)

    def _watch(self) -> PoolDeath | None:
        judged = self._judged
        while not self._stop.is_set():
            manager = _pool_manager()
            if manager is None:
                self._stop.wait(_FIND_POOL_INTERVAL)
                continue
            dispatches = DispatchLog.installed_on(manager)
            handles = [h for h in list(manager._handles) if h.process is not None and h.process not in judged]
            watched = {h.process.sentinel: (h, h.process) for h in handles}
            if not watched:
                self._stop.wait(_FIND_POOL_INTERVAL)
                continue
            ready = wait_for_sentinels(list(watched), timeout=SNAPSHOT_INTERVAL)
            running, dispatching = _running(manager)
            for sentinel in ready:
                handle, process = watched[sentinel]
                # What ran there: running now (the pool's bookkeeping), or handed to it and not finished (the
                # dispatch log: Seamless's retry may already have moved it on to another process).
                transformations = running.get(handle.name, set()) | dispatches.unfinished(handle.name, dispatching)
                exitcode = _exitcode(process)
                if _deliberate(manager, handle, process, exitcode, transformations):
                    judged.add(process)
                    continue
                return PoolDeath(name=handle.name, pid=process.pid, exitcode=exitcode,
                                 transformations=frozenset(transformations), process=process)
            dispatches.forget_finished(dispatching)
        return None

    async def _recover(self, death: PoolDeath) -> None:
        worker = self.worker
        executing = [ts.key for ts in worker.state.tasks.values() if ts.state in ("executing", "long-running")]
        keys = task_keys_of(death.transformations, executing)
        log.error("Seamless pool process %s (pid %s) of Dask worker %s %s while running %s", death.name,
                  death.pid, worker.name, death.reason(), ", ".join(keys) or "no task known")
        if not executing:
            # Nothing waits on it: Seamless replaces an idle pool process by itself. Watch on.
            log.warning("no task was running on Dask worker %s; Seamless respawns its pool process", worker.name)
            self._judged.add(death.process)
            self.start()
            return
        await _fail_tasks(worker, keys, failure_message(death, str(worker.name)))
        await _retire_and_restart(worker)


def _exitcode(process: Any) -> int | None:
    """The exit status once the process is reaped (Seamless's own health check may reap it first)."""
    for _ in range(20):
        code = process.exitcode
        if code is not None:
            return code
        time.sleep(0.01)
    return None


def _no_retries(keys: list[str], dask_scheduler: Any = None) -> None:
    """On the scheduler: these tasks are not retried (seamless-dask submits with ``retries=3``)."""
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is not None:
            ts.retries = 0


async def _fail_tasks(worker: Any, keys: list[str], message: str) -> None:
    """Fail the tasks as if they had raised ``message``: a process death is reported, not retried (the
    transformation that caused it would take the next pool process down with it, three more times)."""
    from distributed.protocol.pickle import dumps
    from distributed.worker_state_machine import ExecuteFailureEvent

    if not keys:
        return
    try:
        await worker.scheduler.run_function(function=dumps(_no_retries), args=dumps((keys,)), kwargs=dumps({}))
    except Exception as exc:  # the scheduler's retries then apply
        log.warning("could not stop the retries of %s: %r", keys, exc)
    for key in keys:
        ts = worker.state.tasks.get(key)
        if ts is None or ts.state not in ("executing", "long-running"):
            continue
        worker.handle_stimulus(ExecuteFailureEvent.from_exception(
            RuntimeError(message), key=key, run_id=ts.run_id, start=None, stop=time.time(),
            stimulus_id=f"seamless-pool-process-died-{time.time()}"))


async def _retire_and_restart(worker: Any) -> None:
    """Move this worker's results to other workers (if there are any), then have the nanny start a fresh
    worker process (the threads stuck on the dead pool process go with this one)."""
    from distributed.worker import WORKER_ANY_RUNNING

    reason = "seamless-pool-process-died"
    try:
        others = len((await worker.scheduler.identity())["workers"]) - 1
        if others > 0 and worker.state.nbytes:
            await worker.scheduler.retire_workers(workers=[worker.address], close_workers=False, remove=False,
                                                  stimulus_id=f"{reason}-{time.time()}")
    except Exception as exc:  # results then go with the worker, and are recomputed where needed
        log.warning("could not retire Dask worker %s first: %r", worker.name, exc)
    if worker.nanny is None:  # no nanny: the deployment (batch system, Kubernetes) replaces the worker
        await worker.close(nanny=False, executor_wait=False, reason=reason)
        return
    try:
        await worker.rpc(worker.nanny).restart(reason=reason)
    except OSError as exc:
        if worker.status in WORKER_ANY_RUNNING:  # no nanny answered: a worker with a dead pool process must go
            log.error("the nanny of Dask worker %s did not restart it (%r): the worker closes", worker.name, exc)
            await worker.close(nanny=False, executor_wait=False, reason=reason)
        # else CommClosedError: the nanny stopped this process before it could answer
