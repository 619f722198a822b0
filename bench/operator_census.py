"""Run ``seamless-dask-operator`` with a census of its memory every few seconds (for the benches' evidence).

``python bench/operator_census.py OUT.jsonl [operator arguments]`` runs the operator's ``main.run()`` in this
process and appends one JSON line per census to OUT: resident memory, Python's allocated blocks, the number
of objects the garbage collector tracks, the most common types among them (and the types holding most
memory, shallow sizes; the most numerous functions and coroutines by name), asyncio tasks, and the events
waiting in asyncio queues (kopf queues each object's watch events: a backlog holds whole bodies). With
``CENSUS_TRACEMALLOC=1`` also the 15 source lines holding most memory (slower: every allocation is traced), and with
``CENSUS_TRACEMALLOC_FRAMES=N`` (N > 1) the 25 call paths, N frames deep, holding most; with
``CENSUS_TRACEMALLOC_DUMP=PREFIX`` each snapshot is written to PREFIX.0, PREFIX.1, ... (``tracemalloc.Snapshot.load``).
With ``CENSUS_HOLDERS=1`` also how much each part of the operator's long-lived state holds (deep
sizes: our memos, the follower, kopf's per-object memories, its indexes, the metrics, the tasks). With ``CENSUS_TRIM=1``
each census then asks glibc to give free heap memory back (``malloc_trim(0)``) and records the resident
memory after it: how much of the RSS is memory Python has freed and malloc kept.

The census itself costs a pass over the tracked objects (a fraction of a second at the sizes seen here).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path

INTERVAL = float(os.environ.get("CENSUS_INTERVAL", "10"))
FRAMES = int(os.environ.get("CENSUS_TRACEMALLOC_FRAMES", "1"))  # frames kept per traced allocation
HOLDERS = os.environ.get("CENSUS_HOLDERS") == "1"  # deep sizes of the operator's long-lived state (holders())
DUMP = os.environ.get("CENSUS_TRACEMALLOC_DUMP", "")  # path prefix: each census's snapshot, numbered


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _deep_mb(roots: list[object], seen: set[int]) -> float:
    """Memory reachable from ``roots`` and not counted before (``seen``): modules, classes and functions are the
    code's, not the data's, and event loops, threads and executors everyone's: none is followed."""
    import concurrent.futures
    import types

    skip = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.CodeType,
            asyncio.AbstractEventLoop, threading.Thread, concurrent.futures.Executor)
    size, stack = 0, list(roots)
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, skip):
            continue
        seen.add(id(o))
        size += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return round(size / 2**20, 1)


def holders(objects: list[object]) -> dict[str, float]:
    """What the operator's long-lived state holds, deep, each object counted once, in this order: our clusters'
    memos, kopf's indexes, the follower (each cluster's view and timer), the metrics registry, the bodies kopf keeps
    for daemons (none since the follower replaced them), the rest of kopf's per-object memories of those clusters
    and then of the other objects, the asyncio tasks (coroutine chains and what their frames hold), and last our
    operator memo (every object's memo refers to it)."""
    by_type: dict[str, list[object]] = collections.defaultdict(list)
    for o in objects:
        name = type(o).__name__
        if name in ("ResourceMemories", "OperatorIndexers", "CollectorRegistry", "Task", "OperatorMemo",
                    "ClusterMemo", "Follower"):
            by_type[name].append(o)
    seen = {id(o) for o in by_type["OperatorMemo"]}  # shared by every object's memo: counted last
    report = {f"cluster memos ({len(by_type['ClusterMemo'])})": _deep_mb(by_type["ClusterMemo"], seen)}
    report["kopf indexes"] = _deep_mb(by_type["OperatorIndexers"], seen)
    report["follower"] = _deep_mb(by_type["Follower"], seen)  # after the indexes, which its rounds are given
    report["metrics"] = _deep_mb(by_type["CollectorRegistry"], seen)
    memories = [m for r in by_type["ResourceMemories"] for m in getattr(r, "_items", {}).values()]
    with_daemons = [m for m in memories if m.daemons_memory.running_daemons]
    bodies = [m.daemons_memory.live_fresh_body for m in with_daemons]
    report["kopf's bodies of the clusters"] = _deep_mb([getattr(b, "_src", b) for b in bodies if b is not None], seen)
    report[f"kopf memories with daemons ({len(with_daemons)})"] = _deep_mb(with_daemons, seen)
    report[f"kopf memories, others ({len(memories) - len(with_daemons)})"] = _deep_mb(memories, seen)
    report[f"asyncio tasks ({len(by_type['Task'])})"] = _deep_mb(by_type["Task"], seen)
    seen.difference_update(id(o) for o in by_type["OperatorMemo"])
    report["operator memo"] = _deep_mb(by_type["OperatorMemo"], seen)
    return report


def census(out: Path, traced: bool, trim: bool) -> None:
    import tracemalloc

    for number in itertools.count():
        time.sleep(INTERVAL)
        t0 = time.monotonic()
        objects = gc.get_objects()
        types = collections.Counter(type(o).__name__ for o in objects)
        queued = sum(o.qsize() for o in objects if isinstance(o, asyncio.Queue))
        # What the most numerous callables and coroutines are (closures made per object stay as functions).
        functions = collections.Counter(f"{o.__module__}.{o.__qualname__}" for o in objects
                                        if type(o).__name__ == "function")
        coroutines = collections.Counter(o.cr_code.co_qualname for o in objects if type(o).__name__ == "coroutine")
        shallow: collections.Counter[str] = collections.Counter()
        for o in objects:
            shallow[type(o).__name__] += sys.getsizeof(o)
        tasks = types.get("Task", 0)
        held = holders(objects) if HOLDERS else None
        del objects
        line = {"time": time.time(), "rss_mb": round(_rss_mb("VmRSS"), 1), "hwm_mb": round(_rss_mb("VmHWM"), 1),
                "blocks": sys.getallocatedblocks(), "tracked": sum(types.values()), "tasks": tasks,
                "queued_events": queued, "types": types.most_common(12),
                "functions": functions.most_common(8), "coroutines": coroutines.most_common(8),
                "shallow_mb": [(name, round(size / 2**20, 1)) for name, size in shallow.most_common(12)]}
        if held is not None:
            line["held_mb"] = held
        if traced:
            snapshot = tracemalloc.take_snapshot()
            line["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            if DUMP:  # the whole snapshot, for tracemalloc.Snapshot.load() afterwards
                snapshot.dump(f"{DUMP}.{number}")
            line["top_lines"] = [(str(s.traceback), round(s.size / 2**20, 2), s.count)
                                 for s in snapshot.statistics("lineno")[:15]]
            if FRAMES > 1:  # who allocated what is still held: the call paths holding most memory
                line["top_paths"] = [([f"{f.filename.rsplit('site-packages/', 1)[-1]}:{f.lineno}" for f in s.traceback],
                                      round(s.size / 2**20, 2), s.count)
                                     for s in snapshot.statistics("traceback")[:25]]
        if trim:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            line["rss_after_trim_mb"] = round(_rss_mb("VmRSS"), 1)
        line["census_s"] = round(time.monotonic() - t0, 2)
        with out.open("a") as fh:
            fh.write(json.dumps(line) + "\n")


def main() -> None:
    out = Path(sys.argv.pop(1))
    traced = os.environ.get("CENSUS_TRACEMALLOC") == "1"
    if traced:
        import tracemalloc

        tracemalloc.start(FRAMES)
    trim = os.environ.get("CENSUS_TRIM") == "1"
    threading.Thread(target=census, args=(out, traced, trim), name="census", daemon=True).start()
    sys.argv[0] = "seamless-dask-operator"
    from seamless_dask_operator.main import run

    run()


if __name__ == "__main__":
    main()
