"""Where a verb's data comes from, as one options model shared by finetune, eval and compress.

A named task (``--task sst2``) knows its own columns; a local folder (``--data DIR``)
is read with the column names given here, as its task type's data
(:func:`tuneyard.task_types.data_loading.load_data`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import Field

from tuneyard.config import Cli, StrictModel

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard


# The --help panels of these fields on every verb that takes them.
DATA = Cli(panel="Data")
CHAT = Cli(panel="Chat data")


class ColumnOptions(StrictModel):
    """How to read a local data folder's columns, and which task type its rows are for."""

    text_column: Annotated[str, DATA] = Field(default="text", description="Text column of --data files.")
    text_pair_column: Annotated[str | None, DATA] = Field(
        default=None, description="Second text column (sentence pairs)."
    )
    label_column: Annotated[str, DATA] = Field(default="label", description="Label column of --data files.")
    audio_column: Annotated[str, DATA] = Field(
        default="audio",
        description="Audio column of --data CSV/JSONL/Parquet files: file paths (relative to the file, "
        "or absolute) or embedded audio.",
    )
    image_column: Annotated[str, DATA] = Field(
        default="image",
        description="Image column of --data CSV/JSONL/Parquet files (one image per row): file paths "
        "(relative to the file, or absolute) or embedded images. Rows with several hold an 'images' list.",
    )
    image_question: Annotated[str, DATA] = Field(
        default="What is in this image?",
        description="The question asked of each image of rows with an image and a label but no chat "
        "columns (an imagefolder); the answer is the label.",
    )
    task_type: Annotated[str | None, Cli(panel="Data", choices_from="tuneyard.task_types:TASK_TYPES")] = (
        Field(
            default=None, description="Task type of a --data folder (default: recognised from its columns)."
        )
    )
    # causal_lm: which columns hold the conversation (see tuneyard.task_types.causal_lm.data)
    messages_column: Annotated[str, CHAT] = Field(
        default="messages", description="Chat data: column of {role, content} message lists."
    )
    conversations_column: Annotated[str, CHAT] = Field(
        default="conversations", description="Chat data: ShareGPT column of {from, value} message lists."
    )
    instruction_column: Annotated[str | None, CHAT] = Field(
        default=None, description="Chat data: Alpaca instruction column (default: instruction)."
    )
    input_column: Annotated[str, CHAT] = Field(
        default="input",
        description="Chat data: Alpaca input column, appended to the instruction if not empty.",
    )
    output_column: Annotated[str | None, CHAT] = Field(
        default=None, description="Chat data: Alpaca answer column (default: output)."
    )
    prompt_column: Annotated[str | None, CHAT] = Field(
        default=None, description="Chat data: prompt text column (default: prompt, else user)."
    )
    response_column: Annotated[str | None, CHAT] = Field(
        default=None,
        description="Chat data: answer text column (default: response, completion, else assistant).",
    )
    system_column: Annotated[str, CHAT] = Field(
        default="system", description="Chat data: system message column."
    )
    reference_column: Annotated[str, CHAT] = Field(
        default="reference",
        description="Chat data: reference answer column for grading (if absent: the answer).",
    )
    system_prompt: Annotated[str | None, CHAT] = Field(
        default=None, description="Chat data: a system message for prompts that have none."
    )
    chat_template: Annotated[str | None, Cli(panel="Chat data", path=True)] = Field(
        default=None, description="Chat data: a Jinja chat template file, for a tokenizer without one."
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


# The tasks --task can name come from the installed task types (listed in --help only).
NAMED_TASKS = "tuneyard.task_types.data_loading:named_task_names"


class DataOptions(ColumnOptions):
    """A named task or a local data folder (at most one of them)."""

    task: Annotated[str | None, Cli(panel="Data", choices_from=NAMED_TASKS)] = Field(
        default=None, description="A named (GLUE) task."
    )
    data: Annotated[str | None, Cli(panel="Data", path=True)] = Field(
        default=None,
        description="Folder with train/validation/test CSV, TSV, JSONL or Parquet files (or a yard dataset).",
    )

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
