"""dask-jobqueue integration: Seamless job classes and the cluster arguments.

``jobs`` holds one mixin and a small subclass per batch system (the
dask-jobqueue ``Job`` template design); ``arguments`` turns the cluster model
into the keyword arguments of a ``JobQueueCluster``.
"""

from .arguments import BATCH_SYSTEMS, jobqueue_arguments, render_job_script, system_of
from .jobs import JOB_CLASSES

__all__ = ["BATCH_SYSTEMS", "JOB_CLASSES", "jobqueue_arguments", "render_job_script", "system_of"]
