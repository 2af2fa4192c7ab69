"""The data flags finetune, eval and compress share: a task or data folder, its columns, its task type.

One definition each, so the three verbs spell and explain them alike; the task names
and task-type choices come from their tables
(:data:`tuneyard.task_types.sequence_classification.glue.GLUE_TASKS`, :data:`tuneyard.task_types.TASK_TYPES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneyard.task_types import DEFAULT_TASK_TYPE, TASK_TYPES
from tuneyard.task_types.sequence_classification.glue import GLUE_TASKS

TaskOpt = Annotated[str | None, typer.Option(help=f"A named (GLUE) task: {', '.join(GLUE_TASKS)}.")]
DataOpt = Annotated[
    Path | None, typer.Option(help="Folder with train/validation/test CSV, TSV, JSONL or Parquet files.")
]

TextColumnOpt = Annotated[str | None, typer.Option(help="Text column of --data files (default: text).")]
TextPairColumnOpt = Annotated[str | None, typer.Option(help="Second text column (sentence pairs).")]
LabelColumnOpt = Annotated[str | None, typer.Option(help="Label column of --data files (default: label).")]
TaskTypeOpt = Annotated[
    str | None,
    typer.Option(
        help=f"Task type of --data: {' | '.join(TASK_TYPES)} (default: recognised from its columns, "
        f"else {DEFAULT_TASK_TYPE})."
    ),
]

# causal_lm data: which columns hold the conversation (defaults: recognised by name).
MessagesColumnOpt = Annotated[
    str | None, typer.Option(help="Chat data: column of {role, content} message lists (default: messages).")
]
PromptColumnOpt = Annotated[
    str | None, typer.Option(help="Chat data: prompt text column (default: prompt, else user).")
]
ResponseColumnOpt = Annotated[
    str | None,
    typer.Option(help="Chat data: answer text column (default: response, completion, else assistant)."),
]
SystemColumnOpt = Annotated[
    str | None, typer.Option(help="Chat data: system message column (default: system).")
]
ReferenceColumnOpt = Annotated[
    str | None,
    typer.Option(help="Chat data: reference answer for grading (default: reference, else the answer)."),
]
SystemPromptOpt = Annotated[
    str | None, typer.Option(help="Chat data: a system message for prompts that have none.")
]
ChatTemplateOpt = Annotated[
    Path | None, typer.Option(help="Chat data: a Jinja chat template file, for a tokenizer without one.")
]


def chat_flags(
    messages_column: str | None,
    prompt_column: str | None,
    response_column: str | None,
    system_column: str | None,
    reference_column: str | None,
    system_prompt: str | None,
    chat_template: Path | None,
) -> dict[str, str | None]:
    """The chat-data flags as option fields (None: not given)."""
    return {
        "messages_column": messages_column,
        "prompt_column": prompt_column,
        "response_column": response_column,
        "system_column": system_column,
        "reference_column": reference_column,
        "system_prompt": system_prompt,
        "chat_template": str(chat_template) if chat_template else None,
    }


# How a causal LM's answers are decoded (generate, eval) and graded (eval).
MaxNewTokensOpt = Annotated[
    int | None, typer.Option(help="Chat data: longest answer, in tokens (default 64).")
]
DoSampleOpt = Annotated[
    bool | None, typer.Option("--do-sample", help="Chat data: sample answers instead of greedy decoding.")
]
TemperatureOpt = Annotated[
    float | None, typer.Option(help="With --do-sample: softmax temperature (default 1).")
]
TopPOpt = Annotated[float | None, typer.Option(help="With --do-sample: nucleus top-p (default 1).")]
SeedOpt = Annotated[int | None, typer.Option(help="With --do-sample: the sampling seed (default 0).")]
StopOpt = Annotated[
    list[str] | None, typer.Option("--stop", help="Chat data: end an answer at this string (repeatable).")
]
GraderOpt = Annotated[
    str | None, typer.Option(help="Chat data: exact | contains | regex | json | choice (default exact).")
]
FieldsOpt = Annotated[str | None, typer.Option(help="json grader: comma-separated fields to compare.")]
PatternOpt = Annotated[
    str | None, typer.Option(help="regex grader: pattern whose first group is the answer.")
]
ChoicesOpt = Annotated[
    str | None,
    typer.Option(help="choice grader: comma-separated answers (default: the distinct references)."),
]


def comma_list(text: str | None) -> list[str] | None:
    """``a, b,c`` -> ``["a", "b", "c"]`` (None when not given)."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def generation_flags(
    max_new_tokens: int | None,
    do_sample: bool | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    stop: list[str] | None,
) -> dict[str, object]:
    """The decoding flags as ``GenerationOptions`` fields (those given)."""
    values = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
        "stop": stop or None,
    }
    return {key: value for key, value in values.items() if value is not None}
