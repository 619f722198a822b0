"""Fixtures of the end-to-end suite: a cluster that runs pods, our images in it, the chart installed.

Every test here runs on whichever platform exists (see ``platform.py``) and
skips, with the reason, when none does. Run only this suite with
``./scripts/test.sh -m e2e tests/e2e``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import OPERATOR_NAMESPACE, RELEASE, TEST_NAMESPACE, Images, Kube
from .platform import REPO, Platform, find_platform, tool

CHART = REPO / "charts" / "seamless-dask-operator"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    found = find_platform(tmp_path_factory.mktemp("platform"))
    if isinstance(found, str):
        pytest.skip(found)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="session")
def images(platform: Platform) -> Images:
    """Both images from our Dockerfiles, every run (buildah/docker layer caches keep rebuilds short)."""
    import distributed

    built = Images(operator="seamless-dask-operator:e2e", runtime="seamless-dask-runtime:e2e")
    # The runtime's distributed must match the test client's.
    build_args = {"DASK_VERSION": distributed.__version__}
    built.seconds["operator"] = platform.build_image(REPO / "operator" / "Dockerfile", built.operator)
    built.seconds["runtime"] = platform.build_image(REPO / "images" / "runtime" / "Dockerfile", built.runtime,
                                                    build_args)
    for kind, tag in (("operator", built.operator), ("runtime", built.runtime)):
        size = platform.image_size(tag)
        print(f"image {tag}: built in {built.seconds[kind]:.1f} s, "
              f"{'size unknown' if size is None else f'{size / 1e6:.0f} MB'}", flush=True)
    return built


@pytest.fixture(scope="session")
def kube(platform: Platform) -> Kube:
    if tool("kubectl") is None or tool("helm") is None:
        pytest.skip("kubectl and helm are needed (scripts/get-k8s-tools.sh)")
    return Kube(platform.env)


@pytest.fixture(scope="session")
def operator_release(kube: Kube, images: Images) -> Iterator[str]:
    """``helm install`` of the chart with the image just built; ``helm uninstall`` must leave nothing."""
    kube.kubectl("create", "namespace", TEST_NAMESPACE, check=False)
    # Helm installs a chart's crds/ only when absent and never upgrades them: apply the current one first,
    # as an upgrade of a real install would.
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    repository, _, tag = images.operator.rpartition(":")
    kube.helm("install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
              "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
              "--set", "image.pullPolicy=IfNotPresent", "--set", "reconcileInterval=2",
              # Namespaced mode: the operator serves the test namespace only, so other users of
              # the same cluster (a benchmark, say) are left alone.
              "--set", f"watchNamespaces={{{TEST_NAMESPACE}}}",
              "--wait", "--timeout", "300s", timeout=360)
    try:
        yield RELEASE
    finally:
        for name in kube.names("sdc", TEST_NAMESPACE):
            kube.kubectl("delete", "sdc", name, "-n", TEST_NAMESPACE, "--wait=true", "--timeout=120s", check=False)
        kube.helm("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait", "--timeout", "180s",
                  check=False)
        if os.environ.get("SDO_E2E_KEEP_CLUSTER") != "1":
            kube.kubectl("delete", "namespace", TEST_NAMESPACE, "--wait=false", check=False)
