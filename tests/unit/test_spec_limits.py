"""Limits the spec must respect for deletion to complete and rounds to stay bounded (issue 14)."""

from __future__ import annotations

import pytest
from seamless_dask_operator.options import MAX_RETIRE_TIMEOUT
from seamless_dask_operator.resource import MAX_ENV_STRING, parse_spec

from seamless_dask_runtime.model.parameters import ParameterError


def test_env_value_a_process_could_not_start_with_is_refused_naming_it() -> None:
    with pytest.raises(ParameterError) as refused:
        parse_spec({"workers": {"env": [{"name": "OK", "value": "1"}, {"name": "BIG", "value": "x" * 300_000}]}})
    assert str(refused.value).startswith("spec.workers.env[1].value: is over 128 KiB")


def test_env_value_just_within_linux_limit_is_accepted() -> None:
    value = "x" * (MAX_ENV_STRING - len("BIG=") - 1)
    assert parse_spec({"scheduler": {"env": [{"name": "BIG", "value": value}]}}).options.scheduler.env[0]["value"]
    with pytest.raises(ParameterError, match=r"spec\.scheduler\.env\[0\]\.value"):
        parse_spec({"scheduler": {"env": [{"name": "BIG", "value": value + "x"}]}})


@pytest.mark.parametrize("seconds", [0, MAX_RETIRE_TIMEOUT + 1])
def test_retire_timeout_out_of_bounds_is_refused(seconds: int) -> None:
    with pytest.raises(ParameterError, match=r"spec\.workers\.retireTimeout"):
        parse_spec({"workers": {"retireTimeout": seconds}})


def test_retire_timeout_at_its_cap_is_accepted() -> None:
    assert parse_spec({"workers": {"retireTimeout": MAX_RETIRE_TIMEOUT}}).options.retire_timeout == MAX_RETIRE_TIMEOUT


def test_more_workers_than_the_operators_ceiling_are_refused_naming_the_chart_value() -> None:
    """Issue 21 item 7: a typo of 10**6 workers is a spec error, not hours of pod creation."""
    from seamless_dask_operator.options import OperatorDefaults

    small = OperatorDefaults(max_workers=10)
    parse_spec({"workers": {"replicas": 10, "maximum": 10}}, defaults=small)
    with pytest.raises(ParameterError) as refused:
        parse_spec({"workers": {"replicas": 11, "maximum": 11, "minimum": 11, "adaptive": True}}, defaults=small)
    fields = {error.field: error.message for error in refused.value.errors}
    assert set(fields) == {"spec.workers.maximum", "spec.workers.replicas", "spec.workers.minimum"}
    assert all("maxWorkersPerCluster" in message for message in fields.values())


def test_spec_memory_has_one_meaning_with_or_without_worker_resources() -> None:
    """Issue 25 item 4: spec.memory was silently ignored once workers.resources was set."""
    from seamless_dask_operator.builders import ClusterRef, worker_pod

    def worker_resources(spec: dict) -> dict:
        pod = worker_pod(ClusterRef("c", "ns", "u"), parse_spec(spec), 0)
        return pod["spec"]["containers"][0]["resources"]

    assert worker_resources({"memory": "2GiB"}) == {"requests": {"cpu": "1", "memory": "2Gi"},
                                                    "limits": {"memory": "2Gi"}}
    assert worker_resources({"memory": "2GiB", "workers": {"resources": {"requests": {"cpu": "250m"}}}}) == {
        "requests": {"cpu": "250m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}, "an edit of memory reaches pods"
    both = {"memory": "2GiB", "workers": {"resources": {"limits": {"memory": "4Gi"}}}}
    assert worker_resources(both) == {"limits": {"memory": "4Gi"}}, "workers.resources names memory: it wins"
    from seamless_dask_operator.resource import memory_overridden

    assert memory_overridden(parse_spec(both)) == "4Gi", "and the round says so (a MemoryOverridden Event)"
