"""Instruction rows: ``prompt`` (chat messages), ``completion`` (the assistant's answer), ``reference``.

A data folder may hold its conversations in any of the shapes users of the field
write them in (:data:`FORMATS`, tried in order); each comes out in the same columns,
TRL's conversational prompt-completion form plus a reference answer for grading:

* OpenAI ``messages``: a list of ``{role, content}`` (roles system, user, assistant,
  tool; assistant messages may carry ``tool_calls``, and a ``tools`` column the
  function definitions);
* ShareGPT ``conversations``: a list of ``{from, value}`` (from human, gpt, system, or
  user / assistant);
* Alpaca ``instruction`` / ``input`` / ``output`` columns (``input`` may be empty: the
  user turn is the instruction, else the instruction, a blank line and the input);
* ``prompt`` / ``response`` (or ``completion``) text columns, and seed 002's
  ``system`` / ``user`` / ``assistant`` columns.

The completion is the last assistant message (what eval and generate answer); the
prompt is everything before it, earlier assistant turns included. Training learns
every assistant turn (:mod:`.tokens`).

With ``--task-type causal_lm``, a folder of plain text (a ``text`` column, e.g. a
classification folder; other columns are not read) is language-modelling rows,
TRL's ``text`` form: every token is learned and scored, and ``eval`` reports their
perplexity (there is no prompt to answer).

Column names are overridable (``--messages-column``, ``--conversations-column``,
``--instruction-column`` / ``--input-column`` / ``--output-column``,
``--prompt-column`` / ``--response-column``, ``--system-column``,
``--reference-column``); ``--system-prompt`` adds a system message to prompts that
have none. ``reference`` is the ``reference`` column where there is one, else the
assistant's last answer.

Tool calls are kept as JSON text (``tool_calls`` of a message, the ``tools`` column),
so rows with differently shaped arguments share one Arrow column;
:func:`tuneyard.task_types.causal_lm.tokens.template_messages` decodes them for the
chat template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError
from tuneyard.task_types.split_shapes import load_shaped_folder

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions

NAME = "causal_lm"
ROLES = ("system", "user", "assistant", "tool")
# ShareGPT's speaker names (``from``) as chat roles; LLaMA-Factory and FastChat write human/gpt.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}
TOOLS_COLUMN = "tools"  # OpenAI function definitions of a messages row, passed to the chat template
COLUMNS_HELP = (
    "Give a 'messages' column (a list of {role, content}), a ShareGPT 'conversations' column "
    "(a list of {from, value}), Alpaca 'instruction'/'input'/'output' columns, 'prompt' and "
    "'response' columns, or 'system'/'user'/'assistant' columns; other names with --messages-column, "
    "--conversations-column, --instruction-column / --input-column / --output-column or "
    "--prompt-column / --response-column. Plain text for language modelling: a 'text' column "
    "(or --text-column) with --task-type causal_lm."
)
IMAGES_COLUMN = "images"  # image-chat rows (tuneyard prepare --task-spec with an image column)
IMAGES_HELP = (
    "causal_lm trains on text alone and would drop the images: train a vision-language model on "
    "them with --task-type image_text_to_text (the default for rows with images); to train on the "
    "text only, remove the 'images' column and the image parts yourself."
)
# The problem a folder's rows pose: answers to prompts, or plain text to model.
GENERATION, LANGUAGE_MODELING = "generation", "language_modeling"

Message = dict[str, Any]


def message(role: str, content: Any) -> Message:
    return {"role": role, "content": str(content)}


def openai_messages(
    row: dict[str, Any], columns: tuple[str, ...], options: ColumnOptions, where: str
) -> list[Message]:
    """A ``messages`` list as it is, checked; ``tool_calls`` kept as JSON text."""
    turns = row[columns[0]]
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: {columns[0]} is not a non-empty list of {{role, content}}.", COLUMNS_HELP)
    messages = []
    for turn in turns:
        calls = turn.get("tool_calls") if isinstance(turn, dict) else None
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ROLES
            or ("content" not in turn and not calls)
        ):
            raise DataError(
                f"{where}: {turn!r} is not a {{role, content}} message with role {' / '.join(ROLES)}."
            )
        if _has_image_part(turn.get("content")):
            raise DataError(f"{where}: a {turn['role']} message holds an image.", IMAGES_HELP)
        kept = message(turn["role"], turn.get("content") or "")
        if calls:
            kept["tool_calls"] = json.dumps(calls)
        kept.update({key: str(turn[key]) for key in ("name", "tool_call_id") if turn.get(key) is not None})
        messages.append(kept)
    return messages


def sharegpt_messages(
    row: dict[str, Any], columns: tuple[str, ...], options: ColumnOptions, where: str
) -> list[Message]:
    """A ShareGPT ``conversations`` list of ``{from, value}`` as role/content messages."""
    turns = row[columns[0]]
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: {columns[0]} is not a non-empty list of {{from, value}}.", COLUMNS_HELP)
    messages = []
    for turn in turns:
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise DataError(f"{where}: {turn!r} is not a ShareGPT {{from, value}} message.", COLUMNS_HELP)
        if turn["from"] not in SHAREGPT_ROLES:
            raise DataError(
                f"{where}: ShareGPT message from {turn['from']!r} has no chat role; "
                f"known: {', '.join(SHAREGPT_ROLES)}.",
                "Rename the speaker, or convert the rows to a 'messages' column yourself.",
            )
        messages.append(message(SHAREGPT_ROLES[turn["from"]], turn["value"]))
    return messages


def alpaca_messages(
    row: dict[str, Any], columns: tuple[str, ...], options: ColumnOptions, where: str
) -> list[Message]:
    """An Alpaca row: the instruction (a blank line and the input, when there is one), then the output."""
    instruction_column, output_column = columns
    if row[instruction_column] is None or row[output_column] is None:
        raise DataError(f"{where}: empty {instruction_column!r} or {output_column!r}.")
    extra = row.get(options.input_column)
    user = str(row[instruction_column]) + (f"\n\n{extra}" if extra not in (None, "") else "")
    return [message("user", user), message("assistant", row[output_column])]


def pair_messages(
    row: dict[str, Any], columns: tuple[str, ...], options: ColumnOptions, where: str
) -> list[Message]:
    """A prompt text column and a response text column as one user and one assistant message."""
    prompt_column, response_column = columns
    if row[prompt_column] is None or row[response_column] is None:
        raise DataError(f"{where}: empty {prompt_column!r} or {response_column!r}.")
    return [message("user", row[prompt_column]), message("assistant", row[response_column])]


@dataclass(frozen=True)
class ChatFormat:
    """One way the field writes conversations: the columns that mark it and how a row becomes messages.

    ``candidates`` are the column sets looked for, in order (the first all present
    wins); ``named`` says the user chose this format's columns by flag, which rules the
    other formats out.
    """

    name: str
    candidates: Callable[[ColumnOptions], list[tuple[str, ...]]]
    named: Callable[[ColumnOptions], bool]
    messages: Callable[[dict[str, Any], tuple[str, ...], ColumnOptions, str], list[Message]]


def _pairs(options: ColumnOptions) -> list[tuple[str, ...]]:
    if options.prompt_column or options.response_column:
        return [(options.prompt_column or "prompt", options.response_column or "response")]
    return [("prompt", "response"), ("prompt", "completion"), ("user", "assistant")]


FORMATS = (
    ChatFormat("messages", lambda o: [(o.messages_column,)], lambda o: False, openai_messages),
    ChatFormat("sharegpt", lambda o: [(o.conversations_column,)], lambda o: False, sharegpt_messages),
    ChatFormat(
        "alpaca",
        lambda o: [(o.instruction_column or "instruction", o.output_column or "output")],
        lambda o: bool(o.instruction_column or o.output_column),
        alpaca_messages,
    ),
    ChatFormat(
        "prompt_response",
        _pairs,
        lambda o: bool(o.prompt_column or o.response_column),
        pair_messages,
    ),
)

Shape = tuple[ChatFormat, tuple[str, ...]]


def chat_shape(columns: list[str], options: ColumnOptions) -> Shape | None:
    """The chat format these files are in and the columns it reads; None if none fits."""
    named = [chat_format for chat_format in FORMATS if chat_format.named(options)]
    for chat_format in named or FORMATS:
        found = next((c for c in chat_format.candidates(options) if all(n in columns for n in c)), None)
        if found is not None:
            return chat_format, found
    return None


def recognizes(columns: list[str], options: ColumnOptions) -> bool:
    """Whether a split file with these columns holds chat rows."""
    return chat_shape(columns, options) is not None


def split_conversation(turns: list[Message], where: str) -> tuple[list[Message], list[Message]]:
    """``(prompt, completion)`` of one conversation: everything before the last message, and it."""
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


def chat_rows(dataset: Dataset, shape: Shape, options: ColumnOptions, where: str) -> dict:
    """The split's rows as ``id`` / ``prompt`` / ``completion`` / ``reference`` (/ ``tools``) columns."""
    chat_format, columns = shape
    rows: dict[str, list[Any]] = {"id": [], "prompt": [], "completion": [], "reference": []}
    has_system = options.system_column in dataset.column_names
    has_reference = options.reference_column in dataset.column_names
    if TOOLS_COLUMN in dataset.column_names:
        rows[TOOLS_COLUMN] = []
    for index, row in enumerate(dataset):
        place = f"{where}, row {index}"
        prompt, completion = split_conversation(chat_format.messages(row, columns, options, place), place)
        system = row[options.system_column] if has_system else options.system_prompt
        if system and prompt[0]["role"] != "system":
            prompt.insert(0, message("system", system))
        rows["id"].append(row.get("id", index))
        rows["prompt"].append(prompt)
        rows["completion"].append(completion)
        reference = row[options.reference_column] if has_reference else None
        rows["reference"].append(str(reference if reference is not None else completion[0]["content"]))
        if TOOLS_COLUMN in rows:
            tools = row[TOOLS_COLUMN]
            rows[TOOLS_COLUMN].append(tools if tools is None or isinstance(tools, str) else json.dumps(tools))
    return rows


def text_rows(dataset: Dataset, column: str) -> dict:
    """The split's plain text rows as ``id`` / ``text`` columns."""
    ids = dataset["id"] if "id" in dataset.column_names else list(range(len(dataset)))
    return {"id": list(ids), "text": [str(text) if text is not None else "" for text in dataset[column]]}


def read_split(dataset: Dataset, file: Path, split: str, options: ColumnOptions) -> tuple[dict, str]:
    """One split's rows and their shape: chat rows (``GENERATION``) or plain text (``LANGUAGE_MODELING``)."""
    if IMAGES_COLUMN in dataset.column_names:
        raise DataError(f"{file} ({split}) holds image-chat rows (an 'images' column).", IMAGES_HELP)
    shape = chat_shape(dataset.column_names, options)
    if shape is not None:
        return chat_rows(dataset, shape, options, str(file)), GENERATION
    if options.text_column in dataset.column_names:
        return text_rows(dataset, options.text_column), LANGUAGE_MODELING
    raise DataError(
        f"{file} ({split}) has no chat columns; its columns are: {', '.join(dataset.column_names)}.",
        COLUMNS_HELP,
    )


def load_folder(folder: Path, options: ColumnOptions) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Read ``train`` / ``validation`` / ``test`` files of chat rows or of plain text (one in every split)."""
    return load_shaped_folder(
        folder,
        options,
        NAME,
        partial(read_split, options=options),
        {GENERATION: "chat rows", LANGUAGE_MODELING: "plain text"},
    )
