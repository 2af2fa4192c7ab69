"""The format step of ``prepare``: a task spec turns rows into the conversations a model trains on.

A task spec is one entry of seed 002's ``config.yaml`` (``tasks:``, or task names at the
top level): a system prompt, a user prompt that is a Jinja template over the row's
columns, where the answer comes from (``assistant_text_column``, or an
``assistant_template``), an optional ``image_column`` and the ``grader`` that scores
answers (a name, seed 002's ``JSONGrader`` or tuneyard's ``json``, or a name with its
settings: ``{name: json, fields: [section]}``; ``eval`` grades the task's answers with it).
``sample_percent`` is seed 002's: a fraction of each split (``0.01`` keeps 1 %).
Formatting writes a ``messages`` column (``[system], user, assistant``, the
chat rows ``finetune`` and ``eval`` read) next to the row's ``id``; with an image column
the user turn is ``[{"type": "image"}, {"type": "text", ...}]`` and an ``images``
column holds the row's image, the layout TRL's vision-language trainer reads.

A template naming a column the rows lack is refused before any row is written, naming
the column and the columns there are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, field_validator, model_validator

from tuneyard.config import StrictModel
from tuneyard.errors import ConfigError, DataError

if TYPE_CHECKING:
    from datasets import Dataset


class TaskGrader(StrictModel):
    """The grader a task's answers are scored with: its name and settings, as the task file gives them."""

    name: str = Field(description="exact | contains | regex | json | choice, or seed 002's JSONGrader ...")
    fields: list[str] = Field(default_factory=list, description="json: the fields compared (default: all).")
    pattern: str | None = Field(default=None, description="regex: the pattern the answer must match.")
    choices: list[str] = Field(default_factory=list, description="choice: the allowed answers.")


def task_grader(value: Any) -> TaskGrader | None:
    """A task entry's ``grader:`` (a name, or a name with settings) as a :class:`TaskGrader`."""
    if value is None or isinstance(value, TaskGrader):
        return value
    return TaskGrader.model_validate({"name": value} if isinstance(value, str) else value)


class TaskFormat(StrictModel):
    """How one task's rows become conversations (a seed-002 ``tasks:`` entry)."""

    user_prompt: str = Field(description="Jinja template over the row's columns: 'Section of: {{ text }}'.")
    system_prompt: str | None = None
    assistant_text_column: str | None = Field(default=None, description="The column holding the answer.")
    assistant_template: str | None = Field(default=None, description="Or: a Jinja template for the answer.")
    image_column: str | None = None
    grader: TaskGrader | None = Field(default=None, description="How answers are scored (eval applies it).")
    # Source keys a seed-002 entry may carry; prepare reads them as its own defaults.
    dataset: str | None = None
    sample_percent: float | None = Field(
        default=None, gt=0, description="Seed 002's: the fraction of each split kept (0.01 keeps 1 %)."
    )

    @field_validator("grader", mode="before")
    @classmethod
    def _grader_settings(cls, value: Any) -> Any:
        return task_grader(value)

    @field_validator("sample_percent")
    @classmethod
    def _a_fraction(cls, value: float | None) -> float | None:
        if value is not None and value > 1:
            raise ValueError(
                f"sample_percent is a fraction of each split, as in seed 002 (0.01 keeps 1 %), "
                f"and {value:g} is over 1; to keep {value:g} % of each split write "
                f"sample_percent: {value / 100:g}"
            )
        return value

    @model_validator(mode="after")
    def _one_answer(self) -> TaskFormat:
        if (self.assistant_text_column is None) == (self.assistant_template is None):
            raise ConfigError(
                "a task needs exactly one of assistant_text_column or assistant_template.",
                "e.g. assistant_text_column: label",
            )
        return self


def load_task_format(path: str | Path, task: str) -> TaskFormat:
    """Task ``task`` of the spec file at ``path`` (under ``tasks:`` or at the top level)."""
    from tuneyard.config import format_validation_error, read_config_file

    file = Path(path).expanduser()
    spec = read_config_file(file)
    tasks = spec.get("tasks", spec)
    entry = tasks.get(task) if isinstance(tasks, dict) else None
    if not isinstance(entry, dict):
        known = ", ".join(name for name, value in tasks.items() if isinstance(value, dict))
        raise ConfigError(f"task spec {file} has no task {task!r}.", f"Its tasks: {known or 'none'}.")
    try:
        return TaskFormat.model_validate(entry)
    except ValidationError as exc:
        error = format_validation_error(TaskFormat, exc)
        raise ConfigError(f"task {task!r} in {file}: {error.message}", error.hint) from None


def template_environment() -> Any:
    """The Jinja environment of every row template: sandboxed, and strict about missing names."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)


def format_rows(rows: Dataset, task: TaskFormat, split: str) -> Dataset:
    """``rows`` as ``id`` + ``messages`` (+ ``images``) columns; checks the templates first."""
    from jinja2 import UndefinedError

    environment = template_environment()
    user = environment.from_string(task.user_prompt)
    answer = environment.from_string(task.assistant_template) if task.assistant_template else None
    for column in (task.assistant_text_column, task.image_column):
        if column is not None and column not in rows.column_names:
            raise DataError(
                f"the task's {column!r} column is not in the {split} split.",
                f"Its columns: {', '.join(rows.column_names)}.",
            )

    def conversation(row: dict[str, Any]) -> dict[str, Any]:
        text = user.render(**row)
        content: Any = [{"type": "image"}, {"type": "text", "text": text}] if task.image_column else text
        reply = answer.render(**row) if answer else str(row[task.assistant_text_column or ""])
        messages = [{"role": "system", "content": task.system_prompt}] if task.system_prompt else []
        messages += [{"role": "user", "content": content}, {"role": "assistant", "content": reply}]
        formatted: dict[str, Any] = {"messages": messages}
        if task.image_column:
            formatted["images"] = [row[task.image_column]]
        return formatted

    if len(rows) == 0:
        return rows
    try:
        conversation(rows[0])  # a missing column fails here, before any row is written
    except UndefinedError as exc:
        raise DataError(
            f"the task's template names a column the {split} split lacks: {exc.message}.",
            f"Its columns: {', '.join(rows.column_names)}.",
        ) from None
    kept = ["id"] if "id" in rows.column_names else []
    return rows.map(conversation, remove_columns=[c for c in rows.column_names if c not in kept])
