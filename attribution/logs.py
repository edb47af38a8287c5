"""The project's one log format: what the stack, the keeper and the job client report, with the
time from the formatter. The CLI's own answers (status, errors) are printed, not logged."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%H:%M:%S"


def configure(level: int = logging.INFO) -> None:
    """Our loggers at `level`, to stdout (the keeper's log file is its stdout); others' warnings."""
    logging.basicConfig(
        format=FORMAT, datefmt=DATE_FORMAT, level=logging.WARNING, stream=sys.stdout, force=True
    )
    logging.getLogger("attribution").setLevel(level)
    logging.getLogger("datagen").setLevel(level)
