"""The operator image's venv with and without Dask: its size and the operator's memory at import.

``python bench/operator_image.py [--before REF] [--runs N]`` builds two venvs in a temporary directory, as
``operator/Dockerfile`` builds ``/opt/venv`` (the Dockerfiles' pinned versions, then our package with
``--no-deps``, then ``__pycache__`` removed):

- before: the operator's pins plus the base dependencies (dask, distributed, dask-jobqueue), and the source of
  REF (default: the last commit whose cluster model imported ``dask.utils``);
- after: the operator's pins only, and this checkout's source.

It prints each venv's size (``du -sm``) and the maximum RSS of ``import seamless_dask_operator.main,
seamless_dask_operator.handlers`` in each (``/usr/bin/time -v``; median, min and max of N runs, alternating),
with the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "ca542de"  # the cluster model still imported dask.utils; the operator image installed distributed
IMPORT = "import seamless_dask_operator.main, seamless_dask_operator.handlers"


def _pins(dockerfile: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)_VERSION=(\S+)$", dockerfile.read_text(), re.MULTILINE))


def _venv(where: Path, source: Path, requirements: list[str]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *requirements], check=True)
    subprocess.run([*pip, "--no-deps", str(source)], check=True)
    for cache in where.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    return where


def _size_mb(path: Path) -> int:
    return int(subprocess.run(["du", "-sm", str(path)], check=True, capture_output=True, text=True).stdout.split()[0])


def _max_rss_mb(venv: Path) -> float:
    # The image runs with PYTHONDONTWRITEBYTECODE=1 and no __pycache__: every import compiles, as here.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["/usr/bin/time", "-v", str(venv / "bin" / "python"), "-c", IMPORT], env=env,
                          check=True, capture_output=True, text=True, cwd="/")
    kilobytes = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert kilobytes, done.stderr
    return int(kilobytes.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git ref of the 'before' source (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    operator = _pins(REPO / "operator" / "Dockerfile")
    dask_version = _pins(REPO / "images" / "runtime" / "Dockerfile")["DASK"]
    names = {"KOPF": "kopf", "URLLIB3": "urllib3", "PYDANTIC": "pydantic", "PYYAML": "PyYAML",
             "PROMETHEUS_CLIENT": "prometheus-client", "CRYPTOGRAPHY": "cryptography"}
    pinned = [f"{names[key]}=={version}" for key, version in operator.items()]
    base = [f"dask=={dask_version}", f"distributed=={dask_version}", "dask-jobqueue>=0.9"]
    with tempfile.TemporaryDirectory(prefix="operator-image-") as tmp:
        old_source = Path(tmp) / "before-src"
        old_source.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old_source)], input=archive.stdout, check=True)
        venvs = {"before": _venv(Path(tmp) / "before", old_source, pinned + base),
                 "after": _venv(Path(tmp) / "after", REPO, pinned)}
        sizes = {name: _size_mb(path) for name, path in venvs.items()}
        rss: dict[str, list[float]] = {name: [] for name in venvs}
        for _ in range(args.runs):
            for name, path in venvs.items():
                rss[name].append(_max_rss_mb(path))
        load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.runs} runs each, alternating")
    print(f"{'':8} {'venv MB':>8} {'import max RSS MB (median, min-max)':>38}")
    for name in venvs:
        values = rss[name]
        print(f"{name:8} {sizes[name]:>8} {statistics.median(values):>20.1f} "
              f"({min(values):.1f}-{max(values):.1f})")


if __name__ == "__main__":
    main()
