"""Files another user planted in a shared directory never make the wrapper write anything but its own files.

The wrapper runs as real root (all capabilities) against a world-writable
directory, sticky (like /tmp) and not (a 0777 scratch directory). Another user
(uid 65534, nobody) planted a symbolic link, a hard link or a stale lock where
the wrapper's lock, status or log file goes; the victim is a root-owned copy
of /etc/passwd (or a root-only JSON file). Before this was fixed, root followed
a planted ``FILE.lock`` link and truncated the victim to the wrapper's pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.wrapper import WRAPPER, stop, wait_for_exit, wait_for_status, write_launcher_status

OTHER_UID = 65534  # nobody: the user who planted the file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the wrapper must run as root and the test "
                                                          "must plant files owned by another user")


@pytest.fixture(params=[0o777, 0o1777], ids=["shared-0777", "sticky-1777"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    directory = tmp_path / "shared"
    directory.mkdir()
    directory.chmod(request.param)
    return directory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file only root may write: a copy of /etc/passwd."""
    path = tmp_path / "victim-passwd"
    shutil.copyfile("/etc/passwd", path)
    path.chmod(0o644)
    return path


def _snapshot(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid


def _plant_symlink(link: Path, target: Path) -> None:
    link.symlink_to(target)
    os.chown(link, OTHER_UID, OTHER_UID, follow_symlinks=False)


def _run(path: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # --timeout: on code that follows the link the cluster would start and run; it then stops by itself.
    command = [WRAPPER, "distributed::LocalCluster", "--port-range", "40000", "49999", "--host", "127.0.0.1",
               "--status-file", str(path), "--timeout", "2", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _one_clear_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, stderr


def test_planted_lock_link_is_refused_and_the_target_untouched(shared: Path, victim: Path) -> None:
    path = shared / "status.json"
    launcher = write_launcher_status(path, {"cores": 1, "pure_dask": True})
    _plant_symlink(shared / "status.json.lock", victim)
    before = _snapshot(victim)
    done = _run(path)
    assert _snapshot(victim) == before, "the wrapper wrote through the planted link"
    assert done.returncode == 1, done.stderr
    status = json.loads(path.read_text())
    assert status["status"] == "failed" and status["pid"] == launcher["pid"]
    assert f"refusing owner lock {shared / 'status.json.lock'}" in status["error"]
    assert f"a symbolic link to {victim}, owned by uid {OTHER_UID}" in status["error"]
    assert "remove it" in status["error"]
    _one_clear_line(done.stderr, "refusing owner lock")
    assert (shared / "status.json.lock").is_symlink()  # someone else's file: reported, not removed


def test_planted_hard_link_as_lock_is_refused(shared: Path, victim: Path) -> None:
    """A hard link has no link to refuse: the lock must be a regular file with a single link."""
    path = shared / "status.json"
    write_launcher_status(path, {"cores": 1, "pure_dask": True})
    os.link(victim, shared / "status.json.lock")
    before = _snapshot(victim)
    done = _run(path)
    assert _snapshot(victim) == before
    assert done.returncode == 1
    error = json.loads(path.read_text())["error"]
    assert "refusing owner lock" in error and "a regular file with 2 hard links" in error
    _one_clear_line(done.stderr, "refusing owner lock")


def test_planted_status_file_link_is_never_followed(shared: Path, tmp_path: Path) -> None:
    """The status file itself is the link: nothing can be written safely, so one line on stderr and nothing else."""
    secret = tmp_path / "root-only.json"
    secret.write_text(json.dumps({"status": "starting", "parameters": {"pure_dask": True}, "token": "s3cret"}))
    secret.chmod(0o600)
    path = shared / "status.json"
    _plant_symlink(path, secret)
    before = _snapshot(secret)
    done = _run(path, timeout=60)
    assert _snapshot(secret) == before
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"refusing status file {path}" in lines[0] and str(secret) in lines[0], done.stderr
    assert path.is_symlink() and not (shared / "status.json.lock").exists()


def test_stale_lock_and_log_of_another_user_are_never_written(shared: Path, victim: Path) -> None:
    """Another user's stale lock is still no obstacle, but root no longer rewrites it; a planted log link is
    not appended to. The cluster runs, stops on SIGTERM and deletes its status file."""
    path = shared / "status.json"
    write_launcher_status(path, {"cores": 1, "pure_dask": True})  # its "log" is shared/status.log
    lock = shared / "status.json.lock"
    lock.write_text("4242\n")
    os.chown(lock, OTHER_UID, OTHER_UID)
    _plant_symlink(shared / "status.log", victim)
    before = _snapshot(victim)
    proc = subprocess.Popen([WRAPPER, "distributed::LocalCluster", "--port-range", "40000", "49999", "--host",
                             "127.0.0.1", "--status-file", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert wait_for_status(path, proc, timeout=120)["status"] == "running"
        assert lock.read_text() == "4242\n" and lock.stat().st_uid == OTHER_UID
        proc.send_signal(signal.SIGTERM)
        assert wait_for_exit(proc, 60) == 0
        assert not path.exists()
    finally:
        stop(proc)
    assert _snapshot(victim) == before, "log lines were appended through the planted link"
    assert (shared / "status.log").is_symlink()
