"""A user's home for the real Seamless stack on this machine, as ``seamless.config.init()`` expects it.

``~/.seamless/clusters.yaml`` defines one local cluster with a hashserver, a
database and a daskserver frontend; the project directory holds
``seamless.yaml``. remote-http-launcher insists on a conda environment name:
a stub ``conda.sh`` whose ``conda activate`` puts a venv first on PATH stands
in for conda, and ``conda-setup.json`` (what ``rhl-cache-conda`` would write)
points at it. The daskserver command is ``seamless-dask-wrapper``, so the
venv given here decides whose wrapper runs: ours or the original.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

CLUSTER, PROJECT, CONDA_ENV = "seamlesstest", "proj", "seamless-venv"
STACK_MODULES = ("seamless_transformer", "seamless_remote", "seamless_config", "seamless_dask",
                 "remote_http_launcher", "aiofiles")
STACK_SCRIPTS = ("hashserver", "seamless-database", "seamless-run")


def missing_stack(venv_bin: Path) -> list[str]:
    """Modules and services of the real stack missing here (empty: the stack is installed)."""
    missing = [name for name in STACK_MODULES if importlib.util.find_spec(name) is None]
    return missing + [name for name in STACK_SCRIPTS if not (venv_bin / name).exists()]


@dataclass(frozen=True)
class SeamlessHome:
    home: Path
    project: Path
    venv_bin: Path

    def environment(self) -> dict[str, str]:
        """Environment of a user process in this home (its services come from ``venv_bin``)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("SEAMLESS_CACHE", "SEAMLESS_REMOTE_CLIENTS", "REMOTE_HTTP_LAUNCHER_DIR",
                            "RHL_TOOLS_YAML", "SEAMLESS_DASK_SCHEDULER")}
        env["HOME"] = str(self.home)
        env["PATH"] = f"{self.venv_bin}{os.pathsep}{env.get('PATH', '')}"
        return env

    @property
    def launcher_state(self) -> Path:
        return self.home / ".remote-http-launcher"


def _clusters(root: Path, *, cores: int, maximum_jobs: int, slurm_partition: str | None, services_host: str,
              memory: str, interactive: bool) -> dict:
    queue_extra: dict = {"interactive": True} if interactive else {}
    if slurm_partition is not None:  # workers are Slurm jobs on this machine
        queue_extra.update({"partition": slurm_partition, "tmpdir": str(root / "tmp")})
    return {
        "local_cluster": CLUSTER,  # the launcher runs services here, without SSH
        CLUSTER: {
            "type": "local" if slurm_partition is None else "slurm",
            "workers": cores,
            "frontends": [{
                "hostname": "localhost",
                "hashserver": {"bufferdir": str(root / "buffers"), "conda": CONDA_ENV,
                               "network_interface": services_host, "port_start": 62000, "port_end": 62999},
                "database": {"database_dir": str(root / "database"), "conda": CONDA_ENV,
                             "network_interface": services_host, "port_start": 62000, "port_end": 62999},
                "daskserver": {"network_interface": "127.0.0.1", "port_start": 62000, "port_end": 62999},
            }],
            "queues": {"default": {
                "conda": CONDA_ENV, "walltime": "01:00:00", "cores": cores, "memory": memory,
                "maximum_jobs": maximum_jobs, "unknown_task_duration": "1m", "target_duration": "10m",
                **queue_extra,
            }},
            "default_queue": "default",
        },
    }


def make_home(root: Path, venv_bin: Path, *, cores: int = 2, maximum_jobs: int = 1,
              slurm_partition: str | None = None, services_host: str = "127.0.0.1", memory: str = "2GB",
              interactive: bool = False) -> SeamlessHome:
    """Write the user's files under ``root``; services run from ``venv_bin``.

    ``slurm_partition``: the daskserver is ``dask_jobqueue::SLURMCluster`` on that partition.
    ``services_host``: the address the hashserver and the database listen on, and the one
    the client hands to the Dask workers; workers elsewhere (pods) need one they can reach.
    """
    home = root / "home"
    project = root / "project"
    for directory in (home / ".seamless", project, root / "buffers", root / "database", root / "tmp"):
        directory.mkdir(parents=True, exist_ok=True)
    (home / ".seamless" / "clusters.yaml").write_text(yaml.safe_dump(
        _clusters(root, cores=cores, maximum_jobs=maximum_jobs, slurm_partition=slurm_partition,
                  services_host=services_host, memory=memory, interactive=interactive)))
    (project / "seamless.yaml").write_text(yaml.safe_dump([
        {"cluster": CLUSTER}, {"project": PROJECT}, {"execution": "remote"}, {"remote": "daskserver"},
    ]))
    conda_base = root / "conda"
    (conda_base / "envs" / CONDA_ENV).mkdir(parents=True, exist_ok=True)
    conda_sh = conda_base / "etc" / "profile.d" / "conda.sh"
    conda_sh.parent.mkdir(parents=True, exist_ok=True)
    conda_sh.write_text(
        "# stub: `conda activate ENV` puts the chosen venv first on PATH\n"
        "conda() {\n"
        f'  case "$1" in activate) export PATH={venv_bin}:"$PATH";;\n'
        f'    info) echo {conda_base};;\n'
        "  esac\n"
        "}\n")
    state = home / ".remote-http-launcher"
    state.mkdir(parents=True, exist_ok=True)
    (state / "conda-setup.json").write_text(json.dumps({
        "conda_source": str(conda_sh), "conda_base": str(conda_base),
        "envs": [str(conda_base), str(conda_base / "envs" / CONDA_ENV)],
    }))
    return SeamlessHome(home=home, project=project, venv_bin=venv_bin)


def service_pids(home: SeamlessHome) -> dict[str, int]:
    """Running services by key prefix (hashserver, database, daskserver) from the launcher's state."""
    pids: dict[str, int] = {}
    for status in (home.launcher_state / "server").glob("*.json"):
        try:
            contents = json.loads(status.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(contents.get("pid"), int):
            pids[status.stem.split("-")[0]] = contents["pid"]
    return pids


def stop_services(home: SeamlessHome) -> None:
    """Stop every service the launcher started in this home (SIGHUP, as seamless-service-stop does)."""
    import signal
    import time

    pids = service_pids(home)
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 20
    for pid in pids.values():
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)


def wrapper_script(home: SeamlessHome) -> str | None:
    """Path of the ``seamless-dask-wrapper`` script the running daskserver executes."""
    pid = service_pids(home).get("daskserver")
    if pid is None:
        return None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    for arg in argv[:3]:
        if arg.decode().endswith("seamless-dask-wrapper"):
            return shutil.which(arg.decode()) or arg.decode()
    return None


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    return children


def _pool_under(worker_parents: list[int]) -> dict[int, bool]:
    """Seamless pool processes two levels below ``worker_parents`` (parent -> Dask worker -> pool), each
    with whether it started with ``SEAMLESS_REMOTE_CLIENTS`` in its environment."""
    children = _children()
    pool: dict[int, bool] = {}
    for parent in worker_parents:
        for worker in children.get(parent, []):
            for pid in children.get(worker, []):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"spawn_main" in cmdline:  # multiprocessing children, not its resource tracker
                    pool[pid] = any(item.startswith(b"SEAMLESS_REMOTE_CLIENTS=") for item in environ)
    return pool


def pool_processes(home: SeamlessHome) -> dict[int, bool]:
    """Seamless pool processes under the daskserver's local Dask workers (see :func:`_pool_under`)."""
    wrapper = service_pids(home).get("daskserver")
    return {} if wrapper is None else _pool_under([wrapper])


def job_pool_processes(job_ids: set[str]) -> dict[int, bool]:
    """Seamless pool processes under the ``dask worker`` of these batch jobs (see :func:`_pool_under`)."""
    nannies = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[1].endswith(b"/dask") and argv[2] == b"worker" and any(
                item in environ for item in (f"SLURM_JOB_ID={job}".encode() for job in job_ids)):
            nannies.append(int(proc.name))
    return _pool_under(nannies)


def job_logs(home: SeamlessHome) -> str:
    """What the wrapper's batch jobs wrote (their ``dask-worker-*.err`` beside the status file)."""
    return "".join(log.read_text(errors="replace")
                   for log in sorted((home.launcher_state / "server").glob("dask-worker-*.err")))


def service_log(home: SeamlessHome, service: str) -> str:
    """What a service wrote to the log the launcher gave it (its stdout and stderr), also after it
    stopped and deleted its status file (the log is the status file's ``.log`` beside it)."""
    for status in (home.launcher_state / "server").glob(f"{service}-*.json"):
        log = Path(json.loads(status.read_text())["log"])
        return log.read_text(errors="replace") if log.exists() else ""
    for log in (home.launcher_state / "server").glob(f"{service}-*.log"):
        return log.read_text(errors="replace")
    return ""


def status_file(home: SeamlessHome, service: str) -> Path | None:
    """The service's status file while it exists (its wrapper deletes it on a clean stop)."""
    return next((home.launcher_state / "server").glob(f"{service}-*.json"), None)


def wait_gone(pid: int, deadline: float) -> bool:
    """Wait until process ``pid`` has exited (or is a zombie) or ``deadline`` (monotonic) passed."""
    import time

    def alive() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive()
