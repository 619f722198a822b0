"""The SeamlessDaskCluster resource: identity, and its spec split into model + options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seamless_dask_runtime.parameters import (
    PARAMETER_TABLE,
    ClusterParameters,
    FieldError,
    ParameterError,
    from_crd_spec,
)

GROUP = "seamless.dask.org"
VERSION = "v1alpha1"
PLURAL = "seamlessdaskclusters"
KIND = "SeamlessDaskCluster"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_IMAGE = "ghcr.io/seamless-dask/seamless-dask-runtime:0.1.0"
_MODEL_KEYS = {p.crd_key for p in PARAMETER_TABLE}


@dataclass(frozen=True)
class PodOptions:
    """Placement and sizing of one kind of pod (scheduler or workers)."""

    resources: dict[str, Any] = field(default_factory=dict)
    env: tuple[dict[str, Any], ...] = ()
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KubernetesOptions:
    """Everything in the spec that is not the cluster model."""

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    replicas: int = 1
    adaptive: bool = False
    minimum: int = 0
    retire_timeout: int = 120
    workers: PodOptions = PodOptions()
    scheduler: PodOptions = PodOptions()
    service_type: str = "ClusterIP"
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    service_account_name: str | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterSpec:
    """A validated spec: the model the wrapper also uses, plus Kubernetes options."""

    params: ClusterParameters
    options: KubernetesOptions


def _pod_options(raw: Mapping[str, Any]) -> PodOptions:
    return PodOptions(
        resources=dict(raw.get("resources") or {}),
        env=tuple(raw.get("env") or ()),
        node_selector=dict(raw.get("nodeSelector") or {}),
        tolerations=tuple(raw.get("tolerations") or ()),
        affinity=dict(raw.get("affinity") or {}),
    )


def parse_spec(spec: Mapping[str, Any]) -> ClusterSpec:
    """Split and validate; :class:`ParameterError` names every bad ``spec.`` field."""
    workers = dict(spec.get("workers") or {})
    model_raw: dict[str, Any] = {k: v for k, v in spec.items() if k in _MODEL_KEYS}
    if "maximum" in workers:
        model_raw["workers.maximum"] = workers["maximum"]
    params = from_crd_spec(model_raw)
    options = KubernetesOptions(
        image=spec.get("image") or DEFAULT_IMAGE,
        image_pull_policy=spec.get("imagePullPolicy") or "IfNotPresent",
        replicas=int(workers.get("replicas", 1)),
        adaptive=bool(workers.get("adaptive", False)),
        minimum=int(workers.get("minimum", 0)),
        retire_timeout=int(workers.get("retireTimeout", 120)),
        workers=_pod_options(workers),
        scheduler=_pod_options(spec.get("scheduler") or {}),
        service_type=(spec.get("scheduler") or {}).get("serviceType") or "ClusterIP",
        volumes=tuple(spec.get("volumes") or ()),
        volume_mounts=tuple(spec.get("volumeMounts") or ()),
        service_account_name=spec.get("serviceAccountName"),
        pod_labels=dict(spec.get("podLabels") or {}),
        pod_annotations=dict(spec.get("podAnnotations") or {}),
    )
    errors = _option_errors(params, options)
    if errors:
        raise ParameterError(errors)
    return ClusterSpec(params, options)


def _option_errors(params: ClusterParameters, options: KubernetesOptions) -> list[FieldError]:
    # What the CRD schema also checks, repeated here for API servers without CEL.
    errors = []
    if options.minimum > params.maximum_jobs:
        errors.append(FieldError("spec.workers.minimum", options.minimum,
                                 f"must not exceed workers.maximum ({params.maximum_jobs})"))
    if not options.adaptive and options.replicas > params.maximum_jobs:
        errors.append(FieldError("spec.workers.replicas", options.replicas,
                                 f"must not exceed workers.maximum ({params.maximum_jobs}); "
                                 "raise maximum or enable adaptive"))
    if options.replicas < 0:
        errors.append(FieldError("spec.workers.replicas", options.replicas, "must not be negative"))
    reserved = {"seamless-dask-tmp"}
    for volume in options.volumes:
        if volume.get("name") in reserved:
            errors.append(FieldError("spec.volumes", volume.get("name"), "this volume name is reserved"))
    return errors


def desired_workers(cluster: ClusterSpec, adaptive_target: int | None) -> int:
    """Worker pods wanted now: replicas, or the scheduler's adaptive target clamped.

    Interactive clusters never go below one worker (seed 002).
    """
    params, options = cluster.params, cluster.options
    floor = max(options.minimum, 1 if params.interactive else 0)
    if not options.adaptive:
        wanted = options.replicas
    elif adaptive_target is None:
        wanted = floor  # scheduler not answering yet: keep the floor, never guess up
    else:
        wanted = adaptive_target
    if params.interactive:
        wanted = max(wanted, 1)
    if options.adaptive:
        wanted = min(max(wanted, floor), params.maximum_jobs)
    return wanted
