"""``MODULE::SYMBOL`` → the object it names, with errors that say which part failed."""

from __future__ import annotations

from importlib import import_module
from typing import Any


class ClusterStringError(ValueError):
    """The cluster string does not name something the wrapper can run."""


def resolve(cluster_string: str) -> Any:
    module_name, sep, symbol = cluster_string.partition("::")
    if not sep or not module_name or not symbol:
        raise ClusterStringError(
            f"cluster string {cluster_string!r} is not MODULE::SYMBOL, "
            "e.g. 'distributed::LocalCluster' or 'dask_jobqueue::SLURMCluster'"
        )
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise ClusterStringError(
            f"cluster string {cluster_string!r}: module {module_name!r} cannot be imported ({exc}); "
            "install it or fix the module name"
        ) from exc
    try:
        return getattr(module, symbol)
    except AttributeError:
        raise ClusterStringError(
            f"cluster string {cluster_string!r}: module {module_name!r} has no {symbol!r}"
        ) from None
