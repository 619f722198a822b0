"""The simulated fleet's Dask schedulers: the HTTP answers an operator asks a scheduler pod for.

Pods of the fleet are simulated, so no ``dask scheduler`` listens at a scheduler pod's address; an
operator that dials it would wait for its connect timeout every round. With this part on, the kubelet
stand-in gives scheduler pods (label ``dask.org/component`` ``scheduler`` or ``scheduler-candidate``)
loopback addresses (:data:`LOOPBACK_RANGE`) and ONE server on this machine answers on the dashboard port
of all of them, each for its own cluster, as an honest scheduler would (the part of Dask's HTTP API the
operator uses, and the Seamless idleness route):

* ``/api/v1/get_workers``: the cluster's worker pods that are Ready and not being deleted nor retired
  (a real worker is connected by the time its readiness probe passes; its Dask name is its pod name);
* ``/api/v1/seamless/idle``: no client, no task, idle since the scheduler pod started (``busy=True``:
  one client connected, never idle);
* ``/api/v1/adaptive_target``: 0 (no task: Dask's adaptive target of an idle cluster);
* ``POST /api/v1/retire_workers``: the named (or ``n``) workers retired: gone from ``get_workers``;
* ``/health``: ``ok``.

An address no scheduler holds answers 404. :class:`SchedulerBook` (the state, pure and thread-safe) is
fed by the stand-in; :class:`SchedulerServer` serves it from an asyncio loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: Scheduler pods' addresses when the fleet answers for them: node i gets the i-th /24 (all of 127/8 is this
#: machine's loopback on Linux, so a server on 0.0.0.0 receives every one of them).
LOOPBACK_RANGE = ipaddress.IPv4Network("127.64.0.0/10")
CLUSTER_LABEL, COMPONENT_LABEL = "dask.org/cluster-name", "dask.org/component"
SCHEDULER_COMPONENTS = ("scheduler", "scheduler-candidate")
WORKER_COMPONENT = "worker"
WORKER_PORT = 8790  # the port in the worker addresses get_workers lists (only a name to the operator)


def loopback_cidr(index: int) -> ipaddress.IPv4Network:
    """Node ``index``'s /24 of scheduler addresses."""
    return ipaddress.IPv4Network((int(LOOPBACK_RANGE.network_address) + (index << 8), 24))


def is_scheduler(labels: dict[str, str]) -> bool:
    return labels.get(COMPONENT_LABEL) in SCHEDULER_COMPONENTS and bool(labels.get(CLUSTER_LABEL))


@dataclass
class _Scheduler:
    namespace: str
    cluster: str
    since: float  # time.time() the scheduler "started" (its pod went Running)


@dataclass
class _Cluster:
    workers: dict[str, str] = field(default_factory=dict)  # Ready worker pod name -> its address
    retired: set[str] = field(default_factory=set)


class SchedulerBook:
    """Which scheduler holds which address, and each cluster's connected workers (thread-safe, no I/O)."""

    def __init__(self, busy: bool = False):
        self.busy = busy
        self._lock = threading.Lock()
        self._by_ip: dict[str, _Scheduler] = {}
        self._clusters: dict[tuple[str, str], _Cluster] = collections.defaultdict(_Cluster)
        self.calls: collections.Counter[str] = collections.Counter()

    # -- fed by the stand-in

    def scheduler_started(self, ip: str, namespace: str, cluster: str) -> None:
        """A scheduler pod got ``ip`` (before its Running status is written: it answers once it is seen)."""
        with self._lock:
            self._by_ip[ip] = _Scheduler(namespace, cluster, time.time())

    def worker_ready(self, namespace: str, cluster: str, name: str, ip: str) -> None:
        with self._lock:
            book = self._clusters[(namespace, cluster)]
            if name not in book.retired:
                book.workers[name] = f"tcp://{ip}:{WORKER_PORT}"

    def pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        """A watch event: a pod deleted (or being deleted) no longer answers nor counts as a worker."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        cluster = labels.get(CLUSTER_LABEL)
        if not cluster:
            return
        gone = kind == "DELETED" or bool(meta.get("deletionTimestamp"))
        if not gone:
            return
        key = (meta.get("namespace") or "", cluster)
        ip = (pod.get("status") or {}).get("podIP")
        with self._lock:
            if is_scheduler(labels):
                held = self._by_ip.get(ip or "")
                if held is not None and (held.namespace, held.cluster) == key:
                    del self._by_ip[ip or ""]
            elif labels.get(COMPONENT_LABEL) == WORKER_COMPONENT and key in self._clusters:
                book = self._clusters[key]
                book.workers.pop(meta.get("name") or "", None)
                if kind == "DELETED":
                    book.retired.discard(meta.get("name") or "")
                    if not book.workers and not book.retired:
                        del self._clusters[key]

    # -- asked by the operator

    def answer(self, local_ip: str, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """HTTP status and JSON answer of the scheduler at ``local_ip``."""
        path = path.split("?", 1)[0]
        with self._lock:
            self.calls[f"{method} {path}"] += 1
            scheduler = self._by_ip.get(local_ip)
            if scheduler is None:
                self.calls["no scheduler at that address"] += 1
                return 404, {"error": f"no scheduler at {local_ip}"}
            book = self._clusters[(scheduler.namespace, scheduler.cluster)]
            if method == "GET" and path == "/health":
                return 200, "ok"
            if method == "GET" and path == "/api/v1/get_workers":
                return 200, {"workers": [{"name": n, "address": a} for n, a in sorted(book.workers.items())]}
            if method == "GET" and path == "/api/v1/adaptive_target":
                return 200, {"workers": 0}
            if method == "GET" and path == "/api/v1/seamless/idle":
                if self.busy:
                    return 200, {"clients": 1, "tasks": 0, "workers": len(book.workers), "idle_since": None}
                # As our scheduler route answers (seamless_dask_runtime/http_routes.py): how long, on its own clock.
                return 200, {"clients": 0, "tasks": 0, "workers": len(book.workers), "idle_since": scheduler.since,
                             "idle_for": max(0.0, time.time() - scheduler.since)}
            if method == "POST" and path == "/api/v1/retire_workers":
                return 200, self._retire(book, json.loads(body or b"{}"))
            return 404, {"error": f"no route {method} {path}"}

    @staticmethod
    def _retire(book: _Cluster, asked: dict[str, Any]) -> dict[str, Any]:
        by_address = {a: n for n, a in book.workers.items()}
        if "workers" in asked:
            names = [by_address[a] for a in asked["workers"] if a in by_address]
        else:
            names = sorted(book.workers)[: int(asked.get("n") or 0)]
        retired = {}
        for name in names:
            retired[book.workers.pop(name)] = {"name": name}
            book.retired.add(name)
        return retired

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"schedulers_answering": len(self._by_ip), "scheduler_calls": dict(self.calls)}


class SchedulerServer:
    """Serves a :class:`SchedulerBook` over HTTP on ``0.0.0.0:port``; one request per connection (as the
    operator asks: ``Connection: close``)."""

    def __init__(self, book: SchedulerBook, port: int):
        self.book, self.port = book, port
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="dask-schedulers", daemon=True)

    def start(self, timeout: float = 10.0) -> SchedulerServer:
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            raise RuntimeError(f"scheduler answers not served on port {self.port}: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, "0.0.0.0", self.port, backlog=1024, reuse_address=True))
        except BaseException as exc:  # a busy port: start() says so
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
            length = int(headers.get("content-length") or 0)
            body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
            local_ip = writer.get_extra_info("sockname")[0]
            status, answer = self.book.answer(local_ip, method, path, body)
            data = json.dumps(answer).encode()
            reason = "OK" if status == 200 else "Not Found"
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError):
            pass  # the caller hung up or sent nonsense: nothing to answer
        finally:
            writer.close()
