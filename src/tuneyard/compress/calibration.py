"""Calibration batches from a task's train split.

Samples are drawn seeded from the **train** split only, so the split a model is
evaluated on never shapes its compression. Turning the rows into model inputs is the
task type's part (:meth:`tuneyard.task_types.base.TaskType.calibration_batches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.compress.statistics import Batch
from tuneyard.errors import CompressionError, DataError

if TYPE_CHECKING:
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec


@dataclass
class CalibrationSet:
    """Tokenised calibration batches and where they came from."""

    batches: list[Batch]
    source: str
    samples: int
    labelled: bool
    spec: TaskSpec


def quiet_datasets_bars() -> None:
    """datasets' "Generating train split" bars would interleave with tuneyard's own."""
    import datasets

    datasets.disable_progress_bars()


def load_calibration(
    tokenizer: Any,
    task: str | None,
    data_dir: str | Path | None,
    samples: int,
    batch_size: int,
    max_length: int,
    seed: int,
    columns: ColumnOptions | None = None,
) -> CalibrationSet:
    """``samples`` seeded rows of the train split of ``task`` or ``data_dir``, as model inputs in batches."""
    from tuneyard.data.options import DataOptions
    from tuneyard.task_types import get_task_type

    quiet_datasets_bars()
    if samples < 1:
        raise CompressionError(f"--calib-samples {samples} is below 1.", "Use e.g. --calib-samples 256.")
    # The data's own seed carves a validation split off train when a folder has none;
    # keeping its default carves the same split evaluation does, so calibration rows can
    # never be evaluation rows. ``seed`` only picks the calibration sample.
    source = DataOptions(
        task=task,
        data=None if data_dir is None else str(data_dir),
        **(columns.column_fields() if columns is not None else {}),
    )
    data = source.load(require_labels=False)
    if "train" not in data.splits:
        raise DataError(
            f"{data.source} has no train split to draw calibration samples from.",
            "Calibration never uses the evaluation split; add a train file (train.csv, ...).",
        )
    train = data.splits["train"]
    chosen = train.shuffle(seed=seed).select(range(min(samples, len(train))))
    batches = get_task_type(data.spec.task_type).calibration_batches(
        tokenizer, chosen, data.spec, batch_size, max_length
    )
    return CalibrationSet(
        batches=batches,
        source=data.source,
        samples=len(chosen),
        labelled=all("labels" in batch for batch in batches) and bool(batches),
        spec=data.spec,
    )
