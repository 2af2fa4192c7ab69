"""The data flags finetune, eval and compress share: a task or data folder, its columns, its task type.

One definition each, so the three verbs spell and explain them alike; the task names
and task-type choices come from their tables (:data:`tuneyard.data.tasks.GLUE_TASKS`,
:data:`tuneyard.task_types.TASK_TYPES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneyard.data.tasks import GLUE_TASKS
from tuneyard.task_types import DEFAULT_TASK_TYPE, TASK_TYPES

TaskOpt = Annotated[str | None, typer.Option(help=f"A named (GLUE) task: {', '.join(GLUE_TASKS)}.")]
DataOpt = Annotated[
    Path | None, typer.Option(help="Folder with train/validation/test CSV, TSV, JSONL or Parquet files.")
]

TextColumnOpt = Annotated[str | None, typer.Option(help="Text column of --data files (default: text).")]
TextPairColumnOpt = Annotated[str | None, typer.Option(help="Second text column (sentence pairs).")]
LabelColumnOpt = Annotated[str | None, typer.Option(help="Label column of --data files (default: label).")]
TaskTypeOpt = Annotated[
    str | None,
    typer.Option(help=f"Task type of --data: {' | '.join(TASK_TYPES)} (default {DEFAULT_TASK_TYPE})."),
]
