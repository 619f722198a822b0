"""Version skew between a cluster's scheduler, workers and clients (pure).

Every Dask process reports ``distributed.versions.get_versions()`` when it
connects; the scheduler keeps the workers' and clients' reports. Here they
are compared with the scheduler's own:

- ``distributed`` and ``dask``: the exact release. They are released in
  lockstep and the scheduler protocol and task serialization change between
  releases, so any difference is a mismatch (what distributed itself warns about).
- Python: major.minor only. Functions travel as cloudpickle, whose bytecode is
  tied to the minor version; patch releases are compatible (distributed warns
  about those too, which is noise).

A process that reported nothing (the scheduler's own ``fire-and-forget``
client) is left out: unknown is not a mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPARED = ("distributed", "dask", "python")
FIX = ("use the same dask and distributed releases (and Python major.minor) in clients, scheduler and workers: "
       "build the runtime image with --build-arg DASK_VERSION=<the clients' distributed version>")


def compared_versions(reported: Mapping[str, Any] | None) -> dict[str, str | None] | None:
    """The compared versions out of a ``get_versions()`` report; None when the process reported nothing."""
    packages = (reported or {}).get("packages") or {}
    if not packages:
        return None
    python = packages.get("python") or ((reported or {}).get("host") or {}).get("python")
    return {"distributed": packages.get("distributed"), "dask": packages.get("dask"),
            "python": _python_release(python)}


def _python_release(version: str | None) -> str | None:
    """``3.11.7.final.0`` → ``3.11.7``."""
    return None if version is None else ".".join(str(version).split(".")[:3])


def _python_minor(version: str | None) -> str | None:
    return None if version is None else ".".join(version.split(".")[:2])


def differing(scheduler: Mapping[str, str | None], other: Mapping[str, str | None]) -> list[str]:
    """The packages in which ``other`` mismatches the scheduler, in :data:`COMPARED` order."""
    out = []
    for package in COMPARED:
        mine, theirs = scheduler.get(package), other.get(package)
        if package == "python":
            mine, theirs = _python_minor(mine), _python_minor(theirs)
        if mine != theirs:
            out.append(package)
    return out


def _versions_text(versions: Mapping[str, str | None], packages: list[str]) -> str:
    return ", ".join(f"{p} {versions.get(p) or 'missing'}" for p in packages)


def skew_report(scheduler: Mapping[str, Any], workers: Mapping[str, tuple[str, Mapping[str, Any] | None]],
                clients: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Any]:
    """The route's JSON: every process's versions, the mismatches, and one sentence saying them.

    ``scheduler``, each worker's and each client's report are ``get_versions()`` outputs;
    ``workers`` maps a worker's address to (its Dask name, its report). A mismatch names the
    process (``role`` worker or client, ``id`` its address or client id, ``name``), the packages
    that differ from the scheduler's (``differs``) and all its compared ``versions``.
    """
    mine = compared_versions(scheduler) or dict.fromkeys(COMPARED)
    report: dict[str, Any] = {"scheduler": mine, "workers": {}, "clients": {}, "mismatches": []}
    groups: dict[tuple[str, tuple[tuple[str, str | None], ...]], list[str]] = {}
    members: list[tuple[str, str, str, Mapping[str, Any] | None]] = [
        ("worker", address, name, reported) for address, (name, reported) in workers.items()]
    members += [("client", client, client, reported) for client, reported in clients.items()]
    for role, key, name, reported in members:
        versions = compared_versions(reported)
        if versions is None:
            continue
        report[f"{role}s"][key] = {"name": name, **versions} if role == "worker" else versions
        packages = differing(mine, versions)
        if packages:
            report["mismatches"].append({"role": role, "id": key, "name": name, "differs": packages,
                                         "versions": versions})
            groups.setdefault((role, tuple((p, versions.get(p)) for p in packages)), []).append(name)
    report["skew"] = bool(report["mismatches"])
    report["message"] = _message(mine, groups) if groups else ""
    return report


def _message(mine: Mapping[str, str | None],
             groups: Mapping[tuple[str, tuple[tuple[str, str | None], ...]], list[str]]) -> str:
    parts, packages = [], []
    for (role, versions), names in sorted(groups.items()):
        shown = ", ".join(sorted(names)[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        who = f"{role} {shown}" if len(names) == 1 else f"{len(names)} {role}s ({shown})"
        differing_packages = [package for package, _ in versions]
        verb = "has" if len(names) == 1 else "have"
        parts.append(f"{who} {verb} {_versions_text(dict(versions), differing_packages)}")
        packages += [p for p in differing_packages if p not in packages]
    ordered = [p for p in COMPARED if p in packages]
    return "; ".join(parts) + f"; the scheduler has {_versions_text(mine, ordered)}"


def newcomer_warning(role: str, name: str, scheduler: Mapping[str, Any], reported: Mapping[str, Any] | None,
                     ) -> str | None:
    """One log line when a client or worker that just connected mismatches the scheduler (None: it matches)."""
    mine, theirs = compared_versions(scheduler), compared_versions(reported)
    if mine is None or theirs is None:
        return None
    packages = differing(mine, theirs)
    if not packages:
        return None
    return (f"version skew: {role} {name} connected with {_versions_text(theirs, packages)} but the scheduler has "
            f"{_versions_text(mine, packages)}; mixed versions can fail to run or deserialize tasks: {FIX}")
