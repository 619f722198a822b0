"""examples/*.yaml are valid: for the real API server's CRD schema (server-side dry run) and for the operator."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.support.control_plane import ControlPlane

from ._helm import EXAMPLES, load_examples, run

GROUP, VERSION, PLURAL = "seamless.dask.org", "v1alpha1", "seamlessdaskclusters"
EXAMPLE_FILES = sorted(load_examples())


def clusters(name: str) -> list[dict]:
    return [o for o in load_examples()[name] if o["kind"] == "SeamlessDaskCluster"]


def test_expected_examples_exist() -> None:
    assert {"minimal.yaml", "adaptive.yaml", "pure-dask.yaml", "read-buffer.yaml"} <= set(EXAMPLE_FILES)
    for name in EXAMPLE_FILES:
        found = clusters(name)
        assert len(found) == 1, name
        assert found[0]["apiVersion"] == f"{GROUP}/{VERSION}"
        assert "namespace" not in found[0]["metadata"], "examples go to the namespace kubectl is told"


def test_examples_say_what_they_promise() -> None:
    (adaptive,) = clusters("adaptive.yaml")
    workers = adaptive["spec"]["workers"]
    assert {k: workers[k] for k in ("adaptive", "minimum", "maximum")} == {
        "adaptive": True, "minimum": 0, "maximum": 5}
    (pure,) = clusters("pure-dask.yaml")
    assert pure["spec"]["pureDask"] is True
    (buffer,) = clusters("read-buffer.yaml")
    (mount,) = [m for m in buffer["spec"]["volumeMounts"] if m["mountPath"] == "/buffer"]
    assert mount["readOnly"] is True
    (volume,) = [v for v in buffer["spec"]["volumes"] if v["name"] == mount["name"]]
    claim = volume["persistentVolumeClaim"]
    assert claim["readOnly"] is True
    pvcs = [o for o in load_examples()["read-buffer.yaml"] if o["kind"] == "PersistentVolumeClaim"]
    assert [p["metadata"]["name"] for p in pvcs] == [claim["claimName"]]
    (minimal,) = clusters("minimal.yaml")
    # `kubectl scale sdc minimal --replicas=2` (NOTES, e2e) must pass the CRD's replicas <= maximum rule.
    assert minimal["spec"]["workers"]["maximum"] >= 2


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_passes_server_side_dry_run(
    name: str, control_plane: ControlPlane, kubectl: str, crd_installed: str,
    new_namespace: Callable[..., str],
) -> None:
    ns = new_namespace("examples")
    proc = run([kubectl, "apply", "--dry-run=server", "-n", ns, "-f", str(EXAMPLES / name)],
               env=control_plane.env())
    assert "created (server dry run)" in proc.stdout


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_defaulted_by_the_server_is_accepted_by_the_operator(
    name: str, api: k8s.ApiClient, crd_installed: str, new_namespace: Callable[..., str],
) -> None:
    from seamless_dask_operator.resource import parse_spec

    ns = new_namespace("examples")
    co = k8s.CustomObjectsApi(api)
    (body,) = clusters(name)
    defaulted = co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body, dry_run="All")
    assert defaulted["spec"]["image"]  # CRD defaults applied
    parse_spec(defaulted["spec"])  # raises ParameterError naming the bad fields


def test_dry_run_really_validates(api: k8s.ApiClient, crd_installed: str,
                                  new_namespace: Callable[..., str]) -> None:
    ns = new_namespace("examples")
    (body,) = clusters("minimal.yaml")
    bad = copy.deepcopy(body)
    bad["spec"]["workers"]["replicas"] = bad["spec"]["workers"]["maximum"] + 1
    with pytest.raises(ApiException) as refused:
        k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, bad, dry_run="All")
    assert refused.value.status == 422
    assert "must not exceed workers.maximum" in refused.value.body
