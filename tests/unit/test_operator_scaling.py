"""Which pods to create, retire or replace; how many workers are desired."""

from __future__ import annotations

from seamless_dask_operator.decide import PodView
from seamless_dask_operator.decide.workers import plan_workers
from seamless_dask_operator.resource import desired_workers, parse_spec


def worker(name: str, index: int, ready: bool, template_hash: str, terminating: bool = False,
              finished: bool = False) -> PodView:
    return PodView(name, "worker", index, ready, terminating, template_hash, None, finished=finished)


def pods(*specs: tuple[int, bool, str]) -> list[PodView]:
    return [worker(name=f"c-worker-{i}", index=i, ready=ready, template_hash=h) for i, ready, h in specs]


def test_scale_up_fills_lowest_free_indices() -> None:
    plan = plan_workers(pods((0, True, "h"), (2, True, "h")), 4, "h")
    assert plan.create == [1, 3]


def test_scale_down_removes_unready_first_then_retires() -> None:
    plan = plan_workers(pods((0, True, "h"), (1, False, "h"), (2, True, "h")), 1, "h")
    assert plan.delete_unready == ["c-worker-1"]
    assert plan.retire_count == 1


def test_outdated_pods_roll_new_one_first() -> None:
    """Surge first (issue 22): a new pod, and an old one retired only once a new one is Ready."""
    plan = plan_workers(pods((0, True, "old"), (1, True, "old")), 2, "new")
    assert plan.create == [2] and not plan.replace
    waiting = plan_workers(pods((0, True, "old"), (1, True, "old"), (2, False, "new")), 2, "new")
    assert waiting.empty, "one new pod at a time, and no old one goes while it starts"
    ready = plan_workers(pods((0, True, "old"), (1, True, "old"), (2, True, "new")), 2, "new")
    assert ready.replace == ["c-worker-0"] and not ready.create, "at most one pod beyond the count"
    retired = plan_workers(pods((1, True, "old"), (2, True, "new")), 2, "new")
    assert retired.create == [0] and not retired.replace


def test_outdated_pods_that_never_became_ready_go_at_once() -> None:
    """A fixed image: the pods stuck on the bad one give no capacity and hold no results."""
    plan = plan_workers(pods((0, False, "bad"), (1, False, "bad"), (2, True, "bad")), 3, "fixed")
    assert plan.delete_unready == ["c-worker-0", "c-worker-1"] and not plan.replace and not plan.retire_count


def test_converged_plan_is_empty() -> None:
    assert plan_workers(pods((0, True, "h")), 1, "h").empty


def test_terminating_pod_names_are_not_reused() -> None:
    existing = [worker("c-worker-0", 0, False, "h", terminating=True)]
    assert plan_workers(existing, 1, "h").create == [1]


def test_finished_pods_are_deleted_and_replaced_in_one_round() -> None:
    """An evicted worker (phase Failed) runs nothing again: its slot is filled now, under a free name."""
    existing = [worker("c-worker-0", 0, True, "h"), worker("c-worker-1", 1, False, "h", finished=True)]
    plan = plan_workers(existing, 2, "h")
    assert plan.create == [2] and plan.delete_finished == ["c-worker-1"] and not plan.retire_count
    # ...and at the right count otherwise, it is not what a scale-down retires.
    down = plan_workers(existing, 1, "h")
    assert down.delete_finished == ["c-worker-1"] and not down.retire_count and not down.delete_unready


def test_desired_workers() -> None:
    fixed = parse_spec({"workers": {"replicas": 3, "maximum": 5}})
    assert desired_workers(fixed, adaptive_target=None) == 3
    adaptive = parse_spec({"workers": {"adaptive": True, "minimum": 1, "maximum": 4}})
    assert desired_workers(adaptive, adaptive_target=10) == 4
    assert desired_workers(adaptive, adaptive_target=0) == 1
    assert desired_workers(adaptive, adaptive_target=None) == 1
    interactive = parse_spec({"interactive": True, "workers": {"replicas": 0, "maximum": 2}})
    assert desired_workers(interactive, adaptive_target=None) == 1
