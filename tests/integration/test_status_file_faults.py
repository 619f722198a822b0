"""The status file's owner lock under real processes and real file-system faults.

Faults are real: another user's stale lock and a read-only directory come from
dropping the capabilities that let root ignore file permissions (``setpriv``),
a full disk is a tiny tmpfs. Each wrapper either runs, or writes ``failed``
with the reason, or (file not writable) exits non-zero with one stderr line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.wrapper import WRAPPER, stop, wait_for_exit, wait_for_status, write_launcher_status

OTHER_UID = 65534  # nobody
REPO = Path(__file__).resolve().parents[2]
UNPRIVILEGED = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search", "--"]

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="needs root and setpriv to create another user's files")


def _command(path: Path, *extra: str) -> list[str]:
    return [*UNPRIVILEGED, WRAPPER, "distributed::LocalCluster", "--port-range", "40000", "49999",
            "--host", "127.0.0.1", "--status-file", str(path), *extra]


def _run_to_end(path: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(path), capture_output=True, text=True, timeout=timeout, check=False)


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def test_one_owner_under_contention(tmp_path: Path) -> None:
    """Four processes take and release the lock 1500 times each; never two owners at once."""
    path = tmp_path / "status.json"
    write_launcher_status(path, {})
    contenders = [subprocess.Popen([sys.executable, "-m", "tests.support.lock_contender", str(path),
                                    str(tmp_path / "owner.marker"), "1500"], cwd=REPO,
                                   stdout=subprocess.PIPE, text=True) for _ in range(4)]
    results = [tuple(map(int, c.communicate(timeout=120)[0].split())) for c in contenders]
    assert [taken for taken, _ in results] == [1500] * 4
    assert sum(clashes for _, clashes in results) == 0


@needs_root
def test_stale_lock_of_another_user_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1})
    lock = tmp_path / "status.json.lock"
    lock.write_text("4242\n")  # a wrapper of another user died here
    os.chown(lock, OTHER_UID, OTHER_UID)
    proc = subprocess.Popen(_command(path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert wait_for_status(path, proc)["status"] == "running"
        proc.send_signal(signal.SIGTERM)
        assert wait_for_exit(proc) == 0
        assert not path.exists()
    finally:
        stop(proc)


@needs_root
def test_unreadable_lock_of_another_user_fails_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1})
    lock = tmp_path / "status.json.lock"
    lock.write_text("4242\n")
    os.chown(lock, OTHER_UID, OTHER_UID)
    lock.chmod(0o600)
    done = _run_to_end(path)
    assert done.returncode == 1
    status = json.loads(path.read_text())
    assert status["status"] == "failed"
    assert str(lock) in status["error"] and f"owned by uid {OTHER_UID}" in status["error"]
    assert "remove the stale lock file" in status["error"]
    _no_traceback(done.stderr)


@needs_root
def test_read_only_directory_still_reports_failed(tmp_path: Path) -> None:
    """No lock and no temporary file can be made there: the file itself is rewritten in place."""
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "status.json"
    launcher = write_launcher_status(path, {"cores": 1})
    os.chown(directory, OTHER_UID, OTHER_UID)
    done = _run_to_end(path)
    assert done.returncode == 1
    status = json.loads(path.read_text())
    assert status["status"] == "failed" and status["pid"] == launcher["pid"]
    assert "cannot create owner lock" in status["error"] and "Permission denied" in status["error"]
    _no_traceback(done.stderr)


@needs_root
def test_nothing_writable_is_one_line_on_stderr(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    directory.mkdir()
    path = directory / "status.json"
    write_launcher_status(path, {"cores": 1})
    for target in (path, directory):
        os.chown(target, OTHER_UID, OTHER_UID)
    done = _run_to_end(path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "cannot create owner lock" in lines[0] and "could not be written" in lines[0]
    assert json.loads(path.read_text())["status"] == "starting"  # untouched: it could not be written


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs holding a launcher's status file, then filled to the last byte."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                                           capture_output=True, check=False).returncode != 0:
        pytest.skip("needs root and mount to make a tiny tmpfs")
    try:
        write_launcher_status(mount / "status.json", {"cores": 1})
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass  # ENOSPC: full
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_while_writing_the_lock(full_disk: Path) -> None:
    path = full_disk / "status.json"
    done = subprocess.run(_command(path)[len(UNPRIVILEGED):], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    status = json.loads(path.read_text())
    assert status["status"] == "failed"
    assert "No space left on device" in status["error"] and "free some space" in status["error"]
    _no_traceback(done.stderr)
