"""``seamless-dask-operator``: run the operator (all namespaces or a list) with a liveness endpoint."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import kopf

from .settings import SETTINGS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seamless-dask-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: SEAMLESS_DASK_OPERATOR_NAMESPACES or all")
    parser.add_argument("--liveness-port", type=int, default=SETTINGS.health_port,
                        help="serve /healthz on this port (0 disables)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import handlers  # noqa: F401  (registers the handlers)

    namespaces = args.namespace or list(SETTINGS.namespaces)
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    kopf.configure(verbose=args.verbose)
    try:
        asyncio.run(kopf.operator(
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
        ))
    except Exception as exc:  # a failed start (a busy port, say): its reason, once, and a non-zero exit
        cause = exc.__cause__ or exc
        print(f"seamless-dask-operator: cannot start: {cause}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    sys.exit(main())
