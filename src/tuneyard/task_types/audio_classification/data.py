"""Audio classification rows: ``audio`` (datasets' ``Audio`` feature), ``label`` and ``id``.

Two sources: a folder of split files with an audio column (``--audio-column``, default
``audio``) and an ``audiofolder`` itself (a folder per label, optionally under train/
validation/ test/). The split files' audio column holds either the audio itself (what
``tuneyard prepare`` writes from an audiofolder: the bytes in Parquet) or file paths, relative
to the split file or absolute (a CSV / JSONL table a user wrote). Labels come out as int
ids in sorted order of their names, whatever the source.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.data.loading import dataset_name, find_split_files, read_split_files
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions

NAME = "audio_classification"
AUDIO_COLUMN = "audio"


def read_audiofolder(folder: Path) -> dict[str, Dataset]:
    """An audiofolder's splits, read by ``datasets`` (decoding is torchcodec's, when rows are read)."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        return dict(load_dataset("audiofolder", data_dir=str(folder)))
    except (ValueError, ImportError, FileNotFoundError, DatasetGenerationError) as exc:
        raise DataError(
            f"{folder} could not be read as an audiofolder: {exc}",
            "Give a folder per label of audio files (optionally under train/ validation/ test/), "
            "or split files with an audio column (tuneyard prepare writes them).",
        ) from None


def label_names_of(raw: dict[str, Dataset], label_column: str) -> tuple[str, ...]:
    """Label names in sorted order: a ``ClassLabel``'s names, else the distinct values as strings."""
    names: set[str] = set()
    for rows in raw.values():
        feature = rows.features[label_column]
        values = feature.names if hasattr(feature, "names") else rows[label_column]
        names |= {str(value) for value in values}
    return tuple(sorted(names))


def label_strings(rows: Dataset, label_column: str) -> list[str]:
    """Each row's label as its name (a ``ClassLabel`` id turned back into its name)."""
    feature = rows.features[label_column]
    values = rows[label_column]
    return [feature.int2str(value) if hasattr(feature, "int2str") else str(value) for value in values]


def standardize(rows: Dataset, label_column: str, label_ids: dict[str, int] | None) -> Dataset:
    """Keep ``audio`` / ``label`` / ``id``; labels as ids of the sorted names (-1 without labels)."""
    labels = (
        [label_ids[name] for name in label_strings(rows, label_column)] if label_ids else [-1] * len(rows)
    )
    keep = {AUDIO_COLUMN, "id"}
    rows = rows.remove_columns([column for column in rows.column_names if column not in keep])
    rows = rows.add_column("label", labels)
    if "id" not in rows.column_names:
        rows = rows.add_column("id", list(range(len(rows))))
    return rows


def audio_paths(rows: Dataset, column: str, table: Path, split: str) -> list[str]:
    """The ``column`` of file paths as absolute paths (a relative one is relative to ``table``'s
    folder); a blank cell or a missing file is refused with its row."""
    found = []
    for index, value in enumerate(rows[column]):
        where = f"{table} ({split}) row {index}"
        if value is None or not str(value).strip():
            raise DataError(f"{where} has no audio path in column {column!r}.", "Fill it in or drop the row.")
        path = Path(str(value)).expanduser()
        path = path if path.is_absolute() else table.parent / path
        if not path.is_file():
            raise DataError(
                f"{where}: audio file {value!r} does not exist (looked for {path}).",
                "Give paths relative to the table file, or absolute ones.",
            )
        found.append(str(path.resolve()))
    return found


def audio_rows(rows: Dataset, column: str, table: Path, split: str) -> Dataset:
    """``rows`` with their audio in an ``audio`` column of datasets' ``Audio`` feature (still
    undecoded): a column of paths becomes that, an embedded one is renamed."""
    from datasets import Audio

    if not isinstance(rows.features[column], Audio):
        paths = audio_paths(rows, column, table, split)
        rows = rows.remove_columns(column).add_column(column, paths).cast_column(column, Audio())
    if column != AUDIO_COLUMN:
        if AUDIO_COLUMN in rows.column_names:
            rows = rows.remove_columns(AUDIO_COLUMN)
        rows = rows.rename_column(column, AUDIO_COLUMN)
    return rows


def load_folder(
    folder: Path, columns: ColumnOptions, require_labels: bool
) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Split files with an audio column (``--audio-column``), or an audiofolder, as audio
    classification splits."""
    if find_split_files(folder):
        raw, files = read_split_files(folder)
        audio_column = columns.audio_column
    else:
        raw = read_audiofolder(folder)
        files = {split: folder for split in raw}
        audio_column = AUDIO_COLUMN  # the column datasets' audiofolder builder names
    label_column = columns.label_column
    for split, rows in raw.items():
        wanted = [audio_column] + ([label_column] if require_labels else [])
        missing = [column for column in wanted if column not in rows.column_names]
        if missing:
            raise DataError(
                f"{files[split]} ({split}) has no column {missing[0]!r}: its columns are "
                f"{', '.join(rows.column_names)}.",
                "Audio rows need an audio column (--audio-column) and a label column (--label-column).",
            )
        raw[split] = audio_rows(rows, audio_column, files[split], split)
    has_labels = all(label_column in rows.column_names for rows in raw.values())
    names = label_names_of(raw, label_column) if has_labels else ()
    label_ids = {name: index for index, name in enumerate(names)} if has_labels else None
    spec = TaskSpec(
        name=str(dataset_name(None, folder)), task_type=NAME, label_column=label_column, label_names=names
    )
    return spec, {split: standardize(rows, label_column, label_ids) for split, rows in raw.items()}


def audio_sources(rows: Dataset) -> list[str]:
    """Each row's audio file name (its path as stored), for the predictions file."""
    from datasets import Audio

    undecoded: list[dict[str, Any]] = rows.cast_column(AUDIO_COLUMN, Audio(decode=False))[AUDIO_COLUMN]
    return [Path(str(item.get("path") or "")).name for item in undecoded]
