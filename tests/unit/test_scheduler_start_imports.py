"""A scheduler pod's ``dask scheduler`` listens as soon as a bare one: the preload and the HTTP routes it is
started with import nothing before it listens that ``dask scheduler`` does not import anyway (no pydantic, no
cluster model, no dask-jobqueue: bench/scheduler_start.py measured them at ~0.2 s of CPU per start)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pydantic", "seamless_dask_runtime.model.parameters", "dask_jobqueue", "seamless_dask_runtime.throttle")

PROBE = f"""
import json, sys
import distributed.cli.dask_scheduler  # what `dask scheduler` has imported when it imports a preload
before = set(sys.modules)
import seamless_dask_runtime.scheduler_preload, seamless_dask_runtime.http_routes
print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith({HEAVY!r}))))
"""


def test_the_scheduler_preload_and_routes_import_no_model_before_the_scheduler_listens() -> None:
    found = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(found.stdout) == []
