"""The scheduler's HTTP API, as the operator uses it: adaptive target, retirement, idleness."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class SchedulerUnavailable(RuntimeError):
    """The scheduler did not answer (yet); callers keep the current state."""


class SchedulerAPI:
    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read() or b"null")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SchedulerUnavailable(f"{self.base_url}{path}: {exc}") from exc

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/health", timeout=self.timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def adaptive_target(self) -> int:
        return int(self._call("/api/v1/adaptive_target")["workers"])

    def worker_names(self) -> list[str]:
        return [str(w["name"]) for w in self._call("/api/v1/get_workers")["workers"]]

    def retire(self, count: int, timeout: float) -> list[str]:
        """Retire ``count`` workers (their results move first); names of those retired."""
        retired = self._call("/api/v1/retire_workers", {"n": count}, timeout=timeout) or {}
        return [str(info.get("name")) for info in retired.values()]

    def retire_named(self, names: list[str], timeout: float) -> list[str]:
        """Retire these workers (by Dask name = pod name); names actually retired."""
        addresses = {str(w["name"]): w["address"] for w in self._call("/api/v1/get_workers")["workers"]}
        wanted = [addresses[n] for n in names if n in addresses]
        if not wanted:
            return []
        retired = self._call("/api/v1/retire_workers", {"workers": wanted}, timeout=timeout) or {}
        return [str(info.get("name")) for info in retired.values()]

    def idle_since(self) -> float | None:
        """Since when no client is connected and no task alive (None: busy), by the wrapper's rule."""
        value = self._call("/api/v1/seamless/idle").get("idle_since")
        return None if value is None else float(value)
