"""Compressed starts: a grid axis of compressions each cell may fine-tune from.

``finetuning.compressions: [null, {method: whiten, ratio: 0.5}]``: ``null`` is the model as
it is; an entry is ``tuneyard compress`` options (method, ratio or rank, calib_samples,
...) applied to each model of the grid, calibrated on the grid's data. Each start is
compressed once, by the driver before any cell runs (so cells that share it never race
to write it), into ``experiments/{exp}/compressed/{model}-{label}-{id}/``, and every cell
on it fine-tunes from that folder. The start's id, a hash of its resolved options, takes
the folder's place in its cells' ids, so ids stay the same wherever the yard lives.
Like ``lora_ranks`` (lora cells only), the strategies pair with the starts they apply to:
``lora`` with uncompressed ones, ``lowrank`` (the factors) with compressed ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tuneyard.config import format_validation_error
from tuneyard.errors import ConfigError
from tuneyard.yard.layout import model_display_name, safe_component
from tuneyard.yard.manifest import MANIFEST_FILE

if TYPE_CHECKING:
    from tuneyard.compress.options import CompressOptions
    from tuneyard.yard.root import Yard
    from tuneyard.yard.storage import Storage

COMPRESSED = "compressed"  # experiments/{exp}/compressed/: the grid's compressed starts
ID_LENGTH = 10
# Fields a compressions entry may not set: the grid decides what is compressed, on what, and where.
GRID_FIELDS = ("model", "data", "task", "output_dir")
# Strategies that do not apply to a start: LoRA on layers already low-rank, lowrank without factors.
UNFIT = {True: "lora", False: "lowrank"}  # keyed by: is the start compressed


@dataclass(frozen=True)
class CompressedStart:
    """One model compressed one way: the folder its cells fine-tune from."""

    label: str  # "whiten-0.5", "standard-r64": the axis value in names, exclude rules and metrics.csv
    id: str
    options: CompressOptions  # output_dir is the start's folder

    @property
    def folder(self) -> Path:
        return Path(str(self.options.output_dir))

    def is_compressed(self, storage: Storage) -> bool:
        """Whether its folder holds the compression (published whole, manifest last, or not at all)."""
        return any(entry.name == MANIFEST_FILE for entry in storage.list(self.folder))


def fits(strategy: str, start: CompressedStart | None) -> bool:
    """Whether ``strategy`` applies to the start (the grid leaves the pairs that do not out)."""
    return UNFIT[start is not None] != strategy


def start_label(options: CompressOptions) -> str:
    """``{method}-{ratio}`` or ``{method}-r{rank}``: how a person tells the starts apart."""
    if options.rank is not None:
        rank = str(options.rank).replace("=", "").replace(",", "_")
        return safe_component("compression", f"{options.method}-r{rank}")
    return safe_component("compression", f"{options.method}-{options.ratio}")


def compressed_start(model: str, entry: dict[str, Any], data: dict[str, Any], root: Path) -> CompressedStart:
    """``model`` compressed as ``entry`` says, calibrated on ``data`` (the grid's data or task)."""
    from tuneyard.compress.options import CompressOptions

    grid_set = [name for name in GRID_FIELDS if name in entry]
    if grid_set:
        raise ConfigError(
            f"finetuning.compressions: an entry sets {grid_set[0]!r}, which the grid decides.",
            "Give method and ratio (or rank), and any other tuneyard compress option.",
        )
    try:
        options = CompressOptions.model_validate({**entry, "model": model, **data})
    except ValidationError as exc:
        error = format_validation_error(CompressOptions, exc)
        raise ConfigError(f"finetuning.compressions: {error.message}", error.hint) from None
    shaping = options.model_dump(mode="json", exclude={"output_dir"})
    identity = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:ID_LENGTH]
    label = start_label(options)
    folder = root / f"{model_display_name(model)}-{label}-{identity}"
    return CompressedStart(label, identity, options.model_copy(update={"output_dir": str(folder)}))


def compress_starts(
    starts: list[CompressedStart], yard: Yard, on_start: Callable[[CompressedStart], None] | None = None
) -> None:
    """Compress each start not compressed yet (each once, however many cells share it).

    A start compressed earlier, maybe on another machine sharing the yard, is made present
    here: the cells left to run load it.
    """
    from tuneyard.compress.compressor import compress_model

    for start in {start.id: start for start in starts}.values():
        if start.is_compressed(yard.storage):
            yard.storage.localize(start.folder)
            continue
        if start.folder.exists() or yard.storage.list(start.folder):
            raise ConfigError(
                f"{yard.relative(start.folder)} exists but holds no compressed model (no manifest.json).",
                "Move that folder away and run the grid again.",
            )
        compress_model(start.options, yard)
        if on_start is not None:
            on_start(start)
