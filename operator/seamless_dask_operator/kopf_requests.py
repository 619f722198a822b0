"""kopf's own API requests, at most :data:`AT_ONCE` in flight per operator (an OOM-sized burst at a restart).

kopf sends each request as soon as a handler or a finalizer needs it, over an aiohttp pool with no connection
limit. An operator restarted after it had released its finalizers adds 1,000 of them back at once: 1,000
connections (each with its TLS buffers), 1,379 answers 429 retried by kopf, and a peak of 522 MB, above the
chart's 512Mi (bench/restart.py; bench/README.md, "kopf's requests bounded"). At most 32 at once: 232 MB, no 429,
one patch per cluster. A connection limit on kopf's pool cannot do this: each watch stream holds a connection
for as long as it runs, and a pool full of streams would stop every patch. The bound here is held by a request
until its answer's headers arrive (a watch's come at once) and through kopf's retry back-off after an error, so
a server that asked for patience gets it. kopf's Events are not bounded (see :func:`_posts_an_event`).

Written here because kopf has no setting for it: :func:`install` wraps ``kopf._cogs.clients.api.request``, which
kopf's get, post, patch, delete and watch calls all go through, after checking that they still do (kopf 1.45).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

AT_ONCE = 32  # as many as the handler threads that ask for them
_BOUNDED = "_seamless_dask_operator_bounded"
Request = Callable[..., Awaitable[Any]]


def bounded(request: Request, at_once: int) -> Request:
    """``request`` with at most ``at_once`` calls in flight per event loop (one operator each; tests run several)."""
    gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

    @functools.wraps(request)
    async def bounded_request(*args: Any, **kwargs: Any) -> Any:
        if _posts_an_event(kwargs.get("url", args[1] if len(args) > 1 else "")):
            return await request(*args, **kwargs)
        loop = asyncio.get_running_loop()
        gate = gates.get(loop)
        if gate is None:
            gate = gates[loop] = asyncio.Semaphore(at_once)
        async with gate:
            return await request(*args, **kwargs)

    setattr(bounded_request, _BOUNDED, True)
    return bounded_request


def _posts_an_event(url: object) -> bool:
    # kopf's Event poster already sends one request per object at a time, and retries a refused Event (403 into a
    # namespace being deleted) for ~54 s: bounded, 32 such retries held every slot and stopped the operator's work.
    return str(url).split("?")[0].endswith("/events")


def _looks_as_expected(api: Any) -> bool:
    request = getattr(api, "request", None)
    if not inspect.iscoroutinefunction(request) or "method" not in inspect.signature(request).parameters:
        return False
    # Each call looks ``request`` up in the module when it runs: the wrapper put there is the one they call.
    callers = [getattr(api, name, None) for name in ("get", "post", "patch", "delete", "stream")]
    return all(callable(c) and "request" in getattr(getattr(inspect.unwrap(c), "__code__", None), "co_names", ())
               for c in callers)


def install() -> bool:
    """Bound kopf's own requests (see the module's doc); False, and kopf left alone, where kopf looks different."""
    try:
        from kopf._cogs.clients import api
    except ImportError:
        log.info("kopf has no clients.api module: its requests stay unbounded")
        return False
    if getattr(api.request, _BOUNDED, False):
        return True
    if not _looks_as_expected(api):
        log.info("kopf's API calls are not the ones of kopf 1.45: its requests stay unbounded")
        return False
    api.request = bounded(api.request, AT_ONCE)  # type: ignore[assignment]  # the same call, bounded
    return True
