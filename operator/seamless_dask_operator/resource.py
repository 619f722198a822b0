"""The SeamlessDaskCluster resource: identity, and its spec split into model + options."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from seamless_dask_runtime.model.identity import (
    DEFAULT_IMAGE,
    DNS_LABEL_MAX_LENGTH,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    POD_VARIABLES,
    scheduler_name,
)
from seamless_dask_runtime.model.parameters import (
    PARAMETER_TABLE,
    ClusterParameters,
    FieldError,
    ParameterError,
    from_crd_spec,
)
from seamless_dask_runtime.model.worker_environment import worker_environment

from .options import DEFAULTS, OPTION_TABLE, OperatorDefaults, default
from .pod_policy import DEFAULT_POLICY, PodPolicy, policy_errors

__all__ = ["ClusterSpec", "OperatorDefaults", "desired_workers", "name_errors", "parse_spec"]

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
    """Everything in the spec that is not the cluster model (the scalars' defaults: :data:`OPTION_TABLE`)."""

    image: str = DEFAULT_IMAGE
    image_pull_policy: str = default("image_pull_policy")
    replicas: int = default("replicas")
    adaptive: bool = default("adaptive")
    minimum: int = default("minimum")
    retire_timeout: int = default("retire_timeout")
    workers: PodOptions = PodOptions()
    scheduler: PodOptions = PodOptions()
    service_type: str = default("service_type")
    scheduler_allow_from: tuple[dict[str, Any], ...] | None = None  # NetworkPolicy peers; None: the namespace
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    service_account_name: str | None = default("service_account_name")
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    tls: bool = default("tls")
    capacity_timeout: int = default("capacity_timeout")
    image_unset: bool = False  # spec.image was left out: the operator's default, written into the spec at creation




@dataclass(frozen=True)
class ClusterSpec:
    """A validated spec: the model the wrapper also uses, plus Kubernetes options."""

    params: ClusterParameters
    options: KubernetesOptions


class _Fields:
    """Reads Kubernetes-only fields, collecting a FieldError for each one of the wrong type.

    The CRD schema refuses these at admission; this is for API servers (or
    edits) that let them through, so the operator reports instead of crashing.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def object(self, raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.errors.append(FieldError(f"{where}.{key}", value, "must be an object"))
            return {}
        return dict(value)

    def objects(self, raw: Mapping[str, Any], key: str, where: str) -> tuple[dict[str, Any], ...]:
        value = raw.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            self.errors.append(FieldError(f"{where}.{key}", value, "must be a list of objects"))
            return ()
        return tuple(dict(item) for item in value)

    def scalars(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Every row of :data:`OPTION_TABLE`, checked against its type, bounds and choices (its default when
        unset, or refused)."""
        values = {}
        for option in OPTION_TABLE:
            value = option.read(spec)
            problem = None if value is None else option.problem(value)
            if problem is not None:
                self.errors.append(FieldError(f"spec.{option.key}", value, problem))
                value = option.default
            values[option.attr] = value
        return values

    def pod_options(self, raw: Mapping[str, Any], where: str) -> PodOptions:
        return PodOptions(
            resources=self.object(raw, "resources", where),
            env=self.objects(raw, "env", where),
            node_selector=self.object(raw, "nodeSelector", where),
            tolerations=self.objects(raw, "tolerations", where),
            affinity=self.object(raw, "affinity", where),
        )


def parse_spec(spec: Mapping[str, Any], policy: PodPolicy = DEFAULT_POLICY, name: str | None = None,
               defaults: OperatorDefaults = DEFAULTS) -> ClusterSpec:
    """Split and validate; :class:`ParameterError` names every bad ``spec.`` field (and ``metadata.name``).

    ``policy`` is what the admin lets users ask for in pods (the chart's ``podPolicy``); ``name``, the
    resource's, must make valid child names; ``defaults``: the image when ``spec.image`` is unset (the
    chart's ``runtimeImage``) and the workers' ceiling (``maxWorkersPerCluster``).
    """
    name_problems = [] if name is None else name_errors(name)
    if not isinstance(spec, Mapping):
        raise ParameterError([*name_problems, FieldError("spec", spec, "must be an object")])
    fields = _Fields()
    workers = fields.object(spec, "workers", "spec")
    scheduler = fields.object(spec, "scheduler", "spec")
    model_raw: dict[str, Any] = {k: v for k, v in spec.items() if k in _MODEL_KEYS}
    if "maximum" in workers:
        model_raw["workers.maximum"] = workers["maximum"]
    try:
        params = from_crd_spec(model_raw)
    except ParameterError as exc:
        fields.errors[:0] = exc.errors
        params = None
    scalars = fields.scalars(spec)
    image = scalars.pop("image")
    options = KubernetesOptions(
        **scalars,
        image=image or defaults.image,
        image_unset=not image,
        workers=fields.pod_options(workers, "spec.workers"),
        scheduler=fields.pod_options(scheduler, "spec.scheduler"),
        scheduler_allow_from=(fields.objects(scheduler, "allowFrom", "spec.scheduler")
                              if scheduler.get("allowFrom") is not None else None),
        volumes=fields.objects(spec, "volumes", "spec"),
        volume_mounts=fields.objects(spec, "volumeMounts", "spec"),
        pod_labels=fields.object(spec, "podLabels", "spec"),
        pod_annotations=fields.object(spec, "podAnnotations", "spec"),
    )
    if params is not None:
        fields.errors += _option_errors(params, options) + _ceiling_errors(params, options, defaults.max_workers)
    fields.errors += policy_errors(
        policy, volumes=options.volumes,
        env={"spec.workers.env": options.workers.env, "spec.scheduler.env": options.scheduler.env},
        service_account_name=options.service_account_name, service_type=options.service_type,
        pod_annotations=options.pod_annotations, pod_labels=options.pod_labels)
    if name_problems or fields.errors:
        raise ParameterError(name_problems + fields.errors)
    assert params is not None
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
    reserved = {"seamless-dask-tmp"}
    for i, volume in enumerate(options.volumes):
        name = volume.get("name")
        if not isinstance(name, str):
            errors.append(FieldError(f"spec.volumes[{i}].name", name, "must be a string"))
        elif name in reserved:
            errors.append(FieldError(f"spec.volumes[{i}].name", name, "this volume name is reserved"))
    for where, env in (("spec.workers.env", options.workers.env), ("spec.scheduler.env", options.scheduler.env)):
        errors += _env_errors(params, where, env)
    return errors


# Linux's MAX_ARG_STRLEN: one "NAME=value" string of a process's environment, terminating NUL included.
MAX_ENV_STRING = 128 * 1024


def _env_errors(params: ClusterParameters, where: str, env: tuple[dict[str, Any], ...]) -> list[FieldError]:
    # The operator's own variables come from spec fields; a second entry of the same name is refused by the API
    # server's apply (duplicate list key), and overriding them would split scheduler and workers.
    ours = set(worker_environment(params, cpu_count="1")) | POD_VARIABLES
    errors, seen = [], set()
    for i, entry in enumerate(env):
        name = entry.get("name")
        if not isinstance(name, str):
            errors.append(FieldError(f"{where}[{i}].name", name, "must be a string"))
        elif name in ours:
            errors.append(FieldError(f"{where}[{i}].name", name, "is set by the operator from the cluster's "
                                     "fields (e.g. transformationThrottle, extraDaskConfig); set that field instead"))
        elif name in seen:
            errors.append(FieldError(f"{where}[{i}].name", name, "is listed twice"))
        else:
            seen.add(name)
        value = entry.get("value")
        if isinstance(value, str) and len(f"{name}={value}".encode()) + 1 > MAX_ENV_STRING:
            errors.append(FieldError(f"{where}[{i}].value", f"<{len(value.encode())} bytes>",
                                     f"is over {MAX_ENV_STRING // 1024} KiB: Linux refuses such an environment "
                                     "variable (execve: argument list too long), so the container could not "
                                     "start; put large data in a ConfigMap or Secret mounted as a volume"))
    return errors


def _ceiling_errors(params: ClusterParameters, options: KubernetesOptions, ceiling: int) -> list[FieldError]:
    """The admin's ceiling on one cluster's workers (the chart's maxWorkersPerCluster)."""
    asked = {"spec.workers.maximum": params.maximum_jobs, "spec.workers.replicas": options.replicas,
             "spec.workers.minimum": options.minimum}
    return [FieldError(where, value, f"must be at most {ceiling}, the operator's ceiling on one cluster's workers "
                                     "(an admin can raise it with the chart value maxWorkersPerCluster)")
            for where, value in asked.items() if value > ceiling]


def name_errors(name: str) -> list[FieldError]:
    """A resource name that would make an invalid child name; the CRD's CEL rules say the same at admission,
    this is for API servers without CEL (or a CRD applied from an older copy)."""
    errors = []
    if len(name) > MAX_NAME_LENGTH:
        errors.append(FieldError("metadata.name", name, f"must be at most {MAX_NAME_LENGTH} characters: the "
                                 f"scheduler Service {scheduler_name('NAME')} must be a DNS-1035 label of at most "
                                 f"{DNS_LABEL_MAX_LENGTH} characters; recreate the cluster under a shorter name"))
    if not re.fullmatch(NAME_PATTERN, name):
        errors.append(FieldError("metadata.name", name, "must be a DNS-1035 label (lower-case letters, digits and "
                                 "'-', starting with a letter, no dots): the scheduler Service "
                                 f"{scheduler_name('NAME')} is named after it; recreate the cluster under such a name"))
    return errors


def memory_overridden(cluster: ClusterSpec) -> str | None:
    """The memory ``workers.resources`` names besides ``spec.memory`` (it wins for the pods), or None."""
    resources = cluster.options.workers.resources
    named = [resources[part]["memory"] for part in ("requests", "limits")
             if isinstance(resources.get(part), Mapping) and "memory" in resources[part]]
    return str(named[0]) if cluster.params.memory and named else None


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
