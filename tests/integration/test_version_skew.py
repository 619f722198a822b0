"""Version skew with real processes: a client and a worker of another distributed release, from PyPI.

The other release is installed with ``pip install --no-deps --target DIR`` and
put first on ``PYTHONPATH`` of the client and worker processes: they import
and report that release (``get_versions()`` reads the installed metadata),
everything else comes from this environment. It is cached between runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest
from distributed import Client
from seamless_dask_operator.builders.scheduler import HTTP_ROUTES

from seamless_dask_runtime.model.identity import HTTP_ROUTES_VARIABLE
from tests.support.ports import free_port
from tests.support.waiting import wait_for
from tests.support.wrapper import (
    output,
    start_wrapper,
    stop,
    wait_for_exit,
    wait_for_status,
    write_launcher_status,
)

pytestmark = pytest.mark.slow
OURS = distributed.__version__
OTHER = "2026.7.1" if OURS != "2026.7.1" else "2026.6.0"
BIN = Path(sys.executable).parent
# A client that stays connected until its stdin closes, and says who it is.
HOLD_CLIENT = """
import sys, distributed
with distributed.Client(sys.argv[1], timeout=30) as client:
    print(distributed.__version__, client.id, flush=True)
    sys.stdin.read()
"""


@pytest.fixture(scope="module")
def other_release() -> Path:
    """A directory holding distributed and dask ``OTHER``, for ``PYTHONPATH``."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seamless-dask-operator-tests"
    target = cache / f"distributed-{OTHER}"
    if not (target / "distributed").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache))
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(staging),
                               f"distributed=={OTHER}", f"dask=={OTHER}"], capture_output=True, text=True,
                              timeout=300, check=False)
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"cannot install distributed=={OTHER} from PyPI: {proc.stderr.strip()[-500:]}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def other_env(release: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{release}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


class Held:
    """A client process of the other release, connected until closed."""

    def __init__(self, address: str, release: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD_CLIENT, address], env=other_env(release),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        assert line and line[0] == OTHER, f"the other client did not connect: {line} {self.proc.stderr.read()}"
        self.id = line[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


def versions(dashboard: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/api/v1/seamless/versions", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def pod_scheduler(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """``dask scheduler`` with the routes the operator's scheduler pods list."""
    port, dashboard = free_port(), free_port()
    log = open(tmp_path / "scheduler.log", "w")
    proc = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                             "--dashboard-address", f"127.0.0.1:{dashboard}"],
                            env={**os.environ, HTTP_ROUTES_VARIABLE: json.dumps(HTTP_ROUTES)},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: versions(dashboard), timeout=30, ignore=(OSError,), description="the versions route")
        yield f"tcp://127.0.0.1:{port}", dashboard
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def start_worker(address: str, name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen([str(BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1",
                                 "--no-dashboard"], env=env, stdout=out, stderr=subprocess.STDOUT)


def test_versions_route_names_the_client_and_worker_of_another_release(
        pod_scheduler: tuple[str, int], other_release: Path, tmp_path: Path) -> None:
    address, dashboard = pod_scheduler
    workers = [start_worker(address, "same-worker", dict(os.environ), tmp_path / "same.log"),
               start_worker(address, "other-worker", other_env(other_release), tmp_path / "other.log")]
    held = None
    try:
        with Client(address, timeout=30) as ours:
            ours.wait_for_workers(2, timeout=60)
            assert versions(dashboard)["skew"] is True  # the other worker alone
            held = Held(address, other_release)
            report = versions(dashboard)
            assert report["scheduler"]["distributed"] == report["scheduler"]["dask"] == OURS
            assert report["clients"][ours.id]["distributed"] == OURS
            assert report["clients"][held.id] == {**report["scheduler"], "distributed": OTHER, "dask": OTHER}
            assert {w["name"] for w in report["workers"].values()} == {"same-worker", "other-worker"}
            mismatched = {(m["role"], m["name"]): m for m in report["mismatches"]}
            assert set(mismatched) == {("worker", "other-worker"), ("client", held.id)}, report["mismatches"]
            for mismatch in mismatched.values():
                assert mismatch["differs"] == ["distributed", "dask"]
                assert mismatch["versions"]["distributed"] == OTHER
            assert report["message"] == (
                f"client {held.id} has distributed {OTHER}, dask {OTHER}; worker other-worker has distributed "
                f"{OTHER}, dask {OTHER}; the scheduler has distributed {OURS}, dask {OURS}")
            held.close()
            workers[1].terminate()
            workers[1].wait(30)
            report = wait_for(lambda: (r := versions(dashboard)) and not r["skew"] and r, timeout=30,
                              description="no skew once the other client and worker left")
            assert held.id not in report["clients"] and report["message"] == ""
    finally:
        if held is not None:
            held.close()
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                worker.wait(30)


def test_wrapper_logs_one_warning_line_when_a_client_of_another_release_connects(
        tmp_path: Path, other_release: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 1, "maximum_jobs": 1, "pure_dask": True})
    proc = start_wrapper(path)  # its stderr: what a launcher redirects to the service's log
    try:
        status = wait_for_status(path, proc)
        assert status["status"] == "running", status
        address = f"tcp://127.0.0.1:{status['port']}"
        with Client(address, timeout=30):
            pass  # same versions: nothing to say
        # The scheduler calls its plugins before the client's handshake completes: the line is written by now.
        held = Held(address, other_release)
        held.close()
        proc.send_signal(signal.SIGTERM)
        assert wait_for_exit(proc, 60) == 0
        lines = [line for line in output(proc).splitlines() if "version skew" in line]
        assert len(lines) == 1, lines
        assert " WARNING " in lines[0]
        assert (f"version skew: client {held.id} connected with distributed {OTHER}, dask {OTHER} but the scheduler "
                f"has distributed {OURS}, dask {OURS}") in lines[0]
        assert "--build-arg DASK_VERSION" in lines[0]
    finally:
        stop(proc)
