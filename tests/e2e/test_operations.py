"""What operating a cluster brings: TLS with the operator's certificates, and an operator killed mid-reconcile."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from .kube import (
    OPERATOR_NAMESPACE,
    RELEASE,
    TEST_NAMESPACE,
    Images,
    Kube,
    example,
    is_ready,
    small_cluster,
    wait_until,
)


def test_tls_cluster_computes_with_the_secrets_certificates_and_refuses_plain_clients(
        operator_release: str, kube: Kube, images: Images, tmp_path: Path) -> None:
    from distributed import Client
    from distributed.security import Security

    name = "secure"
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    doc["spec"]["tls"] = {"enabled": True}
    kube.apply(doc)
    try:
        kube.wait_running(name, 1)
        assert kube.status(name)["schedulerAddress"].startswith("tls://")
        secret = kube.get("secret", f"{name}-tls")
        assert secret is not None and secret["metadata"]["ownerReferences"][0]["name"] == name
        files = {}
        for key in ("ca.pem", "tls.crt", "tls.key"):
            files[key] = tmp_path / key
            files[key].write_bytes(base64.b64decode(secret["data"][key]))
        security = Security(tls_ca_file=str(files["ca.pem"]), tls_client_cert=str(files["tls.crt"]),
                            tls_client_key=str(files["tls.key"]), require_encryption=True)
        with kube.port_forward(f"svc/{name}-scheduler", 8786, tmp_path / "pf.log") as port:
            with Client(f"tls://127.0.0.1:{port}", security=security, timeout=60) as client:
                client.wait_for_workers(1, timeout=60)
                assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
                assert all(a.startswith("tls://") for a in client.scheduler_info()["workers"])
            with pytest.raises((OSError, TimeoutError)):
                Client(f"tcp://127.0.0.1:{port}", timeout=5)
    finally:
        kube.delete_cluster(name)


def test_operator_killed_mid_reconcile_resumes_without_duplicates(operator_release: str, kube: Kube,
                                                                   images: Images) -> None:
    name = "resumed"
    doc = small_cluster(example("minimal")[0], images.runtime, name)
    doc["spec"]["workers"]["replicas"] = 3
    selector = f"app.kubernetes.io/name=seamless-dask-operator,app.kubernetes.io/instance={RELEASE}"
    # The chart runs two replicas; the Lease's holder is the one that acts: it is the one killed.
    leader = wait_until(kube.operator_leader, "an operator holding the Lease")
    [before] = [p for p in kube.items("pods", OPERATOR_NAMESPACE, selector) if p["metadata"]["name"] == leader]
    kube.apply(doc)
    # As soon as the operator has started on it: the scheduler exists, the workers are not all there.
    wait_until(lambda: kube.names("services", TEST_NAMESPACE, f"dask.org/cluster-name={name}"),
               "the operator started on the cluster", interval=0.2)
    kube.kubectl("delete", "pod", before["metadata"]["name"], "-n", OPERATOR_NAMESPACE, "--grace-period=0",
                 "--force")
    try:
        wait_until(lambda: any(is_ready(p) and p["metadata"]["uid"] != before["metadata"]["uid"]
                               for p in kube.items("pods", OPERATOR_NAMESPACE, selector)), "a new operator pod")
        kube.wait_running(name, 3)
        workers = sorted(p["metadata"]["name"] for p in kube.pods(name, "worker"))
        assert workers == [f"{name}-worker-{i}" for i in range(3)], workers
        assert len(kube.pods(name, "scheduler")) == 1
        assert kube.names("services", TEST_NAMESPACE, f"dask.org/cluster-name={name}") == [f"{name}-scheduler"]
        assert len(kube.connected_workers(name)) == 3
    finally:
        kube.delete_cluster(name)
