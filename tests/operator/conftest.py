"""The real kopf operator against the real kube-apiserver, one namespace per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client

from seamless_dask_runtime.model.identity import GROUP, PLURAL, VERSION
from tests.support.control_plane import use_kubeconfig
from tests.support.waiting import wait_for

OPERATOR_ARGS = ["run", "--standalone", "--all-namespaces", "-m", "seamless_dask_operator.handlers"]


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30, interval=0.2,
             description="default service account")
    yield name
    core.delete_namespace(name)


@pytest.fixture
def other_namespace(kube_api: client.ApiClient) -> Iterator[str]:
    """A second namespace: another tenant's."""
    core = client.CoreV1Api(kube_api)
    name = f"t-other-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.list_namespaced_service_account(name).items, timeout=30, description="service account")
    yield name
    core.delete_namespace(name)


@contextmanager
def running_operator(control_plane: Any) -> Iterator[Any]:
    from kopf.testing import KopfRunner

    with use_kubeconfig(control_plane.kubeconfig), KopfRunner(OPERATOR_ARGS, timeout=60) as runner:
        yield runner
    assert runner.exception is None, _trouble(runner.output, f"the operator raised {runner.exception!r}")
    assert "Traceback" not in runner.output, _trouble(runner.output, "the operator logged a traceback")


def _trouble(output: str, what: str, context: int = 30) -> str:
    """What went wrong, first and short (a run's whole log is thousands of lines; CI shows its tail), then the
    lines around each traceback."""
    lines = output.splitlines()
    tracebacks = [i for i, line in enumerate(lines) if "Traceback" in line]
    starts = tracebacks[:3] or [max(len(lines) - context, 0)]
    excerpts = ["\n".join(lines[max(i - 3, 0):i + context]) for i in starts]
    return f"{what}; {len(tracebacks)} traceback(s) in its log:\n" + "\n...\n".join(excerpts)


@pytest.fixture
def operator(control_plane: Any, kube_api: client.ApiClient) -> Iterator[Any]:
    with running_operator(control_plane) as runner:
        yield runner


@pytest.fixture
def operator_factory(control_plane: Any, kube_api: client.ApiClient) -> Callable[[], Any]:
    """For tests that stop and restart the operator."""
    return lambda: running_operator(control_plane)


class Clusters:
    """SeamlessDaskCluster objects of one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SeamlessDaskCluster",
                "metadata": {"name": name}, "spec": spec}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def find(self, name: str) -> dict[str, Any] | None:
        """The resource, or None once it is gone (finalizer cleared)."""
        try:
            return self.get(name)
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def children(self, name: str) -> tuple[list[str], int, int]:
        """Worker pod names, scheduler pods, scheduler Services (none terminating): each must exist once."""
        services = [s for s in self.core.list_namespaced_service(self.namespace).items
                    if s.metadata.name == f"{name}-scheduler"]
        return self.worker_names(name), len(self.pods(name, "scheduler")), len(services)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait_status(self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30,
                    description: str = "status") -> dict[str, Any]:
        return wait_for(lambda: (s := self.status(name)) and predicate(s) and s, timeout=timeout,
                        interval=0.2, description=f"{name}: {description}")

    def pods(self, name: str, component: str) -> list[client.V1Pod]:
        selector = f"dask.org/cluster-name={name},dask.org/component={component}"
        return [p for p in self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
                if p.metadata.deletion_timestamp is None]

    def worker_names(self, name: str) -> list[str]:
        return sorted(p.metadata.name for p in self.pods(name, "worker"))

    def events(self, name: str) -> list[client.CoreV1Event]:
        return [e for e in self.core.list_namespaced_event(self.namespace).items
                if e.involved_object.name == name and e.involved_object.kind == "SeamlessDaskCluster"]


@pytest.fixture
def clusters(kube_api: client.ApiClient, namespace: str) -> Clusters:
    return Clusters(kube_api, namespace)
