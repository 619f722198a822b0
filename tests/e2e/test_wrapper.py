"""seamless-dask-wrapper's Kubernetes backend on real pods: a launcher's status file in, a cluster that
computes out, and the idle stop removes it. `port-forward` mode from the host, `service` mode from a pod."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support.wrapper import start_wrapper, stop, wait_for_exit, wait_for_status, write_launcher_status

from .kube import TEST_NAMESPACE, Images, Kube, wait_until

CLUSTER = "seamless_dask_runtime.kubernetes::SeamlessDaskCluster"
IDLE = 15


def _parameters(images: Images) -> dict:
    return {"cores": 1, "memory": "1GiB", "maximum_jobs": 2, "interactive": True, "namespace": TEST_NAMESPACE,
            "image": images.runtime, "timeout": IDLE}


def test_port_forward_mode_from_the_host(operator_release: str, kube: Kube, images: Images, tmp_path: Path) -> None:
    from distributed import Client

    path = tmp_path / "daskserver-e2e-host.json"
    write_launcher_status(path, _parameters(images))
    env = {"KUBECONFIG": kube.env["KUBECONFIG"], "SEAMLESS_DASK_K8S_ADDRESS": "port-forward",
           "PATH": f"{Path(kube.kubectl_path).parent}:{os.environ['PATH']}"}
    proc = start_wrapper(path, cluster=CLUSTER, env=env)
    try:
        status = wait_for_status(path, proc, timeout=240)
        assert status["status"] == "running", status
        assert status["scheduler_address"].startswith("tcp://127.0.0.1:")
        with Client(status["scheduler_address"], timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(pow, 3, 3).result(timeout=60) == 27
        # Nobody left: the operator's idle timeout deletes the resource, the wrapper ends and removes its file.
        assert wait_for_exit(proc, IDLE + 90) == 0
        assert not path.exists()
        assert kube.get("sdc", "daskserver-e2e-host") is None
    finally:
        stop(proc)
        kube.delete_cluster("daskserver-e2e-host")


def _launcher_account(kube: Kube) -> str:
    """A ServiceAccount that may manage SeamlessDaskClusters in the test namespace, nothing else."""
    name = "sdo-e2e-launcher"
    kube.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
         "rules": [{"apiGroups": ["seamless.dask.org"], "resources": ["seamlessdaskclusters"],
                    "verbs": ["get", "list", "watch", "create", "delete"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": TEST_NAMESPACE}]},
    )
    return name


def test_service_mode_from_a_pod(operator_release: str, kube: Kube, images: Images) -> None:
    """A launcher in a pod of the runtime image (the wrapper, and the kubernetes client its backend uses)."""
    parameters = json.dumps({k: v for k, v in _parameters(images).items() if k != "namespace"})
    code = f"""
import json, subprocess, sys, time
from distributed import Client
path = '/tmp/daskserver-e2e-pod.json'
json.dump({{'status': 'starting', 'parameters': json.loads({parameters!r})}}, open(path, 'w'))
proc = subprocess.Popen(['seamless-dask-wrapper', '{CLUSTER}', '--port-range', '8786', '8787', '--status-file', path])
deadline = time.monotonic() + 240
while json.load(open(path)).get('status') == 'starting' and time.monotonic() < deadline:
    time.sleep(0.5)
status = json.load(open(path))
print('status', status['status'], status.get('scheduler_address'))
with Client(status['scheduler_address'], timeout=60) as client:
    client.wait_for_workers(1, timeout=120)
    print('result', client.submit(pow, 2, 10).result(timeout=60))
print('wrapper exit', proc.wait(timeout={IDLE + 90}))
import os
print('status file left', os.path.exists(path))
"""
    account = _launcher_account(kube)
    try:
        log = kube.run_pod("sdo-e2e-launcher", images.runtime, code, service_account=account, timeout=400)
        assert f"status running tcp://daskserver-e2e-pod-scheduler.{TEST_NAMESPACE}.svc:8786" in log, log
        assert "result 1024" in log and "wrapper exit 0" in log and "status file left False" in log, log
        wait_until(lambda: kube.get("sdc", "daskserver-e2e-pod") is None, "the idle cluster removed")
    finally:
        kube.delete_cluster("daskserver-e2e-pod")
