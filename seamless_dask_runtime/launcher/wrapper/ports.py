"""The scheduler's host and its free ports inside the launcher's ``--port-range``.

Every error here names the command-line input it is about and the fix.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
from collections.abc import Iterable

ANY_HOST = ("", "0.0.0.0", "::")
NAME_LOOKUP_TIMEOUT = 5.0


class PortError(ValueError):
    """``--host`` or ``--port-range`` cannot give the wrapper its ports."""


def check_port_range(start: int, end: int, needed: int) -> None:
    """``needed`` distinct ports must fit in ``[start, end]``, all of them real ports (never 0).

    With ``needed == 0`` (both ports given explicitly) the range is not used, so not checked.
    """
    if needed <= 0:
        return
    if not 1 <= start <= end <= 65535:
        raise PortError(f"--port-range {start} {end}: need 1 <= START <= END <= 65535 "
                        "(port 0 is not a port a launcher can connect to)")
    if end - start + 1 < needed:
        raise PortError(f"--port-range {start} {end} holds {end - start + 1} port(s) but the scheduler "
                        f"and dashboard need {needed}; widen --port-range")


def check_explicit_port(option: str, port: int | None) -> None:
    """``--scheduler-port`` / ``--dashboard-port``, when given, must be a real port."""
    if port is not None and not 1 <= port <= 65535:
        raise PortError(f"{option} {port}: need 1 <= PORT <= 65535")


def bind_address(host: str, timeout: float = NAME_LOOKUP_TIMEOUT) -> str:
    """The address to bind for ``--host``: resolved once, and checked to be this machine's.

    A name that does not resolve, resolves slowly, or names another machine
    fails here at once instead of failing every bind in the range.
    """
    if host in ANY_HOST:
        return ""
    result: list[object] = []
    lookup = threading.Thread(target=lambda: result.append(_lookup(host)), daemon=True)
    lookup.start()
    lookup.join(timeout)
    if not result:
        raise PortError(f"--host {host}: name lookup took longer than {timeout:g} s; "
                        "give an IP address of this machine or 0.0.0.0")
    outcome = result[0]
    if isinstance(outcome, OSError):
        raise PortError(f"--host {host} does not resolve ({outcome.strerror or outcome}); "
                        "give an IP address or a name of this machine, or 0.0.0.0")
    assert isinstance(outcome, tuple)
    family, address = outcome
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise PortError(f"--host {host} ({address}) is not an address of this machine; the scheduler "
                            "can only listen on a local address: give one, or 0.0.0.0") from None
        raise PortError(f"--host {host} ({address}): cannot listen there ({exc.strerror})") from None
    return address


def _lookup(host: str) -> tuple[int, str] | OSError:
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
    except OSError as exc:  # socket.gaierror is an OSError
        return exc
    return family, str(sockaddr[0])


def pick_free_port(address: str, start: int, end: int, *, purpose: str, exclude: Iterable[int] = ()) -> int:
    """A random free port in ``[start, end]`` (random so concurrent wrappers rarely collide)."""
    excluded = set(exclude)
    candidates = [p for p in range(start, end + 1) if p not in excluded]
    random.shuffle(candidates)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for port in candidates:
        try:
            with socket.create_server((address, port), family=family, reuse_port=False):
                return port
        except OSError:
            continue
    where = address or "any address"
    raise PortError(f"--port-range {start} {end}: no free port for the {purpose} on {where}: all "
                    f"{len(candidates)} candidate port(s) are in use (other wrappers or services hold them); "
                    "widen --port-range or stop what holds them")


def address_in_use(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a bind that found its port taken."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.EADDRINUSE:
            return True
        stack += [current.__cause__, current.__context__]
    return False
