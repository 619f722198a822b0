"""The cluster model runs without Dask (the operator image has none) and still reads Dask's spellings as Dask does."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import dask.utils
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seamless_dask_runtime.model.durations import Size, parse_duration

REPO = Path(__file__).resolve().parents[2]

NUMBERS = st.one_of(
    st.integers(0, 10**7).map(str),
    st.decimals(0, 10**5, places=3, allow_nan=False, allow_infinity=False).map(str),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(0, 99), st.integers(-3, 9)),
    st.just(""),
)
SPACES = st.sampled_from(["", " ", "  "])


def _spelled(units: list[str]) -> st.SearchStrategy[str]:
    unit = st.sampled_from(units).flatmap(
        lambda u: st.lists(st.booleans(), min_size=len(u), max_size=len(u)).map(
            lambda upper: "".join(c.upper() if up else c for c, up in zip(u, upper, strict=True))))
    return st.builds(lambda n, s, u: f"{n}{s}{u}", NUMBERS, SPACES, unit)


BYTE_UNITS = ["", "b", "k", "kb", "ki", "kib", "m", "mb", "mib", "g", "gb", "gi", "gib", "t", "tb", "tib",
              "p", "pb", "pib", "x", "kbb", "bytes"]
TIME_UNITS = ["", "s", "ms", "us", "ns", "m", "h", "d", "w", "second", "seconds", "minute", "minutes", "hour",
              "hours", "day", "days", "week", "weeks", "millisecond", "milliseconds", "microseconds",
              "nanosecond", "min", "sec", "y"]


def _dask_or_error(parse, text: str):  # type: ignore[no-untyped-def]
    try:
        return parse(text)
    except (ValueError, KeyError, TypeError, OverflowError):
        return "error"


@given(_spelled(BYTE_UNITS))
def test_sizes_are_read_as_dask_reads_them(text: str) -> None:
    expected = _dask_or_error(dask.utils.parse_bytes, text)
    try:
        ours: int | str = Size(text).bytes
    except (ValueError, OverflowError):
        ours = "error"
    assert ours == expected, text


@given(_spelled(TIME_UNITS).filter(lambda t: t.strip() and not t.strip().startswith(".")))
def test_durations_are_read_as_dask_reads_them(text: str) -> None:
    # Dask reads a leading '.' as '1.' ('.5h' is 1.5 h); the model reads 0.5 h, and Dask's reading is left out.
    seconds = _dask_or_error(lambda t: dask.utils.parse_timedelta(t, default="seconds"), text.strip())
    # a timedelta holds microseconds and at most 999999999 days, as it did when Dask parsed
    expected = "error" if seconds == "error" or seconds < 0 else _dask_or_error(
        lambda s: timedelta(seconds=float(s)).total_seconds(), seconds)
    try:
        ours: float | str = parse_duration(text).total_seconds()
    except ValueError:
        ours = "error"
    assert ours == expected, text


@pytest.mark.parametrize("text", ["55m", "1h", "3300s", "1.5h", "90", "1 day", "250ms", "h"])
def test_documented_walltimes_match_dask(text: str) -> None:
    assert parse_duration(text).total_seconds() == dask.utils.parse_timedelta(text, default="seconds")


def test_the_operator_imports_without_dask_distributed_or_dask_jobqueue() -> None:
    blocked = "import sys; sys.modules.update(dask=None, distributed=None, dask_jobqueue=None)"
    done = subprocess.run(
        [sys.executable, "-c", f"{blocked}; import seamless_dask_operator.main, seamless_dask_operator.handlers"],
        env={**os.environ, "PYTHONPATH": str(REPO / "operator")}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
