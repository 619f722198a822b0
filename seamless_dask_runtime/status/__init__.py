"""One status model, two sinks: the launcher's JSON status file and the resource's ``.status``."""

from .model import ClusterStatus, Phase
from .statusfile import StatusFile, StatusFileError, StatusFileLocked, StatusFileUnsafe

__all__ = ["ClusterStatus", "Phase", "StatusFile", "StatusFileError", "StatusFileLocked", "StatusFileUnsafe"]
