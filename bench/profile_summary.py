"""Summarize a ``py-spy record --format raw --threads`` profile (collapsed stacks): where the samples went.

Prints, as shares of all samples: per thread kind (kopf's event loop, handler threads, retire pool, ...),
per frame where a sample was taken ("self"), per function anywhere on the stack ("inclusive", each counted
once per sample), and per area (the operator's own code, kopf, asyncio, JSON, TLS/HTTP, logging, ...).

Run: ``.venv/bin/python bench/profile_summary.py PROFILE.txt [--top 25] [--match REGEX]``.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")
AREAS = (  # first match wins: the innermost frame of a known area names the sample's area
    ("json", ("json/", "_json")),
    ("TLS/socket", ("ssl.py", "socket.py", "selectors.py")),
    ("HTTP client (urllib3/http.client)", ("urllib3/", "http/client.py")),
    ("aiohttp", ("aiohttp/",)),
    ("logging", ("logging/",)),
    ("seamless_dask_operator", ("seamless_dask_operator/",)),
    ("seamless_dask_runtime/pydantic", ("seamless_dask_runtime/", "pydantic")),
    ("kopf", ("kopf/",)),
    ("asyncio", ("asyncio/",)),
    ("threading/concurrent", ("threading.py", "concurrent/")),
)


def thread_kind(name: str) -> str:
    name = re.sub(r"^thread \(\d+\): ", "", name)
    if name.startswith("ThreadPoolExecutor"):
        return "kopf handler threads (rounds, sync handlers)"
    if name.startswith("retire"):
        return "retire pool"
    if name == "MainThread":
        return "MainThread (kopf's event loop)"
    return re.sub(r"[-_]?\d+$", "", name) or "?"


def area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for label, needles in AREAS:
            if any(n in frame for n in needles):
                return label
    return "other"


def load(path: Path) -> list[tuple[str, list[str], int]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        thread, *frames = stack.split(";")
        out.append((thread, frames, int(count)))
    return out


def function(frame: str) -> str:
    match = FRAME.match(frame)
    return f"{match['func']} ({match['file']})" if match else frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default=None, help="only samples with a frame matching this regex")
    args = parser.parse_args(argv)
    samples = load(args.profile)
    if args.match:
        pattern = re.compile(args.match)
        samples = [s for s in samples if any(pattern.search(f) for f in s[1])]
    total = sum(c for _, _, c in samples) or 1
    threads: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    for thread, frames, count in samples:
        threads[thread_kind(thread)] += count
        if frames:
            own[function(frames[-1])] += count
        for name in {function(f) for f in frames}:
            inclusive[name] += count
        areas[area(frames)] += count

    def show(title: str, counter: collections.Counter[str], top: int) -> None:
        print(f"\n{title}")
        for name, count in counter.most_common(top):
            print(f"  {100 * count / total:5.1f}%  {name}")

    print(f"{args.profile}: {total} samples{f' matching {args.match!r}' if args.match else ''}")
    show("by thread", threads, 10)
    show("by area (innermost known frame)", areas, 12)
    show("self (innermost frame)", own, args.top)
    show("inclusive (anywhere on the stack)", inclusive, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
