"""Real Seamless on our wrapper: hashserver + database + remote-http-launcher + seamless-config
start our ``seamless-dask-wrapper``; real transformations run in the Seamless pool of its Dask workers.

One user session (a first process) runs simple, 20 parallel, nested and a ``seamless-run`` that calls
``seamless-run``; a second process reruns the same work and must be served from cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.seamless_stack import (
    SeamlessHome,
    make_home,
    missing_stack,
    pool_processes,
    service_log,
    stop_services,
    wrapper_script,
)

ROOT = Path(__file__).parent.parent.parent
VENV_BIN = Path(sys.executable).parent

if missing_stack(VENV_BIN):
    pytest.skip(f"the real Seamless stack is not installed (missing {', '.join(missing_stack(VENV_BIN))}); "
                "pip install -e '.[test]'", allow_module_level=True)

pytestmark = pytest.mark.slow


def run_driver(home: SeamlessHome, *workloads: str, **settings: str) -> dict[str, Any]:
    """Run a user process doing ``workloads``; ``settings`` go to its environment (see the driver)."""
    env = {**home.environment(), "PYTHONPATH": str(ROOT), **settings}
    done = subprocess.run([sys.executable, "-m", "tests.support.seamless_driver", *workloads], cwd=home.project,
                          env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"driver printed no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-5000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SeamlessHome, dict[str, Any], dict]]:
    home = make_home(tmp_path_factory.mktemp("seamless"), VENV_BIN)
    try:
        report = run_driver(home, "simple", "parallel", "nested", "seamless_run")
        yield home, report, pool_processes(home)
    finally:
        stop_services(home)
        print(service_log(home, "daskserver"))  # shown when a test failed


def workload(report: dict[str, Any], name: str) -> dict[str, Any]:
    result = report["workloads"][name]
    assert result["error"] is None, result
    return result


def test_the_launcher_starts_our_wrapper(session: tuple) -> None:
    home, _report, _pool = session
    script = wrapper_script(home)
    assert script is not None, "no daskserver process found in the launcher's state"
    assert Path(script).read_text().count("seamless_dask_runtime.launcher.wrapper.cli") == 1, \
        f"the launcher ran {script}, which is not this project's seamless-dask-wrapper"


def test_simple_parallel_and_nested_transformations(session: tuple) -> None:
    _home, report, _pool = session
    assert workload(report, "simple")["result"] == 42
    assert workload(report, "parallel")["result"] == sum(i * i for i in range(20))
    assert workload(report, "nested")["result"] == [0, 10, 20]
    assert workload(report, "parallel")["transitions"] > 0  # they really ran on the Dask cluster


def test_seamless_run_inside_a_transformation(session: tuple) -> None:
    _home, report, _pool = session
    result = workload(report, "seamless_run")["result"]
    assert isinstance(result, str) and result.splitlines()[-1] == "nested-run-ok", result


def test_every_pool_process_started_with_the_remote_clients(session: tuple) -> None:
    _home, _report, pool = session
    assert pool, "no Seamless pool process under the wrapper's Dask workers"
    assert all(pool.values()), f"pool processes without SEAMLESS_REMOTE_CLIENTS: {pool}"


def test_seamless_asks_its_own_permission_manager_never_ours(session: tuple) -> None:
    _home, report, _pool = session
    throttles = report["throttles"]
    # seamless-dask's manager lives in each Dask worker: throttle 3 x 2 Seamless workers.
    assert throttles["seamless"] == [6], throttles
    # Ours (on the scheduler, for plain Dask clients) saw none of the nested or parallel work.
    ours = throttles["ours"]
    assert ours["granted_total"] == ours["denied_total"] == ours["in_flight"] == 0, ours


def test_a_new_process_is_served_from_cache_without_dask_tasks(session: tuple) -> None:
    home, _report, _pool = session
    rerun = workload(run_driver(home, "rerun"), "rerun")
    assert rerun["result"] == [42, sum(i * i for i in range(20)), [0, 10, 20]]
    assert rerun["transitions"] == 0, f"the scheduler ran tasks for cached work: {rerun}"


def test_the_wrapper_log_tells_what_happened_once(session: tuple) -> None:
    home, _report, _pool = session
    log = service_log(home, "daskserver")
    for line in ("Seamless environment set in Dask worker",  # ours, on each worker
                 "Set remote clients inside Dask worker",  # seamless-dask's plugin, on each worker
                 "Spawned Seamless workers inside Dask worker",
                 "distributed.scheduler - INFO - Register worker",
                 "seamless-dask-wrapper INFO running: scheduler"):
        assert line in log, f"{line!r} missing from the wrapper's log:\n{log[-3000:]}"
    lines = [line for line in log.splitlines() if line.strip()]
    assert sum("seamless-dask-wrapper INFO running: scheduler" in line for line in lines) == 1, log[-3000:]
    assert "scheduler_activity" not in log  # the idle monitor's once-a-second poll is not news
