"""seamless-dask-wrapper on a real LocalCluster, started as a subprocess like a launcher does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from distributed import Client

from tests.support.wrapper import start_wrapper, stop, wait_for_exit, wait_for_status, write_launcher_status

LOCAL = {"cores": 1, "maximum_jobs": 2}
# Workers cannot import the test package: ship this module's functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _client(status: dict) -> Client:
    return Client(f"tcp://127.0.0.1:{status['port']}", timeout=20)


def test_running_compute_then_idle_timeout_deletes_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    launcher = write_launcher_status(path, {**LOCAL, "pure_dask": True})
    proc = start_wrapper(path, timeout=3)
    try:
        status = wait_for_status(path, proc)
        assert status["status"] == "running", status
        assert status["dashboard_port"] != status["port"]
        assert {k: status[k] for k in ("workdir", "log", "pid", "parameters")} == {
            k: launcher[k] for k in ("workdir", "log", "pid", "parameters")}
        with _client(status) as client:
            assert client.submit(sum, [1, 2, 3]).result() == 6
            assert len(client.scheduler_info()["workers"]) == 2
        assert wait_for_exit(proc, 60) == 0
        assert not path.exists()
    finally:
        stop(proc)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_shuts_down_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {**LOCAL, "pure_dask": True})
    proc = start_wrapper(path)
    try:
        assert wait_for_status(path, proc)["status"] == "running"
        proc.send_signal(sig)
        assert wait_for_exit(proc, 60) == 0
        assert not path.exists()
    finally:
        stop(proc)


def test_connected_client_keeps_cluster_alive(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {**LOCAL, "pure_dask": True})
    proc = start_wrapper(path, timeout=2)
    try:
        status = wait_for_status(path, proc)
        with _client(status) as client:
            client.submit(sum, [1]).result()
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(5)  # a connected client is activity: no shutdown
            assert path.exists()
        assert wait_for_exit(proc, 60) == 0
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"cores": -2}, "parameters.cores"),
        ({"cores": 1, "walltime": "half past nine"}, "parameters.walltime"),
        ({"cores": 1, "frobnicate": True}, "parameters.frobnicate"),
        ("not a dict", "parameters"),
    ],
)
def test_bad_parameters_fail_with_field_and_keep_file(tmp_path: Path, parameters: object, field: str) -> None:
    path = tmp_path / "status.json"
    launcher = write_launcher_status(path, parameters)
    proc = start_wrapper(path)
    try:
        status = wait_for_status(path, proc)
        assert wait_for_exit(proc) == 2
        assert status["status"] == "failed"
        assert field in status["error"]
        after = json.loads(path.read_text())
        assert {k: after[k] for k in launcher if k != "status"} == {k: v for k, v in launcher.items() if k != "status"}
    finally:
        stop(proc)


def test_unknown_cluster_string_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, LOCAL)
    proc = start_wrapper(path, cluster="no_such_module::Cluster")
    try:
        status = wait_for_status(path, proc)
        assert wait_for_exit(proc) == 2
        assert "no_such_module" in status["error"] and "cannot be imported" in status["error"]
    finally:
        stop(proc)


def test_corrupt_status_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_text('{"status": "starting", "parameters": {"cores": 1')
    proc = start_wrapper(path)
    assert wait_for_exit(proc, 60) == 2
    assert path.read_text() == '{"status": "starting", "parameters": {"cores": 1'
    assert "not valid JSON" in proc.stdout.read()  # type: ignore[union-attr]


def test_second_wrapper_on_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {**LOCAL, "pure_dask": True})
    first = start_wrapper(path)
    try:
        running = wait_for_status(path, first)
        second = start_wrapper(path)
        assert wait_for_exit(second, 60) == 1
        assert "owned by a live wrapper" in second.stdout.read()  # type: ignore[union-attr]
        assert json.loads(path.read_text()) == running  # the second one wrote nothing
    finally:
        stop(first)


def _worker_view(dask_worker) -> dict:  # type: ignore[no-untyped-def]
    import os

    return {"plugin": "seamless-worker" in dask_worker.plugins,
            "throttle": os.environ.get("SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"),
            "nthreads": dask_worker.state.nthreads,
            "cpu_count": os.environ.get("PYTHON_CPU_COUNT")}


def test_seamless_mode_workers_carry_plugin_throttle_and_scheduler_throttle(tmp_path: Path) -> None:
    from seamless_dask_runtime.throttle import ThrottleClient

    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 2, "maximum_jobs": 2, "transformation_throttle": 2})
    proc = start_wrapper(path)
    try:
        status = wait_for_status(path, proc)
        assert status["status"] == "running", status
        with _client(status) as client:
            client.wait_for_workers(2)
            views = client.run(_worker_view)
            # 4 threads per worker (cores 2 x throttle 2), but Seamless is told the CPUs the machine has.
            cpus = str(min(4, len(os.sched_getaffinity(0))))
            assert list(views.values()) == [{"plugin": True, "throttle": "2", "nthreads": 4, "cpu_count": cpus}] * 2
            assert ThrottleClient(client).stats()["capacity"] == 4  # throttle 2 x 2 workers
    finally:
        stop(proc)


def test_pure_dask_workers_carry_nothing(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_launcher_status(path, {"cores": 2, "maximum_jobs": 1, "pure_dask": True})
    proc = start_wrapper(path)
    try:
        status = wait_for_status(path, proc)
        with _client(status) as client:
            client.wait_for_workers(1)
            cpus = str(min(2, len(os.sched_getaffinity(0))))
            assert list(client.run(_worker_view).values()) == [
                {"plugin": False, "throttle": None, "nthreads": 2, "cpu_count": cpus}]
    finally:
        stop(proc)


def test_killed_wrapper_is_detected_by_lock_and_replaced(tmp_path: Path) -> None:
    """kill -9 leaves a 'running' file behind; the lock, not the PID or the file, says it is dead."""
    from seamless_dask_runtime.launcher.statusfile import StatusFile

    path = tmp_path / "status.json"
    write_launcher_status(path, {**LOCAL, "pure_dask": True})
    first = start_wrapper(path)
    try:
        stale = wait_for_status(path, first)
        assert StatusFile(path).owner_alive()
        first.kill()  # SIGKILL: no cleanup at all
        first.wait(10)
        assert json.loads(path.read_text())["status"] == "running"  # the file lies
        assert not StatusFile(path).owner_alive()  # the lock does not
        second = start_wrapper(path)
        try:
            fresh = wait_for_status(path, second)
            while fresh["port"] == stale["port"]:  # until the new wrapper has written its own status
                fresh = wait_for_status(path, second)
            with _client(fresh) as client:
                assert client.submit(sum, [1, 1]).result() == 2
        finally:
            stop(second)
    finally:
        stop(first)
