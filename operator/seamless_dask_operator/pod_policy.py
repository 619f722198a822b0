"""What a SeamlessDaskCluster may ask for in the pods the operator creates on its creator's behalf.

The operator may create pods; the user who creates a SeamlessDaskCluster may
not (a role allowing only SeamlessDaskClusters is the point of an operator).
Without a policy the operator is a confused deputy: through it that user would
get pods mounting the node's filesystem, Secrets they cannot read, the token of
any ServiceAccount of the namespace, or a LoadBalancer exposing an
unauthenticated scheduler.

Design: the cluster admin states in the chart's values (``podPolicy``) what
users may ask for; the operator refuses everything else as a spec error that
names the field and the chart value allowing it. Why not check the creator's
own rights with a SubjectAccessReview: the operator never learns who created
or edited a resource (neither the object nor its managedFields record the
user), so it cannot ask on their behalf; an admission-time check would need a
webhook in the request path. An allow-list needs neither and holds on every
Kubernetes version.

The defaults allow what a Seamless cluster needs and nothing that reaches past
the namespace's own data: emptyDir, configMap, downwardAPI, persistentVolumeClaim
(the read-buffer example) and projected volumes of those kinds; no hostPath or
other node or network volume, no Secret (volume, projection or env reference),
no ServiceAccount but the namespace default (whose token is never mounted), no
Service but ClusterIP, no security annotation, and no pod label of the user's
(a label is a selector's match: ``app: web`` put a worker into another
application's Service; ``allowedPodLabels`` lists the keys an admin allows).

ConfigMaps and PersistentVolumeClaims of the namespace are the one thing the
defaults give a user who may create nothing but SeamlessDaskClusters: Seamless
clusters read their buffers and configuration from them, and the chart's
aggregated roles give SeamlessDaskClusters to the namespace's editors, who may
read both. An admin who grants SeamlessDaskClusters alone takes configMap and
persistentVolumeClaim out of ``allowedVolumeTypes`` (env references from
ConfigMaps follow the same entry).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model.parameters import FieldError

DEFAULT_VOLUME_TYPES = frozenset({"emptyDir", "configMap", "downwardAPI", "persistentVolumeClaim", "projected"})
# Projected volume sources that read only the pod's own fields.
SAFE_PROJECTIONS = frozenset({"downwardAPI"})
ANY_LABEL = "*"
# Annotations the kubelet or admission read to loosen a pod's confinement (AppArmor, seccomp).
SECURITY_ANNOTATION_MARKERS = ("apparmor.security.beta.kubernetes.io", "seccomp.security.alpha.kubernetes.io")

VALUES_KEY = "podPolicy"  # in the chart's values; the operator gets it as JSON (SEAMLESS_DASK_OPERATOR_POD_POLICY)


@dataclass(frozen=True)
class PodPolicy:
    """An admin's allow-list; the defaults are the chart's defaults."""

    allowed_volume_types: frozenset[str] = DEFAULT_VOLUME_TYPES
    allow_secrets: bool = False
    allowed_service_accounts: frozenset[str] = frozenset()
    allowed_service_types: frozenset[str] = frozenset({"ClusterIP"})
    allow_security_annotations: bool = False
    allowed_pod_labels: frozenset[str] = frozenset()  # label keys users may set; "*": any

    @classmethod
    def from_json(cls, text: str) -> PodPolicy:
        """The chart's ``podPolicy`` value (camelCase keys). Unknown keys are an error: a typo must not open a hole
        nor silently keep one closed."""
        raw = json.loads(text) if text.strip() else {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"{VALUES_KEY} must be an object, got {raw!r}")
        known = {"allowedVolumeTypes", "allowSecrets", "allowedServiceAccounts", "allowedServiceTypes",
                 "allowSecurityAnnotations", "allowedPodLabels"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{VALUES_KEY}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(
            allowed_volume_types=frozenset(raw.get("allowedVolumeTypes", DEFAULT_VOLUME_TYPES)),
            allow_secrets=bool(raw.get("allowSecrets", False)),
            allowed_service_accounts=frozenset(raw.get("allowedServiceAccounts", ())),
            allowed_service_types=frozenset(raw.get("allowedServiceTypes", ("ClusterIP",))),
            allow_security_annotations=bool(raw.get("allowSecurityAnnotations", False)),
            allowed_pod_labels=frozenset(raw.get("allowedPodLabels", ())),
        )


def _refused(where: str, value: Any, what: str, chart_value: str) -> FieldError:
    return FieldError(where, value, f"{what} is not allowed by the operator's pod policy "
                                    f"(an admin can allow it with the chart value {VALUES_KEY}.{chart_value})")


def _volume_type(volume: Mapping[str, Any]) -> str:
    sources = [key for key in volume if key != "name"]
    return sources[0] if len(sources) == 1 else "+".join(sorted(sources)) or "(none)"


def _volume_errors(policy: PodPolicy, volumes: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    errors = []
    for i, volume in enumerate(volumes):
        where = f"spec.volumes[{i}]"
        kind = _volume_type(volume)
        if kind == "secret":
            if not policy.allow_secrets:
                errors.append(_refused(f"{where}.secret", volume.get("name"), "a Secret volume", "allowSecrets"))
            continue
        if kind not in policy.allowed_volume_types:
            errors.append(_refused(f"{where}.{kind}", volume.get("name"), f"a {kind} volume", "allowedVolumeTypes"))
            continue
        if kind == "projected":
            for j, source in enumerate(_sources(volume.get("projected"))):
                for projection in source:
                    if projection == "secret" and policy.allow_secrets:
                        continue
                    # configMap, serviceAccountToken (or any other projection) only when the admin lists it by name.
                    if projection not in SAFE_PROJECTIONS | policy.allowed_volume_types - {"secret"}:
                        chart_value = "allowSecrets" if projection == "secret" else "allowedVolumeTypes"
                        errors.append(_refused(f"{where}.projected.sources[{j}].{projection}", volume.get("name"),
                                               f"a projected {projection}", chart_value))
    return errors


def _sources(projected: Any) -> list[Mapping[str, Any]]:
    # A malformed projection is the API server's to refuse; the policy looks at well-formed sources only.
    sources = projected.get("sources") if isinstance(projected, Mapping) else None
    return [source for source in sources if isinstance(source, Mapping)] if isinstance(sources, list) else []


def _env_errors(policy: PodPolicy, env: Iterable[Mapping[str, Any]], where: str) -> list[FieldError]:
    errors = []
    for i, entry in enumerate(env):
        source = entry.get("valueFrom")
        if not isinstance(source, Mapping):
            continue
        if "secretKeyRef" in source and not policy.allow_secrets:
            errors.append(_refused(f"{where}[{i}].valueFrom.secretKeyRef", entry.get("name"),
                                   "an env value from a Secret", "allowSecrets"))
        if "configMapKeyRef" in source and "configMap" not in policy.allowed_volume_types:
            errors.append(_refused(f"{where}[{i}].valueFrom.configMapKeyRef", entry.get("name"),
                                   "an env value from a ConfigMap", "allowedVolumeTypes"))
    return errors


def _label_errors(policy: PodPolicy, pod_labels: Mapping[str, str]) -> list[FieldError]:
    if ANY_LABEL in policy.allowed_pod_labels:
        return []
    return [_refused(f"spec.podLabels[{key!r}]", value, "a pod label (Services and other selectors in the "
                                                        "namespace would match the cluster's pods)",
                     "allowedPodLabels")
            for key, value in pod_labels.items() if key not in policy.allowed_pod_labels]


def policy_errors(policy: PodPolicy, *, volumes: Iterable[Mapping[str, Any]],
                  env: Mapping[str, Iterable[Mapping[str, Any]]], service_account_name: str | None,
                  service_type: str, pod_annotations: Mapping[str, str],
                  pod_labels: Mapping[str, str]) -> list[FieldError]:
    """Every field of a spec asking for more than ``policy`` allows; ``env`` maps each spec path to its list."""
    errors = _volume_errors(policy, volumes) + _label_errors(policy, pod_labels)
    for where, entries in env.items():
        errors += _env_errors(policy, entries, where)
    if service_account_name and service_account_name not in policy.allowed_service_accounts:
        errors.append(_refused("spec.serviceAccountName", service_account_name,
                               f"running the pods as ServiceAccount {service_account_name!r}",
                               "allowedServiceAccounts"))
    if service_type not in policy.allowed_service_types:
        errors.append(_refused("spec.scheduler.serviceType", service_type, f"a {service_type} Service",
                               "allowedServiceTypes"))
    if not policy.allow_security_annotations:
        errors += [
            _refused(f"spec.podAnnotations[{key!r}]", value, "an annotation that changes pod confinement",
                     "allowSecurityAnnotations")
            for key, value in pod_annotations.items()
            if any(marker in key for marker in SECURITY_ANNOTATION_MARKERS)
        ]
    return errors


DEFAULT_POLICY = PodPolicy()
