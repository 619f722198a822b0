"""The real operator runs under the chart's ServiceAccount and RBAC, and needs nothing more.

For each RBAC mode: ``helm install`` the chart into a real API server (audit log
on), mint a token for the chart's ServiceAccount, run ``seamless-dask-operator``
locally with exactly the rendered Deployment's arguments and environment, and
drive a cluster through its life (create, scale, an invalid spec that posts an
Event, delete). Then:

* no request of the ServiceAccount was refused (no 403 in the audit log) and
  kopf logged no "Not enough permissions" fallback;
* every (apiGroup, resource, verb) it used is in operator_calls.py, the list
  test_rbac.py holds the chart's grants to;
* the helm-test hook's script passes when run with that ServiceAccount.

The watched namespace enforces the restricted Pod Security Standard, so the
scheduler and worker pods the operator makes must pass it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION
from tests.support.audit import make_service_account_kubeconfig, read_audit_events
from tests.support.control_plane import ControlPlane
from tests.support.waiting import wait_for

from ._helm import CHART, hook_test_pod, load_examples, operator_container, render, run, set_args
from .operator_calls import KOPF_CLUSTER_CALLS, KOPF_NAMESPACED_MODE_CALLS, OPERATOR_CALLS, OWN_NAMESPACE_CALLS

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def operator_process(container: dict[str, Any], kubeconfig: Path, log: Path, namespace: str) -> Iterator[str]:
    """Run the operator as the rendered container would (as a pod ``operator-0`` of ``namespace``, the downward
    API's values); yields its /healthz URL."""
    port = free_port()
    args = [a if not a.startswith("--liveness-port") else f"--liveness-port={port}" for a in container["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e and e["name"] != "HOME"})
    downward = {"metadata.namespace": namespace, "metadata.name": "operator-0"}
    env.update({e["name"]: downward[e["valueFrom"]["fieldRef"]["fieldPath"]] for e in container["env"]
                if "fieldRef" in (e.get("valueFrom") or {})})
    env.update(KUBECONFIG=str(kubeconfig), SEAMLESS_DASK_OPERATOR_INTERVAL="1")
    assert container["command"] == ["seamless-dask-operator"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from seamless_dask_operator.main import run; run()", *args],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        def healthy() -> bool:
            assert proc.poll() is None, f"operator exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200

        wait_for(healthy, timeout=60, interval=0.2, description="operator /healthz",
                 ignore=(OSError,))
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def sa_calls(audit_log: Path, user: str) -> tuple[set[tuple[str, str, str]], list[str]]:
    """(apiGroup, resource, verb) of the user's resource requests, and its refused requests (unique)."""
    used: set[tuple[str, str, str]] = set()
    refused: list[str] = []
    for event in read_audit_events(audit_log):
        who = (event.get("impersonatedUser") or {}).get("username") or (event.get("user") or {}).get("username")
        if who != user:
            continue
        status = event.get("responseStatus") or {}
        ref = event.get("objectRef") or {}
        if status.get("code") == 403:
            refused.append(f"{event['verb']} {event.get('requestURI')}: {status.get('message', '')}")
        if not ref.get("resource"):
            continue  # discovery (/api, /apis/...): allowed to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        used.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return used, sorted(set(refused))


def sdc(name: str) -> dict[str, Any]:
    (body,) = [o for o in load_examples()["minimal.yaml"] if o["kind"] == "SeamlessDaskCluster"]
    body = {**body, "metadata": {"name": name}}
    return body


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_operator_runs_under_chart_rbac(
    mode: str, helm: str, control_plane: ControlPlane, api: k8s.ApiClient, crd_installed: str,
    new_namespace: Callable[..., str], tmp_path: Path,
) -> None:
    env = control_plane.env()
    ops = new_namespace("ops")
    watched = new_namespace("watched", labels=RESTRICTED)
    values = {"watchNamespaces": [watched]} if mode == "namespaced" else {}
    release = f"rbac-{uuid.uuid4().hex[:5]}"
    sa_name = f"{release}-seamless-dask-operator"
    user = f"system:serviceaccount:{ops}:{sa_name}"
    objects = render(helm, values, release=release, namespace=ops)
    container = operator_container(objects)
    co, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    names = ("minimal", "invalid")
    run([helm, "install", release, str(CHART), "-n", ops, "--wait=false", *set_args(values)], env=env)
    try:
        kubeconfig = make_service_account_kubeconfig(api, control_plane.kubeconfig, ops, sa_name,
                                                     tmp_path / "sa.kubeconfig", cluster_role=None)
        log = tmp_path / "operator.log"
        try:
            with operator_process(container, kubeconfig, log, ops) as healthz:
                co.create_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, sdc("minimal"))

                def children() -> bool:
                    core.read_namespaced_service("minimal-scheduler", watched)
                    core.read_namespaced_pod("minimal-worker-0", watched)
                    # The scheduler pod was admitted (restricted PSS) too.
                    core.read_namespaced_pod("minimal-scheduler", watched)
                    got = co.get_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "minimal")
                    return bool((got.get("status") or {}).get("phase"))

                wait_for(children, timeout=60, interval=0.2, description="scheduler, worker and status",
                         ignore=(ApiException,))
                co.patch_namespaced_custom_object_scale(GROUP, VERSION, watched, PLURAL, "minimal",
                                                        {"spec": {"replicas": 2}})
                wait_for(lambda: core.read_namespaced_pod("minimal-worker-1", watched), timeout=60, interval=0.2,
                         description="second worker after kubectl scale", ignore=(ApiException,))

                # A spec the schema admits but the operator refuses: Failed + an Event (events create).
                bad = sdc("invalid")
                bad["spec"] = {**bad["spec"], "volumes": [{"name": "seamless-dask-tmp", "emptyDir": {}}]}
                co.create_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, bad)

                def invalid_reported() -> bool:
                    events = core.list_namespaced_event(watched, field_selector="involvedObject.name=invalid").items
                    return any(e.type == "Warning" for e in events)

                wait_for(invalid_reported, timeout=60, interval=0.2, description="Warning Event for invalid spec")

                # The helm-test hook's script, with the operator's ServiceAccount.
                pod = hook_test_pod(objects)["spec"]["containers"][0]
                hook_env = {e["name"]: e["value"] for e in pod["env"]}
                check = run([sys.executable, "-c", pod["args"][0]],
                            env={**env, "KUBECONFIG": str(kubeconfig), "HEALTHZ_URL": healthz,
                                 "CHECK_NAMESPACE": hook_env["CHECK_NAMESPACE"]})
                assert "is served" in check.stdout and "healthy" in check.stdout

                for name in names:
                    co.delete_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, name)

                def all_gone() -> bool:
                    left = co.list_namespaced_custom_object(GROUP, VERSION, watched, PLURAL)["items"]
                    pods = core.list_namespaced_pod(watched, label_selector="dask.org/cluster-name").items
                    services = core.list_namespaced_service(watched).items
                    return not (left or pods or services)

                wait_for(all_gone, timeout=60, interval=0.2, description="resources and children deleted")
        except (AssertionError, TimeoutError, ApiException) as exc:
            refused = sa_calls(control_plane.audit_log, user)[1] if control_plane.audit_log else "no audit log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise AssertionError(f"{exc}\nrefused requests of {user}: {refused}\noperator log:\n{tail}") from exc
        text = log.read_text()
        assert "Not enough permissions" not in text, text[-3000:]
        assert "Forbidden" not in text and " 403" not in text, text[-3000:]
        if control_plane.audit_log is None:
            pytest.skip("borrowed cluster: no audit log to compare the calls with (the run itself passed)")
        used, refused = sa_calls(control_plane.audit_log, user)  # a user of its own: no time filter
        assert refused == []
        allowed = set(OPERATOR_CALLS) | set(KOPF_CLUSTER_CALLS) | set(OWN_NAMESPACE_CALLS)
        if mode == "namespaced":
            allowed |= set(KOPF_NAMESPACED_MODE_CALLS)
        assert used <= allowed, f"calls missing from operator_calls.py: {sorted(used - allowed)}"
        # The measurement saw the operator at work (not a vacuous pass).
        assert {("", "services", "create"), ("", "pods", "create"), ("", "events", "create"),
                (GROUP, "seamlessdaskclusters/status", "patch"), ("", "pods", "delete"),
                ("coordination.k8s.io", "leases", "create"), ("coordination.k8s.io", "leases", "update")} <= used
    finally:
        for name in names:
            with contextlib.suppress(ApiException):
                co.patch_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, name,
                                                  {"metadata": {"finalizers": None}})
        # --no-hooks: the uninstall hook is a Job, and no kubelet runs it here (tests/e2e run it on a node).
        run([helm, "uninstall", release, "-n", ops, "--wait=false", "--no-hooks"], env=env, check=False)
