"""``python -m tests.support.lock_contender STATUS MARKER N``: take and release a status file's lock N times.

While it owns the lock it creates ``MARKER`` with ``O_EXCL``: if that finds the
marker already there, a second process owns the lock at the same time. Prints
``TAKEN CLASHES``.
"""

from __future__ import annotations

import os
import sys
import time

from seamless_dask_runtime.launcher.statusfile import StatusFile, StatusFileLocked


def contend(status_path: str, marker: str, rounds: int, limit: float = 60.0) -> tuple[int, int]:
    status_file = StatusFile(status_path)
    taken = clashes = 0
    deadline = time.monotonic() + limit
    while taken < rounds and time.monotonic() < deadline:
        try:
            status_file.acquire()
        except StatusFileLocked:
            continue
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            clashes += 1
        else:
            os.close(fd)
            os.unlink(marker)
        taken += 1
        status_file.release()
    return taken, clashes


if __name__ == "__main__":
    print(*contend(sys.argv[1], sys.argv[2], int(sys.argv[3])))
