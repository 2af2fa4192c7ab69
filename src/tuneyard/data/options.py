"""Where a verb's data comes from, as one options model shared by finetune, eval and compress.

A named task (``--task sst2``) knows its own columns; a local folder (``--data DIR``)
is read with the column names given here, as the task type's data (default
``sequence_classification``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tuneyard.config import StrictModel

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData


class ColumnOptions(StrictModel):
    """How to read a local data folder's columns, and which task type its rows are for."""

    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    task_type: str | None = Field(
        default=None, description="Task type of a --data folder (default: sequence_classification)."
    )

    def column_fields(self) -> dict[str, Any]:
        """These options alone, from any options model built on them (compress, eval-grid ...)."""
        return self.model_dump(include=set(ColumnOptions.model_fields))


class DataOptions(ColumnOptions):
    """A named task or a local data folder (at most one of them)."""

    task: str | None = None
    data: str | None = None

    def dataset_name(self) -> str | None:
        """How the yard names the dataset: the task name, else the data folder's name."""
        from tuneyard.data.loading import dataset_name

        return dataset_name(self.task, self.data)

    def load(self, seed: int = 42, validation_fraction: float = 0.1, require_labels: bool = True) -> TaskData:
        """The task's or folder's splits (see :func:`tuneyard.data.loading.load_task_data`)."""
        from tuneyard.data.loading import load_task_data

        return load_task_data(
            task=self.task,
            data_dir=self.data,
            text_column=self.text_column,
            text_pair_column=self.text_pair_column,
            label_column=self.label_column,
            seed=seed,
            validation_fraction=validation_fraction,
            require_labels=require_labels,
            task_type=self.task_type,
        )
