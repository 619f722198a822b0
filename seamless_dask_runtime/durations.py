"""Durations and sizes as the status file spells them, parsed once.

A :class:`Duration` (``HH:MM:SS``, ``MM:SS``, Dask strings) and a :class:`Size`
(``54000MB``, ``4GiB``, bytes) are the user's text, kept verbatim for job scripts
and round trips, carrying the meaning parsed when the model was validated; every
formatter (Slurm time, Kubernetes quantity) reads that meaning, never the text.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import dask.utils
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_CLOCK = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_duration(value: str | int | float) -> timedelta:
    """Parse ``01:00:00``, ``1-00:00:00`` (Slurm days), ``55m``, ``3300s`` or seconds.

    Raises ``ValueError`` with the offending value on anything else.
    """
    try:
        return _parse_duration(value)
    except OverflowError:
        raise ValueError(f"{value!r} is longer than any duration this can hold") from None


def _parse_duration(value: str | int | float) -> timedelta:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return timedelta(seconds=float(value))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a duration")
    text = value.strip()
    if ":" in text:
        match = _CLOCK.match(text)
        if not match:
            raise ValueError(f"{value!r} is not HH:MM:SS")
        days, first, second, third = match.groups()
        parts = [int(p) for p in (first, second, third) if p is not None]
        if len(parts) == 2:
            hours, minutes, seconds = 0, parts[0], parts[1]
        else:
            hours, minutes, seconds = parts
        if (minutes >= 60 and len(parts) == 3) or seconds >= 60:
            raise ValueError(f"{value!r} has minutes or seconds of 60 or more")
        return timedelta(days=int(days or 0), hours=hours, minutes=minutes, seconds=seconds)
    try:
        total = dask.utils.parse_timedelta(text, default="seconds")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{value!r} is not a duration") from exc
    if total is None or total < 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return timedelta(seconds=float(total))


def format_duration(delta: timedelta) -> str:
    """Shortest exact Dask spelling: ``55m``, ``2h``, ``90s``."""
    seconds = delta.total_seconds()
    if seconds != int(seconds):
        return f"{seconds}s"
    whole = int(seconds)
    if whole and whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole and whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


class Duration(str):
    """A duration as spelled (``'55m'``, ``'01:00:00'``), with ``delta`` parsed once at validation."""

    delta: timedelta

    def __new__(cls, text: str) -> Duration:
        if isinstance(text, Duration):
            return text
        duration = super().__new__(cls, text)
        duration.delta = parse_duration(text)
        return duration

    @property
    def seconds(self) -> float:
        return self.delta.total_seconds()

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Text in the model's schema; the model's own validator makes the instance after its text checks.
        return core_schema.str_schema()


class Size(str):
    """A size as spelled (``'54000MB'``, ``'4GiB'``, ``'1000'``), with ``bytes`` parsed once at validation."""

    bytes: int

    def __new__(cls, text: str) -> Size:
        if isinstance(text, Size):
            return text
        size = super().__new__(cls, text)
        try:
            size.bytes = int(dask.utils.parse_bytes(text))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{text!r} is not a size") from exc
        return size

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Text in the model's schema; the model's own validator makes the instance after its text checks.
        return core_schema.str_schema()
