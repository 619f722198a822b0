"""Worker pods: one Pod per Dask worker, named ``<cluster>-worker-<n>``.

Bare pods rather than a Deployment: scale-down retires chosen workers through
the scheduler and then deletes exactly those pods, which a ReplicaSet cannot.

A worker pod that Kubernetes stops (eviction, ``kubectl drain``, node shutdown)
retires itself the same way: its nanny preloads
:mod:`seamless_dask_runtime.drain`, which turns SIGTERM into a retirement
through the scheduler, for up to ``workers.retireTimeout`` seconds; the grace
period covers that and Dask's own close after it.
"""

from __future__ import annotations

from typing import Any

from seamless_dask_runtime.model.commands import STOP_SIGNAL_PRELOAD, worker_command
from seamless_dask_runtime.model.identity import (
    CLOSE_MARGIN,
    RETIRE_BUDGET_VARIABLE,
    TEMPLATE_HASH_ANNOTATION,
    WORKER,
    WORKER_DASHBOARD_PORT,
    WORKER_INDEX_LABEL,
    WORKER_NAME_VARIABLE,
    worker_name,
)
from seamless_dask_runtime.model.sizing import kubernetes_quantity, worker_cores, worker_pod_resources
from seamless_dask_runtime.model.worker_environment import worker_environment

from ..resource import ClusterSpec
from .objects import ClusterRef, metadata, template_hash
from .pods import base_container, env_list, pod_spec, tls_flags


def worker_pod_name(ref: ClusterRef, index: int) -> str:
    return worker_name(ref.name, index)


def worker_environment_for_pod(cluster: ClusterSpec) -> dict[str, str]:
    """The job scripts' environment; a pod's CPU count is the cores it requests."""
    return worker_environment(cluster.params, cpu_count=str(worker_cores(cluster.params)))


def worker_resources(cluster: ClusterSpec) -> dict[str, Any]:
    """``workers.resources``, by default the model's (``cores`` CPUs, ``memory``). ``spec.memory`` is the memory
    request and limit unless ``workers.resources`` names memory itself, which then wins (the Kubernetes-level
    setting; the round says so in an Event): spec.memory is never silently dropped from a pod that names none."""
    if not cluster.options.workers.resources:
        return worker_pod_resources(cluster.params)
    chosen = cluster.options.workers.resources
    resources = {k: dict(v) if isinstance(v, dict) else v for k, v in chosen.items()}
    names_memory = any("memory" in (resources.get(part) or {}) for part in ("requests", "limits"))
    if cluster.params.memory and not names_memory:
        quantity = kubernetes_quantity(cluster.params.memory)
        resources.setdefault("requests", {})["memory"] = quantity
        resources.setdefault("limits", {})["memory"] = quantity
    return resources


def worker_container(ref: ClusterRef, cluster: ClusterSpec) -> dict[str, Any]:
    options = cluster.options.workers
    args = worker_command(cluster.params, ref.scheduler_url(cluster.options.tls), name=f"$({WORKER_NAME_VARIABLE})")
    args[-1:-1] = ["--dashboard-address", f":{WORKER_DASHBOARD_PORT}", "--preload-nanny", STOP_SIGNAL_PRELOAD]
    if cluster.options.tls:
        args[-1:-1] = tls_flags()
    env: list[dict[str, Any]] = [
        {"name": WORKER_NAME_VARIABLE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": RETIRE_BUDGET_VARIABLE, "value": str(cluster.options.retire_timeout)},
    ]
    env += env_list(worker_environment_for_pod(cluster)) + list(options.env)
    container = base_container(cluster, "worker", args, env, worker_resources(cluster))
    container["ports"] = [{"name": "http-dashboard", "containerPort": WORKER_DASHBOARD_PORT, "protocol": "TCP"}]
    container["readinessProbe"] = {
        "httpGet": {"path": "/health", "port": "http-dashboard"},
        "initialDelaySeconds": 1,
        "periodSeconds": 1,  # workersReady follows a joining worker within a second
    }
    return container


def termination_grace_period(cluster: ClusterSpec) -> int:
    """Seconds between SIGTERM and SIGKILL: the retirement's budget, then Dask's own close of the worker."""
    return cluster.options.retire_timeout + CLOSE_MARGIN


def worker_template(ref: ClusterRef, cluster: ClusterSpec) -> dict[str, Any]:
    """Pod spec without identity: what the template hash covers."""
    spec = pod_spec(cluster, cluster.options.workers, worker_container(ref, cluster), ref.tls_secret_name)
    spec["terminationGracePeriodSeconds"] = termination_grace_period(cluster)
    return spec


def worker_pod(ref: ClusterRef, cluster: ClusterSpec, index: int,
               template: dict[str, Any] | None = None) -> dict[str, Any]:
    """Worker pod ``index`` (``template``: :func:`worker_template`, when the round has it already)."""
    spec = worker_template(ref, cluster) if template is None else template
    meta = metadata(ref, worker_pod_name(ref, index), WORKER, cluster)
    meta["labels"][WORKER_INDEX_LABEL] = str(index)
    meta["annotations"] = {**cluster.options.pod_annotations, TEMPLATE_HASH_ANNOTATION: template_hash(spec)}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
