"""Bounded polling: wait until a predicate holds, with a message that says what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


# --------------------------------------------------------------------------- polling


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    interval: float = 0.2,
    *,
    description: str | None = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Args:
        predicate: called with no arguments, at least once.
        timeout: seconds before giving up.
        interval: seconds between calls.
        description: what is awaited, for the error message.
        ignore: exception types that count as "not yet" instead of propagating.

    Raises:
        TimeoutError: with the description, the last value and the last
            ignored exception.
    """
    what = description or getattr(predicate, "__name__", repr(predicate))
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    calls = 0
    while True:
        calls += 1
        try:
            last = predicate()
            last_exc = None
            if last:
                return last
        except ignore as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
    detail = f"last value {last!r}"
    if last_exc is not None:
        detail = f"last error {type(last_exc).__name__}: {str(last_exc)[:300]}"
    raise TimeoutError(f"timed out after {timeout:g} s ({calls} tries) waiting for {what}; {detail}")
