"""``dask scheduler --preload seamless_dask_runtime.scheduler_preload`` as a real process.

Pods (and job scripts) pass the parameters in ``SEAMLESS_DASK_PARAMETERS``; an
explicit ``--parameters JSON`` preload argument (what in-process schedulers get
as ``preload_argv``) wins over it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from distributed import Client

from seamless_dask_runtime.model.commands import SCHEDULER_PRELOAD
from seamless_dask_runtime.model.identity import PARAMETERS_VARIABLE
from seamless_dask_runtime.plugin import WORKER_PLUGIN_NAME

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def plugin_environment(dask_scheduler: Any) -> dict[str, str] | None:
    from distributed.protocol.pickle import loads

    pickled = dask_scheduler.worker_plugins.get(WORKER_PLUGIN_NAME)
    return None if pickled is None else loads(pickled).environment


def target_name(dask_scheduler: Any) -> str:
    return str(dask_scheduler.adaptive_target.__name__)


def preloaded_throttle(tmp_path: Path, environment: dict[str, Any], *argv: str) -> str:
    """Start ``dask scheduler`` with our preload; the throttle its worker plugin hands to workers."""
    scheduler_file = tmp_path / "scheduler.json"
    # PYTHONPATH: the functions this test runs on the scheduler are pickled by reference to this module.
    env = {**os.environ, PARAMETERS_VARIABLE: json.dumps(environment), "PYTHONPATH": str(ROOT)}
    command = [str(Path(sys.executable).parent / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
               "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(scheduler_file),
               "--preload", SCHEDULER_PRELOAD, *argv]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        with Client(scheduler_file=str(scheduler_file), set_as_default=False) as client:
            environment = client.run_on_scheduler(plugin_environment)
            assert client.run_on_scheduler(target_name) == "seamless_adaptive_target"
        return environment["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_pods_pass_the_parameters_in_the_environment(tmp_path: Path) -> None:
    assert preloaded_throttle(tmp_path, {"cores": 1, "transformation_throttle": 7}) == "7"


def test_the_preload_argument_wins_over_the_environment(tmp_path: Path) -> None:
    parameters = json.dumps({"cores": 1, "transformation_throttle": 2})
    assert preloaded_throttle(tmp_path, {"cores": 1, "transformation_throttle": 7}, "--parameters", parameters) == "2"


def test_throttle_capacity_follows_what_each_worker_reports(tmp_path: Path) -> None:
    """A transformationThrottle edit replaces only the workers (their pods carry it): the scheduler's throttle
    takes each worker's own value, so old and new workers count right and the scheduler is never restarted."""
    from seamless_dask_runtime.model.identity import THROTTLE_VARIABLE
    from seamless_dask_runtime.throttle import ThrottleClient

    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, PARAMETERS_VARIABLE: json.dumps({"cores": 1, "transformation_throttle": 3})}
    dask = str(Path(sys.executable).parent / "dask")
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                                  "127.0.0.1:0", "--scheduler-file", str(scheduler_file), "--preload",
                                  SCHEDULER_PRELOAD], env=env, stderr=subprocess.DEVNULL)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert scheduler.poll() is None and time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        for throttle in (5, 2):  # an old worker and a new one, as during a rolling throttle edit
            workers.append(subprocess.Popen(
                [dask, "worker", "--nthreads", str(throttle), "--scheduler-file", str(scheduler_file)],
                env={**os.environ, THROTTLE_VARIABLE: str(throttle)}, stderr=subprocess.DEVNULL))
        with Client(scheduler_file=str(scheduler_file), set_as_default=False) as client:
            throttle = ThrottleClient(client)
            deadline = time.monotonic() + 60
            while (stats := throttle.stats())["capacity"] != 7:
                assert time.monotonic() < deadline, f"capacity never became 5 + 2: {stats}"
                time.sleep(0.2)
            assert stats["workers"] == 2
            workers.pop(0).terminate()  # the old worker retires
            while (stats := throttle.stats())["capacity"] != 2:
                assert time.monotonic() < deadline, f"capacity never became 2: {stats}"
                time.sleep(0.2)
    finally:
        for proc in [*workers, scheduler]:
            proc.terminate()
            proc.wait(timeout=30)
