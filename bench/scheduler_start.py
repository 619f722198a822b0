"""Benchmark: how soon a scheduler pod's command listens, ours vs a bare ``dask scheduler`` (not a timed test).

No pod is needed: the scheduler pod's container (its args and env, exactly as the operator builds them
for ``spec: {}``) runs as a local process, as ``tests/support/pods.py`` does, with its two ports made
free ones. Rounds alternate between the variants, each a fresh process:

* ``bare``: ``dask scheduler --port P --dashboard-address :Q`` (the floor);
* ``+routes``: the same with the pod's ``DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES`` (our idleness route);
* ``+preload``: the same with ``--preload seamless_dask_runtime.scheduler_preload`` and the pod's
  ``SEAMLESS_DASK_PARAMETERS``;
* ``pod``: the pod's whole command line and environment.

Per variant: seconds from the spawn until the comm port accepts, until the scheduler answers a Dask RPC
(it has finished starting, preloads included: comms accepted before wait for that) and until ``/health``
answers on the dashboard port (the readiness probe's question), medians and ranges; and the CPU seconds the
scheduler process itself spent until then, which the load of a shared machine changes far less than the
wall time. Then, with ``python -X importtime``,
what importing our preload and our routes adds in a process that imported ``distributed``'s scheduler CLI
already (median over rounds), and the modules that dominate it.

Run: ``.venv/bin/python bench/scheduler_start.py [--rounds 7] [--python VENV/bin/python]``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "operator"))

from tests.support.pods import container_command, container_env  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

PREFIX = ("distributed.cli.dask_scheduler",)
OURS = ("seamless_dask_runtime.scheduler_preload", "seamless_dask_runtime.http_routes")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def pod_container() -> dict[str, Any]:
    from seamless_dask_operator.builders import ClusterRef
    from seamless_dask_operator.builders.scheduler import scheduler_pod
    from seamless_dask_operator.resource import parse_spec

    pod = scheduler_pod(ClusterRef("start", "bench", "uid"), parse_spec({}, name="start"))
    return pod["spec"]["containers"][0]


def variants(python: str) -> dict[str, tuple[list[str], dict[str, str], int, int]]:
    """name -> (command, extra env, comm port, dashboard port)."""
    container = pod_container()
    env = container_env(container, "start-scheduler")
    bin_dir = Path(python).parent
    dask = str(bin_dir / "dask")
    out = {}
    for name in ("bare", "+routes", "+preload", "pod"):
        port, dashboard = free_port(), free_port()
        if name == "pod":
            command = container_command(container, env, {"8786": str(port), ":8787": f":{dashboard}"})
            command[0] = dask
            extra = dict(env)
        else:
            command = [dask, "scheduler", "--port", str(port), "--dashboard-address", f":{dashboard}"]
            extra = {}
            if name == "+routes":
                extra = {k: v for k, v in env.items() if k == "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"}
            if name == "+preload":
                command += ["--preload", "seamless_dask_runtime.scheduler_preload"]
                extra = {k: v for k, v in env.items() if k == "SEAMLESS_DASK_PARAMETERS"}
        out[name] = (command, extra, port, dashboard)
    return out


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=0.5) as answer:
            return answer.status == 200
    except OSError:
        return False


def process_cpu(pid: int) -> float:
    """user+sys CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serves(port: int) -> bool:
    """The scheduler answers a Dask RPC (``identity``): it has finished starting, preloads included (a comm
    accepted earlier waits until then)."""
    import asyncio

    from distributed.core import rpc

    async def ask() -> bool:
        async with rpc(f"tcp://127.0.0.1:{port}", timeout=1) as scheduler:
            return bool(await asyncio.wait_for(scheduler.identity(), 1))

    try:
        return asyncio.run(ask())
    except Exception:
        return False


@dataclasses.dataclass
class Start:
    port_open: float = float("nan")
    port_cpu: float = float("nan")
    serving: float = float("nan")
    serving_cpu: float = float("nan")
    health: float = float("nan")


def one_start(command: list[str], extra: dict[str, str], port: int, dashboard: int, timeout: float = 90) -> Start:
    """Seconds (wall, and the process's CPU) from the spawn until the comm port accepts, until the scheduler
    answers an RPC, until ``/health`` answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "SEAMLESS_"))}
    env.update(extra)
    t0 = time.monotonic()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out = Start()
    try:
        while time.monotonic() - t0 < timeout and proc.poll() is None:
            if out.port_open != out.port_open:
                if accepts(port):
                    out.port_open, out.port_cpu = time.monotonic() - t0, process_cpu(proc.pid)
                else:
                    time.sleep(0.01)
                    continue
            if out.health != out.health and healthy(dashboard):
                out.health = time.monotonic() - t0
            if out.serving != out.serving and serves(port):  # waits (up to 1 s) while the scheduler starts
                out.serving, out.serving_cpu = time.monotonic() - t0, process_cpu(proc.pid)
            if out.serving == out.serving and out.health == out.health:
                break
            time.sleep(0.01)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return out


def import_costs(python: str, rounds: int) -> None:
    """What importing our preload and routes adds once distributed's scheduler CLI is imported."""
    code = ";".join([f"import {m}" for m in PREFIX] + ["print('MARK', flush=True)", "import sys",
                                                       "sys.stderr.write('MARK\\n')"] + [f"import {m}" for m in OURS])
    totals: list[float] = []
    per_module: collections.defaultdict[str, list[int]] = collections.defaultdict(list)
    line = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "SEAMLESS_"))}
    for _ in range(rounds):
        err = subprocess.run([python, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True,
                             check=True).stderr
        after = err.split("MARK\n", 1)[1] if "MARK\n" in err else ""
        total = 0
        for text in after.splitlines():
            match = line.match(text)
            if not match:
                continue
            cumulative_us, indent, module = int(match[2]), len(match[3]), match[4]
            if indent == 1:  # top level: what the import statements after the mark pulled in, in all
                total += cumulative_us
            per_module[module].append(cumulative_us)
        totals.append(total / 1e6)
    print(f"\nimporting {', '.join(OURS)} after {', '.join(PREFIX)} (python -X importtime, {rounds} rounds): "
          f"median {statistics.median(totals):.3f} s [{min(totals):.3f}-{max(totals):.3f}]")
    top = sorted(per_module.items(), key=lambda kv: -statistics.median(kv[1]))[:20]
    print("   largest cumulative imports (median ms; nested ones are part of those above them):")
    for module, values in top:
        print(f"   {statistics.median(values) / 1000:8.1f}  {module}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--python", default=sys.executable, help="the interpreter (venv) to run the schedulers with")
    args = parser.parse_args(argv)
    print(f"start: {load()}; {args.python}", flush=True)
    results: dict[str, list[Start]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        for name, (command, extra, port, dashboard) in variants(args.python).items():
            results[name].append(one_start(command, extra, port, dashboard))
    print(f"\nseconds from spawn, wall and the scheduler process's own CPU (median [min-max] over {args.rounds} "
          f"rounds, variants alternating; the CPU is what the load on this machine does not change); {load()}")
    print(f"{'':9s} {'port accepts':>18s} {'CPU':>11s} {'answers an RPC':>18s} {'CPU':>11s} {'/health':>8s}")
    bare = {field: statistics.median(getattr(r, field) for r in results["bare"])
            for field in ("port_cpu", "serving_cpu")}

    def cell(rows: list[Start], field: str) -> str:
        values = [getattr(r, field) for r in rows]
        return f"{statistics.median(values):6.2f} [{min(values):4.1f}-{max(values):4.1f}]"

    for name, rows in results.items():
        port_cpu = statistics.median(r.port_cpu for r in rows)
        serving_cpu = statistics.median(r.serving_cpu for r in rows)
        print(f"{name:9s} {cell(rows, 'port_open')} {port_cpu:5.2f} x{port_cpu / bare['port_cpu']:4.2f} "
              f"{cell(rows, 'serving')} {serving_cpu:5.2f} x{serving_cpu / bare['serving_cpu']:4.2f} "
              f"{statistics.median(r.health for r in rows):8.2f}")
    import_costs(args.python, args.rounds)
    print(f"\nend: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
