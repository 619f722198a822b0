"""A fault-injecting HTTP proxy in front of the real kube-apiserver.

Clients talk plain HTTP to the proxy (their bearer token passes through); the
proxy forwards over HTTPS. A seeded fraction of requests get a fault instead:
409 Conflict (writes), 429 Too Many Requests (with Retry-After), 500, 503, a
dropped connection, or a response held back for ``slow_seconds`` (a timeout for
a client that waits less); a fraction of watch streams end with a 410 Gone ERROR
event, as an API server does when the resourceVersion expired.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}


class FaultyAPI:
    def __init__(self, upstream: str, ca_file: str, rate: float, watch_rate: float = 0.5, seed: int = 1,
                 slow_seconds: float = 8.0):
        self.upstream = upstream.rstrip("/")
        self.ca_file = ca_file
        self.rate = rate
        self.watch_rate = watch_rate
        self.slow_seconds = slow_seconds
        self.rng = random.Random(seed)
        # Watch faults draw from their own sequence: how many other requests the
        # operator happens to make must not decide whether any watch sees a 410.
        self.watch_rng = random.Random(seed + 1)
        self.injected: collections.Counter[str] = collections.Counter()
        self.forwarded = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FaultyAPI:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        context = ssl.create_default_context(cafile=self.ca_file)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                              timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = self._runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def kubeconfig(self, original: Path, target: Path) -> Path:
        """A kubeconfig that sends the original user's token to the proxy."""
        import yaml

        config = yaml.safe_load(original.read_text())
        for cluster in config["clusters"]:
            cluster["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        target.write_text(yaml.safe_dump(config))
        return target

    # -- the faults ----------------------------------------------------------
    def _fault(self, request: web.Request) -> str | None:
        if self.rng.random() >= self.rate:
            return None
        kinds = ["429", "500", "503", "drop", "slow"]
        if request.method in ("POST", "PUT", "PATCH"):
            kinds.append("409")
        # When a fault strikes is random; which one is the least injected so far (ties at random), so every
        # kind happens even though an operator that makes few writes gives 409 few chances.
        fewest = min(self.injected[kind] for kind in kinds)
        return self.rng.choice([kind for kind in kinds if self.injected[kind] == fewest])

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        fault = None if watch else self._fault(request)
        if fault is not None:
            self.injected[fault] += 1
            if fault == "slow":
                await asyncio.sleep(self.slow_seconds)
                fault = None
        if fault is not None:
            if fault == "drop":
                request.transport.close()  # type: ignore[union-attr]
                return web.Response(status=500)
            code = int(fault)
            reason = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}[code]
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                    "message": f"injected {reason}", "details": {"retryAfterSeconds": 1}}
            headers = {"Retry-After": "1"} if code == 429 else {}
            return web.json_response(body, status=code, headers=headers)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        data = await request.read()
        # No Content-Type in means none out (aiohttp would add application/octet-stream).
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=data or None, skip_auto_headers={"Content-Type"}) as upstream:
            self.forwarded += 1
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS})
            await response.prepare(request)
            gone_after = (self.watch_rng.randint(1, 3) if watch and self.watch_rng.random() < self.watch_rate
                          else None)
            events = 0
            async for line in upstream.content:
                await response.write(line)
                events += 1
                if gone_after is not None and events >= gone_after:
                    self.injected["410"] += 1
                    gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                        "code": 410, "reason": "Expired",
                                                        "message": "injected: too old resource version"}}
                    await response.write((json.dumps(gone) + "\n").encode())
                    break
            await response.write_eof()
            return response


def report(api: FaultyAPI) -> dict[str, Any]:
    return {"forwarded": api.forwarded, "injected": dict(api.injected)}
