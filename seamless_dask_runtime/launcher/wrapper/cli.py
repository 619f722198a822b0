"""``seamless-dask-wrapper CLUSTER --port-range START END --status-file FILE [--host H] [--timeout S]``.

A drop-in for the original CLI: it waits for the launcher's status file,
reads ``parameters``, starts the cluster the cluster string names, writes
``"status": "running"`` with ``port`` and ``dashboard_port`` (or
``"failed"`` with an ``error``), supervises inactivity and deletes the file
on a clean shutdown (inactivity timeout, SIGTERM, SIGINT or SIGHUP).

The stop signals are caught from the first moment :func:`run` runs: this
module imports nothing heavy at the top (Dask and pydantic take seconds to
import), so a signal during start-up is a ``failed`` status naming it, never
a silent death or a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...log_filters import drop_out_of_band_calls

# Light imports only here (see the module docstring): parameters and backends are imported where they are used.
from ...model.identity import CLUSTER_VARIABLE, PARAMETERS_VARIABLE
from ...model.status import ClusterStatus, Phase
from ..statusfile import StatusFile, StatusFileError, StatusFileLocked, open_regular
from .cluster_string import ClusterStringError, resolve
from .ports import PortError, address_in_use, bind_address, check_explicit_port, check_port_range, pick_free_port

if TYPE_CHECKING:
    from ...model.parameters import ClusterParameters
    from .backends import ClusterHandle

STATUS_FILE_WAIT = 20.0
LAUNCH_ATTEMPTS = 3  # fresh ports after another process took the chosen ones
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_SIGNAL_BASE = 128  # stopped by signal N before running: exit 128 + N, as a shell reports it
# What a site sets in the wrapper's environment when its launcher cannot say it (CLUSTER_VARIABLE,
# PARAMETERS_VARIABLE of identity.py): seamless-config knows only local/slurm/oar clusters and its own
# queue keys, so a SeamlessDaskCluster, its namespace and its image come from there (e.g. the daskserver
# conda environment's activation).

log = logging.getLogger("seamless-dask-wrapper")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seamless-dask-wrapper", description=__doc__.split("\n\n")[1])
    parser.add_argument("cluster", help="cluster string MODULE::SYMBOL, e.g. distributed::LocalCluster")
    parser.add_argument(
        "--port-range", type=int, nargs=2, required=True, metavar=("START", "END"),
        help="inclusive range for the scheduler and dashboard ports",
    )
    parser.add_argument("--host", default="0.0.0.0", help="scheduler host (default 0.0.0.0)")
    parser.add_argument("--status-file", required=True, help="JSON status file written by the launcher")
    parser.add_argument("--timeout", type=float, help="shut down after this many idle seconds")
    # Extensions for a scheduler pod (the operator's batch-system backend); launchers never pass them.
    parser.add_argument("--scheduler-port", type=int, help="use this scheduler port instead of a random one")
    parser.add_argument("--dashboard-port", type=int, help="use this dashboard port instead of a random one")
    parser.add_argument("--parameters-from-env", metavar="VARIABLE",
                        help="if the status file is absent, create it with the parameters JSON in VARIABLE")
    return parser


class _LogFile(logging.FileHandler):
    """The launcher's log file: on a full disk a record is lost, not turned into a traceback on stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass

    def _open(self) -> Any:
        # The path comes from the status file and may be in a directory others can write: append to a regular
        # file only, never through a planted link.
        fd = open_regular(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND | os.O_CREAT, "log file")
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def _is_stderr(path: str) -> bool:
    """Whether our stderr already goes to ``path`` (remote-http-launcher redirects it to the log)."""
    import os

    try:
        ours, theirs = os.fstat(sys.stderr.fileno()), os.stat(path)
    except (OSError, ValueError):
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _configure_logging(contents: dict[str, Any]) -> None:
    """INFO to stderr, and to the status file's ``log`` unless stderr already is that file.

    One writer per file: a second handle on the launcher's log (opened for
    appending while the launcher's handle writes at its own offset) duplicates
    and overwrites lines. Dask's loggers (scheduler; workers, which inherit
    stderr) keep their own handlers on stderr.
    """
    # distributed sets up its loggers' handlers when first imported, unless the root logger has some by then:
    # imported first, its lines keep Dask's own format (the original wrapper's log), whatever else was imported.
    import distributed  # noqa: F401

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    log_path = contents.get("log")
    unusable: Exception | None = None
    if isinstance(log_path, str) and log_path and not _is_stderr(log_path):
        try:
            handlers.append(_LogFile(log_path, encoding="utf-8"))
        except OSError:  # a full disk, a read-only directory: stderr is the log
            pass
        except StatusFileError as exc:  # a link planted there: say why the log file stays empty
            unusable = exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    if unusable is not None:
        log.warning("not writing the log file %s: %s", log_path, unusable)
    # Dask logs every run_on_scheduler: seamless-dask's cancel polls, the idle monitor's.
    drop_out_of_band_calls()


def _fail(status_file: StatusFile, message: str, code: int) -> int:
    """Tell the launcher through the file; where the file cannot be written, in one stderr line."""
    try:
        status_file.write_failure(ClusterStatus(Phase.FAILED, message=message))
    except StatusFileError as exc:
        log.error("startup failed: %s; the failure could not be written either: %s", message, exc)
    else:
        log.error("startup failed: %s", message)
    return code


def _say(message: object, code: int) -> int:
    """Before logging is set up: one line on stderr, no traceback."""
    print(f"seamless-dask-wrapper: {message}", file=sys.stderr)
    return code


class _StopSignal:
    """SIGTERM/SIGINT/SIGHUP (the launcher stops services with ``kill -1``) set an event."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: str | None = None
        self.exit_code = EXIT_FAILED
        self.install()

    def install(self) -> None:
        """(Again) after an import that set its own handler (dask_jobqueue's SIGINT)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received is None:
            self.received = signal.Signals(signum).name
            self.exit_code = EXIT_SIGNAL_BASE + signum
        self.event.set()


def _stopped(status_file: StatusFile, stop: _StopSignal, when: str) -> int:
    """A stop signal before ``running``: the launcher reads ``failed`` naming it, not ``starting`` for ever."""
    return _fail(status_file, f"stopped by {stop.received} {when}, before the cluster was running", stop.exit_code)


def _create_status_file(status_file: StatusFile, variable: str) -> None:
    """A scheduler pod is its own launcher: the operator passes the parameters in the environment."""
    try:
        parameters = json.loads(os.environ.get(variable) or "{}")
    except json.JSONDecodeError as exc:
        parameters = {"invalid JSON in environment variable " + variable: str(exc)}
    status_file.path.parent.mkdir(parents=True, exist_ok=True)
    status_file.create({"status": "starting", "parameters": parameters})


def site_settings(cluster: str, raw: Any, environ: Mapping[str, str]) -> tuple[str, Any]:
    """The cluster string and parameters after the site's environment (pure).

    ``SEAMLESS_DASK_CLUSTER`` replaces the launcher's cluster string;
    ``SEAMLESS_DASK_PARAMETERS`` (a JSON object) fills in parameters the launcher left out.
    The launcher's own parameters win: the site only adds what it cannot express.
    """
    cluster = environ.get(CLUSTER_VARIABLE) or cluster
    text = environ.get(PARAMETERS_VARIABLE)
    if not text or not isinstance(raw, Mapping):
        return cluster, raw
    try:
        site = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PARAMETERS_VARIABLE}: invalid JSON ({exc}); give a JSON object such as "
                         '\'{"namespace": "team-a", "image": "REPO/IMAGE:TAG"}\'') from None
    if not isinstance(site, dict):
        raise ValueError(f"{PARAMETERS_VARIABLE}: a JSON object of parameters is needed, not "
                         f"{type(site).__name__}; e.g. '{{\"namespace\": \"team-a\"}}'")
    return cluster, {**site, **raw}


def _parameters(raw: Any, cluster_string: str) -> ClusterParameters:
    from ...model.parameters import from_status_parameters

    params = from_status_parameters({} if raw is None else raw)
    return params.model_copy(update={"cluster": cluster_string})


def main(argv: Sequence[str] | None = None, stop: _StopSignal | None = None) -> int:
    stop = stop or _StopSignal()
    args = build_parser().parse_args(argv)
    status_file = StatusFile(args.status_file)
    try:
        if args.parameters_from_env and not os.path.lexists(status_file.path):
            _create_status_file(status_file, args.parameters_from_env)
        contents = status_file.wait(STATUS_FILE_WAIT, stop=stop.event)
    except StatusFileError as exc:
        if stop.received:
            return _say(f"stopped by {stop.received} before the launcher wrote {status_file.path}; nothing written",
                        stop.exit_code)
        return _say(exc, EXIT_BAD_INPUT)
    except OSError as exc:
        return _say(f"cannot create status file {status_file.path}: {exc.strerror or exc}", EXIT_BAD_INPUT)
    _configure_logging(contents)
    try:
        status_file.acquire()
    except StatusFileLocked as exc:  # the file is another wrapper's: never write into it
        log.error("%s", exc)
        return EXIT_FAILED if stop.received is None else stop.exit_code
    except StatusFileError as exc:
        return _fail(status_file, str(exc), EXIT_FAILED)
    try:
        if stop.received:
            return _stopped(status_file, stop, "while reading the status file")
        return _run(args, contents, status_file, stop)
    finally:
        status_file.release()


def _timeout(args: argparse.Namespace, params: ClusterParameters) -> float | None:
    """``--timeout`` over ``parameters.timeout``; NaN, infinite or non-positive is refused."""
    if args.timeout is None:
        return params.timeout
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout {args.timeout}: give a finite number of idle seconds > 0, "
                         "or leave --timeout out to never stop when idle")
    return float(args.timeout)


def _choose_ports(args: argparse.Namespace, address: str) -> tuple[int, int]:
    start, end = args.port_range
    scheduler_port = args.scheduler_port or pick_free_port(address, start, end, purpose="scheduler")
    dashboard_port = args.dashboard_port or pick_free_port(address, start, end, purpose="dashboard",
                                                           exclude=(scheduler_port,))
    return scheduler_port, dashboard_port


def _run(args: argparse.Namespace, contents: dict[str, Any], status_file: StatusFile, stop: _StopSignal) -> int:
    from ...model.parameters import ParameterError
    from .backends import LaunchRequest, choose_backend

    if stop.received:  # during those imports
        return _stopped(status_file, stop, "while loading Dask")
    try:
        cluster, raw = site_settings(args.cluster, contents.get("parameters"), os.environ)
        params = _parameters(raw, cluster)
        timeout = _timeout(args, params)
        # On Kubernetes the operator applies it (spec.timeout): the launcher's --timeout must reach the spec.
        params = params.model_copy(update={"timeout": timeout})
    except ValueError as exc:  # ParameterError is a ValueError
        return _fail(status_file, str(exc), EXIT_BAD_INPUT)
    if cluster != args.cluster:
        log.info("cluster %s from %s instead of the launcher's %s", cluster, CLUSTER_VARIABLE, args.cluster)
    try:
        target = resolve(cluster)
        backend = choose_backend(target)
    except (ClusterStringError, ValueError) as exc:
        return _fail(status_file, f"cluster: {exc}", EXIT_BAD_INPUT)
    # After the backend imports: importing dask_jobqueue replaces the SIGINT handler.
    stop.install()
    if stop.received:
        return _stopped(status_file, stop, "while loading the backend")

    try:
        check_explicit_port("--scheduler-port", args.scheduler_port)
        check_explicit_port("--dashboard-port", args.dashboard_port)
        range_start, range_end = args.port_range
        check_port_range(range_start, range_end, needed=2 - bool(args.scheduler_port) - bool(args.dashboard_port))
        address = bind_address(args.host)
        scheduler_port, dashboard_port = _choose_ports(args, address)
    except PortError as exc:
        return _fail(status_file, str(exc), EXIT_BAD_INPUT)

    log_path = contents.get("log")
    handle: ClusterHandle | None = None
    running_written = False
    try:
        for attempt in range(1, LAUNCH_ATTEMPTS + 1):
            request = LaunchRequest(
                params=params, host=args.host, scheduler_port=scheduler_port, dashboard_port=dashboard_port,
                # Batch jobs write their output next to the launcher's log, as the original did.
                log_directory=str(Path(log_path).parent) if isinstance(log_path, str) else None,
                status_path=str(status_file.path),
                stop=stop.event,
            )
            log.info("starting %s backend for %s on ports %d/%d",
                     backend.name, cluster, scheduler_port, dashboard_port)
            try:
                handle = backend.start(target, request)
            except Exception as exc:
                if stop.received or not address_in_use(exc) or attempt == LAUNCH_ATTEMPTS:
                    raise
                handle = None
            else:
                if stop.received or not handle.ports_taken():
                    break
                handle.close()
                handle = None
            log.warning("ports %d/%d were taken by another process while starting (attempt %d of %d); "
                        "trying other ports", scheduler_port, dashboard_port, attempt, LAUNCH_ATTEMPTS)
            # Ports another process now holds fail the probe: the range itself says whether any are left.
            scheduler_port, dashboard_port = _choose_ports(args, address)
        if handle is None:
            start, end = args.port_range
            raise PortError(f"--port-range {start} {end}: ports kept being taken by other processes between "
                            f"choosing and binding them ({LAUNCH_ATTEMPTS} attempts); another wrapper is probably "
                            "using the same range: give each wrapper its own, or a wider, --port-range")
        if stop.received:
            _close(handle)
            return _stopped(status_file, stop, f"while the {backend.name} backend was starting")
        handle.inject_runtime()
        running = handle.running_status()
        status_file.write_status(running)
        running_written = True
        description = handle.describe()
        if description is not None:
            log.info("job script:\n%s", description)
        log.info("running: scheduler %s, dashboard %s", running.scheduler_address, running.dashboard_url)
        reason = None if stop.event.is_set() else handle.supervise(stop.event, timeout)
        reason = reason or f"signal {stop.received}"
    except (ParameterError, PortError) as exc:  # a backend found a parameter it cannot use; ports raced away
        _close(handle)
        return _fail(status_file, str(exc), EXIT_BAD_INPUT)
    except StatusFileError as exc:  # the status file became unwritable or was replaced
        _close(handle)
        return _fail(status_file, str(exc), EXIT_FAILED)
    except Exception as exc:  # startup or supervision failed: say why in the file, then clean up
        if stop.received and not running_written:  # a start the signal cut short: no traceback
            log.info("start interrupted by %s: %s", stop.received, exc)
            _close(handle)
            return _stopped(status_file, stop, f"while the {backend.name} backend was starting")
        log.exception("cluster failed")
        code = _fail(status_file, f"{type(exc).__name__}: {exc}", EXIT_FAILED)
        _close(handle)
        return code
    log.info("shutting down: %s", reason)
    _close(handle)
    if status_file.delete():
        log.info("deleted status file %s", status_file.path)
    else:
        log.info("left status file %s alone: it is no longer this wrapper's (rewritten by the launcher, "
                 "replaced or removed)", status_file.path)
    return EXIT_OK


def _close(handle: ClusterHandle | None) -> None:
    if handle is not None:
        handle.close()


def run() -> None:
    """Console-script entry point: the stop signals are caught before anything else happens."""
    stop = _StopSignal()
    sys.exit(main(stop=stop))
