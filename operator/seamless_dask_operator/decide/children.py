"""The children applied as a whole: the scheduler's Service and NetworkPolicy, and the TLS Secret (pure).

They are applied when the spec is new or changed, and again when someone deleted or edited the
Service by hand (drift; server-side apply restores our fields). The Service is applied last: a Service of
the current spec's hash means all of them were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model.identity import TEMPLATE_HASH_ANNOTATION

from ..builders import desired_children
from ..builders.objects import ClusterRef
from ..builders.service import scheduler_service
from ..resource import ClusterSpec
from .notices import Notice, warning_every_minute
from .observation import ChildrenView
from .plan import ApplyChild, EnsureTlsSecret


@dataclass(frozen=True)
class ChildrenDecision:
    actions: tuple[ApplyChild | EnsureTlsSecret, ...] = ()
    notices: tuple[Notice, ...] = ()


def _service_shape(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    ports = sorted((p.get("name"), p.get("port"), str(p.get("targetPort"))) for p in spec.get("ports") or [])
    return spec.get("type") or "ClusterIP", tuple(ports), tuple(sorted((spec.get("selector") or {}).items()))


def drift(ref: ClusterRef, cluster: ClusterSpec, children: ChildrenView | None) -> str | None:
    """What someone changed in the scheduler's Service, or None."""
    if children is None:
        return None
    if children.service is None:
        return f"the scheduler Service {ref.scheduler_name} is gone"
    if _service_shape(children.service) != _service_shape(scheduler_service(ref, cluster)["spec"]):
        return f"the scheduler Service {ref.scheduler_name} was edited (type, ports or selector)"
    return None


def decide_children(ref: ClusterRef, cluster: ClusterSpec, children: ChildrenView | None, spec_changed: bool,
                    operator_peer: dict[str, Any] | None) -> ChildrenDecision:
    """Applied when the spec is new or changed and the children were not applied from this same spec (a restarted
    operator writes nothing), and whenever the Service drifted."""
    changed = None if spec_changed else drift(ref, cluster, children)
    notices = () if changed is None else (warning_every_minute("DriftRestored", f"{changed}: applied again"),)
    wanted = desired_children(ref, cluster, operator_peer)
    current = children is not None and children.service is not None \
        and children.applied == wanted[0]["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] \
        and drift(ref, cluster, children) is None
    if changed is None and (not spec_changed or current):
        return ChildrenDecision()
    tls: tuple[EnsureTlsSecret, ...] = (EnsureTlsSecret(),) if cluster.options.tls else ()
    service_ours = children is not None and children.service is not None
    # The Service goes last: found with this spec's hash, it proves the others were applied too (a round cut short
    # after the Service, by a leftover of a former cluster of this name, left the NetworkPolicy unmade for good).
    last_the_service = sorted(wanted, key=lambda obj: obj["kind"] == "Service")
    applied = tuple(ApplyChild(obj, ours=service_ours and obj["kind"] == "Service") for obj in last_the_service)
    return ChildrenDecision(actions=(*tls, *applied), notices=notices)
