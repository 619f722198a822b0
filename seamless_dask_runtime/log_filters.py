"""What the wrapper's log leaves out: Dask's line for each out-of-band call (``Client.run``,
``run_on_scheduler``).

seamless-dask polls the scheduler for cancellations several times a second per running
transformation (``run_on_scheduler(_scheduler_consume_cancel)``), and the wrapper's idle monitor
once a second: at INFO, Dask logs each of them ("Run out-of-band function ..."), most lines of
the log of a normal run. The original wrapper dropped them as well. The scheduler logs them
through ``distributed.worker`` (the function that runs them is shared with workers), and so do
workers, whose stderr is the same log for local workers: the filter goes on that logger in both.
"""

from __future__ import annotations

import logging

_OUT_OF_BAND = "Run out-of-band function"


class DropOutOfBandCalls(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_OUT_OF_BAND))


def drop_out_of_band_calls() -> None:
    """Install the filter on Dask's logger in this process (once)."""
    logger = logging.getLogger("distributed.worker")
    if not any(isinstance(existing, DropOutOfBandCalls) for existing in logger.filters):
        logger.addFilter(DropOutOfBandCalls())
