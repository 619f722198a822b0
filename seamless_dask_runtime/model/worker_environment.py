"""The one function that computes a worker's environment.

HPC job scripts export it line by line and Kubernetes worker pods set it as
their container env: both call :func:`worker_environment`, so a worker gets
the same throttle and Dask settings wherever it runs.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from .dask_config import dask_config_flat
from .identity import THROTTLE_VARIABLE
from .parameters import ClusterParameters

EXCLUSIVE_VARIABLE = "SEAMLESS_DASK_QUEUE_EXCLUSIVE"
RECORD_VARIABLE = "SEAMLESS_DASK_RECORD_MODE"
CPU_COUNT_VARIABLE = "PYTHON_CPU_COUNT"
SCHEDULER_VARIABLE = "SEAMLESS_DASK_SCHEDULER"

# Only config under these prefixes reaches workers; scheduler-only keys stay out.
_EXPORTED_PREFIXES = ("distributed.worker.", "distributed.scheduler.", "distributed.nanny.")


def dask_env_name(key: str) -> str:
    """``distributed.worker.lifetime.duration`` → ``DASK_DISTRIBUTED__WORKER__LIFETIME__DURATION``."""
    parts = key.replace("-", "_").split(".")
    return "DASK_" + "__".join(part.upper() for part in parts if part)


def dask_env_value(value: Any) -> str:
    """How Dask reads it back (``ast.literal_eval``): ``False``, ``{"S": 1.0}``, ``1m``."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def worker_environment(params: ClusterParameters, *, cpu_count: str | None = None) -> dict[str, str]:
    """Environment variables of every worker, in seed 002's export order.

    ``cpu_count`` is how the worker learns its CPU count: a batch-system
    variable such as ``$SLURM_JOB_CPUS_PER_NODE`` in job scripts, a number in
    pods. Pure-Dask workers get no Seamless variables.
    """
    env: dict[str, str] = {}
    if not params.pure_dask:
        env[EXCLUSIVE_VARIABLE] = "1" if params.exclusive else "0"
        if params.record:
            env[RECORD_VARIABLE] = "1"
        if not params.exclusive:
            env[THROTTLE_VARIABLE] = str(params.transformation_throttle)
    for key, value in dask_config_flat(params).items():
        if key.startswith(_EXPORTED_PREFIXES):
            env[dask_env_name(key)] = dask_env_value(value)
    if cpu_count is not None:
        env[CPU_COUNT_VARIABLE] = cpu_count
        if params.exclusive:
            # The nanny pins BLAS pools to nthreads (1); an exclusive task owns the node.
            threads = {name: cpu_count for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
            env[dask_env_name("distributed.nanny.environ")] = json.dumps(threads)
    return env


def worker_process_environment(params: ClusterParameters) -> dict[str, str]:
    """What our worker plugin sets in each Dask worker process, before seamless-dask's plugin runs.

    The worker environment, plus ``SEAMLESS_DASK_SCHEDULER`` set empty on
    Seamless clusters. seamless-dask's plugin only ``setdefault``s it to the
    scheduler address; pool processes inherit it, and a ``seamless-run``
    inside a transformation that finds it connects as a new Dask client and
    submits a task that needs an ``S`` slot of a worker. Each worker has as
    many ``S`` slots as Seamless workers, and the waiting outer
    transformation holds one: once outer ``seamless-run`` transformations
    hold them all (one is enough at cores 1), the inner tasks never start
    (issue 13; ``bench/seamless_defects.py``). Empty, the inner
    ``seamless-run`` runs in the outer one's job, on the CPUs it holds, with
    the same remote clients (database, hashserver) and so the same cache.
    Not in job scripts (seed 002's lines) nor pod specs: only the plugin runs
    before seamless-dask's; a job that exports the variable keeps its value.
    """
    env = worker_environment(params)
    if not params.pure_dask:
        env[SCHEDULER_VARIABLE] = ""
    return env


_SHELL_REFERENCE = re.compile(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$")


def export_lines(env: dict[str, str]) -> list[str]:
    """``export NAME=value`` lines; a bare ``$VAR`` stays unquoted so the shell expands it."""
    lines = []
    for name, value in env.items():
        rendered = value if _SHELL_REFERENCE.match(value) else shlex.quote(value)
        if '"' in value and "$" in value:
            rendered = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"export {name}={rendered}")
    return lines
