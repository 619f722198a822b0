"""The launcher's JSON status file: read, update atomically, own exclusively, delete.

Every write re-reads the file and changes only the keys the wrapper owns, so
keys a launcher wrote (``workdir``, ``log``, ``pid``, ``parameters``, …)
survive; the new content goes to a temporary file in the same directory and
replaces the old one with ``os.replace``, so a reader never sees half a file.
Ownership is an ``flock`` on ``FILE.lock`` held for the wrapper's life: the
kernel drops it when the process dies, however it dies (seed 003).
"""

from __future__ import annotations

import contextlib
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


class StatusFile:
    """One status file and, once :meth:`acquire` succeeded, its exclusive owner."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        self._last_good: dict[str, Any] | None = None

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
        if not isinstance(contents, dict):
            raise StatusFileError(
                f"status file {self.path} holds a JSON {type(contents).__name__}, not an object"
            )
        self._last_good = contents
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
        return True

    # -- ownership -------------------------------------------------------
    def acquire(self) -> None:
        """Take the owner lock or raise :class:`StatusFileLocked`."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StatusFileLocked(
                f"status file {self.path} is owned by a live wrapper (lock {self.lock_path} is held)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def owner_alive(self) -> bool:
        """Whether some process holds the owner lock now (never a PID check)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
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
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self.lock_path.unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    # -- writing ---------------------------------------------------------
    def write_status(self, status: ClusterStatus) -> dict[str, Any]:
        """Replace the wrapper's keys with ``status``; every other key is kept."""
        try:
            current = self.read()
        except StatusFileError:
            # Corrupt or vanished: rebuild from the last good read so the
            # launcher's keys (parameters, pid, log, ...) are not lost.
            current = dict(self._last_good or {})
        payload = {k: v for k, v in current.items() if k not in OWNED_KEYS}
        payload.update(status.status_file_fields())
        self._atomic_write(payload)
        self._last_good = payload
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

    def delete(self) -> None:
        """Clean shutdown: the file goes away (the launcher reads that as stopped)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
