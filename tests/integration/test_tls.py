"""Dask TLS with the operator's certificates: the built pods' command lines, run as local processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import Client
from distributed.security import Security
from seamless_dask_operator.builders import ClusterRef, scheduler_pod, worker_pod
from seamless_dask_operator.builders.pods import TLS_DIRECTORY
from seamless_dask_operator.resource import parse_spec
from seamless_dask_operator.tls import make_certificates

from tests.support.pods import start_container, stop_process
from tests.support.ports import free_port

REF = ClusterRef("secure", "science", "uid-secure")



def test_tls_cluster_accepts_only_clients_with_its_certificates(tmp_path: Path) -> None:
    cluster = parse_spec({"cores": 1, "tls": {"enabled": True}, "workers": {"replicas": 1}})
    scheduler = scheduler_pod(REF, cluster)["spec"]["containers"][0]
    worker = worker_pod(REF, cluster, 0)["spec"]["containers"][0]
    assert {"name": "seamless-dask-tls", "mountPath": TLS_DIRECTORY, "readOnly": True} in worker["volumeMounts"]
    assert worker["args"][-1] == "tls://secure-scheduler.science.svc:8786"

    for name, text in make_certificates(REF).items():
        (tmp_path / name).write_text(text)
    comm = free_port()
    replace = {f"{TLS_DIRECTORY}/{name}": str(tmp_path / name) for name in ("ca.pem", "tls.crt", "tls.key")}
    replace |= {"8786": str(comm), ":8787": ":0", ":8788": ":0",
                "tls://secure-scheduler.science.svc:8786": f"tls://127.0.0.1:{comm}"}
    processes = [start_container(scheduler, "secure-scheduler", replace, str(tmp_path / "scheduler.log"))]
    try:
        security = Security(tls_ca_file=str(tmp_path / "ca.pem"), tls_client_cert=str(tmp_path / "tls.crt"),
                            tls_client_key=str(tmp_path / "tls.key"), require_encryption=True)
        with Client(f"tls://127.0.0.1:{comm}", security=security, timeout=30) as client:
            processes.append(start_container(worker, "secure-worker-0", replace, str(tmp_path / "worker.log")))
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result() == 6
            assert all(a.startswith("tls://") for a in client.scheduler_info()["workers"])
        with pytest.raises((OSError, TimeoutError)):
            Client(f"tcp://127.0.0.1:{comm}", timeout=3)  # plain TCP gets nowhere
        stranger = Security.temporary()  # a client with certificates from another CA
        with pytest.raises((OSError, TimeoutError)):
            Client(f"tls://127.0.0.1:{comm}", security=stranger, timeout=3)
    finally:
        for proc in processes:
            stop_process(proc)
