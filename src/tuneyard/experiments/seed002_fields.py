"""Seed 002's ``config.yaml``, field by field: what each field means here (one table).

Seed 002's users write their experiment file with task entries at the top level
(``task1:``, ``task2:``) beside ``finetuning:`` and ``evals:``. Every field of those
sections is read with seed 002's meaning: the table says which tuneyard option it sets,
or that it has no meaning here, and then a file that sets it gets a warning naming it
(never a silent drop). ``docs/experiments.md`` shows this table; a test checks that the
fields the experiment file accepts are exactly these plus tuneyard's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SeedField:
    """One field of seed 002's file: where it lives, what it sets here (None: nothing), and why."""

    section: str  # "task" (an entry of tasks: or a top-level task), "finetuning" or "evals"
    name: str
    option: str | None  # tuneyard's option it sets; None: no meaning here (warned about when set)
    meaning: str


SEED_FIELDS: tuple[SeedField, ...] = (
    SeedField("task", "dataset", "prepare SOURCE", "the rows: a hub dataset id or a local file or folder"),
    SeedField("task", "system_prompt", "the system turn", "the system turn of every conversation"),
    SeedField("task", "user_prompt", "the user turn", "a Jinja template over the row's columns"),
    SeedField("task", "image_column", "the image of the user turn", "the column holding the row's image"),
    SeedField("task", "assistant_text_column", "the answer", "the column holding the reference answer"),
    SeedField(
        "task",
        "grader",
        "eval's answers.grader (+ fields, pattern, choices)",
        "how the task's answers are scored: JSONGrader is json; {name: json, fields: [...]} with settings",
    ),  # fmt: skip
    SeedField(
        "task",
        "sample_percent",
        "prepare --sample-percent (x 100)",
        "the fraction of each split kept: 0.01 keeps 1 %; over 1 is refused",
    ),  # fmt: skip
    SeedField("finetuning", "model_path", "finetuning.models", "the model fine-tuned (one start)"),
    SeedField(
        "finetuning", "tokenizer_path", "finetune --tokenizer", "the tokenizer, when not the model's own"
    ),
    SeedField("finetuning", "epochs", "finetuning.epochs", "epochs of every run"),
    SeedField("finetuning", "batch_size", "finetuning.batch_size", "rows per step of every run"),
    SeedField(
        "finetuning",
        "fusion",
        None,
        "Llama 3.2 Vision: train the fusion layers only (tuneyard trains every weight, or LoRA)",
    ),  # fmt: skip
    SeedField(
        "finetuning",
        "fusion+encoder",
        None,
        "Llama 3.2 Vision: train the fusion layers and the image encoder only",
    ),  # fmt: skip
    SeedField(
        "finetuning",
        "fusion+decoder",
        None,
        "Llama 3.2 Vision: train the fusion layers and the text decoder only",
    ),  # fmt: skip
    SeedField(
        "finetuning",
        "fusion+encoder+decoder",
        "finetuning.strategies: full",
        "train every weight: a full fine-tuning run",
    ),  # fmt: skip
    SeedField(
        "finetuning",
        "lora_ranks",
        "finetuning.lora_ranks (strategies: lora)",
        "a LoRA run per rank",
    ),  # fmt: skip
    SeedField("evals", "nb_eval_samples", "evals.nb_eval_samples", "rows scored per task; null: all"),
    SeedField(
        "evals",
        "checkpoint_to_eval",
        "evals.checkpoint_to_eval",
        "which checkpoint of each run: -1 the latest (last/); or best, last, checkpoint-{epoch}-{step}",
    ),  # fmt: skip
    SeedField(
        "evals",
        "model_server_args",
        "evals.model_server_args (with evals.backend: server)",
        "options of the server the model is evaluated through (vLLM's tensor_parallel_size, max_model_len; "
        "llama.cpp's n_ctx); without backend: server the evals run in-process, and a warning says so",
    ),  # fmt: skip
)


def seed_fields(section: str) -> list[SeedField]:
    """The table's fields of one section, in the table's order."""
    return [field for field in SEED_FIELDS if field.section == section]


def ignored_fields(section: str, given: dict[str, Any]) -> list[str]:
    """A warning per field of ``section`` that ``given`` sets (not false or null) with no meaning here."""
    return [
        f"{section}.{field.name} has no meaning in tuneyard and is ignored: {field.meaning}."
        for field in seed_fields(section)
        if field.option is None and given.get(field.name) not in (None, False)
    ]


def markdown_table() -> str:
    """The table as Markdown, the way ``docs/experiments.md`` shows it."""
    lines = ["| section | seed 002 field | tuneyard option | meaning |", "|---|---|---|---|"]
    for field in SEED_FIELDS:
        option = f"`{field.option}`" if field.option else "no meaning here: a warning naming it"
        lines.append(f"| {field.section} | `{field.name}` | {option} | {field.meaning} |")
    return "\n".join(lines) + "\n"
