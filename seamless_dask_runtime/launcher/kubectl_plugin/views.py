"""What the plugin prints, from the objects kubectl returned (pure: no I/O, the clock passed in)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from ...model.identity import KIND, is_worker_of, scheduler_name, tls_secret_name

CA_FILE, CERT_FILE, KEY_FILE = "ca.pem", "tls.crt", "tls.key"  # the keys of the TLS Secret the operator keeps


# -- client and dashboard ---------------------------------------------------------------------------------
def tls_enabled(resource: Mapping[str, Any]) -> bool:
    return bool(((resource.get("spec") or {}).get("tls") or {}).get("enabled"))


def client_snippet(resource: Mapping[str, Any], address: str) -> str:
    """A ready-to-paste Python snippet connecting a ``distributed.Client`` to ``address``."""
    meta = resource["metadata"]
    if not tls_enabled(resource):
        return f'from distributed import Client\n\nclient = Client("{address}")\n'
    name, namespace = meta["name"], meta["namespace"]
    secret = tls_secret_name(name)
    files = {key: f"{name}-{key}" for key in (CA_FILE, CERT_FILE, KEY_FILE)}
    fetch = "".join(f"# kubectl get secret {secret} -n {namespace} -o jsonpath='{{.data.{_jsonpath_key(key)}}}'"
                    f" | base64 -d > {path}\n" for key, path in files.items())
    return (f"# TLS: the cluster's certificates are in the Secret {secret}; save them first:\n{fetch}"
            "from distributed import Client\nfrom distributed.security import Security\n\n"
            f'security = Security(tls_ca_file="{files[CA_FILE]}", tls_client_cert="{files[CERT_FILE]}",\n'
            f'                    tls_client_key="{files[KEY_FILE]}", require_encryption=True)\n'
            f'client = Client("{address}", security=security)\n')


def _jsonpath_key(key: str) -> str:
    return key.replace(".", "\\.")


def local_address(resource: Mapping[str, Any], port: int, host: str = "127.0.0.1") -> str:
    """The scheduler's address through a local port-forward."""
    return f"{'tls' if tls_enabled(resource) else 'tcp'}://{host}:{port}"


def in_cluster_address(resource: Mapping[str, Any]) -> str:
    status = resource.get("status") or {}
    meta = resource["metadata"]
    return status.get("schedulerAddress") or (
        f"{'tls' if tls_enabled(resource) else 'tcp'}://{scheduler_name(meta['name'])}.{meta['namespace']}.svc:8786")


# -- status -------------------------------------------------------------------------------------------------
def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(then: str | None, now: datetime.datetime) -> str:
    """kubectl's style: 45s, 3m, 2h, 4d."""
    moment = _parse_time(then)
    if moment is None:
        return "?"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [indent + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in (headers, *rows)]
    return "\n".join(lines) + "\n"


def cluster_events(events: Sequence[Mapping[str, Any]], name: str, limit: int) -> list[Mapping[str, Any]]:
    """The most recent ``limit`` Events of the resource, its scheduler pod and its worker pods, oldest first."""
    def ours(event: Mapping[str, Any]) -> bool:
        involved = event.get("involvedObject") or event.get("regarding") or {}
        kind, object_name = involved.get("kind"), involved.get("name") or ""
        if kind == KIND:
            return object_name == name
        return kind == "Pod" and (object_name == scheduler_name(name) or is_worker_of(name, object_name))

    return sorted((e for e in events if ours(e)), key=_event_time)[-limit:] if limit > 0 else []


def _event_time(event: Mapping[str, Any]) -> str:
    series = event.get("series") or {}
    return (series.get("lastObservedTime") or event.get("lastTimestamp") or event.get("eventTime")
            or (event.get("metadata") or {}).get("creationTimestamp") or "")


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _restarts(pod: Mapping[str, Any]) -> int:
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def worker_rows(name: str, pods: Sequence[Mapping[str, Any]],
                identity: Mapping[str, Any] | None) -> list[list[str]]:
    """One row per worker pod and per Dask worker (joined by name: a worker pod's Dask name is its pod name)."""
    by_name = {str(w.get("name")): w for w in ((identity or {}).get("workers") or {}).values()}
    worker_pods = sorted((p for p in pods if is_worker_of(name, p["metadata"]["name"])),
                         key=lambda p: (len(p["metadata"]["name"]), p["metadata"]["name"]))
    rows = []
    for pod in worker_pods:
        pod_name = pod["metadata"]["name"]
        phase = "Terminating" if pod["metadata"].get("deletionTimestamp") else (pod.get("status") or {}).get("phase")
        rows.append([pod_name, str(phase or "?"), "True" if _pod_ready(pod) else "False", str(_restarts(pod)),
                     *_dask_columns(by_name.pop(pod_name, None), identity is not None)])
    for worker_name, worker in sorted(by_name.items()):  # Dask workers without a pod: batch jobs, say
        rows.append([worker_name, "-", "-", "-", *_dask_columns(worker, True)])
    return rows


def _dask_columns(worker: Mapping[str, Any] | None, known: bool) -> list[str]:
    if worker is None:
        return ["-", "not connected" if known else "?", "-", "-"]
    metrics = worker.get("metrics") or {}
    spilled = metrics.get("spilled_bytes") or {}
    limit = worker.get("memory_limit")
    memory = human_bytes(metrics.get("memory")) + (f" / {human_bytes(limit)}" if limit else "")
    return [str(worker.get("nthreads", "-")), memory, human_bytes(metrics.get("managed_bytes")),
            human_bytes(spilled.get("disk"))]


WORKER_HEADERS = ("NAME", "POD", "READY", "RESTARTS", "THREADS", "MEMORY (RSS / LIMIT)", "MANAGED", "SPILLED")


def render_status(resource: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
                  events: Sequence[Mapping[str, Any]], identity: Mapping[str, Any] | None, workers_note: str,
                  now: datetime.datetime, event_limit: int = 10) -> str:
    """``kubectl sdc status``: phase, addresses, conditions, workers with their memory, recent Events.

    ``identity``: the scheduler's ``/json/identity.json`` (None when it could not be read: ``workers_note``
    says why).
    """
    meta, spec, status = resource["metadata"], resource.get("spec") or {}, resource.get("status") or {}
    name, namespace = meta["name"], meta["namespace"]
    workers_spec = spec.get("workers") or {}
    scaling = (f"adaptive {workers_spec.get('minimum', 0)}..{workers_spec.get('maximum', 1)}"
               if workers_spec.get("adaptive") else f"replicas {workers_spec.get('replicas', 1)}")
    phase = status.get("phase") or "Pending"
    reason = f" ({status['reason']})" if status.get("reason") else ""
    out = [f"{KIND} {namespace}/{name}: {phase}{reason}, age {age(meta.get('creationTimestamp'), now)}"]
    if status.get("message"):
        out.append(f"  {status['message']}")
    out += [f"  scheduler  {status.get('schedulerAddress') or '-'}   dashboard {status.get('dashboardUrl') or '-'}",
            f"  workers    {status.get('workersReady', 0)} ready / {status.get('workersDesired', 0)} desired "
            f"({scaling})",
            f"  image      {spec.get('image') or '-'}", ""]
    conditions = status.get("conditions") or []
    out.append("Conditions:")
    out.append(table(("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"),
                     [[c.get("type", ""), c.get("status", ""), c.get("reason", ""),
                       age(c.get("lastTransitionTime"), now) if c.get("lastTransitionTime") else "-",
                       c.get("message", "")] for c in conditions]) if conditions else "  (none yet)\n")
    out.append(f"Workers ({workers_note}):")
    rows = worker_rows(name, pods, identity)
    out.append(table(WORKER_HEADERS, rows) if rows else "  (none)\n")
    recent = cluster_events(events, name, event_limit)
    out.append("Recent events:")
    out.append(table(("AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"),
                     [[age(_event_time(e), now), e.get("type", ""), e.get("reason", ""),
                       f"{((e.get('involvedObject') or {}).get('kind') or '').lower()}/"
                       f"{(e.get('involvedObject') or {}).get('name', '')}",
                       " ".join(str(e.get("message") or e.get("note") or "").split())] for e in recent])
               if recent else "  (none)\n")
    return "\n".join(out).rstrip("\n") + "\n"


# -- scale ----------------------------------------------------------------------------------------------------
def scale_patch(resource: Mapping[str, Any], replicas: int | None, minimum: int | None, maximum: int | None,
                adaptive: bool | None) -> dict[str, Any]:
    """The merge patch of ``spec.workers`` for ``kubectl sdc scale``; ValueError says what is wrong and the fix."""
    workers = (resource.get("spec") or {}).get("workers") or {}
    name = resource["metadata"]["name"]
    will_be_adaptive = workers.get("adaptive", False) if adaptive is None else adaptive
    if replicas is None and minimum is None and maximum is None and adaptive is None:
        raise ValueError("nothing to change: give --replicas N, or --minimum/--maximum, or --adaptive/--no-adaptive")
    if replicas is not None and will_be_adaptive:
        raise ValueError(f"{name} is adaptive between {workers.get('minimum', 0)} and {workers.get('maximum', 1)} "
                         "workers, so --replicas would not be used: give --minimum/--maximum, or "
                         "--no-adaptive --replicas N to scale it by hand")
    patch: dict[str, Any] = {}
    for key, value in (("replicas", replicas), ("minimum", minimum), ("maximum", maximum), ("adaptive", adaptive)):
        if value is not None:
            patch[key] = value
    return {"spec": {"workers": patch}}
