"""Durations and sizes as the status file spells them, parsed once.

A :class:`Duration` (``HH:MM:SS``, ``MM:SS``, Dask strings) and a :class:`Size`
(``54000MB``, ``4GiB``, bytes) are the user's text, kept verbatim for job scripts
and round trips, carrying the meaning parsed when the model was validated; every
formatter (Slurm time, Kubernetes quantity) reads that meaning, never the text.

Dask's spellings (``55m``, ``1.5h``, ``4GiB``, ``1e6 kB``) are read here with Dask's units
and arithmetic but without importing Dask: the model runs in the operator, whose image
has no Dask (``tests/unit/test_model_without_dask.py`` holds these parsers to ``dask.utils``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_CLOCK = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
# A number (sign, decimals, exponent) and a unit of letters; Dask's spellings, spaces anywhere.
_NUMBER_UNIT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)([a-z]*)$", re.IGNORECASE)
_TIME_UNITS = {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME_WORDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
               "millisecond": 1e-3, "microsecond": 1e-6, "nanosecond": 1e-9}
_SECONDS: dict[str, float] = {"": 1, **_TIME_UNITS, **_TIME_WORDS, **{f"{w}s": f for w, f in _TIME_WORDS.items()}}
_PREFIXES = "kmgtp"
_BYTES: dict[str, float] = {
    "": 1, "b": 1,
    **{p + b: 1000 ** (i + 1) for i, p in enumerate(_PREFIXES) for b in ("", "b")},
    **{p + "i" + b: 1024 ** (i + 1) for i, p in enumerate(_PREFIXES) for b in ("", "b")},
}


def _number_with_unit(text: str, units: dict[str, float]) -> float:
    """``'1.5 h'`` → 5400.0 (in the units' base); a unit alone means one of it, as in Dask (``'MB'``)."""
    compact = text.replace(" ", "")
    if not any(char.isdigit() for char in compact):
        compact = "1" + compact
    match = _NUMBER_UNIT.match(compact)
    if not match or match.group(2).lower() not in units:
        raise ValueError(f"{text!r} is not a number followed by a unit")
    return float(match.group(1)) * units[match.group(2).lower()]


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
        total = _number_with_unit(text, _SECONDS)
    except ValueError as exc:
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


_Spelled_T = TypeVar("_Spelled_T", bound="_Spelled")


class _Spelled(str):
    """The user's text, kept as spelled, with its meaning parsed once (:meth:`_parse`) when made."""

    def __new__(cls: type[_Spelled_T], text: str) -> _Spelled_T:
        if isinstance(text, cls):
            return text
        spelled = super().__new__(cls, text)
        spelled._parse(text)
        return spelled

    def _parse(self, text: str) -> None:
        raise NotImplementedError

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # Text in the model's schema; the model's own validator makes the instance after its text checks.
        return core_schema.str_schema()


class Duration(_Spelled):
    """A duration as spelled (``'55m'``, ``'01:00:00'``), with ``delta`` parsed once at validation."""

    delta: timedelta

    def _parse(self, text: str) -> None:
        self.delta = parse_duration(text)

    @property
    def seconds(self) -> float:
        return self.delta.total_seconds()


class Size(_Spelled):
    """A size as spelled (``'54000MB'``, ``'4GiB'``, ``'1000'``), with ``bytes`` parsed once at validation."""

    bytes: int

    def _parse(self, text: str) -> None:
        try:
            self.bytes = int(_number_with_unit(text, _BYTES))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{text!r} is not a size") from exc
