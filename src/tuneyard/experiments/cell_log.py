"""``finetune_logs/{cell}.log``: what one cell's run said, wherever it ran.

A Ray worker's output does not reach the driver (``log_to_driver`` is off: every worker's
lines interleaved on one terminal help no one) and cells side by side in local processes
would interleave theirs, so each cell keeps its own log in the experiment's
``finetune_logs/``: a header (the cell's resolved options, host, start or resume), the
warnings and log records of tuneyard, transformers, peft and torch while it runs, and its
outcome (state and seconds, or the error with its traceback). A resumed cell appends to
the log of its first attempt, so the whole story of a run is in one file. The steps'
losses and scores are in the run's own ``training_log.csv``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOGS = "finetune_logs"
LOGGERS = ("tuneyard", "transformers", "peft", "torch", "py.warnings")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def cell_log(path: Path, options: dict[str, Any], resume: bool) -> Iterator[logging.Logger]:
    """Log to ``path`` while the block runs; yields the logger for the outcome."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")  # appends: a resumed cell adds to its log
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
