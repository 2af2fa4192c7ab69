"""Load a task's splits, from the hub (GLUE names) or a local folder, in one shape.

Whatever the source, :func:`load_task_data` returns splits with the columns ``text``,
``text_pair`` (pair tasks only), ``label`` (int class id, or float for regression)
and ``id``, plus the :class:`TaskSpec` that names labels and the main metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.data.tasks import TaskSpec, glue_task
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "val", "dev", "valid"), "test": ("test",)}
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}



def dataset_name(task: str | None, data: str | Path | None) -> str | None:
    """How the yard names a dataset: the GLUE task name, else the data folder's name."""
    if task is not None:
        return task
    return Path(str(data)).expanduser().resolve().name if data is not None else None

@dataclass
class TaskData:
    """A task's splits in tuneyard's column shape, and what they are."""

    spec: TaskSpec
    splits: DatasetDict
    source: str
    carved_validation: bool = False

    def split(self, name: str) -> Dataset:
        """One split by name (``validation`` finds the task's own eval split)."""
        key = self.spec.eval_split if name == "validation" and name not in self.splits else name
        if key not in self.splits:
            raise DataError(
                f"{self.source} has no {name!r} split.", f"Available splits: {', '.join(self.splits)}."
            )
        return self.splits[key]


def find_split_files(data_dir: Path) -> dict[str, Path]:
    """``train`` / ``validation`` / ``test`` files in ``data_dir`` (any supported format)."""
    found: dict[str, Path] = {}
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            matches = [data_dir / f"{alias}{ext}" for ext in FORMATS if (data_dir / f"{alias}{ext}").is_file()]
            if matches:
                found[split] = matches[0]
                break
    return found


def _read_split(path: Path) -> Dataset:
    from datasets import load_dataset

    options = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
    return load_dataset(FORMATS[path.suffix], data_files=str(path), split="train", **options)


def _check_columns(split: str, dataset: Dataset, wanted: list[str], path: Path) -> None:
    missing = [column for column in wanted if column not in dataset.column_names]
    if missing:
        raise DataError(
            f"{path} ({split}) has no column {missing[0]!r}.",
            f"Its columns are: {', '.join(dataset.column_names)}. "
            f"Choose them with --text-column / --text-pair-column / --label-column.",
        )


def _standardize(dataset: Dataset, spec: TaskSpec, label_ids: dict[str, int] | None) -> Dataset:
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


def load_local_data(
    data_dir: Path,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    require_labels: bool = True,
) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Read ``train`` / ``validation`` / ``test`` files from a folder into standard splits."""
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist.")
    files = find_split_files(data_dir)
    if "train" not in files and "test" not in files and "validation" not in files:
        raise DataError(
            f"{data_dir} holds no split files.",
            "Expected train.csv / validation.csv / test.csv (or .jsonl, .json, .parquet, .tsv).",
        )
    raw = {split: _read_split(path) for split, path in files.items()}
    has_labels = all(label_column in ds.column_names for ds in raw.values())
    if require_labels and not has_labels:
        first = next(split for split, ds in raw.items() if label_column not in ds.column_names)
        _check_columns(first, raw[first], [label_column], files[first])
    wanted = [text_column] + ([text_pair_column] if text_pair_column else [])
    for split, dataset in raw.items():
        _check_columns(split, dataset, wanted, files[split])
    label_ids = None
    label_names: tuple[str, ...] = ()
    if has_labels:
        values = sorted({str(v) for ds in raw.values() for v in ds[label_column]})
        numeric = all(v.lstrip("-").isdigit() for v in values)
        if numeric:
            ordered = sorted(values, key=int)
            label_names = tuple(ordered)
            label_ids = {v: int(v) for v in ordered}
            if [int(v) for v in ordered] != list(range(len(ordered))):
                label_ids = {v: i for i, v in enumerate(ordered)}
        else:
            label_names = tuple(values)
            label_ids = {v: i for i, v in enumerate(values)}
    spec = TaskSpec(
        name=str(dataset_name(None, data_dir)),
        text_column=text_column,
        text_pair_column=text_pair_column,
        label_column=label_column,
        label_names=label_names,
    )
    splits = {}
    for split, dataset in raw.items():
        if not has_labels:
            dataset = dataset.add_column(label_column, [-1] * len(dataset))
        splits[split] = _standardize(dataset, spec, label_ids if has_labels else None)
    return spec, splits


def load_hub_task(spec: TaskSpec) -> dict[str, Dataset]:
    """Download (or read from the HF cache) a hub task's splits."""
    from datasets import load_dataset

    try:
        loaded = load_dataset(spec.hub_id, spec.hub_config)
    except Exception as exc:  # datasets raises many types for offline / missing data
        raise DataError(
            f"could not load {spec.hub_id}/{spec.hub_config} for task {spec.name!r}: {exc}",
            "Check the network (or HF_HUB_OFFLINE with a filled cache), or pass --data DIR.",
        ) from exc
    return {split: _standardize(ds, spec, None) for split, ds in loaded.items()}


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split a seeded ``fraction`` of ``train`` off as validation (stratified when possible)."""
    try:
        parts = train.class_encode_column("label").train_test_split(
            test_size=fraction, seed=seed, stratify_by_column="label"
        )
        parts = {k: v.cast_column("label", train.features["label"]) for k, v in parts.items()}
    except (ValueError, TypeError):
        parts = train.train_test_split(test_size=fraction, seed=seed)
    return parts["train"], parts["test"]


def load_task_data(
    task: str | None = None,
    data_dir: str | Path | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    seed: int = 42,
    validation_fraction: float = 0.1,
    require_labels: bool = True,
) -> TaskData:
    """A task's splits from a GLUE name (``task``) or a local folder (``data_dir``).

    A local folder without a validation file gets one carved from train, seeded;
    ``TaskData.carved_validation`` says so, for the caller to tell the user.
    """
    from datasets import DatasetDict

    if (task is None) == (data_dir is None):
        raise DataError("give exactly one of --task NAME or --data DIR.")
    if data_dir is not None:
        spec, splits = load_local_data(Path(data_dir), text_column, text_pair_column, label_column, require_labels)
        source = str(data_dir)
    else:
        spec = glue_task(str(task))
        splits = load_hub_task(spec)
        source = f"{spec.hub_id}/{spec.hub_config}"
    carved = False
    if "train" in splits and spec.eval_split not in splits and "validation" not in splits:
        splits["train"], splits["validation"] = carve_validation(splits["train"], validation_fraction, seed)
        carved = True
    return TaskData(spec=spec, splits=DatasetDict(splits), source=source, carved_validation=carved)
