"""``kubectl sdc COMMAND NAME``: the daily tools for SeamlessDaskClusters (installed as ``kubectl-sdc``).

Thin shell: arguments in, kubectl out (:mod:`.kubectl`), pure views
(:mod:`.views`, :mod:`.recipe`) for everything printed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import signal
import socket
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...model.identity import CLUSTER_LABEL, COMM_PORT, COMPONENT_LABEL, DASHBOARD_PORT, GROUP, PLURAL, scheduler_name
from . import views
from .kubectl import Kubectl, KubectlError, find_kubectl
from .recipe import ADDRESS_PLACEHOLDER, RecipeOptions, recipe_text

RESOURCE = f"{PLURAL}.{GROUP}"  # unambiguous even where another CRD is also called "sdc"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given before or after the command, the value is kept (argparse's subparser defaults would
    # otherwise overwrite a value given before the command).
    parser.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                        help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="path to the kubeconfig file")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubectl sdc", description="Daily tools for SeamlessDaskClusters.")
    _connection_flags(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _connection_flags(sub)
        return sub

    status = command("status", "phase, conditions, workers with their memory, recent Events")
    status.add_argument("name", metavar="NAME")
    status.add_argument("--events", type=int, default=10, metavar="N", help="how many recent Events (default 10)")

    dashboard = command("dashboard", "port-forward the Dask dashboard and print its URL (until Ctrl-C)")
    dashboard.add_argument("name", metavar="NAME")
    dashboard.add_argument("--port", type=int, default=None,
                           help=f"local port (default {DASHBOARD_PORT} if free, else any free port)")
    dashboard.add_argument("--address", default="127.0.0.1", help="local address to listen on (default 127.0.0.1)")

    client = command("client", "the scheduler's address and a Python snippet; port-forward when outside the cluster")
    client.add_argument("name", metavar="NAME")
    client.add_argument("--port", type=int, default=None,
                        help=f"local port (default {COMM_PORT} if free, else any free port)")
    client.add_argument("--address", default="127.0.0.1", help="local address to listen on (default 127.0.0.1)")
    client.add_argument("--in-cluster", action="store_true",
                        help="print the Service address, no port-forward (the default inside a pod)")

    logs = command("logs", "the scheduler's and workers' logs, each line prefixed with its pod")
    logs.add_argument("name", metavar="NAME")
    which = logs.add_mutually_exclusive_group()
    which.add_argument("--scheduler", action="store_true", help="only the scheduler")
    which.add_argument("--workers", action="store_true", help="only the workers")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming")
    logs.add_argument("--tail", type=int, default=-1, help="lines per pod (default: all)")
    logs.add_argument("--since", default=None, help="only newer lines, e.g. 10m (kubectl's --since)")

    scale = command("scale", "set the number of workers, or the adaptive limits")
    scale.add_argument("name", metavar="NAME")
    scale.add_argument("--replicas", type=int, help="worker pods (not adaptive)")
    scale.add_argument("--minimum", type=int, help="fewest workers when adaptive")
    scale.add_argument("--maximum", type=int, help="most workers")
    scale.add_argument("--adaptive", action=argparse.BooleanOptionalAction, default=None,
                       help="follow the scheduler's adaptive target between minimum and maximum")

    recipe = command("recipe", "print the Seamless-on-Kubernetes recipe: seamless-config files and environment")
    recipe.add_argument("--image", required=True, help="runtime image built with --build-arg SEAMLESS=true")
    recipe.add_argument("--services-address", default=ADDRESS_PLACEHOLDER,
                        help="an address of this machine that pods reach (hashserver, database)")
    recipe.add_argument("--data-dir", default=str(Path.home() / "seamless-data"),
                        help="where the hashserver and database keep their files (default ~/seamless-data)")
    recipe.add_argument("--cluster-name", default="kubernetes", help="seamless-config cluster name")
    recipe.add_argument("--project", default="myproject", help="seamless-config project name")
    recipe.add_argument("--conda", default="seamless", help="conda environment of the services")
    recipe.add_argument("--cores", type=int, default=1, help="CPUs of each worker pod")
    recipe.add_argument("--memory", default="2GB", help="memory of each worker pod")
    recipe.add_argument("--maximum-jobs", type=int, default=4, help="most worker pods")
    recipe.add_argument("--interactive", action="store_true", help="keep one worker pod while the daskserver runs")
    recipe.add_argument("--ports", type=int, nargs=2, default=(60000, 60999), metavar=("START", "END"),
                        help="port range of the services on this machine")
    return parser


def kubectl_flags(args: argparse.Namespace) -> tuple[str, ...]:
    """The user's connection flags, passed to every kubectl call (the namespace is resolved per command)."""
    flags: list[str] = []
    for option in ("kubeconfig", "context"):
        value = getattr(args, option, None)
        if value:
            flags.append(f"--{option}={value}")
    return tuple(flags)


def recipe_options(args: argparse.Namespace, namespace: str) -> RecipeOptions:
    return RecipeOptions(namespace=namespace, image=args.image, data_dir=args.data_dir,
                         services_address=args.services_address, cluster=args.cluster_name, project=args.project,
                         conda=args.conda, cores=args.cores, memory=args.memory, maximum_jobs=args.maximum_jobs,
                         interactive=args.interactive, port_start=args.ports[0], port_end=args.ports[1])


def logs_arguments(name: str, namespace: str, *, scheduler: bool, workers: bool, follow: bool, tail: int,
                   since: str | None, pods: int) -> list[str]:
    """``kubectl logs`` arguments for the cluster's pods (``pods``: how many, for the stream limit of -f)."""
    selector = f"{CLUSTER_LABEL}={name}"
    if scheduler or workers:
        selector += f",{COMPONENT_LABEL}={'scheduler' if scheduler else 'worker'}"
    args = ["logs", "-n", namespace, "-l", selector, "--prefix", "--all-containers", f"--tail={tail}",
            "--ignore-errors"]
    if follow:
        args += ["-f", f"--max-log-requests={max(5, pods)}"]
    if since:
        args.append(f"--since={since}")
    return args


def preferred_port(port: int | None, default: int, is_free: Callable[[int], bool]) -> int:
    """The local port asked for; else ``default`` when free; else 0 (kubectl picks one)."""
    if port is not None:
        return port
    return default if is_free(default) else 0


def _port_is_free(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


# -- the commands ---------------------------------------------------------------------------------------------
class Context:
    def __init__(self, args: argparse.Namespace):
        self.args = args

    @functools.cached_property
    def kubectl(self) -> Kubectl:
        return Kubectl(find_kubectl(), kubectl_flags(self.args))

    def resource(self, name: str) -> dict[str, Any]:
        namespace = getattr(self.args, "namespace", None)
        return self.kubectl.json("get", RESOURCE, name, *(["-n", namespace] if namespace else []))

    def namespace(self) -> str:
        """-n, else the context's namespace, else default (as kubectl decides)."""
        given = getattr(self.args, "namespace", None)
        if given:
            return given
        try:
            proc = self.kubectl.run("config", "view", "--minify", "-o", "jsonpath={..namespace}", check=False)
        except KubectlError:  # no kubectl here: the recipe still prints
            return "default"
        return proc.stdout.strip() or "default"


def _say(*lines: str) -> None:
    print("\n".join(lines), flush=True)


def _hold(forward: Any) -> int:
    """Until Ctrl-C (exit 0) or kubectl stops forwarding (exit 1, with its words)."""
    try:
        reason = forward.wait()
    except KeyboardInterrupt:
        return EXIT_OK
    print(f"kubectl sdc: port-forward stopped: {reason}", file=sys.stderr)
    return EXIT_FAILED


def cmd_status(ctx: Context) -> int:
    args = ctx.args
    resource = ctx.resource(args.name)
    namespace = resource["metadata"]["namespace"]
    pods = ctx.kubectl.json("get", "pods", "-n", namespace, "-l", f"{CLUSTER_LABEL}={args.name}")["items"]
    events = ctx.kubectl.json("get", "events", "-n", namespace)["items"]
    identity, note = None, "from the scheduler's /json/identity.json"
    if (resource.get("status") or {}).get("phase") != "Running":
        note = "the scheduler is not Running: no Dask view of the workers"
    else:
        try:
            with ctx.kubectl.port_forward(namespace, f"svc/{scheduler_name(args.name)}", [(0, DASHBOARD_PORT)],
                                          timeout=30) as forward:
                url = f"http://127.0.0.1:{forward.ports[DASHBOARD_PORT]}/json/identity.json"
                with urllib.request.urlopen(url, timeout=15) as response:
                    identity = json.loads(response.read())
        except (KubectlError, OSError, ValueError) as exc:
            note = f"the scheduler's /json/identity.json could not be read: {exc}"
    print(views.render_status(resource, pods, events, identity, note,
                              datetime.datetime.now(datetime.timezone.utc), args.events), end="", flush=True)
    return EXIT_OK


def cmd_dashboard(ctx: Context) -> int:
    args = ctx.args
    resource = ctx.resource(args.name)
    namespace = resource["metadata"]["namespace"]
    local = preferred_port(args.port, DASHBOARD_PORT, lambda p: _port_is_free(p, args.address))
    with ctx.kubectl.port_forward(namespace, f"svc/{scheduler_name(args.name)}", [(local, DASHBOARD_PORT)],
                                  address=args.address) as forward:
        _say(f"Dask dashboard of {namespace}/{args.name}: "
             f"http://{args.address}:{forward.ports[DASHBOARD_PORT]}/status  (kubectl port-forward; Ctrl-C stops it)")
        return _hold(forward)


def cmd_client(ctx: Context) -> int:
    args = ctx.args
    resource = ctx.resource(args.name)
    namespace = resource["metadata"]["namespace"]
    if args.in_cluster or os.environ.get("KUBERNETES_SERVICE_HOST"):
        address = views.in_cluster_address(resource)
        _say(f"Scheduler of {namespace}/{args.name} (inside the cluster): {address}", "",
             views.client_snippet(resource, address).rstrip("\n"))
        return EXIT_OK
    local = preferred_port(args.port, COMM_PORT, lambda p: _port_is_free(p, args.address))
    dashboard = preferred_port(None, DASHBOARD_PORT, lambda p: _port_is_free(p, args.address))
    with ctx.kubectl.port_forward(namespace, f"svc/{scheduler_name(args.name)}",
                                  [(local, COMM_PORT), (dashboard, DASHBOARD_PORT)], address=args.address) as forward:
        address = views.local_address(resource, forward.ports[COMM_PORT], args.address)
        _say(f"Scheduler of {namespace}/{args.name}, through kubectl port-forward (Ctrl-C stops it):",
             f"  address    {address}",
             f"  dashboard  http://{args.address}:{forward.ports[DASHBOARD_PORT]}/status", "",
             views.client_snippet(resource, address).rstrip("\n"))
        return _hold(forward)


def cmd_logs(ctx: Context) -> int:
    args = ctx.args
    resource = ctx.resource(args.name)
    namespace = resource["metadata"]["namespace"]
    pods = len(ctx.kubectl.run("get", "pods", "-n", namespace, "-l", f"{CLUSTER_LABEL}={args.name}", "-o",
                               "name").stdout.split()) if args.follow else 0
    try:
        return ctx.kubectl.call(*logs_arguments(args.name, namespace, scheduler=args.scheduler,
                                                workers=args.workers, follow=args.follow, tail=args.tail,
                                                since=args.since, pods=pods + 1))
    except KeyboardInterrupt:
        return EXIT_OK


def cmd_scale(ctx: Context) -> int:
    args = ctx.args
    resource = ctx.resource(args.name)
    meta = resource["metadata"]
    try:
        patch = views.scale_patch(resource, args.replicas, args.minimum, args.maximum, args.adaptive)
    except ValueError as exc:
        print(f"kubectl sdc scale: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ctx.kubectl.run("patch", RESOURCE, meta["name"], "-n", meta["namespace"], "--type=merge",
                    "-p", json.dumps(patch))
    workers = ctx.kubectl.json("get", RESOURCE, meta["name"], "-n", meta["namespace"])["spec"]["workers"]
    scaling = (f"adaptive between {workers.get('minimum')} and {workers.get('maximum')} workers"
               if workers.get("adaptive") else f"{workers.get('replicas')} workers (maximum {workers.get('maximum')})")
    _say(f"{meta['namespace']}/{meta['name']} scaled: {scaling}; `kubectl sdc status {meta['name']}` follows it")
    return EXIT_OK


def cmd_recipe(ctx: Context) -> int:
    args = ctx.args
    if args.services_address == ADDRESS_PLACEHOLDER:
        print("kubectl sdc recipe: --services-address not given: replace ADDRESS-THE-PODS-REACH in the output",
              file=sys.stderr)
    print(recipe_text(recipe_options(args, ctx.namespace())), end="", flush=True)
    return EXIT_OK


COMMANDS: dict[str, Callable[[Context], int]] = {
    "status": cmd_status, "dashboard": cmd_dashboard, "client": cmd_client, "logs": cmd_logs,
    "scale": cmd_scale, "recipe": cmd_recipe,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM ends a port-forward as Ctrl-C does: the block exits and kubectl port-forward is stopped.
    with contextlib.suppress(ValueError):  # not in the main thread (tests): leave signals alone
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return COMMANDS[args.command](Context(args))
    except KubectlError as exc:
        print(f"kubectl sdc {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK


def run() -> None:
    """Console-script entry point (``kubectl-sdc``)."""
    sys.exit(main())
