"""A tenant's scheduler that misbehaves on purpose, for the operator's trust-boundary tests and bench.

A scheduler pod runs the tenant's image: it can answer the operator's HTTP calls (the part of Dask's
scheduler API the operator uses) slowly, hugely, with lies or in another clock. One real HTTP server
plays every scheduler of a test, each on its own loopback address (the pod IP of its Ready scheduler
pod, as ``make_pod_ready`` sets it); ``behaviours[ip]`` says how that one answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Behaviour:
    """How one scheduler answers; the defaults are an honest, busy scheduler."""

    cluster: str
    drip_seconds: float = 0.0  # > 0: every answer sends one byte per this many seconds
    flood_bytes: int = 0  # > 0: every answer is this many bytes of junk
    retire_names: list[str] | None = None  # names a retire call answers (None: the ones asked for)
    idle: dict[str, Any] = field(default_factory=lambda: {"idle_since": None})  # /api/v1/seamless/idle
    workers: list[str] | None = None  # get_workers names (None: NAME-worker-0)
    calls: list[str] = field(default_factory=list)


class HostileSchedulers(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("0.0.0.0", port), _Handler)
        self.behaviours: dict[str, Behaviour] = {}
        self.stopping = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: HostileSchedulers

    def log_message(self, *args: Any) -> None:
        pass

    def _behaviour(self) -> Behaviour | None:
        return self.server.behaviours.get(self.connection.getsockname()[0])

    def _send(self, value: Any, behaviour: Behaviour | None) -> None:
        data = json.dumps(value).encode()
        try:
            if behaviour is not None and behaviour.flood_bytes:
                self._flood(behaviour.flood_bytes)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if behaviour is not None and behaviour.drip_seconds:
                for i in range(len(data)):
                    if self.server.stopping.wait(behaviour.drip_seconds):
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                return
            self.wfile.write(data)
        except OSError:
            pass  # the operator hung up on us, as it should

    def _flood(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b"[" * (1 << 20)
        sent = 0
        while sent < size and not self.server.stopping.is_set():
            part = chunk[: min(len(chunk), size - sent)]
            self.wfile.write(part)
            sent += len(part)

    def do_GET(self) -> None:
        behaviour = self._behaviour()
        name = behaviour.cluster if behaviour else "unknown"
        if behaviour is not None:
            behaviour.calls.append(f"GET {self.path}")
        if self.path == "/health":
            self._send("ok", None)  # the kubelet's probe is not the operator's business here
            return
        workers = behaviour.workers if behaviour and behaviour.workers is not None else [f"{name}-worker-0"]
        answers = {
            "/api/v1/get_workers": {"workers": [{"name": w, "address": f"tcp://10.9.0.{i + 1}:1"}
                                                for i, w in enumerate(workers)]},
            "/api/v1/adaptive_target": {"workers": 0},
            "/api/v1/seamless/idle": behaviour.idle if behaviour else {"idle_since": None},
        }
        self._send(answers.get(self.path, {}), behaviour)

    def do_POST(self) -> None:
        behaviour = self._behaviour()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if behaviour is not None:
            behaviour.calls.append(f"POST {self.path} {json.dumps(body)}")
        if self.path != "/api/v1/retire_workers":
            self._send({}, behaviour)
            return
        if behaviour is not None and behaviour.retire_names is not None:
            names = behaviour.retire_names
        else:
            names = [f"{behaviour.cluster if behaviour else 'unknown'}-worker-{i}" for i in range(body.get("n", 0))]
        self._send({f"tcp://10.9.1.{i + 1}:1": {"name": n} for i, n in enumerate(names)}, behaviour)


@contextmanager
def hostile_schedulers(port: int) -> Iterator[HostileSchedulers]:
    server = HostileSchedulers(port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def clock_behind(seconds_behind: float, idle_for: float | None) -> dict[str, Any]:
    """An idle answer from a scheduler whose clock runs ``seconds_behind`` (idle_for None: an older image that
    reports only its own timestamp)."""
    answer: dict[str, Any] = {"clients": 0, "tasks": 0, "workers": 1,
                              "idle_since": time.time() - seconds_behind - (idle_for or 0.0)}
    if idle_for is not None:
        answer["idle_for"] = idle_for
    return answer
