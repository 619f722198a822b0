"""kubectl and helm as a user types them, plus the waits and probes the e2e tests share."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .platform import REPO, run, tool

RELEASE = "sdo-e2e"
OPERATOR_NAMESPACE = "seamless-dask-system"
TEST_NAMESPACE = "sdo-e2e"
EXAMPLES = REPO / "examples"
CLUSTER_LABEL = "dask.org/cluster-name"
WAIT = 240.0
# Two CPUs on the real node: every pod asks for little, so several clusters fit at once.
SMALL = {"requests": {"cpu": "50m", "memory": "160Mi"}}


@dataclass
class Images:
    operator: str
    runtime: str
    seconds: dict[str, float] = field(default_factory=dict)


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last value {last!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_cluster(doc: dict[str, Any], image: str, name: str | None = None) -> dict[str, Any]:
    """An example with our image and requests small enough that the tests' clusters fit a 2-CPU node at once
    (the examples as shipped fit it one at a time: test_every_example_runs applies them unchanged)."""
    doc = copy.deepcopy(doc)
    if name:
        doc["metadata"]["name"] = name
    spec = doc.setdefault("spec", {})
    spec["image"] = image
    spec["imagePullPolicy"] = "IfNotPresent"
    for part in ("workers", "scheduler"):
        spec.setdefault(part, {})["resources"] = copy.deepcopy(SMALL)
    return doc


def example(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLES / f"{name}.yaml").read_text()) if d]


class Kube:
    """One cluster, seen through kubectl and helm."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.kubectl_path = tool("kubectl") or "kubectl"
        self.helm_path = tool("helm") or "helm"

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(self.kubectl_path, *args, env=self.env, check=check, input=input, timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run(self.helm_path, *args, env=self.env, check=check, timeout=timeout)

    def apply(self, *docs: dict[str, Any], namespace: str = TEST_NAMESPACE) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(list(docs)))

    def get(self, kind: str, name: str, namespace: str = TEST_NAMESPACE) -> dict[str, Any] | None:
        proc = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def items(self, kind: str, namespace: str = TEST_NAMESPACE, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json", *(["-l", selector] if selector else [])]
        return json.loads(self.kubectl(*args).stdout)["items"]

    def names(self, kind: str, namespace: str = TEST_NAMESPACE, selector: str | None = None) -> list[str]:
        proc = self.kubectl("get", kind, "-n", namespace, "-o", "name", *(["-l", selector] if selector else []),
                            check=False)
        return [line.split("/", 1)[-1] for line in proc.stdout.split()] if proc.returncode == 0 else []

    def status(self, name: str, namespace: str = TEST_NAMESPACE) -> dict[str, Any]:
        return (self.get("sdc", name, namespace) or {}).get("status") or {}

    def condition(self, name: str, kind: str, namespace: str = TEST_NAMESPACE) -> dict[str, Any]:
        return next((c for c in self.status(name, namespace).get("conditions") or [] if c["type"] == kind), {})

    def pods(self, cluster: str, component: str | None = None, namespace: str = TEST_NAMESPACE,
             ) -> list[dict[str, Any]]:
        selector = f"{CLUSTER_LABEL}={cluster}" + (f",dask.org/component={component}" if component else "")
        return [p for p in self.items("pods", namespace, selector) if not p["metadata"].get("deletionTimestamp")]

    def events(self, name: str, reason: str, namespace: str = TEST_NAMESPACE) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name},involvedObject.kind=SeamlessDaskCluster,reason={reason}"
        return json.loads(self.kubectl("get", "events", "-n", namespace, "--field-selector", selector,
                                       "-o", "json").stdout)["items"]

    def operator_leader(self) -> str:
        """The operator pod that holds the release's Lease (the one that acts), or "" while none does."""
        lease = self.get("lease", f"{RELEASE}-seamless-dask-operator", namespace=OPERATOR_NAMESPACE) or {}
        return str(lease.get("spec", {}).get("holderIdentity") or "").split("_")[0]

    def describe(self, name: str, namespace: str = TEST_NAMESPACE) -> str:
        """What a failing test should say: the cluster's status, its pods and every Event it got."""
        status = self.status(name, namespace)
        lines = [f"{name}: {status.get('phase')} {status.get('reason')} ready={status.get('workersReady')} "
                 f"desired={status.get('workersDesired')}: {status.get('message')}"]
        for pod in self.items("pods", namespace, f"{CLUSTER_LABEL}={name}"):
            meta, pod_status = pod["metadata"], pod.get("status") or {}
            waiting = [c.get("state", {}).get("waiting", {}).get("reason") for c in
                       pod_status.get("containerStatuses") or []]
            template = (meta.get("annotations") or {}).get("seamless.dask.org/template-hash")
            deleting = bool(meta.get("deletionTimestamp"))
            lines.append(f"  pod {meta['name']} hash={template} {pod_status.get('phase')} ready={is_ready(pod)}"
                         f" deleting={deleting} {[w for w in waiting if w]}")
        selector = f"involvedObject.name={name},involvedObject.kind=SeamlessDaskCluster"
        events = json.loads(self.kubectl("get", "events", "-n", namespace, "--field-selector", selector,
                                         "-o", "json").stdout)["items"]
        lines += [f"  event {e.get('reason')} x{e.get('count') or 1}: {e.get('message')}" for e in events]
        return "\n".join(lines)

    def wait_running(self, name: str, workers: int, namespace: str = TEST_NAMESPACE, timeout: float = WAIT) -> None:
        """Phase Running with ``workers`` ready, and Running only while a scheduler pod is Ready."""
        def running() -> bool:
            status = self.status(name, namespace)
            if status.get("phase") != "Running":
                return False
            # Re-read after the pods: the phase may have left Running in between, which is no lie.
            ready_scheduler = any(is_ready(p) for p in self.pods(name, "scheduler", namespace))
            assert ready_scheduler or self.status(name, namespace).get("phase") != "Running", \
                f"{name} says Running but no scheduler pod is Ready"
            return ready_scheduler and status.get("workersReady") == workers
        wait_until(running, f"{name} Running with {workers} workers", timeout)

    def delete_cluster(self, name: str, namespace: str = TEST_NAMESPACE) -> None:
        self.kubectl("delete", "sdc", name, "-n", namespace, "--ignore-not-found", "--wait=true", "--timeout=120s")
        wait_until(lambda: not self.names("pods,services", namespace, f"{CLUSTER_LABEL}={name}"),
                   f"children of {name} gone", timeout=120)

    def scheduler_exec(self, name: str, code: str, namespace: str = TEST_NAMESPACE) -> str:
        """Run Python in the scheduler pod (the image has no curl)."""
        return self.kubectl("exec", "-n", namespace, f"pod/{name}-scheduler", "--", "python", "-c", code).stdout

    def connected_workers(self, name: str, namespace: str = TEST_NAMESPACE) -> list[str]:
        out = self.scheduler_exec(name, (
            "import json, urllib.request\n"
            "workers = json.load(urllib.request.urlopen('http://localhost:8787/api/v1/get_workers'))['workers']\n"
            "print(json.dumps(sorted(w['name'] for w in workers)))"), namespace)
        return json.loads(out.strip().splitlines()[-1])

    def run_pod(self, name: str, image: str, code: str, namespace: str = TEST_NAMESPACE,
                service_account: str | None = None, timeout: float = WAIT) -> str:
        """A one-off pod in the cluster running ``python -c code``; its log once it succeeded."""
        pod: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", code], "resources": SMALL,
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }],
            },
        }
        if service_account:
            pod["spec"]["serviceAccountName"] = service_account
        self.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=true")
        self.apply(pod, namespace=namespace)

        def finished() -> str | None:
            phase = ((self.get("pod", name, namespace) or {}).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None
        try:
            phase = wait_until(finished, f"pod {name} finished", timeout)
            log = self.kubectl("logs", "-n", namespace, name, check=False).stdout
            assert phase == "Succeeded", f"pod {name} {phase}:\n{log}"
            return log
        finally:
            self.kubectl("delete", "pod", name, "-n", namespace, "--ignore-not-found", "--wait=false", check=False)

    @contextlib.contextmanager
    def dask_client(self, cluster: str, workdir: Path, namespace: str = TEST_NAMESPACE) -> Iterator[Any]:
        """A ``distributed.Client`` on the host, through ``kubectl port-forward`` to the scheduler Service."""
        from distributed import Client

        with self.port_forward(f"svc/{cluster}-scheduler", 8786, workdir / f"pf-{cluster}.log", namespace) as port, \
                Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            yield client

    @contextlib.contextmanager
    def port_forward(self, target: str, remote: int, log: Path, namespace: str = TEST_NAMESPACE,
                     ) -> Iterator[int]:
        """``kubectl port-forward`` in the background; yields the local port."""
        local = free_port()
        with open(log, "w") as out:
            proc = subprocess.Popen([self.kubectl_path, "port-forward", "-n", namespace, target, f"{local}:{remote}"],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            def forwarding() -> bool:
                assert proc.poll() is None, f"kubectl port-forward exited: {log.read_text()}"
                return "Forwarding from" in log.read_text()
            wait_until(forwarding, f"port-forward {target}", timeout=60, interval=0.3)
            yield local
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions)
