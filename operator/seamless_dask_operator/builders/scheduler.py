"""The scheduler pod: one per cluster, made by the operator itself, ready when ``/health`` answers.

A bare Pod, not a Deployment: the operator already watches its pods, so it
recreates a scheduler pod that is deleted, evicted or outdated (the old one
gone first: never two schedulers for one cluster), and a cluster's pods
appear without a Deployment → ReplicaSet → Pod chain through the
controller-manager, whose request rate limit made that chain most of the
time 100 clusters took to start (bench/reconcile.py).
"""

from __future__ import annotations

import json
from typing import Any

from seamless_dask_runtime.model.commands import scheduler_command
from seamless_dask_runtime.model.identity import (
    COMM_PORT,
    DASHBOARD_PORT,
    HTTP_ROUTES_VARIABLE,
    PARAMETERS_VARIABLE,
    SCHEDULER,
    SCHEDULER_CANDIDATE,
    TEMPLATE_HASH_ANNOTATION,
    TEMPORARY_DIRECTORY_VARIABLE,
)
from seamless_dask_runtime.model.parameters import ClusterParameters, from_status_parameters, to_status_parameters
from seamless_dask_runtime.model.worker_environment import worker_environment

from ..resource import ClusterSpec
from .objects import ClusterRef, metadata, template_hash
from .pods import base_container, env_list, pod_spec, tls_flags

# The HTTP API lets the operator read the adaptive target and retire workers
# without a Dask client; the rest are distributed's default routes.
HTTP_ROUTES = [
    "distributed.http.scheduler.prometheus",
    "distributed.http.scheduler.info",
    "distributed.http.scheduler.json",
    "distributed.http.health",
    "distributed.http.proxy",
    "distributed.http.statics",
    "distributed.http.scheduler.api",
    "seamless_dask_runtime.http_routes",  # idleness by the wrapper's rule (clients count)
]


# What the scheduler process itself reads (the preload's adaptive target, throttle and worker plugin).
# Scaling limits, the idle timeout, walltime and lifetimes are the operator's or the workers' business, and
# the throttle's capacity follows what each worker reports of its own transformationThrottle: editing them
# changes no scheduler template, so it never restarts the scheduler (and loses no result).
SCHEDULER_PARAMETERS = frozenset({
    "cores", "tmpdir", "pure_dask", "exclusive", "record",
    "target-duration", "unknown-task-duration", "dask-resources", "extra_dask_config",
})


def scheduler_parameters(cluster: ClusterSpec) -> ClusterParameters:
    """The cluster model as far as the scheduler process needs it (the batch backend's wrapper needs all)."""
    if cluster.params.cluster is not None:
        return cluster.params
    kept = {k: v for k, v in to_status_parameters(cluster.params).items() if k in SCHEDULER_PARAMETERS}
    return from_status_parameters(kept)


def scheduler_environment(cluster: ClusterSpec) -> dict[str, str]:
    """Worker environment (the throttle reads it scheduler-side) plus what the preload needs."""
    params = scheduler_parameters(cluster)
    env = worker_environment(params)
    env[PARAMETERS_VARIABLE] = json.dumps(to_status_parameters(params), sort_keys=True)
    env[HTTP_ROUTES_VARIABLE] = json.dumps(HTTP_ROUTES)
    env[TEMPORARY_DIRECTORY_VARIABLE] = cluster.params.tmpdir
    return env


def _probe(initial_delay: int, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http-dashboard"},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 3,
    }


# Node autoscalers do not take the scheduler's node away (cluster-autoscaler's scale-down, Karpenter's
# consolidation): its results are not movable. Metadata, outside the template hash: adding them restarts no
# running scheduler (those get them when next made; their PodDisruptionBudget already covers eviction).
KEEP_ON_NODE_ANNOTATIONS = {
    "cluster-autoscaler.kubernetes.io/safe-to-evict": "false",
    "karpenter.sh/do-not-disrupt": "true",
}

STATUS_DIRECTORY = "/run/seamless-dask"
STATUS_VOLUME = "seamless-dask-status"


def batch_scheduler_command(cluster: ClusterSpec) -> list[str]:
    """Batch-system backend: the pod runs seamless-dask-wrapper itself, so its jobs are the wrapper's jobs."""
    assert cluster.params.cluster is not None
    return [
        "seamless-dask-wrapper", cluster.params.cluster,
        "--port-range", str(COMM_PORT), str(DASHBOARD_PORT), "--host", "0.0.0.0",
        "--scheduler-port", str(COMM_PORT), "--dashboard-port", str(DASHBOARD_PORT),
        "--status-file", f"{STATUS_DIRECTORY}/status.json", "--parameters-from-env", PARAMETERS_VARIABLE,
    ]


def scheduler_container(cluster: ClusterSpec) -> dict[str, Any]:
    options = cluster.options.scheduler
    if cluster.params.cluster is not None:
        args = batch_scheduler_command(cluster)
    else:
        args = scheduler_command(cluster.params, port=COMM_PORT, dashboard_port=DASHBOARD_PORT)
        if cluster.options.tls:
            args += ["--protocol", "tls", *tls_flags()]
    container = base_container(
        cluster,
        "scheduler",
        args,
        env_list(scheduler_environment(cluster)) + list(options.env),
        options.resources or {"requests": {"cpu": "250m", "memory": "512Mi"}},
    )
    if cluster.params.cluster is not None:
        container["volumeMounts"].append({"name": STATUS_VOLUME, "mountPath": STATUS_DIRECTORY})
    container["ports"] = [
        {"name": "tcp-comm", "containerPort": COMM_PORT, "protocol": "TCP"},
        {"name": "http-dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"},
    ]
    # `dask scheduler` listens 2-3 s after its container starts: probe every second so Running (and the
    # Service's endpoint) follow within a second, not at the next 5 s period.
    container["readinessProbe"] = _probe(1, 1)
    container["livenessProbe"] = {**_probe(15, 10), "failureThreshold": 6}
    return container


def scheduler_template(ref: ClusterRef, cluster: ClusterSpec) -> dict[str, Any]:
    """Pod spec without identity: what the template hash covers (a change restarts the scheduler)."""
    pod = pod_spec(cluster, cluster.options.scheduler, scheduler_container(cluster), ref.tls_secret_name)
    if cluster.params.cluster is not None:
        pod["volumes"].append({"name": STATUS_VOLUME, "emptyDir": {}})
    return pod


def scheduler_pod(ref: ClusterRef, cluster: ClusterSpec, template: dict[str, Any] | None = None,
                  candidate: bool = False) -> dict[str, Any]:
    """The pod ``NAME-scheduler`` (``template``: :func:`scheduler_template`, when the round has it already).

    ``candidate``: a new scheduler started beside the running one (a rollout), ``NAME-scheduler-HASH``, which the
    Service does not select (component ``scheduler-candidate``) until it takes over.
    """
    spec = scheduler_template(ref, cluster) if template is None else template
    digest = template_hash(spec)
    name = f"{ref.scheduler_name}-{digest[:8]}" if candidate else ref.scheduler_name
    meta = metadata(ref, name, SCHEDULER_CANDIDATE if candidate else SCHEDULER, cluster)
    meta["annotations"] = {**cluster.options.pod_annotations, **KEEP_ON_NODE_ANNOTATIONS,
                           TEMPLATE_HASH_ANNOTATION: digest}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
