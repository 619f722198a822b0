"""Free ports for the scheduler and dashboard inside the launcher's range."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable


def pick_free_port(host: str, start: int, end: int, *, exclude: Iterable[int] = ()) -> int:
    """A random free port in ``[start, end]`` (random so concurrent wrappers rarely collide)."""
    if not 0 <= start <= end <= 65535:
        raise ValueError(f"--port-range {start} {end}: need 0 <= START <= END <= 65535")
    candidates = [p for p in range(start, end + 1) if p not in set(exclude)]
    random.shuffle(candidates)
    bind_host = "" if host in ("0.0.0.0", "") else host
    for port in candidates:
        try:
            with socket.create_server((bind_host, port), reuse_port=False):
                return port
        except OSError:
            continue
    raise RuntimeError(f"no free port in range {start}-{end}; widen --port-range")
