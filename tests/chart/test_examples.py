"""examples/*.yaml are valid: for the real API server's CRD schema (server-side dry run) and for the operator."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION
from tests.support.control_plane import ControlPlane

from ._helm import CHART, EXAMPLES, load_examples, run

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
    from seamless_dask_operator.options import OperatorDefaults
    from seamless_dask_operator.resource import parse_spec

    ns = new_namespace("examples")
    co = k8s.CustomObjectsApi(api)
    (body,) = clusters(name)
    defaulted = co.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body, dry_run="All")
    assert defaulted["spec"]["imagePullPolicy"] == "IfNotPresent"  # CRD defaults applied
    # ... but none for the image: the operator's setting (the chart's runtimeImage) decides it.
    assert "image" not in defaulted["spec"]
    # raises on bad fields
    cluster = parse_spec(defaulted["spec"], defaults=OperatorDefaults(image="seamless-dask-runtime:dev"))
    assert cluster.options.image == "seamless-dask-runtime:dev"


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


# A laptop-size node, as the README documents it (the node of ../shared/kube, a small kind): 2 CPUs, and the
# memory requests leave room on a 8 GiB laptop. The operator's own request (chart values) comes first.
NODE_CPU, NODE_MEMORY = 2.0, 4 * 2**30


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_fits_a_laptop_size_node(name: str) -> None:
    """Scheduler + workers as the operator builds them, at the most workers the example or the NOTES ask
    for (adaptive: maximum; minimal: `kubectl scale --replicas=2`), fit beside the operator."""
    from kubernetes.utils import parse_quantity
    from seamless_dask_operator.builders.objects import ClusterRef
    from seamless_dask_operator.builders.scheduler import scheduler_pod
    from seamless_dask_operator.builders.workers import worker_pod
    from seamless_dask_operator.resource import parse_spec

    (body,) = clusters(name)
    cluster = parse_spec(body["spec"])
    options = cluster.options
    workers = cluster.params.maximum_jobs if options.adaptive else max(options.replicas, 2 if name ==
                                                                        "minimal.yaml" else 0)
    ref = ClusterRef(body["metadata"]["name"], "default", "uid")
    pods = [scheduler_pod(ref, cluster), *(worker_pod(ref, cluster, i) for i in range(workers))]
    operator_requests = yaml.safe_load((CHART / "values.yaml").read_text())["resources"]["requests"]

    def total(resource: str) -> float:
        asked = [c["resources"].get("requests", {}).get(resource, "0") for p in pods for c in p["spec"]["containers"]]
        return float(sum(parse_quantity(q) for q in [*asked, operator_requests[resource]]))

    assert total("cpu") <= NODE_CPU, f"{name}: {total('cpu')} CPUs for {workers} workers"
    assert total("memory") <= NODE_MEMORY, f"{name}: {total('memory') / 2**30:.1f} GiB for {workers} workers"
    text = (EXAMPLES / name).read_text()
    assert "size up" in text, f"{name} says how to size up"


def test_claim_example_says_what_it_needs() -> None:
    text = (EXAMPLES / "read-buffer.yaml").read_text()
    for needed in ("StorageClass", "provisioner", "stays Pending", "Unschedulable"):
        assert needed in text, needed
