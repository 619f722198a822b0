"""The CRD, the chart and the examples say what seamless_dask_runtime.model.identity says."""

from __future__ import annotations

from pathlib import Path

import yaml

from seamless_dask_runtime.model import identity

REPO = Path(__file__).resolve().parents[2]


def test_crd_names_the_resource_as_identity_does() -> None:
    crd = yaml.safe_load((REPO / "crds" / "seamlessdaskclusters.yaml").read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{identity.PLURAL}.{identity.GROUP}"
    assert (spec["group"], spec["names"]["plural"], spec["names"]["kind"]) == (
        identity.GROUP, identity.PLURAL, identity.KIND)
    [version] = [v for v in spec["versions"] if v["storage"]]
    assert version["name"] == identity.VERSION
    image = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["image"]
    # No schema default (it would be stored in every resource): the operator's setting decides, and says so.
    assert "default" not in image and identity.DEFAULT_IMAGE in image["description"]


def test_examples_and_chart_use_the_same_identity() -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == identity.KIND:
                assert doc["apiVersion"] == identity.API_VERSION, path
    chart = REPO / "charts" / "seamless-dask-operator"
    chart_values = yaml.safe_load((chart / "values.yaml").read_text())
    app_version = yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
    runtime = chart_values["runtimeImage"]
    assert f"{runtime['repository']}:{runtime['tag'] or app_version}" == identity.DEFAULT_IMAGE, \
        "the chart's default runtime image is the operator's own default"
    repository = chart_values["image"]["repository"]
    assert repository.rsplit("/", 1)[0] == identity.DEFAULT_IMAGE.rsplit("/", 1)[0], "operator and runtime images " \
        "are published side by side"


def test_child_names() -> None:
    assert identity.scheduler_name("x") == "x-scheduler"
    assert identity.worker_name("x", 3) == "x-worker-3"
    assert identity.is_worker_of("x", "x-worker-3") and not identity.is_worker_of("x", "x-worker-a")
    assert not identity.is_worker_of("x", "xy-worker-3")
