"""--host and --port-range: real binds on this machine, errors that name the input."""

from __future__ import annotations

import socket

import pytest

from seamless_dask_runtime.launcher.wrapper.ports import PortError, bind_address, check_port_range, pick_free_port


@pytest.mark.parametrize("bounds", [(0, 3), (-1, 10), (10, 9), (65535, 65536)])
def test_port_range_outside_real_ports_is_refused(bounds: tuple[int, int]) -> None:
    with pytest.raises(PortError, match=f"--port-range {bounds[0]} {bounds[1]}"):
        check_port_range(*bounds, needed=2)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_port_is_free_on_the_resolved_address(host: str) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    address = bind_address(host)
    port = pick_free_port(address, 40000, 49999, purpose="scheduler")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.create_server((address, port), family=family):
        pass


def test_exhausted_range_names_range_and_fix() -> None:
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        with pytest.raises(PortError, match=rf"--port-range {port} {port}: no free port .* widen --port-range"):
            pick_free_port("127.0.0.1", port, port, purpose="scheduler")
