"""Back-pressure on the watch streams (issue 23): with kopf processing at most a few objects of a kind at once,
many clusters created at once are all still served, each once.

The bound (``SEAMLESS_DASK_OPERATOR_EVENT_WORKERS``, kopf's ``queueing.worker_limit``) holds the stream while
its places are taken. A place must be let go whatever its worker waits for (a handler thread, its own patch
coming back): were one kept, the clusters past the bound would never be served. Here the bound is 2 for 12
clusters, and pods and Services go through the same bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from seamless_dask_operator.handlers import lifecycle

from tests.operator.conftest import Clusters, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
CLUSTERS = 12


@pytest.fixture
def narrow_operator(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(lifecycle, "SETTINGS", dataclasses.replace(lifecycle.SETTINGS, event_workers=2))
    with running_operator(control_plane) as runner:
        yield runner


def test_clusters_past_the_bound_are_all_served_once(narrow_operator: Any, clusters: Clusters) -> None:
    names = [f"c{i}" for i in range(CLUSTERS)]
    for name in names:
        clusters.create(name, {"workers": {"replicas": 2, "maximum": 2}})
    for name in names:
        wait_for(lambda n=name: clusters.children(n) == ([f"{n}-worker-0", f"{n}-worker-1"], 1, 1) or None,
                 timeout=90, description=f"{name}'s children")
        clusters.wait_status(name, lambda s: s.get("workersDesired") == 2 and s.get("phase") == "Starting",
                             timeout=60, description=f"{name}'s status")
    # Each child made once: no second scheduler or worker pod while the stream waited.
    assert all(clusters.children(n) == ([f"{n}-worker-0", f"{n}-worker-1"], 1, 1) for n in names)
