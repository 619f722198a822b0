"""Run ``seamless-dask-operator`` with a census of its memory every few seconds (for the benches' evidence).

``python bench/operator_census.py OUT.jsonl [operator arguments]`` runs the operator's ``main.run()`` in this
process and appends one JSON line per census to OUT: resident memory, Python's allocated blocks, the number
of objects the garbage collector tracks, the most common types among them (and the types holding most
memory, shallow sizes; the most numerous functions and coroutines by name), asyncio tasks, and the events
waiting in asyncio queues (kopf queues each object's watch events: a backlog holds whole bodies). With
``CENSUS_TRACEMALLOC=1`` also the 15 source lines holding most memory (slower: every allocation is traced), and with
``CENSUS_TRACEMALLOC_FRAMES=N`` (N > 1) the 25 call paths, N frames deep, holding most.
With ``CENSUS_TRIM=1`` each census then asks glibc to give free heap memory back (``malloc_trim(0)``) and
records the resident memory after it: how much of the RSS is memory Python has freed and malloc kept.

The census itself costs a pass over the tracked objects (a fraction of a second at the sizes seen here).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

INTERVAL = float(os.environ.get("CENSUS_INTERVAL", "10"))
FRAMES = int(os.environ.get("CENSUS_TRACEMALLOC_FRAMES", "1"))  # frames kept per traced allocation


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def census(out: Path, traced: bool, trim: bool) -> None:
    import tracemalloc

    while True:
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
        del objects
        line = {"time": time.time(), "rss_mb": round(_rss_mb("VmRSS"), 1), "hwm_mb": round(_rss_mb("VmHWM"), 1),
                "blocks": sys.getallocatedblocks(), "tracked": sum(types.values()), "tasks": tasks,
                "queued_events": queued, "types": types.most_common(12),
                "functions": functions.most_common(8), "coroutines": coroutines.most_common(8),
                "shallow_mb": [(name, round(size / 2**20, 1)) for name, size in shallow.most_common(12)]}
        if traced:
            snapshot = tracemalloc.take_snapshot()
            line["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
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
