"""Where a verb's data comes from, as one options model shared by finetune, eval and compress.

A named task (``--task sst2``) knows its own columns; a local folder (``--data DIR``)
is read with the column names given here, as its task type's data
(:func:`tuneyard.task_types.data_loading.load_data`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from pydantic import Field

from tuneyard.config import StrictModel

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard


class ColumnOptions(StrictModel):
    """How to read a local data folder's columns, and which task type its rows are for."""

    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    task_type: str | None = Field(
        default=None, description="Task type of a --data folder (default: recognised from its columns)."
    )
    # causal_lm: which columns hold the conversation (see tuneyard.task_types.causal_lm.data)
    messages_column: str = "messages"
    prompt_column: str | None = None
    response_column: str | None = None
    system_column: str = "system"
    reference_column: str = "reference"
    system_prompt: str | None = None
    chat_template: str | None = Field(
        default=None, description="A Jinja chat template file, for a model whose tokenizer has none."
    )

    def chat_template_text(self) -> str | None:
        """The ``--chat-template`` file's text; a missing file is a user error."""
        from pathlib import Path

        from tuneyard.errors import DataError

        if self.chat_template is None:
            return None
        path = Path(self.chat_template).expanduser()
        if not path.is_file():
            raise DataError(f"chat template file {path} does not exist.", "Give a Jinja template file.")
        return path.read_text()

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

    def in_yard(self, yard: Yard) -> Self:
        """These options with ``--data NAME`` pointing at the yard's dataset of that name (``prepare``).

        A ``--data`` value that is an existing folder stays as it is.
        """
        from tuneyard.data.prepare import dataset_folder

        if self.data is None:
            return self
        return self.model_copy(update={"data": str(dataset_folder(self.data, yard))})
