"""A stop signal in the wrapper's first seconds: ``failed`` naming the signal, no traceback, nothing left running.

The launcher (or a user, or a batch system) may stop the wrapper before its
cluster is up: while Python starts, while Dask is imported, while the local
cluster starts. Each moment is reached for real and the signal sent then:

* ``early``: 0.3 s after the start, or as soon as the process catches
  the stop signals if that comes later (before it, the kernel's default action applies:
  the interpreter has not run a line of ours yet). ``/proc/PID/status`` says
  when; the test prints it.
* ``importing``: the owner lock exists, Dask is being imported.
* ``starting``: the local backend is starting the cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.wrapper import output, start_wrapper, stop, wait_for_exit, write_launcher_status

EARLY = 0.3


def _catches(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler for ``sig`` (``SigCgt`` of /proc/PID/status)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(int(line.split()[1], 16) for line in text.splitlines() if line.startswith("SigCgt:"))
    return bool(caught >> (sig - 1) & 1)


def _wait(condition, what: str, timeout: float = 60) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.01)
    return time.monotonic() - start


class _Lines:
    """The wrapper's output, read as it comes (so the test can act on a line)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.text += line

    def finish(self) -> str:
        self._thread.join(30)
        return self.text


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see signal handlers")


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("moment", ["early", "importing", "starting"])
def test_stop_signal_before_running_fails_with_the_reason(tmp_path: Path, sig: signal.Signals,
                                                          moment: str) -> None:
    path = tmp_path / "status.json"
    launcher = write_launcher_status(path, {"cores": 1, "maximum_jobs": 1, "pure_dask": True})
    started = time.monotonic()
    proc = start_wrapper(path)
    lines = _Lines(proc)
    try:
        if moment == "early":
            time.sleep(EARLY)
            _wait(lambda: _catches(proc.pid, signal.SIGHUP), "stop signals caught")  # SIGHUP: installed last
        elif moment == "importing":
            _wait(path.with_name(path.name + ".lock").exists, "owner lock taken")
        else:
            _wait(lambda: "starting local backend" in lines.text, "local backend starting")
        sent = time.monotonic() - started
        proc.send_signal(sig)
        code = wait_for_exit(proc, 120)
    finally:
        stop(proc)
    text = lines.finish()
    print(f"\n{moment}: {sig.name} sent {sent:.2f} s after the start")
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    assert code == 128 + sig, text
    status = json.loads(path.read_text())
    assert status["status"] == "failed", status
    assert status["error"].startswith(f"stopped by {sig.name} ") and "before the cluster was running" in status["error"]
    kept = ("pid", "parameters", "log")
    assert {k: status[k] for k in kept} == {k: launcher[k] for k in kept}
    assert not path.with_name(path.name + ".lock").exists()
    _wait(lambda: not _group_alive(proc.pid), "no nanny or worker left in the wrapper's session", timeout=10)


def _group_alive(pgid: int) -> bool:
    """Whether the process group still has members (the init process reaps the dead ones in a moment)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_proc
def test_sighup_while_waiting_for_the_launchers_file_says_so(tmp_path: Path) -> None:
    """Started before the launcher wrote the file (the wrapper waits up to 20 s): stopped at once, nothing
    written, one line on stderr."""
    path = tmp_path / "status.json"
    proc = start_wrapper(path)
    try:
        _wait(lambda: _catches(proc.pid, signal.SIGHUP), "SIGHUP caught")
        proc.send_signal(signal.SIGHUP)
        assert wait_for_exit(proc, 10) == 128 + signal.SIGHUP
    finally:
        stop(proc)
    lines = output(proc).strip().splitlines()
    assert len(lines) == 1 and "stopped by SIGHUP before the launcher wrote" in lines[0], lines
    assert not path.exists()
