"""Helpers for tests that need a real (single-node) Slurm cluster.

The cluster itself is managed by ``scripts/slurm/up.sh`` / ``down.sh`` (Debian
Slurm 22.05 + munge, one node with 16 advertised CPUs in partition ``debug``).

Policy:

* If ``sinfo`` already reports a usable node, that cluster is used as is
  (``up.sh`` is *not* run, so a foreign ``/etc/slurm`` is never touched) and
  left running at the end.
* Otherwise, if ``SDO_SLURM=1`` is set, :func:`ensure_slurm` runs ``up.sh``
  (needs root, installs packages via apt if missing) and the session stops
  munged, slurmctld and slurmd again at its end (``down.sh``), unless
  ``SDO_SLURM_KEEP=1``: then they stay up and the next run reuses them
  (saves the ~6 s start; stop them with ``scripts/slurm/down.sh``).
* Otherwise Slurm tests are skipped with a reason.

Typical session fixture::

    @pytest.fixture(scope="session")
    def slurm() -> Iterator[None]:
        started = require_slurm()
        yield
        if started and not keep_running():
            stop_slurm()

or, without the pytest convenience wrapper::

    ok, reason = slurm_available()
    if not ok:
        pytest.skip(reason)
    ensure_slurm(default_state_dir())
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "DOWN_SCRIPT",
    "ENV_VAR",
    "PARTITION",
    "UP_SCRIPT",
    "SlurmUnavailableError",
    "default_state_dir",
    "ensure_slurm",
    "keep_running",
    "require_slurm",
    "sinfo_ready",
    "slurm_available",
    "slurm_daemons",
    "squeue_job_ids",
    "stop_slurm",
]

ENV_VAR = "SDO_SLURM"
"""Set to ``1`` to let tests start the local Slurm via ``up.sh``."""

KEEP_ENV_VAR = "SDO_SLURM_KEEP"
"""Set to ``1`` to leave a Slurm the tests started running after the session, for the next run."""

STATE_DIR_ENV_VAR = "SDO_SLURM_STATE_DIR"
"""Optional override of the state/spool/log directory used by ``up.sh``."""

PARTITION = "debug"
"""Name of the (default) partition configured by ``up.sh``."""

_REPO_ROOT = Path(__file__).resolve().parents[2]
UP_SCRIPT = _REPO_ROOT / "scripts" / "slurm" / "up.sh"
DOWN_SCRIPT = _REPO_ROOT / "scripts" / "slurm" / "down.sh"

_READY_STATES = frozenset({"idle", "mix", "mixed", "alloc", "allocated", "comp", "completing"})
_UP_TIMEOUT_S = 600.0  # generous: a first run may have to apt-get install


class SlurmUnavailableError(RuntimeError):
    """Raised by :func:`ensure_slurm` when Slurm could not be brought up."""


def default_state_dir() -> Path:
    """Return the state directory for ``up.sh`` (``$SDO_SLURM_STATE_DIR`` or /tmp/sdo-slurm)."""
    return Path(os.environ.get(STATE_DIR_ENV_VAR, "/tmp/sdo-slurm"))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _enabled() -> bool:
    return _flag(ENV_VAR)


def keep_running() -> bool:
    """Whether a Slurm this session started stays up for the next run (``SDO_SLURM_KEEP=1``)."""
    return _flag(KEEP_ENV_VAR)


def sinfo_ready(timeout: float = 10.0) -> tuple[bool, str]:
    """Check whether ``sinfo`` works and reports at least one usable node.

    Returns ``(True, "")`` or ``(False, reason)``.
    """
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return False, "sinfo/scontrol not found on PATH"
    # Without a config file the Slurm clients retry for 60 s; fail fast instead.
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    if not conf.is_file():
        return False, f"no Slurm config at {conf}"
    # `scontrol ping` fails in milliseconds when slurmctld is down; sinfo takes ~10 s.
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"scontrol ping timed out after {timeout:g}s"
    if " is UP" not in ping.stdout:
        first = (ping.stdout or ping.stderr).strip().splitlines()
        return False, f"slurmctld not reachable ({first[0] if first else f'exit {ping.returncode}'})"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%t"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"sinfo timed out after {timeout:g}s"
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        return False, f"sinfo failed: {msg[-1] if msg else f'exit {proc.returncode}'}"
    states = {s.strip().rstrip("*~#!%$@^-") for s in proc.stdout.split()}
    if states & _READY_STATES:
        return True, ""
    return False, f"sinfo shows no usable node (states: {sorted(states) or 'none'})"


def slurm_available() -> tuple[bool, str]:
    """Tell whether Slurm tests can run here, without changing anything.

    True when ``sinfo`` already reports a usable node, or when ``SDO_SLURM=1``
    is set and ``up.sh`` can plausibly bring a cluster up (root, script
    present, Slurm or apt-get installed). Otherwise ``(False, reason)``.
    """
    ready, why_not = sinfo_ready()
    if ready:
        return True, ""
    if not _enabled():
        return False, f"no running Slurm ({why_not}); set {ENV_VAR}=1 to start a local one"
    if not UP_SCRIPT.is_file():
        return False, f"{ENV_VAR}=1 but {UP_SCRIPT} is missing"
    if os.geteuid() != 0:
        return False, f"{ENV_VAR}=1 but {UP_SCRIPT.name} needs root (running as uid {os.geteuid()})"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return False, f"{ENV_VAR}=1 but Slurm is not installed and apt-get is unavailable"
    return True, ""


def ensure_slurm(state_dir: str | os.PathLike[str] | None = None) -> bool:
    """Make sure a usable Slurm cluster is running; return whether this call started it.

    A cluster that already answers is used as is. Otherwise, with
    ``SDO_SLURM=1``, ``up.sh STATE_DIR`` starts one.

    Raises:
        SlurmUnavailableError: with ``up.sh``'s output (incl. daemon log
            tails) when the cluster cannot be brought up.
    """
    ready, why_not = sinfo_ready()
    if ready:
        return False
    if not _enabled():
        raise SlurmUnavailableError(f"no running Slurm ({why_not}) and {ENV_VAR}=1 not set")
    target = Path(state_dir) if state_dir is not None else default_state_dir()
    try:
        proc = subprocess.run(
            ["bash", str(UP_SCRIPT), str(target)],
            capture_output=True,
            text=True,
            timeout=_UP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmUnavailableError(f"{UP_SCRIPT} timed out after {_UP_TIMEOUT_S:g}s") from exc
    if proc.returncode != 0:
        raise SlurmUnavailableError(
            f"{UP_SCRIPT} {target} failed (exit {proc.returncode}):\n{proc.stderr}{proc.stdout}"
        )
    ready, why_not = sinfo_ready()
    if not ready:
        raise SlurmUnavailableError(f"{UP_SCRIPT} succeeded but {why_not}")
    return True


def stop_slurm(state_dir: str | os.PathLike[str] | None = None) -> None:
    """Stop munged, slurmctld and slurmd as ``down.sh`` does (cancels jobs first)."""
    target = Path(state_dir) if state_dir is not None else default_state_dir()
    subprocess.run(["bash", str(DOWN_SCRIPT), str(target)], capture_output=True, timeout=120, check=False)


def require_slurm(state_dir: str | os.PathLike[str] | None = None) -> bool:
    """Pytest helper: skip if Slurm is unavailable, else :func:`ensure_slurm` (returns whether it started it).

    A failure of ``up.sh`` after ``SDO_SLURM=1`` was requested is an error,
    not a skip, so a broken setup is not silently ignored.
    """
    import pytest  # local import: keep this module importable without pytest

    ok, reason = slurm_available()
    if not ok:
        pytest.skip(reason)
    return ensure_slurm(state_dir)


def slurm_daemons() -> set[str]:
    """Which of munged, slurmctld, slurmd run on this machine now (zombies excluded)."""
    found: set[str] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            state = fields[1].split()[0]
        except (OSError, IndexError):
            continue
        if name in ("munged", "slurmctld", "slurmd") and state not in ("Z", "X"):
            found.add(name)
    return found


def squeue_job_ids(user: str | None = None) -> set[str]:
    """Return the ids of jobs currently known to ``squeue`` (optionally for one user)."""
    cmd = ["squeue", "-h", "-o", "%i"]
    if user is not None:
        cmd += ["-u", user]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}
