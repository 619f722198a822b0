"""``walltime`` as each batch system spells it, from one meaning.

The status file may say ``01:00:00``, ``1-00:00:00``, ``55m``, ``1h``, ``3300s``
or a bare number, which means seconds everywhere (Dask's unit, and the one the
worker lifetime is computed in). dask-jobqueue pastes its ``walltime`` argument
verbatim into the job header, so it must already be in the batch system's own
format: Slurm reads a bare number as minutes and rejects ``55m``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

from ...model.durations import Duration


def _split(delta: timedelta) -> tuple[int, int, int]:
    """Hours, minutes, seconds, rounded up to the whole second (a job never gets less than asked)."""
    total = math.ceil(delta.total_seconds())
    return total // 3600, total % 3600 // 60, total % 60


def hours_minutes_seconds(delta: timedelta) -> str:
    """``HH:MM:SS``, hours unbounded (PBS ``-l walltime``, SGE ``h_rt``, OAR ``walltime``)."""
    hours, minutes, seconds = _split(delta)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def slurm_time(delta: timedelta) -> str:
    """``HH:MM:SS`` below a day, ``D-HH:MM:SS`` from a day on (``sbatch --time``)."""
    hours, minutes, seconds = _split(delta)
    if hours < 24:
        return f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{hours // 24}-{hours % 24:02d}:{minutes:02d}:{seconds:02d}"


def hours_minutes(delta: timedelta) -> str:
    """``HH:MM``, rounded up to the minute (LSF ``bsub -W`` has no seconds)."""
    minutes = math.ceil(delta.total_seconds() / 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


WALLTIME_FORMATS: dict[str, Callable[[timedelta], str]] = {
    "slurm": slurm_time,
    "pbs": hours_minutes_seconds,
    "sge": hours_minutes_seconds,
    "oar": hours_minutes_seconds,
    "lsf": hours_minutes,
    # HTCondor jobs have no walltime directive in dask-jobqueue; the lifetime still uses it.
}


def batch_walltime(walltime: str, system: str) -> str | None:
    """The walltime directive's value for ``system``, or ``None`` where there is none."""
    spell = WALLTIME_FORMATS.get(system)
    return spell(Duration(walltime).delta) if spell else None  # the model's Duration is not parsed again
