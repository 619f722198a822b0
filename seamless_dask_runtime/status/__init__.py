"""One status model, two sinks: the launcher's JSON status file and the resource's ``.status``."""

from .model import ClusterStatus, Phase
from .statusfile import StatusFile, StatusFileError, StatusFileLocked

__all__ = ["ClusterStatus", "Phase", "StatusFile", "StatusFileError", "StatusFileLocked"]
