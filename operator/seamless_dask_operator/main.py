"""``seamless-dask-operator``: run the operator (all namespaces or a list), one active replica at a time.

With a Lease configured (the chart does: ``SEAMLESS_DASK_OPERATOR_LEASE``), every replica campaigns and only
the holder runs kopf (:mod:`.leadership`); every replica serves ``/healthz``, the standbys too, so that a
rollout proceeds. A failed start stops the process with its reason and a non-zero exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence

import kopf
from aiohttp import web

from .settings import SETTINGS

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seamless-dask-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: SEAMLESS_DASK_OPERATOR_NAMESPACES or all")
    parser.add_argument("--liveness-port", type=int, default=SETTINGS.health_port,
                        help="serve /healthz on this port (0 disables)")
    parser.add_argument("--verbose", action="store_true")
    return parser


class LeadershipLost(RuntimeError):
    pass


async def _serve_health(port: int, role: dict[str, str]) -> web.AppRunner | None:
    """``/healthz`` of every replica, leader or standby: the process and its event loop are alive."""
    if not port:
        return None

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text=json.dumps(role), content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def _keep(lease: object, stop: asyncio.Event) -> None:
    from .leadership import Lease

    assert isinstance(lease, Lease)
    while not stop.is_set():
        await asyncio.sleep(lease.timing.retry_period)
        if not await asyncio.to_thread(lease.renew):
            # Stop acting at once, before another replica may take the Lease: no graceful shutdown that could
            # still create or delete something.
            log.error("lost the Lease %s/%s: exiting so that only one operator acts", lease.namespace, lease.name)
            os._exit(1)


async def _run(namespaces: list[str], liveness_port: int) -> None:
    role = {"role": "standby" if SETTINGS.lease_name else "leader"}
    health = await _serve_health(liveness_port, role)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    lease, keeper = None, None
    try:
        if SETTINGS.lease_name:
            from . import api_client
            from .leadership import Lease

            for signum in (2, 15):  # SIGINT, SIGTERM: a standby stops campaigning (kopf takes them over later)
                loop.add_signal_handler(signum, stop.set)
            api_client.connect(logger=log, settings=kopf.OperatorSettings())
            lease = Lease(SETTINGS.pod_namespace, SETTINGS.lease_name,
                          f"{SETTINGS.pod_name or 'operator'}_{uuid.uuid4().hex[:8]}")
            if not await asyncio.to_thread(lease.acquire, stop.is_set):
                return
            role["role"] = "leader"
            keeper = asyncio.ensure_future(_keep(lease, stop))
        await kopf.operator(standalone=True, clusterwide=not namespaces, namespaces=namespaces, stop_flag=stop)
    finally:
        stop.set()
        if keeper is not None:
            keeper.cancel()
        from .handlers.cluster_loop import rounds_in_flight

        if lease is not None and not rounds_in_flight():
            await asyncio.to_thread(lease.release)
        if health is not None:
            await health.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import handlers  # noqa: F401  (registers the handlers)

    namespaces = args.namespace or list(SETTINGS.namespaces)
    kopf.configure(verbose=args.verbose)
    try:
        asyncio.run(_run(namespaces, args.liveness_port))
    except Exception as exc:  # a failed start (a busy port, say): its reason, once, and a non-zero exit
        cause = exc.__cause__ or exc
        print(f"seamless-dask-operator: cannot start: {cause}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    code = main()
    # Stopped: a call still waiting in a thread (a scheduler that answers slowly, say) must not hold the exit
    # (interpreters join their threads), nor act after the Lease went to another replica.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
