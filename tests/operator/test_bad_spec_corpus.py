"""Every bad spec of issue 14 at once, against one real operator: each is refused with its field named, said once.

A bad spec ends one of two ways, both fine for a user: the API server refuses
it at admission (the CRD's schema or CEL rules, message naming the field), or
the operator accepts the object and reports Failed with a condition naming the
field and exactly one Warning Event. What must never happen: a crash (the
``operator`` fixture fails the test on any traceback), a retry loop (Events or
status writes growing round after round), a child object made from a spec the
operator refused, or a valid cluster next to them starved.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client

from seamless_dask_runtime.model.identity import THROTTLE_VARIABLE
from tests.operator.conftest import Clusters
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kube

WORKER = {"replicas": 1, "maximum": 2}

# (resource name, spec, text the refusal must contain: the field)
CORPUS: list[tuple[str, dict[str, Any], str]] = [
    ("memory-word", {"memory": "lots"}, "memory"),
    ("walltime-too-short", {"walltime": "00:04:00", "workers": {**WORKER, "maximum": 3}}, "walltime"),
    ("duration-word", {"unknownTaskDuration": "whenever"}, "unknownTaskDuration"),
    ("requests-over-limits", {"workers": {**WORKER, "resources": {"requests": {"memory": "2Gi"},
                                                                   "limits": {"memory": "1Gi"}}}}, "limit"),
    ("env-non-ascii", {"workers": {**WORKER, "env": [{"name": "TÉST", "value": "1"}]}}, "env"),
    ("env-ours", {"workers": {**WORKER, "env": [{"name": THROTTLE_VARIABLE, "value": "9"}]}}, "env"),
    ("env-twice", {"scheduler": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}}, "env"),
    ("toleration-operator", {"workers": {**WORKER, "tolerations": [{"key": "x", "operator": "Sometimes"}]}},
     "operator"),
    ("mount-without-volume", {"volumeMounts": [{"name": "nowhere", "mountPath": "/data"}]}, "volumeMounts"),
    ("host-path", {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}, "hostPath"),
    ("secret-env", {"workers": {**WORKER, "env": [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]}}, "secretKeyRef"),
    ("load-balancer", {"scheduler": {"serviceType": "LoadBalancer"}}, "serviceType"),
    ("foreign-account", {"serviceAccountName": "deployer"}, "serviceAccountName"),
    ("apparmor-off", {"podAnnotations": {"container.apparmor.security.beta.kubernetes.io/worker": "unconfined"}},
     "podAnnotations"),
    ("replicas-over-maximum", {"workers": {"replicas": 5, "maximum": 2}}, "replicas"),
    ("cores-zero", {"cores": 0}, "cores"),
    ("a" * 54, {}, "name"),
    ("dotted.name", {}, "name"),
]


def _create(clusters: Clusters, name: str, spec: dict[str, Any]) -> str | None:
    """None when the API server took the object; its refusal message otherwise."""
    try:
        clusters.create(name, {"workers": WORKER, **spec})
    except client.exceptions.ApiException as exc:
        assert exc.status == 422, exc
        return str(exc.body)
    return None


def test_every_bad_spec_is_refused_once_naming_its_field(operator: Any, clusters: Clusters) -> None:
    refused_at_admission: dict[str, str] = {}
    for name, spec, _field in CORPUS:
        message = _create(clusters, name, spec)
        if message is not None:
            refused_at_admission[name] = message
    clusters.create("valid-neighbour", {"workers": WORKER})
    accepted = [(name, field) for name, _spec, field in CORPUS if name not in refused_at_admission]

    for name, field in accepted:
        status = clusters.wait_status(name, lambda s: s.get("phase") == "Failed", description="Failed")
        assert field.lower() in status["message"].lower(), (name, status["message"])
    for name, _spec, field in CORPUS:
        if name in refused_at_admission:
            assert field.lower() in refused_at_admission[name].lower(), (name, refused_at_admission[name])
    clusters.wait_status("valid-neighbour", lambda s: s.get("phase") == "Starting", description="neighbour served")

    def warnings(name: str) -> int:
        return sum(e.count or 1 for e in clusters.events(name) if e.type == "Warning")

    wait_for(lambda: all(warnings(name) >= 1 for name, _ in accepted), timeout=30, description="an Event each")
    before = {name: (clusters.get(name)["metadata"]["resourceVersion"], warnings(name)) for name, _ in accepted}
    time.sleep(6)  # six operator rounds (SEAMLESS_DASK_OPERATOR_INTERVAL=1 in tests)
    after = {name: (clusters.get(name)["metadata"]["resourceVersion"], warnings(name)) for name, _ in accepted}
    loops = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    assert not loops, f"status writes or Events kept coming: {loops}"
    assert all(count == 1 for _version, count in after.values()), after

    # A refusal by the operator's model or pod policy makes nothing at all (one by the API server may come
    # after the scheduler was made: env-non-ascii is refused for the worker pods only).
    for name in ("env-ours", "env-twice", "host-path", "secret-env", "load-balancer", "foreign-account",
                 "apparmor-off", "walltime-too-short", "duration-word"):
        assert clusters.children(name) == ([], 0, 0), name
    print(f"\nbad specs tried: {len(CORPUS)}; refused at admission: {len(refused_at_admission)}; "
          f"Failed by the operator: {len(accepted)}; crashes: 0; loops: {len(loops)}")
