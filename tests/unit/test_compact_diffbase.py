"""What kopf keeps of a resource fits an annotation, and still tells every change (persistence.compact)."""

from __future__ import annotations

import json

from seamless_dask_operator.persistence import BUDGET, compact, digest


def _size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _spec(env: list[dict[str, str]], replicas: int = 1) -> dict[str, object]:
    return {"spec": {"cores": 2, "workers": {"replicas": replicas, "env": env}}, "metadata": {"labels": {"a": "b"}}}


def test_an_ordinary_spec_is_kept_as_it_is() -> None:
    essence = _spec([{"name": "A", "value": "1"}])
    assert compact(essence) == essence


def test_a_300kb_value_becomes_its_digest_and_a_change_of_it_is_seen() -> None:
    before, after = _spec([{"name": "BIG", "value": "x" * 300_000}]), _spec([{"name": "BIG", "value": "y" * 300_000}])
    kept = compact(before)
    assert _size(kept) < BUDGET
    assert kept["spec"]["workers"]["env"][0]["value"] == digest("x" * 300_000)
    assert compact(after) != kept
    assert kept["spec"]["workers"]["replicas"] == 1  # small fields stay readable for kopf's diff


def test_many_small_values_over_budget_are_digested_by_subtree() -> None:
    env = [{"name": f"V{i}", "value": "z" * 200} for i in range(2000)]  # ~450 kB, no long string
    kept, edited = compact(_spec(env)), compact(_spec(env, replicas=2))
    assert _size(kept) <= BUDGET and _size(edited) <= BUDGET
    assert kept != edited
    assert kept["spec"]["workers"]["replicas"] == 1 and edited["spec"]["workers"]["replicas"] == 2
    assert compact(_spec([*env[:-1], {"name": "V1999", "value": "w" * 200}])) != kept
