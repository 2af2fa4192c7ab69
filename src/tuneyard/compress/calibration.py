"""Calibration batches from a task's train split, and held-out batches from its validation split.

Samples are drawn seeded from the **train** split only, so the split a model is
evaluated on never shapes its compression. Turning the rows into model inputs is the
task type's part (:meth:`tuneyard.task_types.base.TaskType.calibration_batches`): the
task type of the *model* being compressed, so a decoder reads a classification folder's
``text`` column as plain text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.calibration import Batch, CalibrationSet
from tuneyard.errors import CompressionError, DataError
from tuneyard.task_types.data_loading import load_data

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.task_types.base import TaskType


def quiet_datasets_bars() -> None:
    """datasets' "Generating train split" bars would interleave with tuneyard's own."""
    import datasets

    datasets.disable_progress_bars()


def load_rows(
    task: str | None, data_dir: str | Path | None, columns: ColumnOptions | None = None
) -> TaskData:
    """The task's or folder's splits, labels optional.

    The data's own seed carves a validation split off train when a folder has none;
    keeping its default carves the same split evaluation does, so calibration rows can
    never be evaluation rows.
    """
    from tuneyard.data.options import DataOptions

    quiet_datasets_bars()
    source = DataOptions(
        task=task,
        data=None if data_dir is None else str(data_dir),
        **(columns.column_fields() if columns is not None else {}),
    )
    return load_data(source, require_labels=False)


def draw_calibration(
    data: TaskData,
    task_type: TaskType,
    tokenizer: Any,
    samples: int,
    batch_size: int,
    max_length: int,
    seed: int,
) -> CalibrationSet:
    """``samples`` seeded rows of ``data``'s train split as ``task_type``'s model inputs, in batches."""
    if samples < 1:
        raise CompressionError(f"--calib-samples {samples} is below 1.", "Use e.g. --calib-samples 256.")
    if "train" not in data.splits:
        raise DataError(
            f"{data.source} has no train split to draw calibration samples from.",
            "Calibration never uses the evaluation split; add a train file (train.csv, ...).",
        )
    train = data.splits["train"]
    chosen = train.shuffle(seed=seed).select(range(min(samples, len(train))))
    batches = task_type.compression.calibration_batches(tokenizer, chosen, data.spec, batch_size, max_length)
    return CalibrationSet(
        batches=batches,
        source=data.source,
        samples=len(chosen),
        labelled=all("labels" in batch for batch in batches) and bool(batches),
        spec=data.spec,
    )


def held_out_batches(
    data: TaskData, task_type: TaskType, tokenizer: Any, samples: int, batch_size: int, max_length: int
) -> list[Batch]:
    """The first ``samples`` rows of the validation split, as the same kind of batches."""
    validation = data.splits.get("validation")
    if validation is None or samples < 1:
        return []
    rows = validation.select(range(min(samples, len(validation))))
    return task_type.compression.calibration_batches(tokenizer, rows, data.spec, batch_size, max_length)


def load_calibration(
    tokenizer: Any,
    task: str | None,
    data_dir: str | Path | None,
    samples: int,
    batch_size: int,
    max_length: int,
    seed: int,
    columns: ColumnOptions | None = None,
    task_type: TaskType | None = None,
) -> CalibrationSet:
    """Load ``task`` or ``data_dir`` and draw calibration batches (``task_type``: the data's own)."""
    from tuneyard.task_types import get_task_type

    data = load_rows(task, data_dir, columns)
    reader = task_type or get_task_type(data.spec.task_type)
    return draw_calibration(data, reader, tokenizer, samples, batch_size, max_length, seed)
