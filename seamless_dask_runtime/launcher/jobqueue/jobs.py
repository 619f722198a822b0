"""Seamless job classes: dask-jobqueue jobs whose scripts follow seed 002.

Each batch system's class only says how a job names itself and how it learns
its CPU count; the mixin replaces dask-jobqueue's worker command with the
runtime's own (:func:`seamless_dask_runtime.model.commands.worker_arguments`) and
puts the worker environment (:func:`worker_environment`) in the prologue.
"""

from __future__ import annotations

from typing import Any

from dask_jobqueue.htcondor import HTCondorJob
from dask_jobqueue.lsf import LSFJob
from dask_jobqueue.oar import OARJob
from dask_jobqueue.pbs import PBSJob
from dask_jobqueue.sge import SGEJob
from dask_jobqueue.slurm import SLURMJob


def _pair_flags(args: list[str]) -> list[str]:
    """``["--a", "1", "--b"]`` → ``["--a 1", "--b"]``: one flag and its value per line."""
    lines: list[str] = []
    for arg in args:
        if lines and not arg.startswith("--") and " " not in lines[-1]:
            lines[-1] = f"{lines[-1]} {arg}"
        else:
            lines.append(arg)
    return lines


class SeamlessJobMixin:
    """Replaces the worker command; keeps dask-jobqueue's submit/cancel machinery.

    Extra keyword ``seamless_worker_args`` carries the ``dask worker`` flags
    computed by the runtime (without ``--name``: each system names its own).
    """

    job_id_variable: str = "$JOB_ID"
    multiline_command: bool = True

    def __init__(self, *args: Any, seamless_worker_args: list[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        flags = list(seamless_worker_args or [])
        flags += ["--name", self.worker_name]
        flags += self._transport_flags(kwargs)
        self._command_template = self._compose(flags)

    @property
    def worker_name(self) -> str:
        """Scheduler-visible name; the wrapper maps it back to this job to scale down."""
        return f"worker-{self.job_id_variable}"

    @staticmethod
    def _transport_flags(kwargs: dict[str, Any]) -> list[str]:
        flags: list[str] = []
        if kwargs.get("interface"):
            flags += ["--interface", kwargs["interface"]]
        if kwargs.get("protocol"):
            flags += ["--protocol", kwargs["protocol"]]
        security = kwargs.get("security")
        if security:
            for key, value in security.get_tls_config_for_role("worker").items():
                if key != "ciphers" and value:
                    flags += ["--tls-" + key.replace("_", "-"), value]
        return flags

    def _compose(self, flags: list[str]) -> str:
        scheduler = str(self.scheduler)  # type: ignore[attr-defined]
        if self.multiline_command:
            return " \\\n".join(["dask worker", *_pair_flags(flags), scheduler])
        return " ".join(["dask", "worker", *flags, scheduler])


class SeamlessSLURMJob(SeamlessJobMixin, SLURMJob):
    """SLURM job with seed 002's long-form ``#SBATCH`` directives, in its order."""

    job_id_variable = "$SLURM_JOB_ID"
    _LONG_FORMS = (
        ("#SBATCH -J ", "#SBATCH --job-name="),
        ("#SBATCH -n ", "#SBATCH --ntasks="),
        ("#SBATCH -t ", "#SBATCH --time="),
        ("#SBATCH -p ", "#SBATCH --partition="),
        ("#SBATCH -A ", "#SBATCH --account="),
        ("#SBATCH -e ", "#SBATCH --error="),
        ("#SBATCH -o ", "#SBATCH --output="),
    )
    _ORDER = (
        "--job-name", "--error", "--output", "--ntasks", "--cpus-per-task",
        "--mem", "--time", "--partition", "--account",
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        header: str = self.job_header or ""  # dask-jobqueue always renders one for Slurm
        self.job_header = "\n".join(self._seed_header(header.splitlines()))

    @classmethod
    def _seed_header(cls, lines: list[str]) -> list[str]:
        converted = []
        for line in lines:
            for short, long in cls._LONG_FORMS:
                if line.startswith(short):
                    line = long + line[len(short):]
                    break
            converted.append(line)

        def rank(line: str) -> int:
            option = line.removeprefix("#SBATCH ").split("=", 1)[0]
            return cls._ORDER.index(option) if option in cls._ORDER else len(cls._ORDER)

        # Extra directives keep their given order after the standard ones (sort is stable).
        return sorted(converted, key=rank)


class SeamlessPBSJob(SeamlessJobMixin, PBSJob):
    job_id_variable = "$PBS_JOBID"


class SeamlessSGEJob(SeamlessJobMixin, SGEJob):
    job_id_variable = "$JOB_ID"


class SeamlessLSFJob(SeamlessJobMixin, LSFJob):
    job_id_variable = "$LSB_JOBID"


class SeamlessOARJob(SeamlessJobMixin, OARJob):
    job_id_variable = "$OAR_JOB_ID"


class SeamlessHTCondorJob(SeamlessJobMixin, HTCondorJob):
    """HTCondor runs the command through ``sh -c``: one line, prologue joined by ``;``."""

    job_id_variable = "$(ClusterId)"
    multiline_command = False

    def _compose(self, flags: list[str]) -> str:
        command = super()._compose(flags)
        prologue = [line for line in (self._job_script_prologue or []) if line]
        return "; ".join([*prologue, command])


JOB_CLASSES: dict[str, type[SeamlessJobMixin]] = {
    "slurm": SeamlessSLURMJob,
    "pbs": SeamlessPBSJob,
    "sge": SeamlessSGEJob,
    "lsf": SeamlessLSFJob,
    "oar": SeamlessOARJob,
    "htcondor": SeamlessHTCondorJob,
}
