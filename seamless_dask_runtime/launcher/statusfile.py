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

The directory may be writable by other users (a shared 0777 scratch
directory), and the wrapper may run as root: every file here is opened
without following links (``O_NOFOLLOW``, and ``O_NONBLOCK`` so a planted FIFO
cannot hang it) and must then be a regular file. A link, FIFO, directory or
hard-linked file where the status file or its lock should be is refused
(:class:`StatusFileUnsafe`), never followed. Temporary files are created with
``O_EXCL | O_NOFOLLOW`` (``mkstemp``) and changed through their descriptor
only; the status file is replaced by ``rename``, which replaces a link itself,
never its target. Only a lock file this user owns gets the pid written into
it; a stale lock of another user is locked through a read-only descriptor and
never written, truncated or chmodded. Rewriting the status file in place (the
fallback on a full disk or read-only directory) needs a regular file of this
user with a single link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..model.status import ClusterStatus

OWNED_KEYS = ("status", "port", "dashboard_port", "scheduler_address", "dashboard_url", "error")


class StatusFileError(RuntimeError):
    """The status file is missing, unreadable or not what the protocol says."""


class StatusFileLocked(StatusFileError):
    """Another live wrapper owns this status file."""


class StatusFileUnsafe(StatusFileError):
    """A link, FIFO, directory or hard-linked file stands where the status file or its lock should be."""


class _Vanished(FileNotFoundError):
    """The file was unlinked between our open and our look at it (a lock's owner releasing it): try again."""


# Never follow a link planted at the path; never block on a planted FIFO; never leak the descriptor to children.
_SAFE_OPEN = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


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
        owner = f" (owned by uid {os.lstat(path).st_uid}, you are uid {os.geteuid()})"
    fix = _FIX_BY_ERRNO.get(exc.errno or 0, "check the path")
    return f"cannot {what} {path}: {exc.strerror or exc}{owner}; {fix}"


def _what_is_there(path: Path) -> str:
    """``"a symbolic link to /etc/passwd, owned by uid 65534"``: for the message refusing it."""
    try:
        info = os.lstat(path)
    except OSError:
        return "not a regular file"
    if stat.S_ISLNK(info.st_mode):
        try:
            kind = f"a symbolic link to {os.readlink(path)}"
        except OSError:
            kind = "a symbolic link"
    elif stat.S_ISREG(info.st_mode):
        kind = f"a regular file with {info.st_nlink} hard links"
    else:
        kind = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}.get(
            stat.S_IFMT(info.st_mode), "a device file")
    return f"{kind}, owned by uid {info.st_uid}"


def _unsafe(what: str, path: Path) -> StatusFileUnsafe:
    return StatusFileUnsafe(
        f"refusing {what} {path}: it is {_what_is_there(path)} (you are uid {os.geteuid()}), not a regular file; "
        "the wrapper never follows or writes through such a file, which someone with write access to the "
        "directory may have planted to make it overwrite another file: remove it, or use a directory only you "
        "can write")


def open_regular(path: Path, flags: int, what: str, mode: int = 0o644) -> int:
    """``os.open`` without following a link; the result must be a regular file with one link.

    Raises :class:`StatusFileUnsafe` for anything else, ``OSError`` for the usual faults (the caller says which).
    """
    try:
        fd = os.open(path, flags | _SAFE_OPEN, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise _unsafe(what, path) from None
        raise
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 0:
        os.close(fd)
        raise _Vanished(errno.ENOENT, f"{path} was removed while being opened")
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        raise _unsafe(what, path)
    return fd


def _read_text(path: Path, what: str = "status file") -> str:
    """The file's text, read without following a link (see :func:`open_regular`)."""
    fd = open_regular(path, os.O_RDONLY, what)
    with os.fdopen(fd, "rb") as stream:
        return stream.read().decode("utf-8")


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (the owner may have unlinked it)."""
    try:
        on_disk = os.lstat(path)
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
            text = _read_text(self.path)
        except FileNotFoundError:
            raise StatusFileError(f"status file {self.path} does not exist") from None
        except StatusFileUnsafe:
            raise
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

    def wait(self, timeout: float, interval: float = 0.1, stop: threading.Event | None = None) -> dict[str, Any]:
        """Wait until the launcher has written the file (it may start us first), or ``stop`` is set."""
        deadline = time.monotonic() + timeout
        stop = stop or threading.Event()
        while True:
            try:
                return self.read()
            except StatusFileUnsafe:
                raise  # a link stays a link: waiting changes nothing
            except StatusFileError:
                if self.path.exists() and self._is_complete_json():
                    raise
                if time.monotonic() >= deadline or stop.is_set():
                    raise
                stop.wait(interval)

    def _is_complete_json(self) -> bool:
        # A file that exists but is half-written by a non-atomic launcher gets
        # retried until the deadline; a complete but wrong one fails at once.
        try:
            json.loads(_read_text(self.path))
        except (OSError, ValueError, StatusFileError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return False
        except RecursionError:  # complete, just absurdly deep: read() says so
            return True
        return True

    # -- ownership -------------------------------------------------------
    def acquire(self) -> None:
        """Take the owner lock, or raise :class:`StatusFileLocked` (taken) / :class:`StatusFileError` (cannot)."""
        while True:
            try:
                fd, writable = self._open_lock()
            except _Vanished:
                continue  # the previous owner released it meanwhile: open the current file
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
        """The lock file's descriptor and whether the pid may be written into it.

        A stale lock file left by another user is no obstacle: ``flock`` works
        on a read-only descriptor. It is never written (root, who could, does
        not either): the pid goes only into a lock file this user owns.
        """
        try:
            fd = open_regular(self.lock_path, os.O_RDWR | os.O_CREAT, "owner lock")
        except _Vanished:
            raise
        except PermissionError as exc:
            if not os.path.lexists(self.lock_path):
                raise StatusFileError(_os_problem("create owner lock", self.lock_path, exc)) from None
            try:
                return open_regular(self.lock_path, os.O_RDONLY, "owner lock"), False
            except _Vanished:
                raise
            except OSError:
                raise StatusFileError(_os_problem("open owner lock", self.lock_path, exc)) from None
        except OSError as exc:
            raise StatusFileError(_os_problem("create owner lock", self.lock_path, exc)) from None
        return fd, os.fstat(fd).st_uid == os.geteuid()

    def owner_alive(self) -> bool:
        """Whether some process holds the owner lock now (never a PID check)."""
        try:
            fd = open_regular(self.lock_path, os.O_RDONLY, "owner lock")
        except (FileNotFoundError, StatusFileUnsafe):  # no lock, or not one a wrapper holds
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
        # mkstemp: O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600. After that only the descriptor is used: the name
        # may be replaced by someone else meanwhile (a shared directory), the descriptor may not.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(payload, stream, indent=4)
                stream.write("\n")
                stream.flush()
                with contextlib.suppress(FileNotFoundError):
                    current = os.lstat(self.path)
                    if stat.S_ISREG(current.st_mode):  # the launcher's mode, never a link target's
                        os.fchmod(stream.fileno(), current.st_mode & 0o777)
                os.fsync(stream.fileno())
            os.replace(tmp, self.path)  # replaces a link at self.path itself, never its target
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _write_in_place(self, payload: dict[str, Any]) -> None:
        # Truncating first frees the old blocks, so this works on a full disk too. Only a file of this user
        # with one link: anything else may be someone else's file behind the status file's name.
        fd = open_regular(self.path, os.O_WRONLY, "status file")
        if os.fstat(fd).st_uid != os.geteuid():
            os.close(fd)
            raise PermissionError(errno.EPERM, f"the status file belongs to uid {self.path.lstat().st_uid}, "
                                               "not this user: it is not rewritten in place")
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
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
            current = json.loads(_read_text(self.path))
        except (OSError, ValueError, RecursionError, StatusFileError):
            return False  # gone, unreadable, or a link: not ours
        if not isinstance(current, dict):
            return False
        first = self._first or {}
        if current.get("pid") != first.get("pid"):
            return False
        written = self._written or {k: first[k] for k in OWNED_KEYS if k in first}
        return all(current.get(k) == written.get(k) for k in OWNED_KEYS)

    def create(self, contents: dict[str, Any]) -> None:
        """Write a new status file (a scheduler pod is its own launcher); never through a planted link."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _SAFE_OPEN, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(contents, stream)

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
