"""The data flags finetune, eval and compress share: columns of a ``--data`` folder and its task type.

One definition each, so the three verbs spell and explain them alike; the task-type
choices come from the registry (:data:`tuneyard.task_types.TASK_TYPES`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from tuneyard.task_types import DEFAULT_TASK_TYPE, TASK_TYPES

TextColumnOpt = Annotated[str | None, typer.Option(help="Text column of --data files (default: text).")]
TextPairColumnOpt = Annotated[str | None, typer.Option(help="Second text column (sentence pairs).")]
LabelColumnOpt = Annotated[str | None, typer.Option(help="Label column of --data files (default: label).")]
TaskTypeOpt = Annotated[
    str | None,
    typer.Option(help=f"Task type of --data: {' | '.join(TASK_TYPES)} (default {DEFAULT_TASK_TYPE})."),
]
