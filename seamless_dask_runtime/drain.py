"""A worker told to stop (SIGTERM) retires through the scheduler first, so its results move.

Kubernetes stops a pod (eviction, ``kubectl drain``, node shutdown, spot reclaim) with SIGTERM to the
container's first process and SIGKILL after the pod's grace period. In a worker pod that process is
``dask worker``, whose nanny on SIGTERM closes the worker at once: every result it holds is lost. Loaded as
``dask worker --preload-nanny seamless_dask_runtime.drain``, this module replaces that SIGTERM handler: the
nanny asks the scheduler to retire its worker (``Scheduler.retire_workers``, the call behind
``Worker.close_gracefully``, which the worker lifetime of HPC jobs calls before the walltime; the same call
as the operator's scale-down), which moves the worker's results to other workers and then closes it; the
nanny follows and ``dask worker`` exits 0.

Dask's retirement gives up at once when no other running worker can take the results. A stopped pod's
replacement (made by the operator when the pod starts terminating) joins a few seconds later, and workers
stopped together (a drained node) each see the others stopping: so the call is repeated every second,
for up to the budget, until it succeeds. Past the budget (``RETIRE_BUDGET_VARIABLE`` seconds: the pod's
grace period less :data:`CLOSE_MARGIN`), the nanny closes the worker as ``dask worker`` always did, within
the grace period. SIGINT keeps Dask's behaviour (a quick stop at a terminal).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from types import FrameType
from typing import Any

from .model.identity import RETIRE_BUDGET_VARIABLE

log = logging.getLogger("distributed.nanny")

DEFAULT_RETIRE_BUDGET = 120.0  # seconds; the operator's workers.retireTimeout default
RETRY_INTERVAL = 1.0  # seconds between two retire calls while no worker can take the results

_nannies: set[Any] = set()
_state: dict[str, Any] = {"installed": False, "previous": None, "draining": False, "task": None}


def retire_budget() -> float:
    """Seconds a stopped worker has to move its results (the environment's, else the default)."""
    raw = os.environ.get(RETIRE_BUDGET_VARIABLE, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_RETIRE_BUDGET
    return value if value > 0 else DEFAULT_RETIRE_BUDGET


async def retire_worker(nanny: Any, budget: float) -> bool:
    """Ask the scheduler to retire this nanny's worker (results moved, then the worker closed), repeated while
    no other worker can take them; True once the scheduler retired it, False when the budget ran out, the
    scheduler cannot be reached or does not know the worker (nothing it could move)."""
    from distributed.core import Status

    deadline = time.monotonic() + budget
    # A nanny still starting may already have a registered worker (SIGTERM right after it joined): wait for it.
    while not nanny.worker_address and nanny.status in (Status.init, Status.starting) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    address = nanny.worker_address
    if not address:
        log.warning("SIGTERM before the worker process started: nothing to retire")
        return False
    while True:
        try:
            retired = await asyncio.wait_for(
                nanny.scheduler.retire_workers(workers=[address], close_workers=True, remove=True,
                                               stimulus_id=f"worker-stop-signal-{time.time()}"),
                max(deadline - time.monotonic(), 0.1))
            if retired:
                log.info("Worker %s retired on SIGTERM: its results moved to other workers", address)
                return True
            known = await asyncio.wait_for(nanny.scheduler.ncores(workers=[address]), RETRY_INTERVAL * 10)
            if address not in known:
                log.info("Worker %s is not registered with the scheduler: nothing to retire", address)
                return False
        except (asyncio.TimeoutError, OSError) as exc:
            if isinstance(exc, asyncio.TimeoutError) and time.monotonic() >= deadline:
                return _results_lost(address, budget)  # the budget ran out during a call (a slow scheduler)
            log.warning("Worker %s could not be retired within %.0f s (%r)", address, budget, exc)
            return False
        except Exception as exc:  # the scheduler's own error: a later call may succeed
            log.warning("Retiring worker %s failed (%r); trying again", address, exc)
        if deadline - time.monotonic() < RETRY_INTERVAL:
            return _results_lost(address, budget)
        # Workers stopped together retry apart, so that one can take another's results.
        await asyncio.sleep(RETRY_INTERVAL * random.uniform(0.5, 1.5))


def _results_lost(address: str, budget: float) -> bool:
    log.warning("No other worker took the results of %s within %.0f s: they are lost", address, budget)
    return False


async def _drain(budget: float) -> None:
    from distributed.core import Status

    nannies = list(_nannies)
    # A nanny already closing (its worker retired by a scale-down, say) just finishes; one still starting may
    # have its worker registered already (SIGTERM a moment after it joined), so it is retired too.
    running = [n for n in nannies if n.status in (Status.init, Status.starting, Status.running)]
    started = time.monotonic()
    log.info("SIGTERM: retiring %d worker(s) through the scheduler (up to %.0f s)", len(running), budget)
    results = await asyncio.gather(*(retire_worker(n, budget) for n in running), return_exceptions=True)
    for failure in (r for r in results if isinstance(r, BaseException)):
        log.error("Retiring on SIGTERM failed: %r", failure)
    if results and all(r is True for r in results):
        # The scheduler closes each retired worker, and its nanny follows.
        left = max(budget - (time.monotonic() - started), 1.0)
        try:
            await asyncio.wait_for(asyncio.gather(*(n.finished() for n in nannies)), left)
            return
        except asyncio.TimeoutError:
            pass
    await _close_as_dask_does()


async def _close_as_dask_does() -> None:
    """Hand the stop back to ``dask worker``'s own handler (it closes every nanny and exits)."""
    previous = _state["previous"]
    if callable(previous):
        previous(signal.SIGTERM, None)
    else:  # not under `dask worker`: close the nannies ourselves
        await asyncio.gather(*(nanny.close(timeout=10, reason="signal-15") for nanny in list(_nannies)))


def _install(loop: asyncio.AbstractEventLoop) -> None:
    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # Nothing but scheduling here: a signal handler must not log or block.
        if not _state["draining"]:
            _state["draining"] = True
            loop.call_soon_threadsafe(_start_drain)

    def _start_drain() -> None:
        _state["task"] = asyncio.ensure_future(_drain(retire_budget()))  # kept: a task nobody holds may vanish

    # `dask worker` installed its own handler before it started the nannies: ours replaces it, and it is
    # called (see _close_as_dask_does) when retiring cannot be done.
    _state["previous"] = signal.signal(signal.SIGTERM, on_sigterm)


def dask_setup(nanny: Any) -> None:
    """Preload entry point (``--preload-nanny``): one handler per process, for every nanny in it."""
    if not _state["installed"]:
        _state["installed"] = True
        try:
            _install(asyncio.get_running_loop())
        except ValueError as exc:  # not the main thread: signals cannot be caught here
            log.warning("SIGTERM will not retire workers: %s", exc)
    _nannies.add(nanny)


def dask_teardown(nanny: Any) -> None:
    _nannies.discard(nanny)
