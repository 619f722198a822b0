"""The Dask configuration a parameter set implies, flat (dotted keys) and nested."""

from __future__ import annotations

from typing import Any

from . import sizing
from .parameters import ClusterParameters


def port_range_string(params: ClusterParameters) -> str | None:
    """``internal-port-range`` as Dask spells a port range: ``START:END``."""
    if params.internal_port_range is None:
        return None
    start, end = params.internal_port_range
    return f"{start}:{end}"


def dask_config_flat(params: ClusterParameters) -> dict[str, Any]:
    """Dotted Dask config keys, in the order seed 002's job scripts export them."""
    config: dict[str, Any] = {
        "distributed.worker.daemon": False,
        "distributed.scheduler.unknown-task-duration": params.unknown_task_duration,
        "distributed.scheduler.target-duration": params.target_duration,
    }
    ports = port_range_string(params)
    if ports is not None:
        config["distributed.worker.port"] = ports
        config["distributed.nanny.port"] = ports
    lifetime = sizing.lifetime(params)
    if lifetime is not None:
        config["distributed.worker.lifetime.duration"] = lifetime
        config["distributed.worker.lifetime.stagger"] = params.lifetime_stagger
    resources = sizing.worker_resources(params)
    if resources is not None:
        config["distributed.worker.resources"] = resources
    config.update(params.extra_dask_config)
    return config


def scheduler_dask_config_flat(params: ClusterParameters) -> dict[str, Any]:
    """What the scheduler's own process needs on top: the temporary directory."""
    return {"temporary-directory": params.tmpdir, **dask_config_flat(params)}


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``, refusing a key that is both leaf and branch."""
    root: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = root
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"extra_dask_config: {dotted!r} conflicts with a value at {part!r}")
            node = child
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"extra_dask_config: {dotted!r} conflicts with keys below it")
        node[leaf] = value
    return root
