"""The pool watchdog's decisions (pure): what a death says, which tasks it fails, what is no crash."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from seamless_dask_runtime.pool_watchdog import (
    DispatchLog,
    PoolDeath,
    _deliberate,
    describe_exit,
    failure_message,
    task_keys_of,
)

TF, OTHER = "a" * 64, "b" * 64


@pytest.mark.parametrize(("exitcode", "said"), [
    (7, "exited with status 7"), (1, "exited with status 1"),
    (-signal.SIGSEGV, "was killed by SIGSEGV"), (-signal.SIGKILL, "was killed by SIGKILL (the out-of-memory killer?)"),
    (None, "exited (status unknown)")])
def test_the_exit_is_said_as_a_user_reads_it(exitcode: int | None, said: str) -> None:
    assert describe_exit(exitcode) == said


def test_the_message_names_the_process_and_the_shared_fate() -> None:
    alone = PoolDeath("worker-1", 123, 7, frozenset({TF}))
    assert failure_message(alone, "w0") == (
        "The Seamless worker process that ran this transformation (pid 123, pool process worker-1 of Dask "
        "worker w0) exited with status 7. The Dask worker is restarted with a fresh pool.")
    shared = failure_message(PoolDeath("worker-2", 5, -9, frozenset({TF, OTHER})), "w0")
    assert "1 other transformation ran in the same process and failed with it" in shared


def test_the_tasks_are_seamless_base_tasks_of_those_transformations() -> None:
    executing = [f"base_{'c' * 64}-{TF}", f"base_{'c' * 64}-{OTHER}", f"fat_checksum-{TF}", ("tuple", 1),
                 f"base_{'c' * 64}-S-{TF}"]
    assert task_keys_of([TF], executing) == [f"base_{'c' * 64}-S-{TF}", f"base_{'c' * 64}-{TF}"]
    assert task_keys_of([], executing) == []


@dataclass
class Manager:
    _cancelled_checksums: set[str] = field(default_factory=set)
    _active_dispatch_lock: Any = field(default_factory=threading.RLock)
    _manager: Any = field(default_factory=lambda: SimpleNamespace(_closing=False))


def handle(process: object, *, restarting: bool = False, closing: bool = False) -> SimpleNamespace:
    return SimpleNamespace(process=process, restarting=restarting, closing=closing)


def test_what_seamless_stopped_itself_is_no_crash() -> None:
    dead, new = object(), object()
    manager = Manager()
    assert not _deliberate(manager, handle(dead), dead, 7, {TF})
    assert not _deliberate(manager, handle(dead), dead, -signal.SIGKILL, {TF})  # the OOM killer
    assert _deliberate(manager, handle(dead), dead, 0, {TF})  # a clean exit
    assert _deliberate(manager, handle(dead, closing=True), dead, -signal.SIGTERM, set())
    # restart_worker, reclaiming a cancelled transformation's slot: SIGTERM while marked restarting, or
    # the handle already holds its new process
    assert _deliberate(manager, handle(dead, restarting=True), dead, -signal.SIGTERM, set())
    assert _deliberate(manager, handle(new), dead, -signal.SIGTERM, set())
    assert _deliberate(Manager(_cancelled_checksums={TF}), handle(dead), dead, -signal.SIGKILL, {TF})
    manager._manager._closing = True
    assert _deliberate(manager, handle(dead), dead, 7, {TF})


class Pool:
    """seamless-transformer's bookkeeping as its dispatch drives it: a process is remembered when the
    transformation is handed to it and forgotten when the request ends (the process died, say)."""

    def __init__(self) -> None:
        self._active_dispatch_lock = threading.Lock()
        self._active_handles: dict[str, set[str]] = {}
        self._active_dispatches: dict[str, set[object]] = {}

    def _remember_active_handle(self, tf: str, handle: Any) -> None:
        with self._active_dispatch_lock:
            self._active_handles.setdefault(tf, set()).add(handle.name)

    def forget(self, tf: str, handle: Any) -> None:
        with self._active_dispatch_lock:
            self._active_handles.pop(tf, None)


def test_a_dispatch_is_remembered_after_the_pool_forgot_its_dead_process() -> None:
    pool, worker_1, worker_0 = Pool(), SimpleNamespace(name="worker-1"), SimpleNamespace(name="worker-0")
    log = DispatchLog.installed_on(pool)
    assert DispatchLog.installed_on(pool) is log  # a second watchdog in the process wraps nothing twice
    pool._active_dispatches[TF] = {object()}
    pool._remember_active_handle(TF, worker_1)
    pool.forget(TF, worker_1)  # worker-1 died at once; Seamless retries on worker-0
    pool._remember_active_handle(TF, worker_0)
    assert pool._active_handles == {TF: {"worker-0"}}  # the pool's own bookkeeping still works
    dispatching = set(pool._active_dispatches)
    assert log.unfinished("worker-1", dispatching) == {TF}
    assert log.unfinished("worker-0", dispatching) == {TF}
    assert log.unfinished("worker-2", dispatching) == set()


def test_a_dispatch_the_pool_has_not_registered_yet_is_blamed_until_the_next_snapshot() -> None:
    # The Dask thread registers a dispatch just after handing it over; the process may die before that.
    pool, worker_1 = Pool(), SimpleNamespace(name="worker-1")
    log = DispatchLog.installed_on(pool)
    pool._remember_active_handle(TF, worker_1)
    pool.forget(TF, worker_1)
    assert log.unfinished("worker-1", set()) == {TF}
    log.forget_finished(set())
    assert log.unfinished("worker-1", set()) == {TF}  # recorded since the last snapshot: judged at the next
    log.forget_finished(set())
    assert log.unfinished("worker-1", set()) == set()


def test_a_finished_transformation_is_not_blamed_for_a_later_death() -> None:
    pool, worker_1 = Pool(), SimpleNamespace(name="worker-1")
    log = DispatchLog.installed_on(pool)
    pool._active_dispatches[TF] = {object()}
    pool._remember_active_handle(TF, worker_1)
    pool.forget(TF, worker_1)
    del pool._active_dispatches[TF]  # it returned its result
    log.forget_finished(set(pool._active_dispatches))  # a snapshot after it was handed over ...
    log.forget_finished(set(pool._active_dispatches))  # ... and one after it finished
    pool._active_dispatches[OTHER] = {object()}  # later: another one is dispatched, not yet to a process
    assert log.unfinished("worker-1", set(pool._active_dispatches)) == set()
    pool._active_dispatches[TF] = {object()}  # and TF is submitted again: it is not in worker-1 now
    assert log.unfinished("worker-1", set(pool._active_dispatches)) == set()
