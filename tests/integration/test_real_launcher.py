"""The wrapper driven by its real clients: remote-http-launcher + seamless-config (no hand-written file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("remote_http_launcher", reason="remote-http-launcher is a test dependency")
pytest.importorskip("seamless_config", reason="seamless-config is a test dependency")

ROOT = Path(__file__).parent.parent.parent


def drive(request: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "tests.support.launcher_driver", json.dumps(request)],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"driver printed no result:\n{done.stdout}\n{done.stderr}"
    return json.loads(lines[-1])


def test_launcher_starts_uses_and_stops_our_wrapper() -> None:
    result = drive({})
    assert result["error"] is None, result
    status = result["status"]
    # What the launcher wrote survives next to what we wrote.
    assert status["status"] == "running"
    assert {"workdir", "log", "command", "uid", "pid", "network_interface", "parameters"} <= set(status)
    assert status["command"].startswith("seamless-dask-wrapper distributed::LocalCluster")
    assert isinstance(status["port"], int) and isinstance(status["dashboard_port"], int)
    assert result["sum"] == 42
    assert result["stop_returncode"] == 0
    assert result["status_file_exists"] is False
    assert result["wrapper_exited"] is True


def test_launcher_reports_our_failure() -> None:
    result = drive({"parameters": {"cores": -3, "memory": "1GB"}})
    assert result["error"].startswith("LauncherError"), result
    assert result["seconds_to_error"] < 60  # "failed" is read at once, not after the launcher's timeout
    assert "parameters.cores" in result["log"]  # the service log says which field and why


@pytest.mark.parametrize(
    ("parameters", "field"),
    [({"cores": 1, "memory": "1GB", "walltime": "soon"}, "parameters.walltime"),
     ({"cores": 1, "memory": 1.5}, "parameters.memory"),
     ({"cores": 1, "memory": "1GB", "timeout": float("nan")}, "parameters.timeout")],
)
def test_launcher_hears_a_bad_input_at_once(parameters: dict, field: str) -> None:
    result = drive({"parameters": parameters})
    assert result["error"].startswith("LauncherError"), result
    assert result["seconds_to_error"] < 60, result  # the launcher is not left waiting for its timeout
    assert field in result["log"] and "Traceback" not in result["log"]


def test_launcher_runs_memory_given_as_a_json_number() -> None:
    result = drive({"parameters": {"cores": 1, "memory": 2_000_000_000, "walltime": 3600}})
    assert result["error"] is None, result
    assert result["sum"] == 42 and result["stop_returncode"] == 0 and result["status_file_exists"] is False
