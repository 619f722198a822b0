"""Inputs an unlucky user gives the real wrapper: each is a clear error naming the input, never a traceback."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.wrapper import (
    output,
    start_wrapper,
    stop,
    wait_for_exit,
    wait_for_status,
    write_launcher_status,
)

LOCAL = {"cores": 1, "maximum_jobs": 1, "pure_dask": True}


def _fails_with(path: Path, proc, *needles: str, code: int = 2, within: float = 30) -> dict:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    status = wait_for_status(path, proc, timeout=within)
    assert wait_for_exit(proc, within) == code
    assert time.monotonic() - started < within
    assert status["status"] == "failed", status
    for needle in needles:
        assert needle in status["error"], status["error"]
    assert "port" not in status
    assert "Traceback" not in output(proc)
    return status


@pytest.mark.parametrize(
    ("port_range", "needle"),
    [((0, 3), "--port-range 0 3: need 1 <= START"), ((5000, 4000), "--port-range 5000 4000"),
     ((45000, 45000), "holds 1 port(s)"), ((65535, 65536), "--port-range 65535 65536")],
)
def test_bad_port_range(tmp_path: Path, port_range: tuple[int, int], needle: str) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, LOCAL)
    _fails_with(path, start_wrapper(path, port_range=port_range), needle, "--port-range")


@pytest.mark.parametrize(
    ("host", "needle"),
    [("no-such-host.invalid", "--host no-such-host.invalid does not resolve"),
     ("192.0.2.1", "--host 192.0.2.1 (192.0.2.1) is not an address of this machine")],
)
def test_host_that_is_not_this_machine_fails_fast(tmp_path: Path, host: str, needle: str) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, LOCAL)
    _fails_with(path, start_wrapper(path, host=host), needle, within=20)


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0"])
def test_timeout_must_be_finite_and_positive(tmp_path: Path, timeout: str) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, LOCAL)
    _fails_with(path, start_wrapper(path, timeout=timeout), f"--timeout {float(timeout)}")


def test_parameters_timeout_nan_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"status": "starting", "pid": 1, "parameters": LOCAL})
                    .replace('"pure_dask": true', '"pure_dask": true, "timeout": NaN'))
    _fails_with(path, start_wrapper(path), "parameters.timeout")


def test_status_file_nested_200k_deep_is_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    deep = '{"status": "starting", "parameters": ' + "[" * 200_000 + "]" * 200_000 + "}"
    path.write_text(deep)
    proc = start_wrapper(path)
    assert wait_for_exit(proc, 60) == 2
    said = output(proc)
    assert "Traceback" not in said and "RecursionError" not in said
    assert f"status file {path} is corrupt: its JSON is nested too deeply" in said
    assert path.read_text() == deep  # not the wrapper's to overwrite


def test_memory_as_a_json_number_is_bytes(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {**LOCAL, "memory": 2_000_000_000})
    proc = start_wrapper(path)
    try:
        status = wait_for_status(path, proc)
        assert status["status"] == "running", status
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{status['port']}", timeout=20) as client:
            client.wait_for_workers(1, timeout=30)
            limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
        assert limits == {2_000_000_000}
    finally:
        stop(proc)


def test_status_file_replaced_by_a_directory_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, LOCAL)
    proc = start_wrapper(path, timeout=2)
    try:
        assert wait_for_status(path, proc)["status"] == "running"
        path.unlink()
        path.mkdir()  # someone's cleanup script got creative
        assert wait_for_exit(proc, 60) == 0
        said = output(proc)
        assert "Traceback" not in said and "IsADirectoryError" not in said
        assert "left status file" in said and path.is_dir()
    finally:
        stop(proc)
        if path.is_dir():
            shutil.rmtree(path)


def test_idle_shutdown_leaves_the_file_of_a_relaunch_alone(tmp_path: Path) -> None:
    """The launcher rewrote the file for a new wrapper (as launch_service.py does): not ours to delete."""
    path = tmp_path / "status.json"
    launcher = write_launcher_status(path, LOCAL)
    proc = start_wrapper(path, timeout=3)
    try:
        assert wait_for_status(path, proc)["status"] == "running"
        relaunch = {**launcher, "pid": launcher["pid"] + 1, "status": "starting"}
        path.write_text(json.dumps(relaunch))
        assert wait_for_exit(proc, 60) == 0
        assert json.loads(path.read_text()) == relaunch
    finally:
        stop(proc)


def test_two_wrappers_racing_on_a_two_port_range(tmp_path: Path) -> None:
    """One runs on both ports; the other says the range is used up, which range, and the fix."""
    low = free_port()
    while not _free(low + 1):
        low = free_port()
    paths = [tmp_path / f"status{i}.json" for i in range(2)]
    for path in paths:
        write_launcher_status(path, LOCAL)
    procs = [start_wrapper(path, port_range=(low, low + 1)) for path in paths]
    try:
        statuses = [wait_for_status(path, proc) for path, proc in zip(paths, procs, strict=True)]
        running = [s for s in statuses if s["status"] == "running"]
        failed = [s for s in statuses if s["status"] == "failed"]
        assert len(running) == 1 and len(failed) == 1, statuses
        assert {running[0]["port"], running[0]["dashboard_port"]} == {low, low + 1}
        assert f"--port-range {low} {low + 1}" in failed[0]["error"]
        assert "in use" in failed[0]["error"] and "widen --port-range" in failed[0]["error"]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            wait_for_exit(proc, 60)
            stop(proc)


def _free(port: int) -> bool:
    import socket

    try:
        with socket.create_server(("127.0.0.1", port)):
            return True
    except OSError:
        return False
