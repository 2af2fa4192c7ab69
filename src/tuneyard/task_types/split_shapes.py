"""A data folder read split by split, each split's columns saying which shape of rows it holds.

The causal LM (chat rows or plain text) and preference (pairs or KTO's unpaired rows)
task types read a folder the same way: every split file becomes rows of the one shape its
columns fit, every split must hold the same shape, and that shape is the folder's
``problem``. The task type says how a split is read; this module does the rest once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.data.loading import dataset_name, read_split_files
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions

# (a split as read from its file, the file, the split's name) -> (its rows in the task type's
# columns, the shape they are in); a split that fits no shape is refused by the reader.
SplitReader = Callable[["Dataset", Path, str], tuple[dict[str, list[Any]], str]]


def load_shaped_folder(
    folder: Path,
    options: ColumnOptions,
    task_type: str,
    read: SplitReader,
    shape_words: Mapping[str, str],
) -> tuple[TaskSpec, dict[str, Dataset]]:
    """The folder's splits read by ``read``, and its spec; splits of different shapes are refused.

    ``shape_words`` names each shape for the user (``{"generation": "chat rows", ...}``).
    """
    from datasets import Dataset

    raw, files = read_split_files(folder)
    splits, shapes = {}, set()
    for split, dataset in raw.items():
        rows, shape = read(dataset, files[split], split)
        splits[split] = Dataset.from_dict(rows)
        shapes.add(shape)
    if len(shapes) > 1:
        found = [shape_words[shape] for shape in sorted(shapes)]
        raise DataError(
            f"{folder} mixes {' and '.join(found)} across its splits.",
            f"Give every split the same columns: all {', or all '.join(found)}.",
        )
    spec = TaskSpec(
        name=str(dataset_name(None, folder)),
        task_type=task_type,
        main_metric="loss",
        problem=shapes.pop(),
        chat_template=options.chat_template_text(),
    )
    return spec, splits
