"""Back-pressure on the watch streams (issue 23): with kopf processing at most a few objects of a kind at once,
many clusters are all served, each child made once, and an operator restarted among more objects than the bound
resumes them.

The bound (``SEAMLESS_DASK_OPERATOR_EVENT_WORKERS``, kopf's ``queueing.worker_limit``) holds only once kopf's
indexes are filled (``kopf_toggles.bound_workers_once_indexed``): at a restart every listed cluster, pod and
Service must be indexed before any handler runs, and with the bound holding then, nothing ever ran. Here the
bound is 2 for 8 clusters (24 pods and 8 Services in the same streams).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from seamless_dask_operator.handlers import lifecycle

from tests.operator.conftest import Clusters, running_operator
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
CLUSTERS = 8


@pytest.fixture
def narrow_operator(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    monkeypatch.setattr(lifecycle, "SETTINGS", dataclasses.replace(lifecycle.SETTINGS, event_workers=2))

    def start() -> AbstractContextManager[Any]:
        return running_operator(control_plane)

    yield start


def _served(clusters: Clusters, names: list[str], workers: int) -> None:
    for name in names:
        expected = ([f"{name}-worker-{i}" for i in range(workers)], 1, 1)
        wait_for(lambda n=name, e=expected: clusters.children(n) == e or None,
                 timeout=90, description=f"{name}'s children")
        clusters.wait_status(name, lambda s: s.get("workersDesired") == workers, timeout=60,
                             description=f"{name}'s status")


def test_clusters_past_the_bound_are_served_once_and_again_after_a_restart(
        narrow_operator: Callable[[], Any], clusters: Clusters) -> None:
    names = [f"c{i}" for i in range(CLUSTERS)]
    with narrow_operator():
        for name in names:
            clusters.create(name, {"workers": {"replicas": 2, "maximum": 3}})
        _served(clusters, names, 2)
    # Restarted among 8 clusters, 24 pods and 8 Services with 2 places: it resumes, and serves a change to each.
    with narrow_operator():
        for name in names:
            clusters.patch_spec(name, {"workers": {"replicas": 3}})
        _served(clusters, names, 3)
    # Each child made once: no second scheduler or worker pod while the streams waited.
    assert all(clusters.children(n) == ([f"{n}-worker-{i}" for i in range(3)], 1, 1) for n in names)
