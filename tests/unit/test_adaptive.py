"""The adaptive target, table-tested without a scheduler."""

from __future__ import annotations

import pytest

from seamless_dask_runtime.adaptive import Backlog, adaptive_target

UNKNOWN = 60.0
TARGET = 600.0  # 10m per worker, the original's default for cores = 1

CASES = [
    # (description, backlog, keyword arguments, expected workers)
    ("nothing to do", Backlog(), {}, 0),
    ("one waiting transformation, unknown duration", Backlog(waiting={"base_a": 1}), {}, 1),
    ("10 waiting x 60 s fill one worker's 600 s", Backlog(waiting={"base_a": 10}), {}, 1),
    ("11 waiting x 60 s need a second worker", Backlog(waiting={"base_a": 11}), {}, 2),
    ("waiting, queued and no-worker all count (summed per prefix)", Backlog(waiting={"base_a": 25}), {}, 3),
    ("running tasks count too", Backlog(waiting={"base_a": 10}, processing={"base_b": 10}), {}, 2),
    ("a learned duration replaces the unknown one",
     Backlog(waiting={"base_a": 100}, durations={"base_a": 6.0}), {}, 1),
    ("learned per prefix: only the slow prefix weighs",
     Backlog(waiting={"base_fast": 100, "base_slow": 20}, durations={"base_fast": 0.1, "base_slow": 120.0}), {}, 5),
    ("helper prefixes (thin, fat) count with their duration",
     Backlog(waiting={"thin": 50, "fat_checksum": 50}, durations={"thin": 0.01, "fat_checksum": 0.01}), {}, 1),
    ("a non-positive learned duration is not learned", Backlog(waiting={"base_a": 20}, durations={"base_a": -1}),
     {}, 2),
    ("maximum caps", Backlog(waiting={"base_a": 1000}), {"maximum": 4}, 4),
    ("minimum keeps a worker when idle", Backlog(), {"minimum": 1}, 1),
    ("a shorter target duration asks for more workers", Backlog(waiting={"base_a": 10}), {"target_duration": 60.0},
     10),
    ("running transformations can be weighted", Backlog(processing={"base_a": 20}),
     {"transformation_weight": 0.5}, 1),
    ("the weight leaves helpers alone", Backlog(processing={"thin": 20}), {"transformation_weight": 0.5}, 2),
    ("exclusive: one worker per transformation waiting or running",
     Backlog(waiting={"base_a": 3, "thin": 40}, processing={"base_b": 2, "fat_checksum": 7}),
     {"exclusive": True}, 5),
    ("exclusive, capped", Backlog(waiting={"base_a": 30}), {"exclusive": True, "maximum": 8}, 8),
    ("exclusive, nothing to run", Backlog(waiting={"thin": 3}), {"exclusive": True}, 0),
    ("idle, but Dask keeps 2 workers holding results", Backlog(), {"keep": 2}, 2),
    ("Dask's keep is a floor, not a cap", Backlog(waiting={"base_a": 25}), {"keep": 1}, 3),
    ("maximum wins over keep", Backlog(), {"keep": 5, "maximum": 4}, 4),
]


@pytest.mark.parametrize(("backlog", "kwargs", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_adaptive_target(backlog: Backlog, kwargs: dict, expected: int) -> None:
    backlog = Backlog(backlog.waiting, backlog.processing, backlog.durations, unknown_duration=UNKNOWN)
    assert adaptive_target(backlog, **{"target_duration": TARGET, **kwargs}) == expected


def test_target_duration_must_be_positive() -> None:
    with pytest.raises(ValueError, match="target_duration"):
        adaptive_target(Backlog(), target_duration=0)
