"""Split files: find them in a folder, read them (sharded Parquet too), carve a validation split.

Which columns the rows end up in is the task type's business: a task's data is
loaded by :func:`tuneyard.task_types.data_loading.load_task_data`, which reads a folder
through these functions as its task type's rows and returns a :class:`TaskData`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "val", "dev", "valid"), "test": ("test",)}
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
# A split written in several Parquet files, as the hub writes them: train-00000-of-00003.parquet
SHARD_SUFFIX = "-{index:05d}-of-{count:05d}.parquet"
SHARD_GLOB = "-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].parquet"


def dataset_name(task: str | None, data: str | Path | None) -> str | None:
    """How the yard names a dataset: the task name, else the data folder's name."""
    if task is not None:
        return task
    return Path(str(data)).expanduser().resolve().name if data is not None else None


@dataclass
class TaskData:
    """A task's splits in its task type's columns, and what they are."""

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
            matches = [
                data_dir / f"{alias}{ext}" for ext in FORMATS if (data_dir / f"{alias}{ext}").is_file()
            ] or sorted(data_dir.glob(alias + SHARD_GLOB))  # a sharded split: its first shard
            if matches:
                found[split] = matches[0]
                break
    return found


def read_split(path: Path) -> Dataset:
    """One split file as a ``Dataset``; a malformed, empty or non-UTF-8 file is a :class:`DataError`.

    The error names the file, the first bad line and the fix (:mod:`tuneyard.data.file_errors`).
    """
    from datasets.exceptions import DatasetGenerationError
    from pyarrow import ArrowException

    from tuneyard.data import file_errors

    try:
        dataset = _read_split(path)
    except (ArrowException, DatasetGenerationError, UnicodeDecodeError, ValueError) as exc:
        raise file_errors.unreadable(path, exc) from None
    file_errors.check_contents(path, dataset)
    return dataset


def _read_split(path: Path) -> Dataset:
    """One split file as read by pyarrow (or datasets' JSON builder).

    CSV / TSV, JSON Lines and Parquet are read by pyarrow straight into memory: a
    local file needs no copy in the datasets cache, and skipping its builder saves a
    fifth of a second on every short eval. A ``.json`` file may hold one array, which
    datasets' own JSON builder reads.
    """
    from datasets import Dataset, load_dataset
    from datasets.table import InMemoryTable

    if path.suffix in (".csv", ".tsv"):
        from pyarrow import csv

        delimiter = "\t" if path.suffix == ".tsv" else ","
        options = csv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
        return Dataset(InMemoryTable(csv.read_csv(path, parse_options=options)))
    if path.suffix == ".jsonl":
        from pyarrow import json

        return Dataset(InMemoryTable(json.read_json(path)))
    if path.suffix == ".parquet":
        from pyarrow import concat_tables, parquet

        shards = split_shards(path)
        if len(shards) > 1:
            return Dataset(InMemoryTable(concat_tables([parquet.read_table(shard) for shard in shards])))
        return Dataset(InMemoryTable(parquet.read_table(path)))
    return load_dataset(FORMATS[path.suffix], data_files=str(path), split="train")


def split_shards(path: Path) -> list[Path]:
    """All shards of the split ``path`` is the first shard of (just ``[path]`` for one file).

    A missing shard is an error: a split with a hole in it must not train as if whole.
    """
    stem = path.name.removesuffix(".parquet")
    prefix, _, count = stem.rpartition("-of-")
    if not count.isdigit() or not prefix[-5:].isdigit():
        return [path]
    split = prefix[:-6]
    shards = [
        path.with_name(split + SHARD_SUFFIX.format(index=i, count=int(count))) for i in range(int(count))
    ]
    missing = [shard.name for shard in shards if not shard.is_file()]
    if missing:
        raise DataError(
            f"the {split} split of {path.parent} is missing shard {missing[0]} ({len(missing)} of {count}).",
            "Restore the missing files, or prepare the dataset again.",
        )
    return shards


def read_split_files(data_dir: Path) -> tuple[dict[str, Dataset], dict[str, Path]]:
    """Every split file of a folder, read as it is, and where each came from."""
    if not data_dir.is_dir():
        raise DataError(
            f"data folder {data_dir} does not exist.",
            "Give a folder of split files, or the name of a dataset made by tuneyard prepare.",
        )
    files = find_split_files(data_dir)
    if not files:
        raise DataError(
            f"{data_dir} holds no split files.",
            "Expected train.csv / validation.csv / test.csv (or .jsonl, .json, .parquet, .tsv).",
        )
    return {split: read_split(path) for split, path in files.items()}, files


def carve_validation(train: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split a seeded ``fraction`` of ``train`` off as validation (stratified when possible)."""
    return stratified_split(train, fraction, seed, "label")


def stratified_split(rows: Dataset, size: float | int, seed: int, column: str) -> tuple[Dataset, Dataset]:
    """``(rest, carved)``: ``size`` rows (a count, or a fraction) drawn with ``seed``.

    Each value of ``column`` keeps its share in both parts when ``column`` exists and
    every value has rows enough; otherwise the draw is plain. String labels come back
    as the same strings (stratifying needs them encoded as class ids for a moment).
    """
    if column in rows.column_names:
        try:
            encoded = rows.class_encode_column(column) if rows.features[column].dtype == "string" else rows
            parts = encoded.train_test_split(test_size=size, seed=seed, stratify_by_column=column)
            return _decoded(parts["train"], rows, column), _decoded(parts["test"], rows, column)
        except (ValueError, TypeError):
            pass  # too few rows of some value to stratify
    parts = rows.train_test_split(test_size=size, seed=seed)
    return parts["train"], parts["test"]


def _decoded(part: Dataset, original: Dataset, column: str) -> Dataset:
    """``part`` with ``column`` back in ``original``'s type (class ids -> their names)."""
    encoded = part.features[column]
    if encoded == original.features[column]:
        return part
    return part.map(
        lambda batch: {column: encoded.int2str(batch[column])}, batched=True, features=original.features
    )
