"""The launcher's JSON status file: read, update atomically, own exclusively, delete.

Every write re-reads the file and changes only the keys the wrapper owns, so
keys a launcher wrote (``workdir``, ``log``, ``pid``, ``parameters``, …)
survive; the new content goes to a temporary file in the same directory and
replaces the old one with ``os.replace``, so a reader never sees half a file.
Ownership is an ``flock`` on ``FILE.lock`` held for the wrapper's life: the
kernel drops it when the process dies, however it dies (seed 003). The owner
unlinks the lock file while still holding it, so an acquirer checks after its
``flock`` that the path still names the inode it locked, and retries if not:
one owner, always.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .model import ClusterStatus

OWNED_KEYS = ("status", "port", "dashboard_port", "scheduler_address", "dashboard_url", "error")


class StatusFileError(RuntimeError):
    """The status file is missing, unreadable or not what the protocol says."""


class StatusFileLocked(StatusFileError):
    """Another live wrapper owns this status file."""


_FIX_BY_ERRNO = {
    errno.EACCES: "make the directory writable for this user or remove the stale lock file",
    errno.EPERM: "make the directory writable for this user or remove the stale lock file",
    errno.EROFS: "the file system is read-only; put the status file in a writable directory",
    errno.ENOSPC: "free some space on that file system",
    errno.EDQUOT: "free some space (disk quota exceeded)",
    errno.ENOLCK: "the file system does not support flock; put the status file on a local file system",
    errno.EISDIR: "a directory stands where the file should be; remove it or give another --status-file",
}


def _os_problem(what: str, path: Path, exc: OSError) -> str:
    """``"cannot create owner lock /x/f.lock: Permission denied (owned by uid 0); <fix>"``."""
    owner = ""
    with contextlib.suppress(OSError):
        owner = f" (owned by uid {path.stat().st_uid}, you are uid {os.getuid()})"
    fix = _FIX_BY_ERRNO.get(exc.errno or 0, "check the path")
    return f"cannot {what} {path}: {exc.strerror or exc}{owner}; {fix}"


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (the owner may have unlinked it)."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


class StatusFile:
    """One status file and, once :meth:`acquire` succeeded, its exclusive owner."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        self._last_good: dict[str, Any] | None = None
        self._first: dict[str, Any] | None = None  # what the launcher wrote, as first read
        self._written: dict[str, Any] | None = None  # what this wrapper wrote last

    # -- reading ---------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """The file's JSON object; :class:`StatusFileError` says what is wrong with it."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StatusFileError(f"status file {self.path} does not exist") from None
        except OSError as exc:
            raise StatusFileError(f"status file {self.path} cannot be read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise StatusFileError(f"status file {self.path} is not UTF-8 text (byte {exc.start}); "
                                  "the launcher must write a JSON object") from exc
        try:
            contents = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StatusFileError(
                f"status file {self.path} is not valid JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}); the launcher must write a JSON object"
            ) from exc
        except RecursionError:
            raise StatusFileError(
                f"status file {self.path} is corrupt: its JSON is nested too deeply to parse; "
                "the launcher must write a flat JSON object"
            ) from None
        if not isinstance(contents, dict):
            raise StatusFileError(
                f"status file {self.path} holds a JSON {type(contents).__name__}, not an object"
            )
        self._last_good = contents
        if self._first is None:
            self._first = contents
        return contents

    def wait(self, timeout: float, interval: float = 0.1) -> dict[str, Any]:
        """Wait until the launcher has written the file (it may start us first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.read()
            except StatusFileError:
                if self.path.exists() and self._is_complete_json():
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(interval)

    def _is_complete_json(self) -> bool:
        # A file that exists but is half-written by a non-atomic launcher gets
        # retried until the deadline; a complete but wrong one fails at once.
        try:
            json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return False
        except RecursionError:  # complete, just absurdly deep: read() says so
            return True
        return True

    # -- ownership -------------------------------------------------------
    def acquire(self) -> None:
        """Take the owner lock, or raise :class:`StatusFileLocked` (taken) / :class:`StatusFileError` (cannot)."""
        while True:
            fd, writable = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StatusFileLocked(
                    f"status file {self.path} is owned by a live wrapper (lock {self.lock_path} is held)"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise StatusFileError(_os_problem("lock", self.lock_path, exc)) from None
            if _same_file(fd, self.lock_path):
                break
            os.close(fd)  # the previous owner unlinked what we locked: lock the current file instead
        if writable:
            try:  # the pid is for humans; liveness is the flock
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError as exc:
                self._unlock(fd)
                raise StatusFileError(_os_problem("write owner lock", self.lock_path, exc)) from None
        self._lock_fd = fd

    def _open_lock(self) -> tuple[int, bool]:
        """The lock file's descriptor and whether it is writable.

        A stale lock file left by another user cannot be opened for writing,
        but ``flock`` works on a read-only descriptor: take it that way.
        """
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644), True
        except PermissionError as exc:
            if not self.lock_path.exists():
                raise StatusFileError(_os_problem("create owner lock", self.lock_path, exc)) from None
            try:
                return os.open(self.lock_path, os.O_RDONLY), False
            except OSError:
                raise StatusFileError(_os_problem("open owner lock", self.lock_path, exc)) from None
        except OSError as exc:
            raise StatusFileError(_os_problem("create owner lock", self.lock_path, exc)) from None

    def owner_alive(self) -> bool:
        """Whether some process holds the owner lock now (never a PID check)."""
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._lock_fd is not None:
            self._unlock(self._lock_fd)
            self._lock_fd = None

    def _unlock(self, fd: int) -> None:
        # Unlink while still holding the lock: whoever opened the old inode
        # sees after its flock that the path moved on and retries (acquire).
        if _same_file(fd, self.lock_path):
            with contextlib.suppress(OSError):
                self.lock_path.unlink()
        os.close(fd)

    # -- writing ---------------------------------------------------------
    def write_status(self, status: ClusterStatus) -> dict[str, Any]:
        """Replace the wrapper's keys with ``status``; every other key is kept."""
        payload = self._merged(status)
        try:
            self._atomic_write(payload)
        except OSError as exc:
            raise StatusFileError(_os_problem("write status file", self.path, exc)) from None
        self._last_good = self._written = payload
        return payload

    def write_failure(self, status: ClusterStatus) -> dict[str, Any]:
        """Like :meth:`write_status`, but a full disk or a read-only directory does not stop it.

        When no temporary file can be made next to the status file, the file is
        rewritten in place: a launcher reading ``failed`` at once beats one
        waiting for its own timeout. Raises :class:`StatusFileError` only if both fail.
        """
        payload = self._merged(status)
        try:
            self._atomic_write(payload)
        except OSError as atomic_error:
            try:
                self._write_in_place(payload)
            except OSError:
                raise StatusFileError(_os_problem("write status file", self.path, atomic_error)) from None
        self._last_good = self._written = payload
        return payload

    def _merged(self, status: ClusterStatus) -> dict[str, Any]:
        try:
            current = self.read()
        except StatusFileError:
            # Corrupt or vanished: rebuild from the last good read so the
            # launcher's keys (parameters, pid, log, ...) are not lost.
            current = dict(self._last_good or {})
        payload = {k: v for k, v in current.items() if k not in OWNED_KEYS}
        payload.update(status.status_file_fields())
        return payload

    def _atomic_write(self, payload: dict[str, Any]) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(payload, stream, indent=4)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _write_in_place(self, payload: dict[str, Any]) -> None:
        # Truncating first frees the old blocks, so this works on a full disk too.
        with open(self.path, "r+", encoding="utf-8") as stream:
            stream.truncate(0)
            json.dump(payload, stream, indent=4)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())

    def still_ours(self) -> bool:
        """Whether the file is still the one this wrapper serves.

        A launcher that relaunches rewrites the file (``starting``, a new
        ``pid``, none of our keys); that file belongs to the next wrapper.
        """
        try:
            current = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return False
        if not isinstance(current, dict):
            return False
        first = self._first or {}
        if current.get("pid") != first.get("pid"):
            return False
        written = self._written or {k: first[k] for k in OWNED_KEYS if k in first}
        return all(current.get(k) == written.get(k) for k in OWNED_KEYS)

    def delete(self) -> bool:
        """Clean shutdown: the file goes away (the launcher reads that as stopped).

        Only a file that is still ours (:meth:`still_ours`); returns whether it was deleted.
        """
        if not self.still_ours():
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
