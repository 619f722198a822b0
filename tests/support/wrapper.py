"""Run ``seamless-dask-wrapper`` as a real subprocess, as a launcher would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WRAPPER = shutil.which("seamless-dask-wrapper", path=os.path.dirname(sys.executable)) or "seamless-dask-wrapper"


def write_launcher_status(path: Path, parameters: Any, **extra: Any) -> dict[str, Any]:
    """What remote-http-launcher writes before the wrapper runs."""
    contents = {
        "workdir": str(path.parent),
        "log": str(path.with_suffix(".log")),
        "command": "seamless-dask-wrapper ...",
        "uid": os.getuid(),
        "pid": os.getpid(),
        "status": "starting",
        "parameters": parameters,
        **extra,
    }
    path.write_text(json.dumps(contents))
    return contents


def start_wrapper(
    status_path: Path,
    cluster: str = "distributed::LocalCluster",
    *,
    timeout: float | str | None = None,
    port_range: tuple[int, int] = (40000, 49999),
    env: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> subprocess.Popen[str]:
    command = [WRAPPER, cluster, "--port-range", str(port_range[0]), str(port_range[1]),
               "--host", host, "--status-file", str(status_path)]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})}, start_new_session=True,
    )


def wait_for_status(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    """Until the file says running or failed (or the wrapper exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            contents = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            contents = {}
        if contents.get("status") in ("running", "failed"):
            return contents
        if proc.poll() is not None and contents.get("status") not in ("running", "failed"):
            raise AssertionError(f"wrapper exited {proc.returncode} without status:\n{output(proc)}")
        time.sleep(0.05)
    raise TimeoutError(f"no running/failed status in {path} after {timeout} s")


def wait_for_exit(proc: subprocess.Popen[str], timeout: float = 60) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise AssertionError(f"wrapper still running after {timeout} s:\n{output(proc)}") from None


def output(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None or proc.stdout is None:
        return "(still running)"
    return proc.stdout.read()


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
