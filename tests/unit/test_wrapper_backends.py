"""The wrapper's backend protocol: which backend a cluster string picks, and what its handle does.

Real Dask throughout (in-process LocalClusters are cheap); no Dask object is mocked.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import dask
import pytest
from distributed import Client, LocalCluster

from seamless_dask_runtime.kubernetes import SeamlessDaskCluster
from seamless_dask_runtime.launcher.wrapper.backends import ClusterHandle, LaunchRequest, choose_backend
from seamless_dask_runtime.launcher.wrapper.backends.base import InjectingHandle, OwnPortsHandle
from seamless_dask_runtime.model.identity import PARAMETERS_VARIABLE
from seamless_dask_runtime.model.parameters import from_status_parameters
from seamless_dask_runtime.model.status import Phase
from seamless_dask_runtime.plugin import WORKER_PLUGIN_NAME
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def keep_environment_and_config() -> Iterator[None]:
    """Backends set worker variables and Dask config for the processes they start: undo that."""
    environment, config = dict(os.environ), copy.deepcopy(dask.config.config)
    yield
    os.environ.clear()
    os.environ.update(environment)
    dask.config.config.clear()
    dask.config.config.update(config)


def request_for(raw: dict[str, Any], *, dashboard_port: int | None = None) -> LaunchRequest:
    return LaunchRequest(params=from_status_parameters(raw), host="127.0.0.1", scheduler_port=free_port(),
                         dashboard_port=dashboard_port or free_port())


def plugin_environment(dask_scheduler: Any) -> dict[str, str] | None:
    """Runs on the scheduler: the environment of the Seamless worker plugin it hands to every worker."""
    from distributed.protocol.pickle import loads

    pickled = dask_scheduler.worker_plugins.get(WORKER_PLUGIN_NAME)
    return None if pickled is None else loads(pickled).environment


def seamless_target(dask_scheduler: Any) -> bool:
    return dask_scheduler.adaptive_target.__name__ == "seamless_adaptive_target"


def a_factory() -> LocalCluster:
    return LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0")


def test_backend_by_what_the_cluster_string_names() -> None:
    from dask_jobqueue import SLURMCluster
    from dask_kubernetes.operator import KubeCluster

    assert choose_backend(LocalCluster).name == "local"
    assert choose_backend(SLURMCluster).name == "jobqueue"
    assert choose_backend(SeamlessDaskCluster).name == "kubernetes"
    assert choose_backend(KubeCluster).name == "dask-kubernetes"
    assert choose_backend(a_factory).name == "generic"
    with pytest.raises(ValueError, match="not a Dask cluster class"):
        choose_backend("distributed")
    with a_factory() as instance, pytest.raises(ValueError, match="name the class instead"):
        choose_backend(instance)


def test_local_backend_preloads_its_parameters_not_the_environment() -> None:
    """The in-process scheduler preload gets the parameters as its argument; a stale variable loses."""
    os.environ[PARAMETERS_VARIABLE] = '{"transformation_throttle": 9}'
    request = request_for({"cores": 1, "maximum_jobs": 1, "transformation_throttle": 5})
    handle = choose_backend(LocalCluster).start(LocalCluster, request)
    try:
        assert isinstance(handle, OwnPortsHandle) and not handle.ports_taken()
        assert handle.describe() is None
        status = handle.running_status()
        assert status.phase is Phase.RUNNING
        assert (status.scheduler_port, status.dashboard_port) == (request.scheduler_port, request.dashboard_port)
        assert status.scheduler_address == f"tcp://127.0.0.1:{request.scheduler_port}"
        assert os.environ[PARAMETERS_VARIABLE] == '{"transformation_throttle": 9}'  # left alone
        with Client(handle.cluster, set_as_default=False) as client:
            environment = client.run_on_scheduler(plugin_environment)
            assert environment["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"] == "5"
            assert client.run_on_scheduler(seamless_target)
        assert handle.supervise(threading.Event(), timeout=1) == "idle for 1 s"
    finally:
        handle.close()


def test_pure_dask_preloads_nothing() -> None:
    os.environ.pop(PARAMETERS_VARIABLE, None)
    request = request_for({"cores": 1, "maximum_jobs": 1, "pure_dask": True})
    handle = choose_backend(LocalCluster).start(LocalCluster, request)
    try:
        with Client(handle.cluster, set_as_default=False) as client:
            assert client.run_on_scheduler(plugin_environment) is None
            assert not client.run_on_scheduler(seamless_target)
        handle.inject_runtime()  # the scheduler was ours: nothing to inject
        with Client(handle.cluster, set_as_default=False) as client:
            assert client.run_on_scheduler(plugin_environment) is None
    finally:
        handle.close()


def test_a_dashboard_dask_moved_is_a_taken_port_only_where_the_wrapper_owns_the_ports() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.warns(UserWarning, match="already in use"), \
                LocalCluster(n_workers=0, processes=False, dashboard_address=f"127.0.0.1:{taken}") as cluster:
            request = request_for({}, dashboard_port=taken)
            assert OwnPortsHandle(cluster, request).ports_taken()
            assert not ClusterHandle(cluster, request).ports_taken()
            assert not OwnPortsHandle(cluster, request_for({}, dashboard_port=cluster.scheduler.http_server.port)
                                      ).ports_taken()


def test_generic_backend_injects_the_runtime_through_a_client() -> None:
    request = request_for({"cores": 1, "transformation_throttle": 4})
    handle = choose_backend(a_factory).start(a_factory, request)
    try:
        assert isinstance(handle, InjectingHandle) and handle.describe() is None
        with Client(handle.cluster, set_as_default=False) as client:
            assert client.run_on_scheduler(plugin_environment) is None
            handle.inject_runtime()
            assert client.run_on_scheduler(plugin_environment)["SEAMLESS_WORKER_TRANSFORMATION_THROTTLE"] == "4"
            assert client.run_on_scheduler(seamless_target)
    finally:
        handle.close()


def test_pure_dask_injects_nothing() -> None:
    with a_factory() as cluster, Client(cluster, set_as_default=False) as client:
        InjectingHandle(cluster, request_for({"pure_dask": True})).inject_runtime()
        assert client.run_on_scheduler(plugin_environment) is None


def test_supervision_ends_on_the_stop_event_without_a_reason() -> None:
    stop = threading.Event()
    with a_factory() as cluster:
        threading.Timer(0.5, stop.set).start()
        assert ClusterHandle(cluster, request_for({})).supervise(stop, timeout=None) is None
