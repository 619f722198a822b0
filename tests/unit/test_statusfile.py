"""The status file: atomic, keeps the launcher's keys, one owner, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seamless_dask_runtime.status import ClusterStatus, Phase, StatusFile, StatusFileError, StatusFileLocked

LAUNCHER_KEYS = {"workdir": "/w", "log": "/w/log", "command": "x", "uid": 0, "pid": 1,
                 "status": "starting", "parameters": {"cores": 1}}


@pytest.fixture
def status_path(tmp_path: Path) -> Path:
    path = tmp_path / "status.json"
    path.write_text(json.dumps(LAUNCHER_KEYS))
    return path


def test_running_keeps_launcher_keys(status_path: Path) -> None:
    StatusFile(status_path).write_status(ClusterStatus(Phase.RUNNING, scheduler_port=1, dashboard_port=2))
    written = json.loads(status_path.read_text())
    assert written["status"] == "running" and written["port"] == 1 and written["dashboard_port"] == 2
    assert {k: written[k] for k in LAUNCHER_KEYS if k != "status"} == {
        k: v for k, v in LAUNCHER_KEYS.items() if k != "status"
    }


def test_failed_clears_ports_and_says_why(status_path: Path) -> None:
    sf = StatusFile(status_path)
    sf.write_status(ClusterStatus(Phase.RUNNING, scheduler_port=1, dashboard_port=2))
    sf.write_status(ClusterStatus(Phase.FAILED, message="parameters.cores: bad"))
    written = json.loads(status_path.read_text())
    assert written["status"] == "failed" and written["error"] == "parameters.cores: bad"
    assert "port" not in written and written["parameters"] == {"cores": 1}


def test_key_added_by_launcher_meanwhile_survives(status_path: Path) -> None:
    sf = StatusFile(status_path)
    sf.read()
    status_path.write_text(json.dumps({**LAUNCHER_KEYS, "note": "added later"}))
    sf.write_status(ClusterStatus(Phase.RUNNING, scheduler_port=1, dashboard_port=2))
    assert json.loads(status_path.read_text())["note"] == "added later"


def test_corrupt_file_does_not_lose_launcher_keys(status_path: Path) -> None:
    sf = StatusFile(status_path)
    sf.read()
    status_path.write_text('{"workdir": "/w", "param')  # truncated by someone else
    sf.write_status(ClusterStatus(Phase.FAILED, message="x"))
    written = json.loads(status_path.read_text())
    assert written["parameters"] == {"cores": 1} and written["status"] == "failed"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [('{"status": ', "not valid JSON"), ("[1, 2]", "not an object"), ("", "not valid JSON")],
)
def test_unreadable_file_is_a_clear_error(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(StatusFileError, match=fragment):
        StatusFile(path).read()


def test_missing_file_times_out_clearly(tmp_path: Path) -> None:
    with pytest.raises(StatusFileError, match="does not exist"):
        StatusFile(tmp_path / "absent.json").wait(timeout=0.2)


def test_no_temporary_files_left(status_path: Path) -> None:
    sf = StatusFile(status_path)
    for port in range(50):
        sf.write_status(ClusterStatus(Phase.RUNNING, scheduler_port=port, dashboard_port=port + 1))
    assert sorted(os.listdir(status_path.parent)) == ["status.json"]


def test_second_owner_is_refused_and_lock_follows_process(status_path: Path) -> None:
    first = StatusFile(status_path)
    first.acquire()
    assert StatusFile(status_path).owner_alive()
    with pytest.raises(StatusFileLocked):
        StatusFile(status_path).acquire()
    first.release()
    assert not StatusFile(status_path).owner_alive()


def test_killed_owner_releases_lock(status_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from seamless_dask_runtime.status import StatusFile; "
         f"StatusFile({str(status_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert StatusFile(status_path).owner_alive()
        holder.kill()
        holder.wait(10)
        assert not StatusFile(status_path).owner_alive()
        StatusFile(status_path).acquire()  # a new wrapper can take over
    finally:
        holder.kill()
