"""Calibration batches as compression reads them: model inputs, and where they came from.

Drawn by ``compress`` (:mod:`tuneyard.compress.calibration`), made into model inputs
by a task type, and read by a task type again when it fits a head on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneyard.data.tasks import TaskSpec

# One batch of model inputs (``input_ids``, ``attention_mask``, ``labels`` ...): tensors by name.
Batch = dict[str, Any]


@dataclass
class CalibrationSet:
    """Tokenised calibration batches and where they came from."""

    batches: list[Batch]
    source: str
    samples: int
    labelled: bool
    spec: TaskSpec
