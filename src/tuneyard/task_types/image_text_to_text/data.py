"""Image-chat rows: ``prompt`` / ``completion`` messages with image parts, their ``images``, a ``reference``.

Three sources, all coming out in the same columns (TRL's conversational
prompt-completion form, every message's content a list of ``{type, text}`` parts, the
row's images in the order their ``{"type": "image"}`` parts appear):

* split files with an ``images`` column (a list per row) and a ``messages`` column whose
  user turns hold ``{"type": "image"}`` parts: what ``tuneyard prepare --task-spec`` writes
  for a task with an image column (the images' bytes in Parquet), and TRL's layout;
* split files with one image per row in ``--image-column`` (default ``image``: embedded,
  or a file path relative to the table or absolute) and the conversation in any text
  chat format ``causal_lm`` reads (``prompt``/``response``, Alpaca, ``messages``...): the
  image goes first in the first user turn;
* an ``imagefolder`` (a folder per label, optionally under train/ validation/ test/), or
  split files with an image and a label column but no chat columns: each image is asked
  ``--image-question`` and the answer is its label's name.

Every image is decoded once here, so an image that cannot be read is refused with its row
before anything trains, as is a row whose image parts and images differ in number.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.data.loading import dataset_name, find_split_files, read_split_files
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError
from tuneyard.task_types.causal_lm.data import GENERATION, chat_shape, split_conversation

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.options import ColumnOptions

NAME = "image_text_to_text"
IMAGES_COLUMN = "images"
COLUMNS_HELP = (
    "Give split files with an 'images' list column and a 'messages' column whose user turns hold "
    "{'type': 'image'} parts (tuneyard prepare writes them), or an image column (--image-column) "
    "with chat columns (prompt/response, messages, ...) or a label column, or an imagefolder."
)

Part = dict[str, Any]
Message = dict[str, Any]


def recognizes(columns: list[str], options: ColumnOptions) -> int:
    """3 for image-chat rows (``images``), 2 for an image column with chat columns or a label, else 0."""
    if IMAGES_COLUMN in columns:
        return 3
    if options.image_column in columns and (
        chat_shape(columns, options) is not None or options.label_column in columns
    ):
        return 2
    return 0


def parts(content: Any) -> list[Part]:
    """A message's content as ``{type, text}`` parts (plain text, or a number, is one text part)."""
    if isinstance(content, str | int | float):
        return [{"type": "text", "text": str(content)}]
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return [
            {"type": "image", "text": None} if part.get("type") == "image" else text_part(part)
            for part in content
        ]
    raise DataError(f"message content {content!r} is neither text nor a list of parts.", COLUMNS_HELP)


def text_part(part: Part) -> Part:
    if part.get("type") != "text":
        raise DataError(
            f"message part {part!r} is neither {{'type': 'text'}} nor {{'type': 'image'}}.", COLUMNS_HELP
        )
    return {"type": "text", "text": str(part.get("text") or "")}


def image_count(messages: list[Message]) -> int:
    return sum(part["type"] == "image" for turn in messages for part in turn["content"])


def decoded_image(image: Any, where: str) -> Any:
    """``image`` (PIL's, ``datasets``' ``{bytes, path}`` or a path) opened and read, or its row refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(image, Image.Image):
            return image
        if isinstance(image, dict):
            source = io.BytesIO(image["bytes"]) if image.get("bytes") else image.get("path")
        else:
            source = image
        opened = Image.open(source)
        opened.load()
        return opened
    except (UnidentifiedImageError, OSError, TypeError, ValueError) as exc:
        raise DataError(
            f"{where}: the image cannot be decoded ({exc}).",
            "Replace or drop the row; images must be files PIL reads (PNG, JPEG, WebP, ...).",
        ) from None


def image_path(value: Any, table: Path, where: str) -> Any:
    """A cell of an image column: embedded as it is, a path made absolute (relative to ``table``)."""
    if isinstance(value, dict) or not isinstance(value, str):
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else table.parent / path
    if not path.is_file():
        raise DataError(
            f"{where}: image file {value!r} does not exist (looked for {path}).",
            "Give paths relative to the table file, or absolute ones.",
        )
    return str(path)


def row_conversation(
    row: dict[str, Any], columns: list[str], options: ColumnOptions, where: str
) -> tuple[list[Message], list[Any]]:
    """One row's messages (content as parts) and its images, before they are checked."""
    if IMAGES_COLUMN in columns:
        turns = row[options.messages_column] if options.messages_column in columns else None
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{where}: no {options.messages_column!r} list of messages.", COLUMNS_HELP)
        messages = [{"role": turn["role"], "content": parts(turn["content"])} for turn in turns]
        return messages, list(row[IMAGES_COLUMN] or [])
    shape = chat_shape(columns, options)
    if shape is not None:
        chat_format, chat_columns = shape
        text = chat_format.messages(row, chat_columns, options, where)
        messages = [{"role": turn["role"], "content": parts(turn["content"])} for turn in text]
    else:
        messages = [
            {"role": "user", "content": parts(options.image_question)},
            {"role": "assistant", "content": parts(str(row[options.label_column]))},
        ]
    first_user = next(turn for turn in messages if turn["role"] == "user")
    first_user["content"].insert(0, {"type": "image", "text": None})
    return messages, [row[options.image_column]]


def image_chat_rows(rows: Dataset, options: ColumnOptions, table: Path, split: str) -> dict[str, list]:
    """A split's rows as ``id`` / ``prompt`` / ``completion`` / ``reference`` / ``images`` columns."""
    from datasets import Image, List

    columns = rows.column_names
    for column in (IMAGES_COLUMN, options.image_column):  # embedded images as their bytes, decoded below
        feature = rows.features.get(column)
        if isinstance(feature, Image):
            rows = rows.cast_column(column, Image(decode=False))
        elif isinstance(getattr(feature, "feature", None), Image):
            rows = rows.cast_column(column, List(Image(decode=False)))
    out: dict[str, list] = {"id": [], "prompt": [], "completion": [], "reference": [], IMAGES_COLUMN: []}
    has_reference = options.reference_column in columns
    for index, row in enumerate(rows):
        where = f"{table} ({split}) row {index}"
        messages, images = row_conversation(row, columns, options, where)
        if image_count(messages) != len(images):
            raise DataError(
                f"{where} has {image_count(messages)} image marker(s) in its messages but "
                f"{len(images)} image(s).",
                "Give one {'type': 'image'} part per image, in the order of the 'images' list.",
            )
        prompt, completion = split_conversation(messages, where)
        answer = "".join(part["text"] or "" for part in completion[0]["content"])
        paths = [image_path(image, table, where) for image in images]
        for image in paths:
            decoded_image(image, where)
        out["id"].append(row.get("id", index))
        out["prompt"].append(prompt)
        out["completion"].append(completion)
        out["reference"].append(str(row[options.reference_column]) if has_reference else answer)
        out[IMAGES_COLUMN].append([{"bytes": None, "path": p} if isinstance(p, str) else p for p in paths])
    return out


def image_files(rows: Dataset) -> list[list[bytes]]:
    """Each row's images as the encoded files they were read from (embedded bytes, or the file's)."""
    from datasets import Image, List

    raw = rows.cast_column(IMAGES_COLUMN, List(Image(decode=False)))
    return [
        [image["bytes"] or Path(image["path"]).read_bytes() for image in row] for row in raw[IMAGES_COLUMN]
    ]


def read_imagefolder(folder: Path) -> dict[str, Dataset]:
    """An imagefolder's splits, read by ``datasets`` (a label per folder)."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    try:
        return dict(load_dataset("imagefolder", data_dir=str(folder)))
    except (ValueError, ImportError, FileNotFoundError, DatasetGenerationError) as exc:
        raise DataError(f"{folder} could not be read as an imagefolder: {exc}", COLUMNS_HELP) from None


def with_label_names(rows: Dataset, column: str) -> Dataset:
    """A ``ClassLabel`` column (an imagefolder's) as its names: the answer a model writes."""
    feature = rows.features.get(column)
    if not hasattr(feature, "int2str"):
        return rows
    names = [feature.int2str(value) for value in rows[column]]
    return rows.remove_columns(column).add_column(column, names)


def load_folder(folder: Path, options: ColumnOptions) -> tuple[TaskSpec, dict[str, Dataset]]:
    """Split files of image-chat rows, or an imagefolder, as image-text-to-text splits."""
    from datasets import Dataset, Features, Image, List

    if find_split_files(folder):
        raw, files = read_split_files(folder)
    else:
        raw, files = read_imagefolder(folder), {}
        options = options.model_copy(update={"image_column": "image"})
    splits = {}
    for split, rows in raw.items():
        table = files.get(split, folder / split)
        if not recognizes(rows.column_names, options):
            raise DataError(
                f"{table} ({split}) holds no image rows: its columns are {', '.join(rows.column_names)}.",
                COLUMNS_HELP,
            )
        rows = with_label_names(rows, options.label_column)
        built = Dataset.from_dict(image_chat_rows(rows, options, table, split))
        features = Features({**built.features, IMAGES_COLUMN: List(Image())})
        splits[split] = built.cast(features)
    spec = TaskSpec(
        name=str(dataset_name(None, folder)),
        task_type=NAME,
        main_metric="loss",
        problem=GENERATION,
        chat_template=options.chat_template_text(),
    )
    return spec, splits
