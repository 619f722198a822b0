"""The status file: atomic, keeps the launcher's keys, one owner, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from seamless_dask_runtime.launcher.statusfile import StatusFile, StatusFileError, StatusFileLocked, StatusFileUnsafe
from seamless_dask_runtime.model.status import ClusterStatus, Phase

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
         "import sys, time; from seamless_dask_runtime.launcher.statusfile import StatusFile; "
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


# -- a shared directory: links planted by someone else are never followed (issue 21, item 6) ---------------------

@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text("precious\n")
    path.chmod(0o644)
    return path


def test_status_file_replaced_by_a_link_is_replaced_not_followed(status_path: Path, victim: Path) -> None:
    sf = StatusFile(status_path)
    sf.read()
    status_path.unlink()
    status_path.symlink_to(victim)
    sf.write_status(ClusterStatus(Phase.FAILED, message="x"))
    assert victim.read_text() == "precious\n"
    assert not status_path.is_symlink() and json.loads(status_path.read_text())["status"] == "failed"


def test_reading_a_link_is_refused_naming_it(status_path: Path, victim: Path) -> None:
    status_path.unlink()
    status_path.symlink_to(victim)
    with pytest.raises(StatusFileUnsafe, match=f"refusing status file {status_path}: it is a symbolic link to"):
        StatusFile(status_path).wait(timeout=5)  # at once: waiting does not make a link a file


def test_delete_leaves_a_planted_link_and_its_target(status_path: Path, victim: Path) -> None:
    sf = StatusFile(status_path)
    sf.read()
    status_path.unlink()
    status_path.symlink_to(victim)
    assert sf.delete() is False
    assert status_path.is_symlink() and victim.read_text() == "precious\n"


def test_in_place_fallback_never_writes_through_a_link(status_path: Path, victim: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    sf = StatusFile(status_path)
    sf.read()
    status_path.unlink()
    status_path.symlink_to(victim)

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tempfile.mkstemp", no_space)
    with pytest.raises(StatusFileError, match="refusing status file"):
        sf.write_failure(ClusterStatus(Phase.FAILED, message="x"))
    assert victim.read_text() == "precious\n"


def test_temporary_file_swapped_for_a_link_does_not_chmod_its_target(status_path: Path, victim: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who can write the directory replaces the temporary file by a link between its creation and the
    wrapper's chmod: the mode goes to the descriptor, never to the link's target."""
    status_path.chmod(0o600)
    real_mkstemp = tempfile.mkstemp

    def raced(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        os.unlink(name)
        os.symlink(victim, name)
        return fd, name

    monkeypatch.setattr("tempfile.mkstemp", raced)
    StatusFile(status_path).write_status(ClusterStatus(Phase.RUNNING, scheduler_port=1, dashboard_port=2))
    assert victim.stat().st_mode & 0o777 == 0o644 and victim.read_text() == "precious\n"


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
def test_lock_that_is_not_a_lone_regular_file_is_refused(status_path: Path, victim: Path, kind: str) -> None:
    lock = status_path.with_name(status_path.name + ".lock")
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(lock)  # without O_NONBLOCK, opening it read-only would hang the wrapper
    else:
        os.link(victim, lock)
    with pytest.raises(StatusFileUnsafe, match="refusing owner lock"):
        StatusFile(status_path).acquire()
    assert victim.read_text() == "precious\n"
    assert not StatusFile(status_path).owner_alive()
