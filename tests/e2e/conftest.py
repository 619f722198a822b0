"""Fixtures of the end-to-end suite: a cluster that runs pods, our images in it, the chart installed.

Every test here runs on whichever platform exists (see ``platform.py``) and
skips, with the reason, when none does. Run only this suite with
``./scripts/test.sh -m e2e tests/e2e``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from .kube import OPERATOR_NAMESPACE, RELEASE, TEST_NAMESPACE, Images, Kube
from .platform import REPO, Platform, find_platform, run, tool

CHART = REPO / "charts" / "seamless-dask-operator"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.timeout(900))
    # The README's steps start and stop a node of their own: before the suite's node is up (one per machine).
    readme = [i for i in items if Path(str(i.fspath)) == here / "test_readme.py"]
    rest = [i for i in items if i not in readme]
    first_e2e = next((n for n, i in enumerate(rest) if here in Path(str(i.fspath)).parents), None)
    if readme and first_e2e is not None:
        items[:] = rest[:first_e2e] + readme + rest[first_e2e:]


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
    found = Kube(platform.env)
    # The kubectl and helm the suite runs, against this cluster: a skew beyond Kubernetes' policy is said
    # loudly (a warning, not a failure: kind's node version is the workflow's choice).
    path = os.pathsep.join([str(Path(found.kubectl_path).parent), str(Path(found.helm_path).parent),
                            platform.env.get("PATH", "")])
    check = run(sys.executable, str(REPO / "scripts" / "check-k8s-tools.py"), env={**platform.env, "PATH": path},
                check=False)
    print(check.stderr, flush=True)
    if check.returncode != 0:
        warnings.warn(f"kubectl/helm for the e2e suite: {check.stderr.strip()}", stacklevel=1)
    return found


@pytest.fixture(scope="session")
def operator_release(kube: Kube, images: Images) -> Iterator[str]:
    """``helm install`` of the chart with the image just built; ``helm uninstall`` must leave nothing."""
    kube.kubectl("create", "namespace", TEST_NAMESPACE, check=False)
    # Helm installs a chart's crds/ only when absent and never upgrades them: apply the current one first,
    # as an upgrade of a real install would.
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    repository, _, tag = images.operator.rpartition(":")
    runtime_repository, _, runtime_tag = images.runtime.rpartition(":")
    kube.helm("install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
              "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
              "--set", "image.pullPolicy=IfNotPresent", "--set", "reconcileInterval=2",
              # The image of clusters that leave spec.image unset: the examples run as shipped.
              "--set", f"runtimeImage.repository={runtime_repository}", "--set", f"runtimeImage.tag={runtime_tag}",
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
