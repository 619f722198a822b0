"""What scheduler and worker pods share: security context, volumes, env, placement."""

from __future__ import annotations

from typing import Any

from ..resource import ClusterSpec, PodOptions

TMP_VOLUME = "seamless-dask-tmp"
TLS_VOLUME = "seamless-dask-tls"
TLS_DIRECTORY = "/etc/seamless-dask/tls"
RUN_AS = 1000  # the runtime image's non-root user


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env_list(variables: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in variables.items()]


def volumes(cluster: ClusterSpec, tls_secret: str | None = None) -> list[dict[str, Any]]:
    # The root filesystem is read-only: Dask writes only to tmpdir (an emptyDir).
    extra = [{"name": TLS_VOLUME, "secret": {"secretName": tls_secret, "defaultMode": 0o440}}] if tls_secret else []
    return [{"name": TMP_VOLUME, "emptyDir": {}}, *extra, *cluster.options.volumes]


def volume_mounts(cluster: ClusterSpec) -> list[dict[str, Any]]:
    extra = [{"name": TLS_VOLUME, "mountPath": TLS_DIRECTORY, "readOnly": True}] if cluster.options.tls else []
    return [{"name": TMP_VOLUME, "mountPath": cluster.params.tmpdir}, *extra, *cluster.options.volume_mounts]


def tls_flags() -> list[str]:
    """Same CA, certificate and key for every process (see operator ``tls`` module)."""
    return ["--tls-ca-file", f"{TLS_DIRECTORY}/ca.pem", "--tls-cert", f"{TLS_DIRECTORY}/tls.crt",
            "--tls-key", f"{TLS_DIRECTORY}/tls.key"]


def pod_spec(cluster: ClusterSpec, placement: PodOptions, container: dict[str, Any],
             tls_secret: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": volumes(cluster, tls_secret if cluster.options.tls else None),
    }
    if cluster.options.service_account_name:
        spec["serviceAccountName"] = cluster.options.service_account_name
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = list(placement.tolerations)
    if placement.affinity:
        spec["affinity"] = dict(placement.affinity)
    return spec


def base_container(cluster: ClusterSpec, name: str, args: list[str], env: list[dict[str, Any]],
                   resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "image": cluster.options.image,
        "imagePullPolicy": cluster.options.image_pull_policy,
        "args": args,
        "env": env,
        "resources": resources,
        "volumeMounts": volume_mounts(cluster),
        "securityContext": container_security_context(),
    }
