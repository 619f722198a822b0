"""The same real Seamless workload on our wrapper and on the original, side by side.

Each round, per wrapper: a fresh user home (empty cache) whose stub conda
environment is that wrapper's venv, so remote-http-launcher starts the
hashserver, the database and *that* ``seamless-dask-wrapper``; a first
process runs simple, 20 parallel and nested transformations, then ``--many``
(500) small ones started at once; a second process reruns the first three
(cache hit). Rounds alternate the order. Prints the load, medians and
ours/original ratios (seconds; lower is better), and the CPU seconds all
processes (user process, wrapper and its workers and Seamless pool, hashserver,
database) spent on the first process's work: on a machine shared with other
work, wall times swing with the load, CPU seconds much less.

    bash bench/setup-original.sh          # the original in .bench/original, with the services
    .venv/bin/python bench/seamless_workload.py [--rounds 3] [--many 500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.seamless_stack import make_home, service_pids, stop_services, wrapper_script  # noqa: E402

WRAPPERS = {"ours": ROOT / ".venv" / "bin", "original": ROOT / ".bench" / "original" / "bin"}
FIRST = ("simple", "parallel", "nested", "many")
MEASURES = ("init", *FIRST, "cache hit", "cpu")
TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _role(service: str, depth: int, pid: int) -> str:
    """Which part of the stack a process is: a service, or under the daskserver (the wrapper, whose process
    holds the scheduler and the nannies), a Dask worker, a Seamless pool process, multiprocessing's helper."""
    if service != "daskserver":
        return service
    if depth == 0:
        return "wrapper"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        command = b""
    if b"resource_tracker" in command or b"forkserver" in command:
        return "mp helper"
    return "dask worker" if depth == 1 else "seamless pool"


def _services_cpu(home: Any) -> dict[str, float]:
    """CPU seconds of the services so far, by part: hashserver, database, the wrapper and each kind of process
    under it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    parts: dict[str, float] = {}
    for service, root in service_pids(home).items():
        todo = [(root, 0)]
        while todo:
            pid, depth = todo.pop()
            role = _role(service, depth, pid)
            parts[role] = parts.get(role, 0.0) + _cpu_seconds(pid)
            todo.extend((child, depth + 1) for child in children.get(pid, []))
    return parts


class Hang(RuntimeError):
    """A user process that gave no report in time (the Seamless pool hung)."""


def driver(home: Any, *workloads: str, timeout: float = 600, **settings: str) -> dict[str, Any]:
    env = {**home.environment(), "PYTHONPATH": str(ROOT), **settings}
    try:
        done = subprocess.run([sys.executable, "-m", "tests.support.seamless_driver", *workloads],
                              cwd=home.project, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Hang(f"no report from {' '.join(workloads)} in {timeout:g} s") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def one_round(name: str, many: int, timeout: float) -> dict[str, float]:
    home = make_home(Path(tempfile.mkdtemp(prefix=f"bench-seamless-{name}-")), WRAPPERS[name])
    try:
        started = time.monotonic()
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        first = driver(home, *FIRST, timeout=timeout, MANY=str(many))
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The services started in the first process (their CPU until then counts: start-up is work too).
        parts = _services_cpu(home)
        parts["client"] = (client_after.ru_utime + client_after.ru_stime
                           - client_before.ru_utime - client_before.ru_stime)
        cpu = sum(parts.values())
        script = wrapper_script(home) or "?"
        expected = "seamless_dask_runtime" if name == "ours" else "seamless_dask.wrapper"
        if expected not in Path(script).read_text():
            raise RuntimeError(f"{name}: the launcher ran {script}")
        errors = {k: v["error"] for k, v in first["workloads"].items() if v["error"]}
        if errors:
            raise RuntimeError(f"{name}: {errors}")
        if first["workloads"]["many"]["result"] != sum(i + 1 for i in range(many)):
            raise RuntimeError(f"{name}: many gave {first['workloads']['many']['result']}")
        rerun = driver(home, "rerun")["workloads"]["rerun"]
        result = {"init": first["init_seconds"], **{k: first["workloads"][k]["seconds"] for k in FIRST},
                  "cache hit": rerun["seconds"], "cpu": cpu, "cache hit tasks": rerun["transitions"],
                  "total": time.monotonic() - started, **{f"cpu {part}": v for part, v in parts.items()}}
        return result
    finally:
        stop_services(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--many", type=int, default=500, help="small transformations started at once")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before a round counts as a hang")
    args = parser.parse_args()
    for name, venv_bin in WRAPPERS.items():
        if not (venv_bin / "seamless-dask-wrapper").exists():
            sys.exit(f"{name}: no {venv_bin}/seamless-dask-wrapper (bash bench/setup-original.sh)")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in WRAPPERS}
    hangs = dict.fromkeys(WRAPPERS, 0)
    for round_ in range(args.rounds):
        for name in WRAPPERS if round_ % 2 == 0 else reversed(WRAPPERS):
            load = os.getloadavg()[0]
            try:
                result = one_round(name, args.many, args.timeout)
            except Hang as exc:
                hangs[name] += 1
                print(f"round {round_ + 1} {name:8s} load {load:.1f}  HANG: {exc}", flush=True)
                continue
            runs[name].append({**result, "round": round_})
            print(f"round {round_ + 1} {name:8s} load {load:.1f}  "
                  + "  ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)
    print(f"\nmedians over the rounds that finished, seconds (many = {args.many} transformations); hangs "
          f"{hangs}; load now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not all(runs.values()):
        return
    print(f"{'':10s}" + "".join(f"{m:>12s}" for m in MEASURES))
    medians = {name: {m: statistics.median(r[m] for r in rs) for m in MEASURES} for name, rs in runs.items()}
    for name in WRAPPERS:
        print(f"{name:10s}" + "".join(f"{medians[name][m]:12.2f}" for m in MEASURES))
    print(f"{'ours/orig':10s}" + "".join(
        f"{medians['ours'][m] / medians['original'][m]:12.2f}" if medians["original"][m] else f"{'-':>12s}"
        for m in MEASURES))
    parts = sorted({k for rs in runs.values() for r in rs for k in r if k.startswith("cpu ")})
    print("\nCPU seconds by part of the stack, medians (client: the user process; wrapper: scheduler, nannies, "
          "idle monitor)")
    print(f"{'':10s}" + "".join(f"{p[4:]:>15s}" for p in parts))
    part_medians = {name: {p: statistics.median(r.get(p, 0.0) for r in rs) for p in parts} for name, rs in runs.items()}
    for name in WRAPPERS:
        print(f"{name:10s}" + "".join(f"{part_medians[name][p]:15.2f}" for p in parts))
    print(f"{'ours/orig':10s}" + "".join(
        f"{part_medians['ours'][p] / part_medians['original'][p]:15.2f}" if part_medians["original"][p]
        else f"{'-':>15s}" for p in parts))
    # The machine's speed drifts between rounds; a ratio within each round (both wrappers back to back) drifts less.
    by_round = {name: {r["round"]: r for r in rs} for name, rs in runs.items()}
    both = sorted(set(by_round["ours"]) & set(by_round["original"]))
    if both:
        paired = {m: statistics.median(by_round["ours"][i][m] / by_round["original"][i][m] for i in both)
                  for m in ("many", "cpu")}
        print(f"ours/original round by round, median of {len(both)}: "
              f"many {paired['many']:.2f}, cpu {paired['cpu']:.2f}")
    print("Dask tasks on the cache hit:", {name: [r["cache hit tasks"] for r in rs] for name, rs in runs.items()})


if __name__ == "__main__":
    main()
