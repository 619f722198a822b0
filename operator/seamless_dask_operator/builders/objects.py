"""Names, labels and owner references shared by every child object."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model import identity
from seamless_dask_runtime.model.identity import (
    API_VERSION,
    CLUSTER_LABEL,
    COMM_PORT,
    COMPONENT_LABEL,
    DASHBOARD_PORT,
    KIND,
    MANAGED_BY,
    MANAGED_BY_LABEL,
)

from ..resource import ClusterSpec


@dataclass(frozen=True)
class ClusterRef:
    """Identity of the owning resource."""

    name: str
    namespace: str
    uid: str

    @property
    def scheduler_name(self) -> str:
        return identity.scheduler_name(self.name)

    @property
    def tls_secret_name(self) -> str:
        return identity.tls_secret_name(self.name)

    @property
    def scheduler_address(self) -> str:
        return f"tcp://{self.scheduler_name}.{self.namespace}.svc:{COMM_PORT}"

    def scheduler_url(self, tls: bool) -> str:
        """``tls://`` when the cluster encrypts its comms."""
        return self.scheduler_address.replace("tcp://", "tls://", 1) if tls else self.scheduler_address

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.scheduler_name}.{self.namespace}.svc:{DASHBOARD_PORT}"

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels(ref: ClusterRef, component: str, cluster: ClusterSpec | None = None) -> dict[str, str]:
    """Selector-stable labels (plus the user's pod labels when a spec is given)."""
    base = {
        "app.kubernetes.io/name": "seamless-dask",
        "app.kubernetes.io/instance": ref.name,
        "app.kubernetes.io/component": component,
        MANAGED_BY_LABEL: MANAGED_BY,
        CLUSTER_LABEL: ref.name,
        COMPONENT_LABEL: component,
    }
    if cluster is None:
        return base
    return {**cluster.options.pod_labels, **base}


def selector(ref: ClusterRef, component: str) -> dict[str, str]:
    return {CLUSTER_LABEL: ref.name, COMPONENT_LABEL: component}


def selector_string(ref: ClusterRef, component: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(ref, component).items())


def metadata(ref: ClusterRef, name: str, component: str, cluster: ClusterSpec | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ref.namespace,
        "labels": labels(ref, component, cluster),
        "ownerReferences": [ref.owner_reference()],
    }


def template_hash(obj: Any) -> str:
    """Short stable hash of what a pod is built from: a change means replace it."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]



def container_signature(container: dict[str, Any]) -> str:
    """What a running container was started with, in a form an API server's defaults do not change: to tell
    whether a pod made elsewhere (an earlier operator's Deployment) runs what the current template would."""
    env = sorted((e.get("name"), e.get("value")) for e in container.get("env") or [] if "value" in e)
    return template_hash({"image": container.get("image"), "args": container.get("args"), "env": env})
