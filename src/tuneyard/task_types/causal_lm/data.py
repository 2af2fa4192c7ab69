"""Instruction rows: ``prompt`` (chat messages), ``completion`` (the assistant's answer), ``reference``.

A data folder may hold its conversations in any of the shapes users of the field
write them in; each comes out in the same columns, TRL's conversational
prompt-completion form plus a reference answer for grading:

* a ``messages`` column: a list of ``{role, content}``, the last one the assistant's;
* ``prompt`` / ``response`` (or ``completion``) text columns;
* seed 002's ``system`` / ``user`` / ``assistant`` columns.

With ``--task-type causal_lm``, a folder of plain text (a ``text`` column, e.g. a
classification folder; other columns are not read) is language-modelling rows,
TRL's ``text`` form: every token is learned and scored, and ``eval`` reports their
perplexity (there is no prompt to answer).

Column names are overridable (``--messages-column``, ``--prompt-column``,
``--response-column``, ``--system-column``, ``--reference-column``); ``--system-prompt``
adds a system message to prompts that have none. ``reference`` is the ``reference``
column where there is one, else the assistant's answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.data.loading import dataset_name, read_split_files
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions

NAME = "causal_lm"
ROLES = ("system", "user", "assistant")
# (prompt, response) column pairs tried in order when --prompt-column is not given.
TEXT_PAIRS = (("prompt", "response"), ("prompt", "completion"), ("user", "assistant"))
COLUMNS_HELP = (
    "Give a 'messages' column (a list of {role, content}), 'prompt' and 'response' columns, "
    "or 'system'/'user'/'assistant' columns; other names with --messages-column or "
    "--prompt-column / --response-column. Plain text for language modelling: a 'text' column "
    "(or --text-column) with --task-type causal_lm."
)
IMAGES_COLUMN = "images"  # image-chat rows (tuneyard prepare --task-spec with an image column)
IMAGES_HELP = (
    "causal_lm trains on text alone and would drop the images. Image-chat rows are read by a "
    "vision-language task type (image_text_to_text), which this tuneyard does not have yet; "
    "to train on the text only, remove the 'images' column and the image parts yourself."
)
# The problem a folder's rows pose: answers to prompts, or plain text to model.
GENERATION, LANGUAGE_MODELING = "generation", "language_modeling"


def message(role: str, content: Any) -> dict[str, str]:
    return {"role": role, "content": str(content)}


def chat_shape(columns: list[str], options: ColumnOptions) -> tuple[str, str] | str | None:
    """The messages column, or the (prompt, response) columns, these files hold; None if neither."""
    if options.prompt_column or options.response_column:
        pair = (options.prompt_column or "prompt", options.response_column or "response")
        return pair if all(name in columns for name in pair) else None
    if options.messages_column in columns:
        return options.messages_column
    return next((pair for pair in TEXT_PAIRS if all(name in columns for name in pair)), None)


def recognizes(columns: list[str], options: ColumnOptions) -> bool:
    """Whether a split file with these columns holds chat rows."""
    return chat_shape(columns, options) is not None


def split_conversation(messages: Any, where: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """``(prompt, completion)`` of one conversation: everything before the last message, and it."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: messages is not a non-empty list of {{role, content}}.", COLUMNS_HELP)
    turns = []
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or "content" not in turn:
            raise DataError(
                f"{where}: {turn!r} is not a {{role, content}} message with role {' / '.join(ROLES)}."
            )
        if _has_image_part(turn["content"]):
            raise DataError(f"{where}: a {turn['role']} message holds an image.", IMAGES_HELP)
        turns.append(message(turn["role"], turn["content"]))
    if turns[-1]["role"] != "assistant" or len(turns) < 2:
        raise DataError(
            f"{where}: a conversation must end with the assistant's answer after at least one message.",
            "The last message is what the model learns to write; put the answer last.",
        )
    return turns[:-1], turns[-1:]


def _has_image_part(content: Any) -> bool:
    """Whether a message's content is a list of parts with an image among them."""
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") == "image" for part in content
    )


def chat_rows(dataset: Dataset, shape: tuple[str, str] | str, options: ColumnOptions, where: str) -> dict:
    """The split's rows as ``id`` / ``prompt`` / ``completion`` / ``reference`` columns."""
    rows: dict[str, list[Any]] = {"id": [], "prompt": [], "completion": [], "reference": []}
    has_system = options.system_column in dataset.column_names
    has_reference = options.reference_column in dataset.column_names
    for index, row in enumerate(dataset):
        place = f"{where}, row {index}"
        if isinstance(shape, str):
            prompt, completion = split_conversation(row[shape], place)
        else:
            prompt_column, response_column = shape
            if row[prompt_column] is None or row[response_column] is None:
                raise DataError(f"{place}: empty {prompt_column!r} or {response_column!r}.")
            prompt = [message("user", row[prompt_column])]
            completion = [message("assistant", row[response_column])]
        system = row[options.system_column] if has_system else options.system_prompt
        if system and prompt[0]["role"] != "system":
            prompt.insert(0, message("system", system))
        rows["id"].append(row.get("id", index))
        rows["prompt"].append(prompt)
        rows["completion"].append(completion)
        reference = row[options.reference_column] if has_reference else None
        rows["reference"].append(str(reference if reference is not None else completion[0]["content"]))
    return rows


def text_rows(dataset: Dataset, column: str) -> dict:
    """The split's plain text rows as ``id`` / ``text`` columns."""
    ids = dataset["id"] if "id" in dataset.column_names else list(range(len(dataset)))
    return {"id": list(ids), "text": [str(text) if text is not None else "" for text in dataset[column]]}


def load_folder(folder: Path, options: ColumnOptions) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Read ``train`` / ``validation`` / ``test`` files of chat rows, or of plain text."""
    from datasets import Dataset

    raw, files = read_split_files(folder)
    splits, problems = {}, set()
    for split, dataset in raw.items():
        if IMAGES_COLUMN in dataset.column_names:
            where = f"{files[split]} ({split}) holds image-chat rows (an 'images' column)."
            raise DataError(where, IMAGES_HELP)
        shape = chat_shape(dataset.column_names, options)
        if shape is not None:
            splits[split] = Dataset.from_dict(chat_rows(dataset, shape, options, f"{files[split]}"))
            problems.add(GENERATION)
        elif options.text_column in dataset.column_names:
            splits[split] = Dataset.from_dict(text_rows(dataset, options.text_column))
            problems.add(LANGUAGE_MODELING)
        else:
            raise DataError(
                f"{files[split]} ({split}) has no chat columns; its columns are: "
                f"{', '.join(dataset.column_names)}.",
                COLUMNS_HELP,
            )
    if len(problems) > 1:
        raise DataError(
            f"{folder} mixes chat rows and plain text across its splits.",
            "Give every split the same columns: all chat rows, or all plain text.",
        )
    spec = TaskSpec(
        name=str(dataset_name(None, folder)),
        task_type=NAME,
        main_metric="loss",
        problem=problems.pop(),
        chat_template=options.chat_template_text(),
    )
    return spec, splits
