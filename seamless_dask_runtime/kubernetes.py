"""A SeamlessDaskCluster on Kubernetes, started by ``seamless-dask-wrapper``.

Cluster string ``seamless_dask_runtime.kubernetes::SeamlessDaskCluster``. The
wrapper creates the resource from the status file's parameters (namespace,
name and image among them), waits until the operator reports ``Running``,
and writes the address to the status file. How the launcher reaches the
scheduler is ``SEAMLESS_DASK_K8S_ADDRESS``:

- ``service`` (default in a pod): the in-cluster Service address, ports 8786/8787;
- ``port-forward`` (default outside): ``kubectl port-forward`` to the two ports
  the wrapper chose from ``--port-range``, on the wrapper's host.

Idleness is the operator's business (``spec.timeout``): when it deletes the
resource, the wrapper stops and deletes the status file.

A wrapper killed with SIGKILL leaves its resource behind. The resource carries
the identity of the status file it serves (annotation ``OWNER_ANNOTATION``:
host and absolute path), so the next wrapper for the same file takes the live
cluster over, as seed 003 reuses a live scheduler; a resource of anyone else
is never touched, and the error says how to free the name.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, cast

from .model.identity import (
    API_VERSION,
    COMM_PORT,
    DASHBOARD_PORT,
    DEFAULT_IMAGE,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    scheduler_name,
)
from .model.parameters import ClusterParameters, to_crd_spec
from .model.status import ClusterStatus, Phase

__all__ = ["DEFAULT_IMAGE", "SeamlessDaskCluster", "resource_manifest"]
ADDRESS_VARIABLE = "SEAMLESS_DASK_K8S_ADDRESS"
OWNER_ANNOTATION = f"{GROUP}/status-file"
READY_TIMEOUT_VARIABLE = "SEAMLESS_DASK_K8S_TIMEOUT"


def default_namespace() -> str:
    """The pod's own namespace in a cluster, else ``default``."""
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as stream:
            return stream.read().strip() or "default"
    except OSError:
        return "default"


def status_file_identity(status_path: str, host: str | None = None) -> str:
    """``HOST:/absolute/path`` of the status file a wrapper serves."""
    return f"{host or socket.gethostname()}:{os.path.abspath(status_path)}"


def resource_manifest(params: ClusterParameters, name: str, namespace: str,
                      owner: str | None = None) -> dict[str, Any]:
    """The SeamlessDaskCluster for these parameters (pure).

    The wrapper's scaling is adaptive between ``interactive`` (0 or 1) and
    ``maximum_jobs``; the operator follows the scheduler's own target.
    """
    spec: dict[str, Any] = {}
    for key, value in to_crd_spec(params).items():
        if key.startswith("metadata.") or key in ("cluster", "workers.maximum"):
            continue
        spec[key] = value
    # No image named: the operator's default (the chart's runtimeImage), which it writes into the spec.
    spec["workers"] = {"adaptive": True, "minimum": 1 if params.interactive else 0,
                       "maximum": params.maximum_jobs, "replicas": 0}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/created-by": "seamless-dask-wrapper"},
                     **({"annotations": {OWNER_ANNOTATION: owner}} if owner else {})},
        "spec": spec,
    }


class ClusterFailed(RuntimeError):
    """The resource went to phase Failed or vanished; the message says why."""


class SeamlessDaskCluster:
    """Handle on one SeamlessDaskCluster resource (what the wrapper supervises)."""

    def __init__(self, params: ClusterParameters, *, scheduler_port: int, dashboard_port: int,
                 default_name: str, stop: threading.Event | None = None, owner: str | None = None):
        from kubernetes import client, config

        try:
            config.load_incluster_config()
            in_cluster = True
        except config.ConfigException:
            config.load_kube_config()
            in_cluster = False
        self._custom = client.CustomObjectsApi()
        self._api_exception = client.exceptions.ApiException
        self.namespace = params.namespace or default_namespace()
        self.name = params.name or default_name
        self.mode = os.environ.get(ADDRESS_VARIABLE) or ("service" if in_cluster else "port-forward")
        self._local_ports = (scheduler_port, dashboard_port)
        self._port_forward: subprocess.Popen[bytes] | None = None
        self._stop = stop or threading.Event()
        self.status = ClusterStatus(Phase.STARTING)
        self.reused = False
        self._create_or_take_over(resource_manifest(params, self.name, self.namespace, owner))
        try:
            self._wait_running(float(os.environ.get(READY_TIMEOUT_VARIABLE, "600")))
        except BaseException:
            self.close()
            raise

    def _create_or_take_over(self, body: dict[str, Any], timeout: float = 60) -> None:
        """Create the resource; one left by a killed wrapper of the same status file is taken over."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
                return
            except self._api_exception as exc:
                if exc.status != 409:
                    raise ClusterFailed(f"creating SeamlessDaskCluster {self.namespace}/{self.name}: "
                                        f"{exc.status} {_api_message(exc)}") from None
            existing = self._read()
            if existing is None:
                continue  # it went between our create and our read
            if not _same_owner(existing, body):
                raise ClusterFailed(_name_taken_message(existing, body))
            if existing["metadata"].get("deletionTimestamp") is None:
                if (existing.get("status") or {}).get("phase") != "Failed":
                    self._take_over(existing, body)
                    return
                self._custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
            if time.monotonic() > deadline:  # a Failed or deleted leftover of ours that does not go
                raise ClusterFailed(f"SeamlessDaskCluster {self.namespace}/{self.name} left by an earlier wrapper "
                                    f"is still being deleted after {timeout:g} s; free the name with "
                                    f"`kubectl delete sdc {self.name} -n {self.namespace}`")
            self._stop.wait(0.5)

    def _take_over(self, existing: dict[str, Any], body: dict[str, Any]) -> None:
        """The live cluster of a killed wrapper: keep its scheduler, give it today's spec."""
        self.reused = True
        logging.getLogger("seamless-dask-wrapper").info(
            "taking over SeamlessDaskCluster %s/%s left running by an earlier wrapper of this status file",
            self.namespace, self.name)
        if existing.get("spec") != body["spec"]:
            existing["spec"] = body["spec"]
            self._custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name,
                                                          existing)

    # -- what the wrapper reads ------------------------------------------
    @property
    def scheduler_address(self) -> str:
        return self.status.scheduler_address or ""

    @property
    def dashboard_link(self) -> str:
        return self.status.dashboard_url or ""

    def _read(self) -> dict[str, Any] | None:
        try:
            body = self._custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
            return cast("dict[str, Any]", body)  # the client's JSON of one object
        except self._api_exception as exc:
            if exc.status == 404:
                return None
            raise

    def _wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise ClusterFailed(f"stopped by a signal while SeamlessDaskCluster {self.namespace}/{self.name} "
                                    "was starting")
            body = self._read()
            if body is None:
                raise ClusterFailed(f"SeamlessDaskCluster {self.namespace}/{self.name} was deleted while starting")
            status = body.get("status") or {}
            if status.get("phase") == "Failed":
                raise ClusterFailed(f"SeamlessDaskCluster {self.namespace}/{self.name} failed: "
                                    f"{_failure_message(status)}")
            if status.get("phase") == "Running":
                self.status = self._reachable_status(status)
                return
            self._stop.wait(0.5)
        raise ClusterFailed(f"SeamlessDaskCluster {self.namespace}/{self.name} not Running after {timeout:g} s "
                            f"(set {READY_TIMEOUT_VARIABLE} to wait longer)")

    def _reachable_status(self, status: dict[str, Any]) -> ClusterStatus:
        if self.mode == "service":
            return ClusterStatus(Phase.RUNNING, scheduler_port=status.get("schedulerPort"),
                                 dashboard_port=status.get("dashboardPort"),
                                 scheduler_address=status.get("schedulerAddress"),
                                 dashboard_url=status.get("dashboardUrl"))
        if self.mode != "port-forward":
            raise ClusterFailed(f"{ADDRESS_VARIABLE}={self.mode!r}: use 'service' or 'port-forward'")
        scheduler_port, dashboard_port = self._local_ports
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ClusterFailed(f"port-forward needs kubectl on PATH (or set {ADDRESS_VARIABLE}=service)")
        self._port_forward = subprocess.Popen(
            [kubectl, "port-forward", "-n", self.namespace, "--address", "127.0.0.1",
             f"svc/{scheduler_name(self.name)}", f"{scheduler_port}:{COMM_PORT}", f"{dashboard_port}:{DASHBOARD_PORT}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(scheduler_port, self._port_forward)
        return ClusterStatus(Phase.RUNNING, scheduler_port=scheduler_port, dashboard_port=dashboard_port,
                             scheduler_address=f"tcp://127.0.0.1:{scheduler_port}",
                             dashboard_url=f"http://127.0.0.1:{dashboard_port}/status")

    # -- supervision and shutdown ----------------------------------------
    def supervise(self, stop: threading.Event, interval: float = 2.0) -> str:
        """Until a stop signal, or the operator deleted (idle timeout) or failed the resource. What the operator
        says of other distributed/dask releases (its VersionSkew condition) goes to the wrapper's log, once."""
        skew_said = ""
        while not stop.wait(interval):
            try:
                body = self._read()
            except self._api_exception as exc:  # a flaky API is not a dead cluster
                if exc.status and exc.status < 500 and exc.status != 429:
                    raise
                continue
            if body is None:
                return "resource deleted (operator idle timeout or a user)"
            status = body.get("status") or {}
            if status.get("phase") == "Failed":
                raise ClusterFailed(_failure_message(status))
            conditions: list[dict[str, Any]] = status.get("conditions") or []
            skew = next((c for c in conditions if c.get("type") == "VersionSkew"), {})
            if skew.get("status") == "True" and skew.get("message") and skew["message"] != skew_said:
                skew_said = skew["message"]
                logging.getLogger("seamless-dask-wrapper").warning(
                    "version skew in cluster %s/%s: %s (build the runtime image with the clients' distributed: "
                    "--build-arg DASK_VERSION=...)", self.namespace, self.name, skew_said)
        return "stop signal"

    def close(self) -> None:
        if self._port_forward is not None and self._port_forward.poll() is None:
            self._port_forward.terminate()
        try:
            self._custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        except self._api_exception as exc:
            if exc.status != 404:
                raise
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self._read() is not None:
            time.sleep(0.5)


def _same_owner(existing: dict[str, Any], body: dict[str, Any]) -> bool:
    mine = (body["metadata"].get("annotations") or {}).get(OWNER_ANNOTATION)
    theirs = (existing["metadata"].get("annotations") or {}).get(OWNER_ANNOTATION)
    return mine is not None and theirs == mine


def _name_taken_message(existing: dict[str, Any], body: dict[str, Any]) -> str:
    meta = existing["metadata"]
    theirs = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    whose = f"the wrapper of status file {theirs}" if theirs else "someone else (no wrapper status file recorded)"
    return (f"SeamlessDaskCluster {meta['namespace']}/{meta['name']} already exists and belongs to {whose}, "
            f"not to {(body['metadata'].get('annotations') or {}).get(OWNER_ANNOTATION) or 'this wrapper'}; "
            "free the name with "
            f"`kubectl delete sdc {meta['name']} -n {meta['namespace']}`, or set parameters.name to another name")


def _failure_message(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("status") == "False" and condition.get("message"):
            return f"{condition.get('reason')}: {condition['message']}"
    return "phase Failed"


def _api_message(exc: Any) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ClusterFailed(f"kubectl port-forward exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise ClusterFailed(f"kubectl port-forward did not open port {port} within {timeout:g} s")
