"""What kopf keeps of a resource fits an annotation, and still tells every change (persistence.compact)."""

from __future__ import annotations

import json

import kopf
from seamless_dask_operator.persistence import BUDGET, CompactDiffBaseStorage, compact, digest, merged


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


def test_the_image_the_operator_pins_is_no_edit() -> None:
    """The create round writes spec.image in its own patch: the event that patch causes shows no spec change to
    kopf (no second round, no second apply of the children, no request more per cluster)."""
    storage = CompactDiffBaseStorage(prefix="seamless.dask.org", key="last-handled-configuration")
    created = {"apiVersion": "seamless.dask.org/v1alpha1", "kind": "SeamlessDaskCluster",
               "metadata": {"name": "c", "namespace": "ns", "uid": "u1"}, "spec": {"cores": 1}}
    patch = kopf.Patch()
    patch.spec["image"] = "runtime:1"
    storage.store(body=kopf.Body(created), patch=patch, essence=storage.build(body=kopf.Body(created)))
    after = kopf.Body(merged(created, json.loads(json.dumps(patch))))
    assert after["spec"] == {"cores": 1, "image": "runtime:1"}
    assert storage.fetch(body=after) == storage.build(body=after)
    edited = kopf.Body(merged(dict(after), {"spec": {"cores": 2}}))
    assert storage.fetch(body=edited) != storage.build(body=edited)  # a user's edit still is one


def test_a_merge_patch_removes_what_it_sets_to_null() -> None:
    assert merged({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == \
        {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
