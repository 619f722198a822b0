"""A Seamless user's script: ``seamless.config.init()`` and real transformations on the daskserver.

Run it in the project directory of a :mod:`tests.support.seamless_stack` home
(its environment). Prints one JSON line: per workload its result, wall
seconds and how many Dask tasks the scheduler ran for it.

    python -m tests.support.seamless_driver simple parallel nested seamless_run

Settings a test gives in the environment: ``DASKSERVER_TIMEOUT`` (the
daskserver's ``--timeout``, seconds; seamless-config's default is 600),
``WORKLOAD_TIMEOUT`` (seconds after which a workload that gave nothing is
reported as hanging, and the next one runs), ``MANY`` (how many
transformations ``many`` runs), ``HOLD_SECONDS`` (how long ``hold`` keeps
its results while idle).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

PARALLEL = 20


def simple() -> Any:
    from seamless.transformer import direct

    @direct
    def add(a, b):
        return a + b

    return add(19, 23)


def parallel() -> Any:
    from seamless.transformer import delayed

    @delayed
    def square(i, salt):
        import time

        time.sleep(0.5)
        return i * i

    transformations = [square(i, "parallel") for i in range(PARALLEL)]
    for tf in transformations:
        tf.start()
    return sum(tf.run() for tf in transformations)


def nested() -> Any:
    from seamless.transformer import direct

    @direct
    def outer(n):
        from seamless.transformer import direct

        @direct
        def inner(x):
            return 10 * x

        return [inner(i) for i in range(n)]

    return outer(3)


def nested_parallel() -> Any:
    """``NESTED_OUTER`` (default 7) outer transformations at once, each running 3 nested ones:
    its own (``NESTED_SHARED=0``, default) or the same 3 for every outer one (``NESTED_SHARED=1``)."""
    from seamless.transformer import delayed

    @delayed
    def outer(n, tag, inner_tag):
        from seamless.transformer import direct

        @direct
        def inner(x, tag):
            return 10 * x

        return sum(inner(i, inner_tag) for i in range(n))

    shared = os.environ.get("NESTED_SHARED", "0") == "1"
    transformations = [outer(3, f"outer-{k}", "shared" if shared else f"outer-{k}")
                       for k in range(int(os.environ.get("NESTED_OUTER", "7")))]
    for tf in transformations:
        tf.start()
    return [tf.run() for tf in transformations]


def seamless_run() -> Any:
    """A ``seamless-run`` job whose command itself calls ``seamless-run`` (in the worker's pool)."""
    done = subprocess.run(["seamless-run", "seamless-run echo nested-run-ok"], capture_output=True, text=True,
                          timeout=240)
    if done.returncode != 0:
        return {"returncode": done.returncode, "stderr": done.stderr[-3000:]}
    return done.stdout.strip()


def seamless_run_parallel() -> Any:
    """``SEAMLESS_RUN_OUTER`` (default 2) ``seamless-run`` jobs at once, each calling ``seamless-run``."""
    outer = int(os.environ.get("SEAMLESS_RUN_OUTER", "2"))
    jobs = [subprocess.Popen(["seamless-run", f"seamless-run echo nested-run-{k}-ok"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for k in range(outer)]
    results = []
    for job in jobs:
        stdout, stderr = job.communicate(timeout=240)
        results.append(stdout.strip() if job.returncode == 0 else {"returncode": job.returncode,
                                                                   "stderr": stderr[-3000:]})
    return results


def ten() -> Any:
    """Ten small transformations at once."""
    from seamless.transformer import delayed

    @delayed
    def triple(i, salt):
        return 3 * i

    transformations = [triple(i, "ten") for i in range(10)]
    for tf in transformations:
        tf.start()
    return sum(tf.run() for tf in transformations)


def many() -> Any:
    """``MANY`` (default 500) small transformations started at once: the sum of their results."""
    from seamless.transformer import delayed

    @delayed
    def increment(i, salt):
        return i + 1

    transformations = [increment(i, "many") for i in range(int(os.environ.get("MANY", "500")))]
    for tf in transformations:
        tf.start()
    return sum(tf.run() for tf in transformations)


def crash() -> Any:
    """A transformation whose process dies (``os._exit(7)``): the client must get an exception."""
    from seamless.transformer import direct

    @direct
    def die(status, salt):
        import os

        os._exit(status)

    return die(7, "crash")


def crash_again() -> Any:
    """Another transformation whose process dies, on the worker that ``crash`` had restarted."""
    from seamless.transformer import direct

    @direct
    def die(status, salt):
        import os

        os._exit(status)

    return die(7, "crash-again")


def after_crash() -> Any:
    """A new transformation, after ``crash``: the cluster must still run work."""
    from seamless.transformer import direct

    @direct
    def multiply(a, b):
        return a * b

    return multiply(6, 7)


def hold() -> Any:
    """Ten transformations whose results this client keeps while it does nothing for ``HOLD_SECONDS``
    (longer than the daskserver's idle timeout), then one more: the cluster must still be there."""
    from seamless.transformer import delayed

    @delayed
    def square(i, salt):
        return i * i

    held = [square(i, "hold") for i in range(10)]
    for tf in held:
        tf.start()
    first = sum(tf.run() for tf in held)
    time.sleep(float(os.environ.get("HOLD_SECONDS", "0")))
    return [first, square(10, "hold").run(), sum(tf.value for tf in held)]


def where() -> Any:
    """The host name of the process that ran a transformation (a worker pod's name, on Kubernetes)."""
    from seamless.transformer import direct

    @direct
    def hostname(salt):
        import socket

        return socket.gethostname()

    return hostname("where")


def rerun() -> Any:
    """The same as ``simple`` + ``parallel`` + ``nested`` again: from cache when a first process ran them."""
    return [simple(), parallel(), nested()]


WORKLOADS: dict[str, Callable[[], Any]] = {
    "simple": simple, "parallel": parallel, "nested": nested, "seamless_run": seamless_run, "rerun": rerun,
    "nested_parallel": nested_parallel, "seamless_run_parallel": seamless_run_parallel, "where": where,
    "ten": ten, "many": many, "crash": crash, "crash_again": crash_again, "after_crash": after_crash, "hold": hold,
}


def _scheduler_transitions(client: Any) -> tuple[int, list[str]]:
    """The scheduler's transition count and the prefixes of tasks it has seen so far."""
    def probe(dask_scheduler: Any) -> tuple[int, list[str]]:
        return dask_scheduler.transition_counter, sorted(dask_scheduler.task_prefixes)

    return client.run_on_scheduler(probe)


def _bounded(call: Callable[[], Any], limit: float | None) -> tuple[bool, Any, str | None]:
    """``call()`` in a daemon thread for at most ``limit`` seconds (None: no bound): (finished, result, error)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    if limit is None:
        target()
        return True, outcome.get("result"), outcome.get("error")
    thread = threading.Thread(target=target, name="bounded-call", daemon=True)
    thread.start()
    thread.join(limit)
    return not thread.is_alive(), outcome.get("result"), outcome.get("error")


def _workload_limit() -> float | None:
    limit = os.environ.get("WORKLOAD_TIMEOUT")
    return float(limit) if limit else None


def _run_workload(name: str) -> tuple[Any, str | None]:
    """The workload's result or error; after ``WORKLOAD_TIMEOUT`` seconds without either, a hang."""
    limit = _workload_limit()
    finished, result, error = _bounded(WORKLOADS[name], limit)
    if not finished:
        return None, f"hangs: no result and no error in {limit:g} s"
    return result, error


def _set_daskserver_timeout(seconds: str) -> None:
    """What a user does for a shorter idle timeout than seamless-config's 600 s: redefine the
    daskserver tool with another ``timeout`` (it becomes the wrapper's ``--timeout``)."""
    from pathlib import Path

    import seamless_config
    import yaml
    from seamless_config.config_files import load_tools
    from seamless_config.tools import define_tools

    load_tools()
    tools = yaml.safe_load((Path(seamless_config.__file__).parent / "tools.yaml").read_text())
    define_tools({"daskserver": {**tools["daskserver"], "timeout": int(seconds)}})


def main(names: list[str]) -> dict[str, Any]:
    import seamless.config

    if os.environ.get("DASKSERVER_TIMEOUT"):
        _set_daskserver_timeout(os.environ["DASKSERVER_TIMEOUT"])
    started = time.monotonic()
    seamless.config.init(workdir=os.getcwd())
    from seamless_dask.transformer_client import get_seamless_dask_client

    dask_client = get_seamless_dask_client()._client
    out: dict[str, Any] = {"init_seconds": round(time.monotonic() - started, 2),
                           "scheduler": dask_client.scheduler.address, "workloads": {}}
    time.sleep(0.5)  # the client's start-up no-op task settles before counting
    for name in names:
        before, _ = _scheduler_transitions(dask_client)
        t0 = time.monotonic()
        result, error = _run_workload(name)
        seconds = round(time.monotonic() - t0, 2)
        after, prefixes = _scheduler_transitions(dask_client)
        out["workloads"][name] = {"result": result, "error": error, "seconds": seconds,
                                  "transitions": after - before, "prefixes": prefixes}
    # Client.run waits for every worker without a deadline: a worker that stopped answering (after a hung
    # workload, say) must give a report that says so, not a driver that never prints one.
    limit = _workload_limit()
    finished, throttles, error = _bounded(lambda: _throttles(dask_client), limit)
    out["throttles"] = throttles if finished and error is None else {
        "error": error or f"no answer from the workers in {limit:g} s"}
    return out


def _seamless_permission_capacity() -> int | None:
    """On a worker: capacity of seamless-dask's own permission manager (None: not configured)."""
    from seamless_dask import permissions

    manager = permissions._manager
    return None if manager is None else manager.capacity


def _throttles(dask_client: Any) -> dict[str, Any]:
    """Which permission manager the work asked: seamless-dask's per worker, or ours on the scheduler."""
    from seamless_dask_runtime.throttle import ThrottleClient, ThrottleNotInstalledError

    try:
        ours = ThrottleClient(dask_client).stats()
    except ThrottleNotInstalledError:  # the original wrapper has none
        ours = None
    return {"ours": ours, "seamless": list(dask_client.run(_seamless_permission_capacity).values())}


if __name__ == "__main__":
    report = main(sys.argv[1:])
    print(json.dumps(report, default=repr), flush=True)
    if any((w["error"] or "").startswith("hangs:") for w in report["workloads"].values()):
        os._exit(0)  # a hung transformation would hang the shutdown too: the report is out
    import seamless

    seamless.close()
