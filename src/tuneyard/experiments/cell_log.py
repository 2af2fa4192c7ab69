"""``finetune_logs/{cell}.log``: what one cell's run said, wherever it ran.

A Ray worker's output does not reach the driver (``log_to_driver`` is off: every worker's
lines interleaved on one terminal help no one) and cells side by side in local processes
would interleave theirs, so each cell keeps its own log in the experiment's
``finetune_logs/``: a header (the cell's resolved options, host, start or resume), the
warnings and log records of tuneyard, transformers, peft and torch while it runs, and its
outcome (state and seconds, or the error with its traceback). A resumed cell appends to
the log of its first attempt, so the whole story of a run is in one file. The steps'
losses and scores are in the run's own ``training_log.csv``.

Each record is appended through the yard's storage rather than by a file handler: on a
yard in object storage the log is uploaded as it grows, so a cell resumed on another
machine appends to the lines of the one that was killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneyard.yard.storage import Storage

LOGS = "finetune_logs"
LOGGERS = ("tuneyard", "transformers", "peft", "torch", "py.warnings")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StorageLogHandler(logging.Handler):
    """Appends each formatted record to a yard file through the yard's storage."""

    def __init__(self, storage: Storage, path: Path) -> None:
        super().__init__()
        self.storage = storage
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.storage.append_text(self.path, self.format(record) + "\n")
        except Exception:
            self.handleError(record)  # logging's own policy: a failed log line never stops the run


@contextlib.contextmanager
def cell_log(storage: Storage, path: Path, options: dict[str, Any], resume: bool) -> Iterator[logging.Logger]:
    """Log to ``path`` while the block runs; yields the logger for the outcome."""
    handler = StorageLogHandler(storage, path)  # appends: a resumed cell adds to its log
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    log = logging.getLogger("tuneyard.grid.cell")
    log.setLevel(logging.INFO)
    logging.captureWarnings(True)
    try:
        log.info("%s on %s", "resuming" if resume else "starting", socket.gethostname())
        log.info("options: %s", json.dumps(options, sort_keys=True))
        yield log
    finally:
        logging.captureWarnings(False)
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
