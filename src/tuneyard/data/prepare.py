"""``tuneyard prepare``: a dataset from a file, a folder or the hub, filed as a ``dataset`` artifact.

Seed 002 starts every experiment by turning a source into the rows it trains on; here
that step leaves a folder a person and a program can find again:
``datasets/{name}/`` with one Parquet file per split, a dataset card (``README.md``:
source, revision, rows and label counts per split, schema, content hash) and a manifest
whose ``metrics`` hold the same figures. ``finetune --data NAME`` and ``eval --data NAME``
then read it by name and record it as the run's ``data`` parent.

The steps, in order: load (``datasets``: a hub id with its config and revision, a
local CSV / TSV / JSON Lines / JSON / Parquet file or split folder, or an imagefolder /
audiofolder: a folder per label, optionally under train/ validation/ test/), rename columns,
sample each split (seeded: ``--num-samples`` or ``--sample-percent``), carve missing
validation / test splits from train (stratified by the label column when there is one),
format (``--task-spec FILE --task NAME``: :mod:`tuneyard.data.formatting`), write.
Nothing is written until every step has passed, and the folder appears whole
(written beside, then renamed).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, model_validator

from tuneyard.config import Cli, StrictModel
from tuneyard.data import file_errors
from tuneyard.data.formatting import TaskFormat, format_rows, load_task_format
from tuneyard.data.loading import FORMATS, SHARD_SUFFIX, find_split_files, read_split, stratified_split
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.yard.root import Yard

SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"})
CARD_FILE = "README.md"
FROM_TASK = "-"  # PrepareOptions.source: the task spec's ``dataset`` entry


class PrepareOptions(StrictModel):
    """Where the rows come from and what to do with them on the way in."""

    source: str = Field(
        default=FROM_TASK, description="A hub dataset id, or a local file or folder (default: the task's)."
    )
    name: str | None = Field(
        default=None, description="The dataset's name in the yard (default: the source's)."
    )
    config: Annotated[str | None, Cli(flag="--subset")] = Field(
        default=None, description="Hub datasets: the configuration (subset)."
    )
    revision: str | None = Field(default=None, description="Hub datasets: a branch, tag or commit.")
    splits: Annotated[list[str] | None, Cli(flag="--split", repeat=True)] = Field(
        default=None, description="Keep only this split of the source (repeat for several)."
    )
    rename: Annotated[dict[str, str], Cli(repeat=True)] = Field(
        default_factory=dict, description="Rename a column: --rename sentence=text (repeat)."
    )
    num_samples: int | None = Field(default=None, gt=0, description="Rows kept per split (seeded).")
    sample_percent: float | None = Field(
        default=None, gt=0, le=100, description="Percent of rows kept per split."
    )
    validation_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="Carve a validation split from train when the source has none."
    )
    test_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="Carve a test split from train when the source has none."
    )
    label_column: str = Field(
        default="label", description="Stratify carved splits by this column, if present."
    )
    task_spec: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="A YAML file of tasks (seed 002's format)."
    )
    task: str | None = Field(default=None, description="Which task of --task-spec formats the rows.")
    experiment: str | None = Field(
        default=None, description="File under experiments/{experiment}/formatted_datasets/{name}."
    )
    max_shard_size: str = Field(
        default="500MB", description="Split a split's Parquet into shards of at most this size."
    )
    seed: int = Field(default=42, description="Seed for sampling and carving.")
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Write here instead of datasets/{name}."
    )

    @model_validator(mode="after")
    def _task_with_spec(self) -> PrepareOptions:
        if self.source == FROM_TASK and self.task_spec is None:
            raise DataError(
                "give a SOURCE: a hub dataset id, or a local file or folder.",
                "Example: tuneyard prepare data/debian_topics --num-samples 300",
            )
        if (self.task_spec is None) != (self.task is None):
            raise DataError(
                "--task-spec and --task go together.",
                "Example: --task-spec tasks.yaml --task sections (the task's entry formats the rows).",
            )
        return self

    @model_validator(mode="after")
    def _one_sample_size(self) -> PrepareOptions:
        if self.num_samples is not None and self.sample_percent is not None:
            raise DataError(
                "give --num-samples or --sample-percent, not both.",
                "--num-samples 1000 keeps 1,000 rows per split; --sample-percent 10 keeps a tenth.",
            )
        return self

    def dataset_name(self) -> str:
        """``--name``, else the task's name, else the source's last path part without its extension."""
        if self.name or self.task:
            return str(self.name or self.task)
        last = self.source.rstrip("/").split("/")[-1]
        return Path(last).stem if Path(last).suffix in FORMATS else last


@dataclass
class PreparedDataset:
    """Where the dataset went, and its figures."""

    path: Path
    rows: dict[str, int]
    content_hash: str
    renamed: bool


def prepare_dataset(options: PrepareOptions, yard: Yard) -> PreparedDataset:
    """Load, reshape and file the dataset of ``options`` (see the module docstring)."""
    from tuneyard.yard.manifest import Manifest

    task = load_task_format(options.task_spec, options.task) if options.task_spec and options.task else None
    options = with_task_defaults(options, task)
    splits, revision = load_source(options)
    splits = {split: rename_columns(rows, options.rename, split) for split, rows in splits.items()}
    splits = {split: sample(rows, options) for split, rows in splits.items()}
    splits = carve_splits(splits, options)
    if task is not None:
        splits = {split: format_rows(rows, task, split) for split, rows in splits.items()}
    target = dataset_target(options, yard)
    stats = statistics(splits, options.label_column)
    manifest = Manifest(
        kind="dataset",
        name=target.name,
        dataset=options.dataset_name(),
        task=options.task,
        project=options.experiment,
        parents=[yard.parent_link(options.source, "source")],
        config=options.model_dump(mode="json") | ({"format": task.model_dump()} if task else {}),
        metrics=stats,
    )
    with yard.create(manifest, target) as writer:
        digest = write_splits(splits, writer.path, options.max_shard_size)
        manifest.metrics["content_hash"] = digest
        write_card(writer.path / CARD_FILE, options, revision, stats | {"content_hash": digest})
    return PreparedDataset(
        writer.final_path, stats["rows"], digest, writer.final_path != writer.requested_path
    )


def dataset_target(options: PrepareOptions, yard: Yard) -> Path:
    """``datasets/{name}``, or ``experiments/{experiment}/formatted_datasets/{name}`` in an experiment."""
    name = options.dataset_name()
    if options.experiment is None:
        return yard.target_path("dataset", output_dir=options.output_dir, name=name)
    return yard.target_path(
        "formatted_dataset", output_dir=options.output_dir, experiment=options.experiment, name=name
    )


def dataset_folder(reference: str, yard: Yard) -> Path:
    """A ``--data`` value as a folder: an existing path, else the yard's dataset of that name.

    The name is looked up in ``datasets/`` first, then in the index (which also knows the
    datasets filed inside experiments).
    """
    path = Path(reference).expanduser()
    if path.exists() or "/" in reference:
        return path.resolve() if path.exists() else path
    named = yard.target_path("dataset", name=reference)
    if named.is_dir():
        return named
    indexed = indexed_dataset(reference, yard)
    return indexed if indexed is not None else path


def indexed_dataset(name: str, yard: Yard) -> Path | None:
    """The folder of the one ``dataset`` artifact of the index named ``name`` (None: none, or no index)."""
    if not yard.has_index:
        return None
    rows = [row for row in yard.index.find(name) if row["manifest"]["kind"] == "dataset"]
    return yard.absolute(rows[0]["path"]) if len(rows) == 1 else None


def data_parents(data: str | None, yard: Yard) -> list[Any]:
    """A ``data`` parent link when ``data`` is a dataset artifact of the yard (none otherwise)."""
    from tuneyard.yard.lineage import read_record

    if data is None or not Path(data).is_dir():
        return []
    record = read_record(yard, Path(data))
    return [yard.parent_link(data, "data")] if record is not None and record["kind"] == "dataset" else []


def with_task_defaults(options: PrepareOptions, task: TaskFormat | None) -> PrepareOptions:
    """The task entry's ``dataset`` and ``sample_percent`` (a fraction there, a percent here) where the
    options give none."""
    if task is None:
        return options
    update: dict[str, Any] = {}
    if options.source == FROM_TASK:
        if task.dataset is None:
            raise DataError(f"give a SOURCE: task {options.task!r} names no dataset.")
        update["source"] = task.dataset
    if task.sample_percent and not (options.num_samples or options.sample_percent):
        update["sample_percent"] = task.sample_percent * 100
    return options.model_copy(update=update)


def load_source(options: PrepareOptions) -> tuple[dict[str, Dataset], str | None]:
    """The source's splits and, for a hub dataset, the revision asked for (None: local files)."""
    path = Path(options.source).expanduser()
    if path.is_file():
        if path.suffix not in FORMATS:
            raise DataError(
                f"{path} is not a file tuneyard reads.",
                f"Give a {', '.join(FORMATS)} file, or a folder of them.",
            )
        splits = {"train": read_split(path)}
    elif path.is_dir():
        splits = read_folder(path)
    elif path.is_absolute() or options.source.startswith("."):
        raise DataError(f"{path} does not exist.", "Give an existing file or folder, or a hub dataset id.")
    else:
        return load_hub(options)
    return keep_splits(splits, options), None


def read_folder(path: Path) -> dict[str, Dataset]:
    """Split files, or an ``imagefolder`` / ``audiofolder`` (a folder per label, optionally per split)."""
    files = find_split_files(path)
    if files:
        return {split: read_split(file) for split, file in files.items()}
    builder = media_builder(path)
    if builder is None:
        raise DataError(
            f"{path} holds no split files and no images or audio.",
            "Expected train.csv / validation.csv / test.csv (or .jsonl, .json, .parquet, .tsv), or a "
            "folder per label of images (an imagefolder) or audio files (an audiofolder).",
        )
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        loaded = load_dataset(builder, data_dir=str(path))
    except (ValueError, ImportError, DatasetGenerationError) as exc:
        cause = file_errors.root_cause(exc)
        hint = (
            "Audio goes through torchcodec, which needs FFmpeg's shared libraries (4 to 7): "
            "apt-get install ffmpeg (Debian, Ubuntu) or brew install ffmpeg."
            if "torchcodec" in str(cause)
            else None
        )
        raise DataError(f"{path} could not be read as an {builder}: {cause}", hint) from None
    return dict(loaded)


# The column each of datasets' folder builders stores its media in (beside ``label``).
MEDIA_COLUMNS = {"imagefolder": "image", "audiofolder": "audio"}


def media_builder(path: Path) -> str | None:
    """``imagefolder`` or ``audiofolder`` when the folder's files are images or audio (else None)."""
    suffixes = {file.suffix.lower() for file in path.rglob("*") if file.is_file()}
    if suffixes & IMAGE_SUFFIXES:
        return "imagefolder"
    if suffixes & AUDIO_SUFFIXES:
        return "audiofolder"
    return None


def media_folder_columns(path: Path) -> list[str]:
    """The columns an imagefolder or audiofolder reads as (``image``/``audio`` and ``label``), without
    reading it; none for a folder of neither (which task type a folder is, before loading it)."""
    builder = media_builder(path)
    return [MEDIA_COLUMNS[builder], "label"] if builder else []


def load_hub(options: PrepareOptions) -> tuple[dict[str, Dataset], str | None]:
    """A hub dataset through ``datasets`` (its cache serves it offline), with the revision it used."""
    from datasets import load_dataset

    try:
        loaded = load_dataset(options.source, options.config, revision=options.revision)
    except (FileNotFoundError, ConnectionError, ValueError) as exc:
        raise DataError(
            f"could not load the hub dataset {options.source!r}"
            f"{f' ({options.config})' if options.config else ''}: {str(exc).splitlines()[0]}",
            "Check the id and --config; offline (HF_HUB_OFFLINE=1) only datasets already in the "
            "datasets cache load.",
        ) from None
    splits = {
        ("validation" if name in ("val", "valid", "dev") else name): rows for name, rows in loaded.items()
    }
    return keep_splits(splits, options), options.revision or "the default branch, as cached"


def keep_splits(splits: dict[str, Dataset], options: PrepareOptions) -> dict[str, Dataset]:
    """Only ``--splits``, each of which must exist."""
    if options.splits is None:
        return splits
    missing = [split for split in options.splits if split not in splits]
    if missing:
        raise DataError(f"{options.source} has no split {missing[0]!r}.", f"Its splits: {', '.join(splits)}.")
    return {split: splits[split] for split in options.splits}


def rename_columns(rows: Dataset, rename: dict[str, str], split: str) -> Dataset:
    """``rows`` with ``rename``'s columns renamed; a column it lacks is an error naming the columns."""
    missing = [old for old in rename if old not in rows.column_names]
    if missing:
        raise DataError(
            f"--rename {missing[0]}=...: the {split} split has no column {missing[0]!r}.",
            f"Its columns: {', '.join(rows.column_names)}.",
        )
    return rows.rename_columns(rename) if rename else rows


def sample(rows: Dataset, options: PrepareOptions) -> Dataset:
    """A seeded subset: ``--num-samples`` rows, or ``--sample-percent`` of them (at least one)."""
    if options.num_samples is None and options.sample_percent is None:
        return rows
    count = options.num_samples or max(1, round(len(rows) * (options.sample_percent or 100) / 100))
    if count >= len(rows):
        return rows
    return rows.shuffle(seed=options.seed).select(range(count))


def carve_splits(splits: dict[str, Dataset], options: PrepareOptions) -> dict[str, Dataset]:
    """Validation and test carved from train where asked and absent, stratified by the label if any.

    Both fractions are of the rows train had before carving (0.1 and 0.2: a tenth and a fifth).
    """
    whole = len(splits["train"]) if "train" in splits else 0
    for split, fraction in (("test", options.test_fraction), ("validation", options.validation_fraction)):
        if fraction is None or split in splits:
            continue
        if "train" not in splits:
            raise DataError(f"there is no train split to carve a {split} split from.")
        count = max(1, math.ceil(fraction * whole))
        if count >= len(splits["train"]):
            raise DataError(
                f"carving {count} {split} rows would leave train empty.", "Use smaller fractions."
            )
        splits["train"], splits[split] = stratified_split(
            splits["train"], count, options.seed, options.label_column
        )
    order = (*SPLITS, *sorted(set(splits) - set(SPLITS)))
    return {split: splits[split] for split in order if split in splits}


def statistics(splits: dict[str, Dataset], label_column: str) -> dict[str, Any]:
    """Rows per split, label counts per split, and the schema, for the card and the manifest."""
    stats: dict[str, Any] = {
        "rows": {split: len(rows) for split, rows in splits.items()},
        "schema": {name: str(feature) for name, feature in next(iter(splits.values())).features.items()},
    }
    labels = {
        split: _counts(label_names(rows, label_column))
        for split, rows in splits.items()
        if label_column in rows.column_names
    }
    if labels:
        stats["labels"] = labels
    return stats


def label_names(rows: Dataset, column: str) -> list[Any]:
    """The column's values, class ids shown as their names (an imagefolder's labels)."""
    feature = rows.features[column]
    values = list(rows[column])
    return [feature.int2str(value) for value in values] if hasattr(feature, "int2str") else values


def _counts(values: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items()))


def write_splits(splits: dict[str, Dataset], folder: Path, max_shard_size: str = "500MB") -> str:
    """``{split}.parquet`` per split, or shards ``{split}-00000-of-0000N.parquet`` past
    ``max_shard_size`` (of Arrow data, as ``push_to_hub`` counts it); returns the sha256
    over the files, in split and shard order.

    Images and audio are written into the files (not as paths to the source's files), so
    the dataset stands on its own, as ``push_to_hub`` makes it.
    """
    from datasets.utils.py_utils import convert_file_size_to_int

    limit = convert_file_size_to_int(max_shard_size)
    digest = hashlib.sha256()
    for split, rows in splits.items():
        rows = embedded(rows)
        count = min(max(1, math.ceil(rows.data.nbytes / limit)), max(1, len(rows)))
        for index in range(count):
            name = f"{split}.parquet" if count == 1 else split + SHARD_SUFFIX.format(index=index, count=count)
            shard = rows if count == 1 else rows.shard(count, index, contiguous=True)
            shard.to_parquet(str(folder / name))
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return digest.hexdigest()


def embedded(rows: Dataset) -> Dataset:
    """``rows`` with the bytes of any image or audio file they point to stored in the table."""
    from datasets.features.features import require_storage_embed
    from datasets.table import embed_table_storage

    if not any(require_storage_embed(feature) for feature in rows.features.values()):
        return rows
    arrow = rows.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
    return arrow.with_format(**rows.format)


def write_card(path: Path, options: PrepareOptions, revision: str | None, stats: dict[str, Any]) -> None:
    """The dataset card: what a person needs to know before training on these rows."""
    lines = [
        f"# {options.dataset_name()}",
        "",
        f"- source: `{options.source}`" + (f" (config `{options.config}`)" if options.config else ""),
        f"- revision: `{revision}`" if revision else "- revision: local files",
        f"- content hash (sha256 of the Parquet files): `{stats['content_hash']}`",
        f"- prepared with: {describe(options)}",
        "",
        "| split | rows |" + (" labels |" if "labels" in stats else ""),
        "|---|---:|" + ("---|" if "labels" in stats else ""),
    ]
    for split, count in stats["rows"].items():
        labels = stats.get("labels", {}).get(split)
        shown = ", ".join(f"{label}: {n}" for label, n in labels.items()) if labels else ""
        lines.append(f"| {split} | {count} |" + (f" {shown} |" if "labels" in stats else ""))
    lines += ["", "| column | type |", "|---|---|"]
    lines += [f"| {name} | `{kind}` |" for name, kind in stats["schema"].items()]
    path.write_text("\n".join(lines) + "\n")


def describe(options: PrepareOptions) -> str:
    """The options that changed the rows, in words."""
    steps = [f"rename {old} -> {new}" for old, new in options.rename.items()]
    if options.num_samples:
        steps.append(f"{options.num_samples} rows per split")
    if options.sample_percent:
        steps.append(f"{options.sample_percent:g}% of each split")
    for split, fraction in (("validation", options.validation_fraction), ("test", options.test_fraction)):
        if fraction:
            steps.append(f"{split} carved from train ({fraction:g}, stratified by {options.label_column})")
    return (", ".join(steps) or "the rows as they are") + f"; seed {options.seed}"
