"""A task's rows, read as its task type's: which task type a data folder is, and loading it.

A named task (``--task sst2``) knows its task type. A ``--data`` folder is read as
``--task-type`` when given, else as the task type whose :meth:`DataRole.recognize`
scores its columns highest (a split file's, or those an imagefolder / audiofolder
reads as); two task types scoring the same is an error naming
``--task-type``, and a folder no task type reads goes to the default one, whose
loader says which columns are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.data.loading import TaskData, carve_validation, find_split_files, read_split
from tuneyard.data.prepare import media_folder_columns
from tuneyard.errors import DataError
from tuneyard.task_types import DEFAULT_TASK_TYPE, TASK_TYPES, get_task_type

if TYPE_CHECKING:
    from tuneyard.data.options import ColumnOptions, DataOptions
    from tuneyard.data.tasks import TaskSpec


def folder_task_type(data_dir: Path, columns: ColumnOptions) -> str:
    """The task type whose data role scores a folder's columns highest (see the module): its first
    split file's, or an imagefolder's / audiofolder's (``image``/``audio`` and ``label``)."""
    if not data_dir.is_dir():
        return DEFAULT_TASK_TYPE  # the task type's loader says what is missing
    files = find_split_files(data_dir)
    names = read_split(next(iter(files.values()))).column_names if files else media_folder_columns(data_dir)
    scores = {name: get_task_type(name).data.recognize(names, columns) for name in TASK_TYPES}
    best = max(scores.values(), default=0)
    if best == 0:
        return DEFAULT_TASK_TYPE
    leaders = [name for name, score in scores.items() if score == best]
    if len(leaders) > 1:
        raise DataError(
            f"{data_dir} could be read by several task types ({', '.join(leaders)}): "
            f"its columns are {', '.join(names)}.",
            f"Choose one with --task-type ({' | '.join(leaders)}).",
        )
    return leaders[0]


def named_tasks() -> dict[str, TaskSpec]:
    """Every task ``--task`` can name, from every installed task type (GLUE's, for classification)."""
    return {
        name: spec
        for type_name in TASK_TYPES
        for name, spec in get_task_type(type_name).data.named_tasks().items()
    }


def named_task_names() -> list[str]:
    """The names ``--help`` lists for ``--task``."""
    return list(named_tasks())


def named_task(name: str) -> TaskSpec:
    """The spec of a named task (case-insensitive, ``sst-2`` works too), from the task type that knows it."""
    key = name.lower().replace("-", "").replace("_", "")
    tasks = named_tasks()
    if key not in tasks:
        raise DataError(
            f"unknown task {name!r}.",
            f"Known tasks: {', '.join(sorted(tasks))}; or pass --data DIR for a local dataset.",
        )
    return tasks[key]


def load_task_data(
    task: str | None = None,
    data_dir: str | Path | None = None,
    columns: ColumnOptions | None = None,
    seed: int = 42,
    validation_fraction: float = 0.1,
    require_labels: bool = True,
) -> TaskData:
    """A task's splits from a task name (``task``) or a local folder (``data_dir``).

    The rows come out in the columns of the task's type (a named task knows its own; a
    folder is read as ``columns.task_type``, or as the type its columns show, see
    :func:`folder_task_type`). A local folder without a validation file gets one
    carved from train, seeded; ``TaskData.carved_validation`` says so, for the caller
    to tell the user.
    """
    from datasets import DatasetDict

    from tuneyard.data.options import ColumnOptions

    if (task is None) == (data_dir is None):
        raise DataError("give exactly one of --task NAME or --data DIR.")
    if data_dir is not None:
        columns = columns or ColumnOptions()
        task_type = get_task_type(columns.task_type or folder_task_type(Path(data_dir), columns))
        spec, splits = task_type.data.load_folder(Path(data_dir), columns, require_labels)
        source = str(data_dir)
    else:
        spec = named_task(str(task))
        splits = get_task_type(spec.task_type).data.load_named(spec)
        source = f"{spec.hub_id}/{spec.hub_config}"
    carved = False
    if "train" in splits and spec.eval_split not in splits and "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(splits["train"], validation_fraction, seed)
        carved = True
    return TaskData(spec=spec, splits=DatasetDict(splits), source=source, carved_validation=carved)


def load_data(
    options: DataOptions, seed: int = 42, validation_fraction: float = 0.1, require_labels: bool = True
) -> TaskData:
    """The ``--task`` or ``--data`` of a verb's options, read as its task type's rows."""
    from tuneyard.data.options import ColumnOptions

    return load_task_data(
        task=options.task,
        data_dir=options.data,
        columns=ColumnOptions(**options.column_fields()),
        seed=seed,
        validation_fraction=validation_fraction,
        require_labels=require_labels,
    )
