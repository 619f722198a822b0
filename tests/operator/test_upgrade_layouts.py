"""An upgrade from the layout whose scheduler was a Deployment converges to exactly one scheduler, the same pod
(issue 22, "Upgrade with live clusters"). Real kube-apiserver and controller-manager (the Deployment makes its
ReplicaSet and pod), the real operator.

Before: the old Deployment was kept, a scheduler Pod was added, and the Service's endpoints listed two
schedulers; phase Running, no Event.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from seamless_dask_operator.builders import ClusterRef
from seamless_dask_operator.builders.objects import labels, template_hash
from seamless_dask_operator.builders.scheduler import scheduler_template
from seamless_dask_operator.resource import parse_spec

from seamless_dask_runtime.model.identity import CLUSTER_LABEL, COMPONENT_LABEL, SCHEDULER, TEMPLATE_HASH_ANNOTATION
from tests.operator.conftest import Clusters
from tests.support.kubelet import make_pod_ready
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube
SPEC = {"image": "seamless-dask-runtime:old", "workers": {"replicas": 1, "maximum": 1}}


def legacy_deployment(ref: ClusterRef, spec: dict[str, Any]) -> dict[str, Any]:
    """The scheduler as the layout before the operator's own scheduler pod made it (a Deployment), from the spec
    as stored (the CRD's defaults filled in, as the earlier operator read it)."""
    pod_labels = labels(ref, SCHEDULER)
    return {
        "metadata": {"name": f"{ref.name}-scheduler", "labels": pod_labels,
                     "ownerReferences": [ref.owner_reference()]},
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                 "selector": {"matchLabels": {CLUSTER_LABEL: ref.name, COMPONENT_LABEL: SCHEDULER}},
                 "template": {"metadata": {"labels": pod_labels},
                              "spec": scheduler_template(ref, parse_spec(spec))}},
    }


def test_a_scheduler_deployment_of_an_earlier_operator_gives_way_to_its_own_pod(
        operator_factory: Any, clusters: Clusters, kube_api: client.ApiClient) -> None:
    ns, apps = clusters.namespace, client.AppsV1Api(kube_api)
    created = clusters.create("veteran", SPEC)
    ref = ClusterRef("veteran", ns, created["metadata"]["uid"])
    stored = created["spec"]
    apps.create_namespaced_deployment(ns, legacy_deployment(ref, stored))
    legacy = wait_for(lambda: clusters.pods("veteran", SCHEDULER), timeout=60, description="the Deployment's pod")[0]
    make_pod_ready(kube_api, ns, legacy.metadata.name, "node-1", pod_ip="10.9.7.1")

    with operator_factory():
        def one_scheduler_adopted() -> bool:
            pods = clusters.pods("veteran", SCHEDULER)
            return len(pods) == 1 and pods[0].metadata.uid == legacy.metadata.uid \
                and [o.uid for o in pods[0].metadata.owner_references or []] == [ref.uid]

        wait_for(one_scheduler_adopted, timeout=60, description="the same pod, now the cluster's own")
        wait_for(lambda: not apps.list_namespaced_replica_set(ns).items and not apps.list_namespaced_deployment(
            ns).items, timeout=30, description="Deployment and ReplicaSet gone")
        adopted = clusters.pods("veteran", SCHEDULER)[0]
        template = scheduler_template(ref, parse_spec(stored))
        assert adopted.metadata.annotations[TEMPLATE_HASH_ANNOTATION] == template_hash(template), "no restart"
        # kopf posts Events from a queue of its own: the Event may follow the adoption by a moment.
        wait_for(lambda: [e for e in clusters.events("veteran") if e.reason == "Migrated"], timeout=30,
                 description="a Migrated Event")
        [event] = [e for e in clusters.events("veteran") if e.reason == "Migrated"]
        assert legacy.metadata.name in event.message
        clusters.wait_status("veteran", lambda s: s.get("phase") == "Running", description="Running on it")
        assert len(clusters.pods("veteran", SCHEDULER)) == 1
        assert clusters.pods("veteran", SCHEDULER)[0].metadata.uid == legacy.metadata.uid
