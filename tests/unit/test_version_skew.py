"""What counts as version skew, and what the route and the log line say (pure)."""

from __future__ import annotations

import pytest

from seamless_dask_runtime.version_skew import compared_versions, differing, newcomer_warning, skew_report


def reported(distributed: str = "2026.8.0", dask: str | None = None, python: str = "3.11.7.final.0") -> dict:
    """What ``distributed.versions.get_versions()`` reports (the compared parts)."""
    return {"host": {"python": python}, "packages": {"python": python.rsplit(".", 2)[0], "distributed": distributed,
                                                     "dask": dask or distributed, "msgpack": "1.1.0"}}


SCHEDULER = reported()


def test_compared_versions_reads_get_versions_output() -> None:
    assert compared_versions(SCHEDULER) == {"distributed": "2026.8.0", "dask": "2026.8.0", "python": "3.11.7"}
    assert compared_versions({}) is None  # the scheduler's fire-and-forget client reports nothing
    assert compared_versions(None) is None


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        (reported(), []),
        (reported(python="3.11.2.final.0"), []),  # a patch release of Python is compatible
        (reported(python="3.12.1.final.0"), ["python"]),
        (reported("2026.7.1"), ["distributed", "dask"]),
        (reported("2026.8.0", dask="2026.8.1"), ["dask"]),
        ({"packages": {"distributed": "2026.8.0", "python": "3.11.7"}}, ["dask"]),  # missing dask
    ],
)
def test_what_counts_as_a_mismatch(other: dict, expected: list[str]) -> None:
    assert differing(compared_versions(SCHEDULER), compared_versions(other)) == expected


def test_report_lists_every_process_and_the_mismatches() -> None:
    workers = {"tcp://10.0.0.5:4000": ("demo-worker-0", reported()),
               "tcp://10.0.0.6:4000": ("demo-worker-1", reported(python="3.12.1.final.0"))}
    clients = {"Client-a": reported("2026.7.1"), "Client-b": reported(), "fire-and-forget": {}}
    report = skew_report(SCHEDULER, workers, clients)
    assert report["skew"] is True
    assert set(report["clients"]) == {"Client-a", "Client-b"}
    assert report["workers"]["tcp://10.0.0.6:4000"] == {"name": "demo-worker-1", "distributed": "2026.8.0",
                                                        "dask": "2026.8.0", "python": "3.12.1"}
    assert report["mismatches"] == [
        {"role": "worker", "id": "tcp://10.0.0.6:4000", "name": "demo-worker-1", "differs": ["python"],
         "versions": {"distributed": "2026.8.0", "dask": "2026.8.0", "python": "3.12.1"}},
        {"role": "client", "id": "Client-a", "name": "Client-a", "differs": ["distributed", "dask"],
         "versions": {"distributed": "2026.7.1", "dask": "2026.7.1", "python": "3.11.7"}},
    ]
    assert report["message"] == ("client Client-a has distributed 2026.7.1, dask 2026.7.1; worker demo-worker-1 has "
                                 "python 3.12.1; the scheduler has distributed 2026.8.0, dask 2026.8.0, python 3.11.7")


def test_report_groups_many_processes_of_the_same_versions() -> None:
    workers = {f"tcp://10.0.0.{i}:4000": (f"w-{i}", reported("2026.7.1")) for i in range(5)}
    message = skew_report(SCHEDULER, workers, {})["message"]
    assert message == ("5 workers (w-0, w-1, w-2 and 2 more) have distributed 2026.7.1, dask 2026.7.1; "
                       "the scheduler has distributed 2026.8.0, dask 2026.8.0")


def test_no_skew_says_nothing() -> None:
    report = skew_report(SCHEDULER, {"tcp://a:1": ("w", reported())}, {"Client-a": reported()})
    assert (report["skew"], report["mismatches"], report["message"]) == (False, [], "")


def test_newcomer_warning_is_one_line_with_the_fix() -> None:
    line = newcomer_warning("client", "Client-a", SCHEDULER, reported("2026.7.1"))
    assert line is not None and "\n" not in line
    assert line.startswith("version skew: client Client-a connected with distributed 2026.7.1, dask 2026.7.1 "
                           "but the scheduler has distributed 2026.8.0, dask 2026.8.0;")
    assert "--build-arg DASK_VERSION" in line
    assert newcomer_warning("client", "Client-b", SCHEDULER, reported()) is None
    assert newcomer_warning("client", "fire-and-forget", SCHEDULER, {}) is None
