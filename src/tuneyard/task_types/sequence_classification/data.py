"""Classification rows: ``text``, ``text_pair`` (pair tasks only), ``label`` and ``id``.

Whatever the source, the splits come out in these columns: ``label`` an int class id
(string labels are mapped to ids in sorted order and kept as the spec's label names),
or a float for regression. A folder without labels (``require_labels=False``, for
calibration) gets ``label`` -1.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.data.loading import dataset_name, read_split_files
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions


NAME = "sequence_classification"


def check_columns(split: str, dataset: Dataset, wanted: list[str], path: Path) -> None:
    """Refuse a split file that lacks a column the task needs, listing the ones it has."""
    missing = [column for column in wanted if column not in dataset.column_names]
    if missing:
        raise DataError(
            f"{path} ({split}) has no column {missing[0]!r}.",
            f"Its columns are: {', '.join(dataset.column_names)}. "
            f"Choose them with --text-column / --text-pair-column / --label-column.",
        )


def standardize(dataset: Dataset, spec: TaskSpec, label_ids: dict[str, int] | None) -> Dataset:
    """Rename to text / text_pair / label / id and map string labels to ids."""
    renames = {spec.text_column: "text", spec.label_column: "label"}
    if spec.text_pair_column:
        renames[spec.text_pair_column] = "text_pair"
    keep = set(renames) | {"id"}
    dataset = dataset.remove_columns([c for c in dataset.column_names if c not in keep])
    dataset = dataset.rename_columns({old: new for old, new in renames.items() if old != new})
    if label_ids is not None:
        ids = [label_ids[str(value)] for value in dataset["label"]]
        dataset = dataset.remove_columns("label").add_column("label", ids)
    if "id" not in dataset.column_names:
        dataset = dataset.add_column("id", list(range(len(dataset))))
    return dataset


def label_mapping(raw: dict[str, Dataset], label_column: str) -> tuple[tuple[str, ...], dict[str, int]]:
    """Label names and their ids: integers keep their order, strings are sorted."""
    values = sorted({str(v) for ds in raw.values() for v in ds[label_column]})
    if all(v.lstrip("-").isdigit() for v in values):
        ordered = sorted(values, key=int)
        ids = {v: int(v) for v in ordered}
        if [int(v) for v in ordered] != list(range(len(ordered))):
            ids = {v: i for i, v in enumerate(ordered)}
        return tuple(ordered), ids
    return tuple(values), {v: i for i, v in enumerate(values)}


def load_folder(
    folder: Path, columns: ColumnOptions, require_labels: bool
) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Read ``train`` / ``validation`` / ``test`` files from a folder into classification splits."""
    raw, files = read_split_files(folder)
    label_column = columns.label_column
    has_labels = all(label_column in ds.column_names for ds in raw.values())
    if require_labels and not has_labels:
        first = next(split for split, ds in raw.items() if label_column not in ds.column_names)
        check_columns(first, raw[first], [label_column], files[first])
    wanted = [columns.text_column] + ([columns.text_pair_column] if columns.text_pair_column else [])
    for split, dataset in raw.items():
        check_columns(split, dataset, wanted, files[split])
    label_names, label_ids = label_mapping(raw, label_column) if has_labels else ((), None)
    spec = TaskSpec(
        name=str(dataset_name(None, folder)),
        task_type=NAME,
        text_column=columns.text_column,
        text_pair_column=columns.text_pair_column,
        label_column=label_column,
        label_names=label_names,
    )
    splits = {}
    for split, dataset in raw.items():
        if not has_labels:
            dataset = dataset.add_column(label_column, [-1] * len(dataset))
        splits[split] = standardize(dataset, spec, label_ids)
    return spec, splits


def load_named(spec: TaskSpec) -> dict[str, Dataset]:
    """Download (or read from the HF cache) a named task's splits."""
    from datasets import load_dataset

    try:
        loaded = load_dataset(spec.hub_id, spec.hub_config)
    except Exception as exc:  # datasets raises many types for offline / missing data
        raise DataError(
            f"could not load {spec.hub_id}/{spec.hub_config} for task {spec.name!r}: {exc}",
            "Check the network (or HF_HUB_OFFLINE with a filled cache), or pass --data DIR.",
        ) from exc
    return {split: standardize(ds, spec, None) for split, ds in loaded.items()}
