"""The pool watchdog's decisions (pure): what a death says, which tasks it fails, what is no crash."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from seamless_dask_runtime.pool_watchdog import (
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
