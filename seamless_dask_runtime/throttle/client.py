"""Client side of the throttle: ask the scheduler for permission before submitting.

Why: a caller that submits work to Dask and then waits for it (a Seamless
transformation, possibly itself running in a Dask task) must not add work the
cluster cannot schedule. It asks first; if denied it runs the work itself.

Works from a driver process (sync or ``asynchronous=True`` client) and from a
task on a worker (``ThrottleClient()`` picks up ``distributed.get_client()``,
the worker's client). Methods follow the Dask convention: they block when
called from a normal thread and return awaitables inside the client's event
loop. Permits are tied to the Dask client that asked: if that client goes away
(closed, process killed, worker lost) the scheduler releases them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from distributed import Client, get_client

from .protocol import RELEASE_OP, REQUEST_OP, STATS_OP

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Permission", "PermissionScope", "ThrottleClient", "ThrottleNotInstalledError"]


class ThrottleNotInstalledError(RuntimeError):
    """The scheduler has no throttle plugin (install it or use the preload)."""


@dataclass(eq=False)
class Permission:
    """A granted permit; release it (idempotent) when the submitted work is done."""

    token: str
    throttle: ThrottleClient = field(repr=False)
    granted_at: float = field(default_factory=time.monotonic)
    released: bool = False

    def release(self) -> Any:
        """Same as ``throttle.release(self)``."""
        return self.throttle.release(self)


class ThrottleClient:
    """Permission requests through an existing :class:`distributed.Client`."""

    def __init__(self, client: Client | None = None) -> None:
        self._client = client if client is not None else get_client()

    @property
    def client(self) -> Client:
        return self._client

    def _loop(self) -> Any:
        loop = self._client.loop
        if loop is None:  # a closed client: its permits went with its connection
            raise RuntimeError("the Dask client is closed")
        return loop

    @property
    def holder_id(self) -> str:
        """The scheduler releases this holder's permits when the client disconnects."""
        return self._client.id

    # ------------------------------------------------------------ public API
    def request(self, timeout: float | None = None, *, retry: bool = False) -> Any:
        """Ask for one permit: a :class:`Permission`, or ``None`` if denied.

        ``timeout=None`` waits for the epoch decision when the cluster is at
        capacity; ``timeout=0`` only takes a free slot, never waits; a positive
        timeout bounds the wait. ``retry=True`` asks again after each denial
        until granted or the timeout has passed. ``None`` means: run locally.
        """
        return self._client.sync(self._request, timeout, retry)

    def request_many(self, count: int, timeout: float | None = None) -> Any:
        """Ask for ``count`` permits in one round trip (one epoch); list of Permission/None."""
        return self._client.sync(self._request_batch, count, timeout)

    def release(self, permission: Permission | None) -> Any:
        """Give a permit back; ``None`` and already released permits are ignored."""
        return self._client.sync(self._release, [permission])

    def release_many(self, permissions: list[Permission | None]) -> Any:
        """Release several permits in one round trip."""
        return self._client.sync(self._release, list(permissions))

    def release_when_done(self, permission: Permission | None, future: Any) -> None:
        """Release ``permission`` once the Dask ``future`` finishes (any outcome)."""
        if permission is None:
            return

        def _done(_: Any) -> None:
            self._loop().add_callback(self._release, [permission])

        future.add_done_callback(_done)

    def permission(self, timeout: float | None = None, *, retry: bool = False) -> PermissionScope:
        """``with``/``async with`` scope yielding a Permission or None, released on exit."""
        return PermissionScope(self, timeout, retry)

    def stats(self) -> Any:
        """Scheduler-side counters: capacity, in_flight, workers, queued, granted_total, ..."""
        return self._client.sync(self._stats)

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        retry: bool = False,
        submit_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the cluster if permitted, else right here.

        Blocking (meant for tasks and driver threads): the permit is held until
        the result is back, which is what bounds the work on the cluster.
        """
        with self.permission(timeout, retry=retry) as permit:
            if permit is None:
                return fn(*args, **kwargs)
            options = {"pure": False, **(submit_kwargs or {})}
            return self._client.submit(fn, *args, **options, **kwargs).result()

    # ------------------------------------------------------------ coroutines
    async def _request(self, timeout: float | None, retry: bool) -> Permission | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            (permit,) = await self._request_batch(1, remaining)
            if permit is not None or not retry or (remaining is not None and remaining <= 0):
                return permit

    async def _request_batch(self, count: int, timeout: float | None) -> list[Permission | None]:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return []
        keys = [f"{self.holder_id}:{uuid.uuid4().hex}" for _ in range(count)]
        rpc = getattr(self._client.scheduler, REQUEST_OP)
        try:
            reply = await rpc(client=self.holder_id, keys=keys, timeout=timeout, wait=timeout != 0)
        except BaseException:
            # Cancelled or failed mid-flight: we cannot know what was granted.
            self._release_keys_soon(keys)
            raise
        if not isinstance(reply, dict) or "granted" not in reply:
            raise ThrottleNotInstalledError(
                "the Dask scheduler has no Seamless throttle; start it with "
                "'--preload seamless_dask_runtime.throttle.preload' or register ThrottlePlugin"
            )
        granted = reply["granted"]
        return [Permission(key, self) if ok else None for key, ok in zip(keys, granted, strict=True)]

    async def _release(self, permissions: list[Permission | None]) -> None:
        keys = []
        for permit in permissions:
            if permit is not None and not permit.released:
                permit.released = True  # before the await: a second release is a no-op
                keys.append(permit.token)
        if keys:
            await getattr(self._client.scheduler, RELEASE_OP)(keys=keys)

    async def _stats(self) -> dict[str, Any]:
        reply = await getattr(self._client.scheduler, STATS_OP)()
        if not isinstance(reply, dict):
            raise ThrottleNotInstalledError("the Dask scheduler has no Seamless throttle")
        return reply

    def _release_keys_soon(self, keys: list[str]) -> None:
        async def _send() -> None:
            try:
                await getattr(self._client.scheduler, RELEASE_OP)(keys=keys)
            except Exception:  # the client disconnecting releases them anyway
                log.debug("Could not release abandoned permission keys", exc_info=True)

        try:
            self._loop().add_callback(_send)
        except Exception:
            log.debug("Client loop gone; permits are released on disconnect", exc_info=True)


class PermissionScope:
    """Context manager behind :meth:`ThrottleClient.permission`."""

    def __init__(self, throttle: ThrottleClient, timeout: float | None, retry: bool) -> None:
        self._throttle = throttle
        self._timeout = timeout
        self._retry = retry
        self.permission: Permission | None = None

    def __enter__(self) -> Permission | None:
        if self._throttle.client.asynchronous:
            raise RuntimeError("inside the client's event loop use 'async with throttle.permission()'")
        self.permission = self._throttle.request(self._timeout, retry=self._retry)
        return self.permission

    def __exit__(self, *exc_info: object) -> None:
        self._throttle.release(self.permission)

    async def __aenter__(self) -> Permission | None:
        self.permission = await self._throttle._request(self._timeout, self._retry)
        return self.permission

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.shield(self._throttle._release([self.permission]))
