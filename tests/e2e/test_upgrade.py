"""``helm upgrade`` from a chart built from an earlier commit to this one, with 3 clusters holding results in worker
memory (issue 22, "Upgrade with live clusters"): scheduler pods keep their uids (their template did not change),
every result is still there, and the CRD serves both API versions.

The earlier release is this repository at PREVIOUS (its chart, its operator and runtime images, built here from its
own Dockerfiles), installed beside the suite's own release and serving a namespace of its own.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.kube import Images, Kube, example, small_cluster
from tests.e2e.platform import REPO, Platform

# The last commit of the layout this upgrade starts from (the scheduler already a pod of the operator's own); the
# Deployment layout before it is the API-level test tests/operator/test_upgrade_layouts.py.
PREVIOUS = "b97bec9"
NAMESPACE, OPERATOR_NS, RELEASE = "sdo-e2e-upgrade", "sdo-e2e-upgrade-ops", "sdo-upgrade"
CLUSTERS = ("up-a", "up-b", "up-c")


@pytest.fixture(scope="module")
def previous(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The earlier commit's checkout, and its images built into the platform."""
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"]).returncode != 0:
        pytest.skip(f"commit {PREVIOUS} is not in this clone (a shallow one?): nothing to upgrade from")
    checkout = tmp_path_factory.mktemp("previous") / "repo"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(checkout), PREVIOUS], check=True,
                   capture_output=True)
    try:
        for dockerfile, tag in (("operator/Dockerfile", "seamless-dask-operator:e2e-previous"),
                                ("images/runtime/Dockerfile", "seamless-dask-runtime:e2e-previous")):
            seconds = platform.build_image(checkout / dockerfile, tag, context=checkout)
            print(f"previous {tag}: built in {seconds:.0f} s", flush=True)
        yield checkout
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(checkout)], check=False)


@contextlib.contextmanager
def holding(kube: Kube, tmp_path: Path) -> Iterator[dict[str, tuple[Any, list[Any]]]]:
    """A client per cluster, each holding 20 results in its workers' memory, kept open across the upgrade."""
    with contextlib.ExitStack() as stack:
        held = {}
        for name in CLUSTERS:
            client = stack.enter_context(kube.dask_client(name, tmp_path, namespace=NAMESPACE))
            client.wait_for_workers(2, timeout=120)
            futures = client.map(lambda i, n=name: f"{n}-{i}" * 1000, range(20), pure=False)
            client.gather(futures)
            held[name] = (client, futures)
        yield held


def test_helm_upgrade_from_an_earlier_commit_keeps_schedulers_and_results(
        operator_release: str, previous: Path, kube: Kube, images: Images, tmp_path: Path) -> None:
    for namespace in (NAMESPACE, OPERATOR_NS):
        kube.kubectl("create", "namespace", namespace, check=False)
    old_chart = previous / "charts" / "seamless-dask-operator"
    common = ["--namespace", OPERATOR_NS, "--set", f"watchNamespaces={{{NAMESPACE}}}", "--set",
              "image.pullPolicy=IfNotPresent", "--set", "reconcileInterval=2", "--wait", "--timeout", "300s"]
    # --skip-crds: the suite applied the current CRD (server-side, as the README's upgrade does first); Helm's own
    # server-side apply of the earlier chart's CRD would conflict with it. The current CRD serves v1alpha1 too,
    # which the earlier operator speaks.
    kube.helm("install", RELEASE, str(old_chart), "--skip-crds", "--set", "image.repository=seamless-dask-operator",
              "--set", "image.tag=e2e-previous", *common, timeout=360)
    try:
        for name in CLUSTERS:
            doc = small_cluster(example("minimal")[0], "seamless-dask-runtime:e2e-previous", name)
            doc["apiVersion"] = "seamless.dask.org/v1alpha1"  # what the earlier release spoke
            doc["spec"]["workers"].update(replicas=2, maximum=3)
            kube.apply(doc, namespace=NAMESPACE)
        for name in CLUSTERS:
            kube.wait_running(name, 2, namespace=NAMESPACE)
        schedulers = {n: kube.pods(n, "scheduler", namespace=NAMESPACE)[0]["metadata"]["uid"] for n in CLUSTERS}
        with holding(kube, tmp_path) as held:
            started = time.monotonic()
            kube.helm("upgrade", RELEASE, str(REPO / "charts" / "seamless-dask-operator"), "--set",
                      "image.repository=seamless-dask-operator", "--set", f"image.tag={images.operator.split(':')[1]}",
                      *common, timeout=360)
            upgraded = time.monotonic() - started
            time.sleep(15)  # the new operator's rounds go by
            for name in CLUSTERS:
                kube.wait_running(name, 2, namespace=NAMESPACE)
                assert kube.pods(name, "scheduler", namespace=NAMESPACE)[0]["metadata"]["uid"] == schedulers[name], \
                    f"{name}: its scheduler was restarted by the upgrade"
                client, futures = held[name]
                assert client.gather(futures) == [f"{name}-{i}" * 1000 for i in range(20)], f"{name}: results lost"
        print(f"\nhelm upgrade {PREVIOUS} -> HEAD with 3 clusters: {upgraded:.0f} s; scheduler uids unchanged, "
              "60 of 60 results still there", flush=True)
        for version in ("v1alpha1", "v1beta1"):
            # kubectl names the version it asks for; the API server answers in it (kubectl may print the
            # object in the preferred version, so the raw answer is what is checked).
            listed = kube.kubectl("get", f"seamlessdaskclusters.{version}.seamless.dask.org", "-n", NAMESPACE,
                                  "-o", "name")
            assert CLUSTERS[0] in listed.stdout, listed.stdout
            raw = kube.kubectl("get", "--raw", f"/apis/seamless.dask.org/{version}/namespaces/{NAMESPACE}/"
                               f"seamlessdaskclusters/{CLUSTERS[0]}")
            assert json.loads(raw.stdout)["apiVersion"] == f"seamless.dask.org/{version}"
    finally:
        for name in CLUSTERS:
            kube.kubectl("delete", "sdc", name, "-n", NAMESPACE, "--wait=true", "--timeout=120s", check=False)
        kube.helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", "--timeout", "180s", check=False)
        for namespace in (NAMESPACE, OPERATOR_NS):
            kube.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
