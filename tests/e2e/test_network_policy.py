"""The cluster's NetworkPolicy on real pods: its namespace gets in, other namespaces do not.

The workers connecting, the operator's calls and the kubelet's probes all pass
it (every other e2e test runs with it in place); here a pod of the cluster's
namespace and a pod of another namespace dial the scheduler's comm port and a
worker's ports (a worker runs whatever function its comm port is sent).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.kube import TEST_NAMESPACE, Images, Kube, example, small_cluster
from tests.e2e.platform import Platform

OTHER_NAMESPACE = "sdo-e2e-elsewhere"


def dial(host: str, port: int = 8786) -> str:
    return ("import socket\n"
            "s = socket.socket(); s.settimeout(10)\n"
            "try:\n"
            f"    s.connect(('{host}', {port})); print('reached')\n"
            "except OSError as exc:\n"
            "    print('refused', exc)\n")


def worker_ip(kube: Kube, cluster: str) -> str:
    pod = kube.get("pod", f"{cluster}-worker-0")
    assert pod and pod["status"].get("podIP"), pod
    return str(pod["status"]["podIP"])


@pytest.fixture(scope="module")
def fenced(operator_release: str, kube: Kube, images: Images) -> Iterator[str]:
    name = "fenced"
    kube.apply(small_cluster(example("minimal")[0], images.runtime, name))
    kube.wait_running(name, 1)  # workers got through the policy, and the kubelet's probes did
    yield name
    kube.delete_cluster(name)


def test_the_scheduler_has_an_owned_network_policy_and_its_namespace_gets_in(fenced: str, kube: Kube,
                                                                              images: Images) -> None:
    policy = kube.get("networkpolicy", f"{fenced}-scheduler")
    cluster = kube.get("sdc", fenced)
    assert policy and cluster
    assert [o["uid"] for o in policy["metadata"]["ownerReferences"]] == [cluster["metadata"]["uid"]]
    assert "reached" in kube.run_pod("sdo-e2e-same-namespace", images.runtime, dial(f"{fenced}-scheduler"))
    assert "reached" in kube.run_pod("sdo-e2e-same-namespace-worker", images.runtime,
                                     dial(worker_ip(kube, fenced), 8788))


def test_other_namespaces_do_not_get_in(fenced: str, kube: Kube, images: Images, platform: Platform) -> None:
    if not platform.enforces_network_policies:
        pytest.skip(f"{platform.name}: its network plugin enforces no NetworkPolicy (a plain CNI bridge); "
                    "kind's kindnet does, where this runs")
    kube.kubectl("create", "namespace", OTHER_NAMESPACE, check=False)
    try:
        log = kube.run_pod("sdo-e2e-other-namespace", images.runtime,
                           dial(f"{fenced}-scheduler.{TEST_NAMESPACE}.svc"), namespace=OTHER_NAMESPACE)
        assert "refused" in log, log
        log = kube.run_pod("sdo-e2e-other-namespace-worker", images.runtime, dial(worker_ip(kube, fenced), 8788),
                           namespace=OTHER_NAMESPACE)
        assert "refused" in log, log
    finally:
        kube.kubectl("delete", "namespace", OTHER_NAMESPACE, "--wait=false", check=False)
