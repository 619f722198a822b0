"""The scheduler's HTTP API, as the operator uses it: adaptive target, retirement, idleness.

A scheduler runs the tenant's image, so nothing it sends is trusted: every call has one deadline for
connect, request and the whole answer (a socket timeout alone bounds each read, and a scheduler that
drips a byte a second never hits it), every answer a size cap, and every answer is checked for the
shape the operator uses before it is used. Whatever goes wrong is :class:`SchedulerUnavailable`, which
the caller turns into this cluster's state and no one else's.
"""

from __future__ import annotations

import http.client
import io
import json
import math
import socket
import time
from typing import Any
from urllib.parse import urlsplit

# An answer larger than this is refused unread: get_workers lists ~80 bytes per worker (12,000 workers fit), the
# rest are a few bytes. A retire answer is sized by the workers it retires (RETIRE_ANSWER_PER_WORKER each).
MAX_ANSWER = 1 << 20
RETIRE_ANSWER_PER_WORKER = 16 << 10
CHUNK = 64 << 10


class SchedulerUnavailable(RuntimeError):
    """The scheduler did not answer in time, or not with what was asked; callers keep the current state."""


class _Answer(io.BytesIO):
    """The bytes of a whole HTTP answer, as a socket http.client can parse them from."""

    def makefile(self, *_: Any, **__: Any) -> _Answer:
        return self


def _exchange(host: str, port: int, request: bytes, deadline: float, limit: int) -> bytes:
    """Send ``request`` and read the answer until the server closes, all before ``deadline``, at most ``limit``
    bytes (headers included)."""
    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete answer before the deadline")
        return left

    with socket.create_connection((host, port), timeout=remaining()) as sock:
        sock.settimeout(remaining())
        sock.sendall(request)
        received = bytearray()
        while True:
            sock.settimeout(remaining())  # recv returns with whatever arrived: the deadline is checked per chunk
            chunk = sock.recv(CHUNK)
            if not chunk:
                return bytes(received)
            received += chunk
            if len(received) > limit:
                raise ValueError(f"answer over {limit} bytes")


class SchedulerAPI:
    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any] | None = None, timeout: float | None = None,
              limit: int = MAX_ANSWER) -> Any:
        """One request, answered with JSON within ``timeout`` seconds in all, or :class:`SchedulerUnavailable`."""
        seconds = timeout or self.timeout
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{'POST' if body is not None else 'GET'} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                "Connection: close", "Accept: application/json"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        request = ("\r\n".join(head) + "\r\n\r\n").encode() + data
        try:
            raw = _exchange(self.host, self.port, request, time.monotonic() + seconds, limit)
            response = http.client.HTTPResponse(_Answer(raw))  # type: ignore[arg-type]
            response.begin()
            payload = response.read()
            if response.status != 200:
                raise ValueError(f"HTTP {response.status} {response.reason}")
            return json.loads(payload or b"null")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise SchedulerUnavailable(f"{self.base_url}{path}: {exc}") from exc

    def adaptive_target(self) -> int:
        answer = self._call("/api/v1/adaptive_target")
        workers = answer.get("workers") if isinstance(answer, dict) else None
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise SchedulerUnavailable(f"{self.base_url}: adaptive target is not a count: {str(answer)[:80]}")
        return workers

    def _workers(self) -> dict[str, str]:
        """Dask name -> address of every worker the scheduler knows."""
        answer = self._call("/api/v1/get_workers")
        workers = answer.get("workers") if isinstance(answer, dict) else None
        if not isinstance(workers, list) or not all(
                isinstance(w, dict) and isinstance(w.get("name"), (str, int)) and isinstance(w.get("address"), str)
                for w in workers):
            raise SchedulerUnavailable(f"{self.base_url}: worker list is not a list of names and addresses")
        return {str(w["name"]): w["address"] for w in workers}

    def worker_names(self) -> list[str]:
        return list(self._workers())

    def _retired_names(self, answer: Any) -> list[str]:
        if answer is None:
            return []
        if not isinstance(answer, dict) or not all(isinstance(info, dict) for info in answer.values()):
            raise SchedulerUnavailable(f"{self.base_url}: retire answer is not a map of worker infos")
        return [str(info.get("name")) for info in answer.values()]

    def retire(self, count: int, timeout: float) -> list[str]:
        """Retire ``count`` workers (their results move first); names of those retired."""
        answer = self._call("/api/v1/retire_workers", {"n": count}, timeout=timeout,
                            limit=MAX_ANSWER + count * RETIRE_ANSWER_PER_WORKER)
        return self._retired_names(answer)

    def retire_named(self, names: list[str], timeout: float) -> list[str]:
        """Retire these workers (by Dask name = pod name); names actually retired."""
        started = time.monotonic()
        addresses = self._workers()
        wanted = [addresses[n] for n in names if n in addresses]
        if not wanted:
            return []
        left = max(timeout - (time.monotonic() - started), 1.0)
        answer = self._call("/api/v1/retire_workers", {"workers": wanted}, timeout=left,
                            limit=MAX_ANSWER + len(wanted) * RETIRE_ANSWER_PER_WORKER)
        return self._retired_names(answer)

    def idle_for(self) -> tuple[bool, float | None]:
        """Whether a client is connected or a task alive (busy), and for how long it has not been (None: busy, or
        a scheduler too old to say; ``idle_since``, its own clock's time, is not compared with ours)."""
        answer = self._call("/api/v1/seamless/idle")
        if not isinstance(answer, dict) or "idle_since" not in answer:
            raise SchedulerUnavailable(f"{self.base_url}: idleness is not reported: {str(answer)[:80]}")
        busy = answer["idle_since"] is None
        seconds = answer.get("idle_for")
        if busy or seconds is None:
            return busy, None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds < math.inf:
            raise SchedulerUnavailable(f"{self.base_url}: idle_for is not a duration: {str(seconds)[:80]}")
        return False, float(seconds)


    def versions(self) -> tuple[bool, str] | None:
        """Whether the scheduler, its workers and its clients run other distributed/dask releases, and which (its
        own words); None from a scheduler too old to say (no such route)."""
        try:
            answer = self._call("/api/v1/seamless/versions")
        except SchedulerUnavailable as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        if not isinstance(answer, dict) or not isinstance(answer.get("skew"), bool):
            raise SchedulerUnavailable(f"{self.base_url}: versions report has no skew flag")
        return answer["skew"], str(answer.get("message") or "")[:1000]
