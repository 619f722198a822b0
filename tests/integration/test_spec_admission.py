"""The real kube-apiserver refuses, at admission, a SeamlessDaskCluster whose text would become lines of a job
script, command line or environment, or whose worker counts have no bound (issue 21, items 7 and 8); it still
takes the same spec without them. Server-side dry runs: nothing is stored."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from seamless_dask_runtime.model import identity

pytestmark = pytest.mark.kube

NAMESPACE = "default"
WORKERS = {"replicas": 1, "maximum": 2}


def _create(api: k8s.ApiClient, spec: dict[str, Any]) -> None:
    body = {"apiVersion": identity.API_VERSION, "kind": identity.KIND, "metadata": {"name": "tenant"},
            "spec": {"workers": WORKERS, **spec}}
    k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        identity.GROUP, identity.VERSION, NAMESPACE, identity.PLURAL, body, dry_run="All")


def _refused(api: k8s.ApiClient, spec: dict[str, Any]) -> str:
    with pytest.raises(k8s.ApiException) as info:
        _create(api, spec)
    assert info.value.status == 422, info.value.body
    return str(info.value.body)


TEXT = [
    ("partition", "all", "all\n#SBATCH --qos=top", "spec.partition"),
    ("project", "acct", "acct\r", "spec.project"),
    ("tmpdir", "/scratch", "/scratch\nx", "spec.tmpdir"),
    ("image", "registry/runtime:1", "registry/runtime:1\u2028", "spec.image"),
    ("resourceSpec", "nodes=1", "nodes=1\t#PBS -q x", "spec.resourceSpec"),
    ("memoryPerCorePropertyName", "memcore", "mem\x1bcore", "spec.memoryPerCorePropertyName"),
    ("lifetime", "50m", "50m\n", "spec.lifetime"),
    ("jobExtraDirectives", ["--exclusive"], ["--exclusive", "--qos=a\n#SBATCH --qos=top"],
     "spec.jobExtraDirectives[1]"),
    ("jobScriptPrologue", ["module load x\n\texport A=1"], ["echo a\rb"], "spec.jobScriptPrologue[0]"),
    ("jobScriptPrologue", ["module load x"], ["echo a\x00b"], "spec.jobScriptPrologue[0]"),
]


@pytest.mark.parametrize(("field", "fine", "bad", "path"), TEXT, ids=[f"{t[0]}-{t[2]!r}" for t in TEXT])
def test_control_characters_are_refused_at_admission(kube_api: k8s.ApiClient, field: str, fine: object,
                                                     bad: object, path: str) -> None:
    _create(kube_api, {field: fine})
    assert path in _refused(kube_api, {field: bad})


@pytest.mark.parametrize("field", ["replicas", "minimum", "maximum"])
def test_worker_counts_are_bounded_at_admission(kube_api: k8s.ApiClient, field: str) -> None:
    top = identity.MAX_WORKERS
    _create(kube_api, {"workers": {"replicas": top, "minimum": top, "maximum": top}})
    workers = {"replicas": 1, "minimum": 0, "maximum": top, field: top + 1}
    body = _refused(kube_api, {"workers": workers})
    assert f"spec.workers.{field}" in body and f"less than or equal to {top}" in body


def test_scale_subresource_is_bounded_too(kube_api: k8s.ApiClient) -> None:
    """``kubectl scale sdc --replicas=1000000`` goes through the scale subresource, into spec.workers.replicas."""
    custom = k8s.CustomObjectsApi(kube_api)
    body = {"apiVersion": identity.API_VERSION, "kind": identity.KIND, "metadata": {"name": "scaled"},
            "spec": {"workers": {"replicas": 1, "maximum": identity.MAX_WORKERS, "adaptive": False}}}
    custom.create_namespaced_custom_object(identity.GROUP, identity.VERSION, NAMESPACE, identity.PLURAL, body)
    try:
        with pytest.raises(k8s.ApiException) as info:
            custom.patch_namespaced_custom_object_scale(identity.GROUP, identity.VERSION, NAMESPACE, identity.PLURAL,
                                                        "scaled", {"spec": {"replicas": 10**6}})
        assert info.value.status == 422 and "spec.workers.replicas" in str(info.value.body)
        custom.patch_namespaced_custom_object_scale(identity.GROUP, identity.VERSION, NAMESPACE, identity.PLURAL,
                                                    "scaled", {"spec": {"replicas": identity.MAX_WORKERS}})
    finally:
        custom.delete_namespaced_custom_object(identity.GROUP, identity.VERSION, NAMESPACE, identity.PLURAL, "scaled")
