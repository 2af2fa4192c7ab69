"""Preference rows: pairs (``prompt`` / ``chosen`` / ``rejected``) or KTO's unpaired rows.

The shapes the field writes preference data in, each read into TRL's conversational
form (lists of ``{role, content}`` messages), so every objective formats rows through
the model's chat template the same way the causal LM's instruction tuning does:

* ``prompt``, ``chosen``, ``rejected``: plain strings (the prompt becomes a user turn, each
  answer an assistant turn) or message lists;
* ``chosen`` and ``rejected`` message lists without a ``prompt`` column (Anthropic HH's
  form): the prompt is the messages both share, the answers what follows;
* ``prompt``, ``completion``, ``label`` (KTO): one completion per row and whether it is
  desirable (``true``/``false`` or ``1``/``0``).

Beside TRL's columns each row keeps an ``id``, and pairs a ``completion`` and a
``reference`` (the chosen answer), so the causal LM's generation eval and ``generate``
read the prompts as they read chat rows. Rows that cannot teach a preference are
refused with their ids: a pair whose chosen and rejected answers are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError
from tuneyard.task_types.causal_lm.data import ROLES, message
from tuneyard.task_types.preference.objectives import PAIRS, UNPAIRED
from tuneyard.task_types.split_shapes import load_shaped_folder

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions

NAME = "preference"
# Above the causal LM's 1 (a prompt/completion/label folder is KTO rows, not chat rows) and a text column's 2.
SCORE = 3
COLUMNS_HELP = (
    "Give 'prompt', 'chosen' and 'rejected' columns (strings or {role, content} message lists), "
    "'chosen' and 'rejected' message lists that share their prompt turns, or KTO's 'prompt', "
    "'completion' and 'label' (true for a desirable completion)."
)
Messages = list[dict[str, Any]]


def rows_shape(columns: list[str]) -> str | None:
    """``PAIRS`` or ``UNPAIRED`` for a split file with these columns; None if neither."""
    if "chosen" in columns or "rejected" in columns:
        return PAIRS
    if {"prompt", "completion", "label"} <= set(columns):
        return UNPAIRED
    return None


def recognizes(columns: list[str], options: ColumnOptions) -> int:
    """How well a split file's columns fit: a ``chosen`` or ``rejected`` column, or KTO's three."""
    return SCORE if rows_shape(columns) else 0


def as_messages(value: Any, role: str, where: str) -> Messages:
    """A string as one ``role`` message, or a message list as it is, checked."""
    if isinstance(value, str):
        return [message(role, value)]
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{where} is neither text nor a non-empty list of {{role, content}} messages.", COLUMNS_HELP
        )
    for turn in value:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or "content" not in turn:
            raise DataError(f"{where}: {turn!r} is not a {{role, content}} message.", COLUMNS_HELP)
    return [message(turn["role"], turn["content"]) for turn in value]


def split_shared_prompt(
    chosen: Messages, rejected: Messages, where: str
) -> tuple[Messages, Messages, Messages]:
    """``(prompt, chosen answer, rejected answer)`` of two conversations that share their first turns."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    prompt, chosen_answer, rejected_answer = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt or chosen_answer[0]["role"] != "assistant" or rejected_answer[0]["role"] != "assistant":
        raise DataError(
            f"{where}: without a 'prompt' column, 'chosen' and 'rejected' must be conversations that share "
            "their prompt turns and then differ in the assistant's answer.",
            "Add a 'prompt' column, or give both conversations the same turns before the answer.",
        )
    return prompt, chosen_answer, rejected_answer


def pair_rows(dataset: Dataset, where: str) -> dict[str, list[Any]]:
    """A split's pairs as ``id`` / ``prompt`` / ``chosen`` / ``rejected`` / ``completion`` / ``reference``."""
    missing = [name for name in ("chosen", "rejected") if name not in dataset.column_names]
    if missing:
        raise DataError(
            f"{where} has no '{missing[0]}' column (its columns: {', '.join(dataset.column_names)}): a "
            "preference pair needs the answer to prefer and the one to avoid.",
            f"Add a '{missing[0]}' answer to every row; for rows with one judged completion each, use KTO's "
            "'prompt', 'completion' and 'label' columns with --objective kto.",
        )
    rows: dict[str, list[Any]] = {
        name: [] for name in ("id", "prompt", "chosen", "rejected", "completion", "reference")
    }
    has_prompt = "prompt" in dataset.column_names
    for index, row in enumerate(dataset):
        place = f"{where}, row {index}"
        if has_prompt:
            prompt = as_messages(row["prompt"], "user", f"{place} 'prompt'")
            chosen = as_messages(row["chosen"], "assistant", f"{place} 'chosen'")
            rejected = as_messages(row["rejected"], "assistant", f"{place} 'rejected'")
        else:
            prompt, chosen, rejected = split_shared_prompt(
                as_messages(row["chosen"], "assistant", f"{place} 'chosen'"),
                as_messages(row["rejected"], "assistant", f"{place} 'rejected'"),
                place,
            )
        rows["id"].append(row.get("id", index))
        rows["prompt"].append(prompt)
        rows["chosen"].append(chosen)
        rows["rejected"].append(rejected)
        rows["completion"].append(chosen)
        rows["reference"].append(chosen[-1]["content"])
    return rows


def check_pairs_differ(rows: dict[str, list[Any]], where: str) -> None:
    """Refuse pairs whose chosen and rejected answers are the same (they teach no preference)."""
    pairs = zip(rows["id"], rows["chosen"], rows["rejected"], strict=True)
    same = [row_id for row_id, chosen, rejected in pairs if chosen == rejected]
    if same:
        shown = ", ".join(str(row_id) for row_id in same[:5])
        raise DataError(
            f"{len(same)} of {len(rows['id'])} rows of {where} have the same chosen and rejected answer "
            f"(ids: {shown}): such a pair teaches no preference.",
            "Drop those rows, or give each a rejected answer that differs from the chosen one.",
        )


def label_value(value: Any, where: str) -> bool:
    """A KTO label as a bool: ``true``/``false``, ``1``/``0`` (numbers or text)."""
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise DataError(
        f"{where}: label {value!r} is not true/false or 1/0.",
        "Mark each completion desirable (true) or not (false).",
    )


def unpaired_rows(dataset: Dataset, where: str) -> dict[str, list[Any]]:
    """A split's KTO rows as ``id`` / ``prompt`` / ``completion`` / ``label`` / ``reference``."""
    rows: dict[str, list[Any]] = {name: [] for name in ("id", "prompt", "completion", "label", "reference")}
    for index, row in enumerate(dataset):
        place = f"{where}, row {index}"
        completion = as_messages(row["completion"], "assistant", f"{place} 'completion'")
        rows["id"].append(row.get("id", index))
        rows["prompt"].append(as_messages(row["prompt"], "user", f"{place} 'prompt'"))
        rows["completion"].append(completion)
        rows["label"].append(label_value(row["label"], place))
        rows["reference"].append(completion[-1]["content"])
    return rows


def read_split(dataset: Dataset, file: Path, split: str) -> tuple[dict[str, list[Any]], str]:
    """One split's rows and their shape: pairs (``PAIRS``, checked to differ) or KTO's rows (``UNPAIRED``)."""
    where = f"{file} ({split})"
    shape = rows_shape(dataset.column_names)
    if shape is None:
        raise DataError(
            f"{where} holds no preference rows; its columns are: {', '.join(dataset.column_names)}.",
            COLUMNS_HELP,
        )
    if shape == UNPAIRED:
        return unpaired_rows(dataset, where), shape
    rows = pair_rows(dataset, where)
    check_pairs_differ(rows, where)
    return rows, shape


def load_folder(folder: Path, options: ColumnOptions) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Read ``train`` / ``validation`` / ``test`` files of pairs or of KTO rows (the same in every split)."""
    return load_shaped_folder(
        folder, options, NAME, read_split, {PAIRS: "preference pairs", UNPAIRED: "KTO's unpaired rows"}
    )
