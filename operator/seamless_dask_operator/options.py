"""The Kubernetes-only options of a SeamlessDaskCluster, one row each: key, type, default, bounds, choices.

The cluster model's fields (cores, memory, walltime, ...) are the runtime's ``PARAMETER_TABLE``; these are
the rest, the scalars that only the operator reads. This table drives the spec parser (:mod:`.resource`:
each row's type, bounds and choices are checked, naming the field), the CRD (``scripts/gen-crd.py`` writes
each row's default, minimum, maximum and enum into the schema; ``tests/unit/test_crd.py`` checks the
committed CRD agrees), and the defaults everywhere else (nothing restates ``retireTimeout: 120``).
The Kubernetes-typed fields (resources, env, tolerations, volumes, ...) carry Kubernetes' own schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seamless_dask_runtime.model.identity import DEFAULT_IMAGE, MAX_WORKERS

# The longest a retire call may wait for a scheduler to move workers' memory: a worker whose memory has not
# moved by then is reported stuck, and the call must not hang on.
MAX_RETIRE_TIMEOUT = 600


@dataclass(frozen=True)
class Option:
    key: str  # below spec, dotted: workers.replicas
    attr: str  # the KubernetesOptions field
    kind: type[Any]
    default: Any  # None: unset (the operator decides: image, serviceAccountName)
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()

    def read(self, spec: Mapping[str, Any]) -> Any:
        """The raw value at ``key`` (the default when absent or null); parents that are not objects read as unset,
        and are reported by the parser."""
        node: Any = spec
        for part in self.key.split("."):
            if not isinstance(node, Mapping):
                return self.default
            node = node.get(part)
        return self.default if node is None else node

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed here, or None."""
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            return f"must be a {self.kind.__name__}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        return None


OPTION_TABLE: tuple[Option, ...] = (
    Option("image", "image", str, None),
    Option("imagePullPolicy", "image_pull_policy", str, "IfNotPresent", choices=("Always", "IfNotPresent", "Never")),
    Option("workers.replicas", "replicas", int, 1, minimum=0, maximum=MAX_WORKERS),
    Option("workers.adaptive", "adaptive", bool, False),
    Option("workers.minimum", "minimum", int, 0, minimum=0, maximum=MAX_WORKERS),
    Option("workers.retireTimeout", "retire_timeout", int, 120, minimum=1, maximum=MAX_RETIRE_TIMEOUT),
    Option("scheduler.serviceType", "service_type", str, "ClusterIP",
           choices=("ClusterIP", "NodePort", "LoadBalancer")),
    Option("serviceAccountName", "service_account_name", str, None),
    Option("tls.enabled", "tls", bool, False),
    # How long pods that wait for room (Unschedulable for lack of CPU, memory, pod slots) are capacity, not failure.
    Option("capacityTimeout", "capacity_timeout", int, 600, minimum=0, maximum=86400),
)

OPTIONS = {option.attr: option for option in OPTION_TABLE}

# The most workers one cluster may have, unless the admin says otherwise (the chart's maxWorkersPerCluster): one
# scheduler's comfortable load; the CRD's and the model's hard bound (identity.MAX_WORKERS) is above it.
DEFAULT_MAX_WORKERS = 2000


@dataclass(frozen=True)
class OperatorDefaults:
    """What the admin sets for every cluster (the chart's values): the image of clusters that name none, and
    the most workers one cluster may ask for."""

    image: str = DEFAULT_IMAGE
    max_workers: int = DEFAULT_MAX_WORKERS


def default(attr: str) -> Any:
    return OPTIONS[attr].default


DEFAULTS = OperatorDefaults()
