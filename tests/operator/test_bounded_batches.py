"""A cluster scaled by thousands converges in bounded batches: an edit, a deletion are honoured between them
(issue 21 item 7: ``replicas: 1000000`` made 899 pods in 20 s, the edit back to 1 was ignored, deletion was not
done after 121 s while 6,860 more pods came)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.operator.conftest import Clusters
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube


def test_an_edit_and_a_deletion_are_honoured_between_batches(operator: Any, clusters: Clusters) -> None:
    clusters.create("huge", {"workers": {"replicas": 1500, "maximum": 1500}})
    wait_for(lambda: len(clusters.worker_names("huge")) >= 100, timeout=60, description="the first batch")
    at_edit = len(clusters.worker_names("huge"))
    clusters.patch_spec("huge", {"workers": {"replicas": 1}})
    edited = time.monotonic()
    most = at_edit

    def back_to_one() -> bool:
        nonlocal most
        names = clusters.worker_names("huge")
        most = max(most, len(names))
        return names == ["huge-worker-0"]

    # Pods that never became ready hold no results: they go without retirement, a batch a round.
    wait_for(back_to_one, timeout=90, interval=0.2, description="back to one worker")
    print(f"\n{at_edit} workers at the edit, at most {most} after it; back to 1 worker "
          f"{time.monotonic() - edited:.1f} s after the edit")
    # One batch is under way and one may be made before the watch shows the edit; on a loaded machine kopf may
    # deliver the edit a few rounds late (seen in CI: 3 batches). Before batches, the edit was never honoured.
    assert most <= at_edit + 500, "at most a few batches after the edit"

    clusters.patch_spec("huge", {"workers": {"replicas": 1500}})
    wait_for(lambda: len(clusters.worker_names("huge")) >= 100, timeout=60, description="growing again")
    clusters.delete("huge")
    wait_for(lambda: clusters.find("huge") is None, timeout=60, description="deleted")
    wait_for(lambda: not clusters.core.list_namespaced_pod(
        clusters.namespace, label_selector="dask.org/cluster-name=huge").items, timeout=90, interval=0.5,
        description="every pod gone")
