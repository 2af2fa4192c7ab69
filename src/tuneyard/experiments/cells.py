"""The fine-tuning grid as cells: the cross product, minus exclusions, each with a stable id.

A cell's id is a hash of its resolved ``FinetuneOptions`` (everything that shapes the
run, not where it is filed), so it is the same on every machine and every rerun, and
changing a field changes the id of exactly the cells that field reaches. The run folder
is ``finetuned_checkpoints/{name}-{id}``: a person reads the name, the grid matches the id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tuneyard.config import format_validation_error
from tuneyard.errors import ConfigError
from tuneyard.experiments.spec import ExperimentSpec, FinetuneGrid
from tuneyard.experiments.starts import CompressedStart, compressed_start, fits
from tuneyard.train.options import FinetuneOptions
from tuneyard.yard.layout import model_display_name, safe_component
from tuneyard.yard.manifest import read_manifest_if_any
from tuneyard.yard.storage import Storage

ID_LENGTH = 10
PLACEMENT_FIELDS = {"output_dir", "name", "project"}  # where a run is filed: not part of its id
# Options added after grids were run, with their defaults: left at them, a cell keeps the id it had.
LATER_FIELDS: dict[str, Any] = {"task_options": {}, "dtype": "auto", "gradient_checkpointing": False}


@dataclass(frozen=True)
class FinetuneCell:
    """One run of the grid."""

    # model, task, compression, strategy, lora_rank, lora_layers, seed (None where it does not apply)
    axes: dict[str, Any]
    options: FinetuneOptions
    id: str
    start: CompressedStart | None = None  # the compressed model it fine-tunes from, if any
    # Whether the grid trains on several tasks: then the name shows the task (a one-task grid's
    # names stay what they were, so its run folders are found again).
    named_task: bool = False

    @property
    def name(self) -> str:
        """``{model}[-{task}][-{compression}]-{strategy}[-r{rank}][-L{layers}]-s{seed}``: read by a person."""
        parts = [model_display_name(self.axes["model"])]
        if self.named_task:
            parts.append(Path(self.axes["task"]).name)
        if self.axes["compression"] is not None:
            parts.append(self.axes["compression"])
        parts.append(self.axes["strategy"])
        if self.axes["lora_rank"] is not None:
            parts.append(f"r{self.axes['lora_rank']}")
        if self.axes["lora_layers"] is not None:
            parts.append(f"L{self.axes['lora_layers']}")
        parts.append(f"s{self.axes['seed']}")
        return safe_component("cell", "-".join(parts))

    def folder(self, checkpoints: Path) -> Path:
        return checkpoints / f"{self.name}-{self.id}"


def expand(spec: ExperimentSpec, prepared: dict[str, str], compressed: Path) -> list[FinetuneCell]:
    """Every cell of ``spec.finetuning`` in order (models, tasks, compressions, strategies, ranks, layers,
    seeds).

    ``prepared``: the folder each task of the file was formatted into (the cells train on
    it); a task not in it is a GLUE name. ``compressed``: where compressed starts are filed.
    """
    grid = spec.finetuning
    if grid is None:
        return []
    cells = []
    for model, (task, source), entry in itertools.product(
        grid.models, training_sources(grid, prepared), grid.compressions
    ):
        start = compressed_start(model, entry, source, compressed) if entry is not None else None
        for strategy, seed in itertools.product(grid.strategies, grid.seeds):
            if not fits(strategy, start):
                continue
            lora = strategy == "lora"
            for rank, layers in itertools.product(
                grid.lora_ranks if lora else [None], grid.lora_layers if lora else [None]
            ):
                axes = {
                    "model": model,
                    "task": task,
                    "compression": start.label if start is not None else None,
                    "strategy": strategy,
                    "lora_rank": rank,
                    "lora_layers": layers,
                    "seed": seed,
                }
                if any(excluded(axes, rule) for rule in grid.exclude):
                    continue
                options = cell_options(grid, axes, source, start)
                cells.append(FinetuneCell(axes, options, cell_id(options, start), start, len(grid.tasks) > 1))
    if not cells:
        raise ConfigError(
            "finetuning: every cell is left out.",
            "Check exclude: (a rule matching every cell), and strategies: against compressions: "
            "(lora applies to uncompressed starts only, lowrank to compressed ones only).",
        )
    return cells


def training_sources(grid: FinetuneGrid, prepared: dict[str, str]) -> list[tuple[str | None, dict[str, str]]]:
    """Each value of the task axis and what its cells train (and starts calibrate) on.

    ``(None, {"data": ...})`` for the grid's own ``data``; per task ``{"data": folder}``
    (a task of the file, prepared), ``{"task": name}`` (a GLUE name) or ``{"data": task}``
    (a data folder or a dataset of the yard).
    """
    from tuneyard.task_types.sequence_classification.glue import GLUE_TASKS

    if grid.data is not None:
        return [(None, {"data": grid.data})]
    sources = []
    for task in grid.tasks:
        source = prepared.get(task) or (None if task.lower() in GLUE_TASKS else task)
        sources.append((task, {"data": source} if source else {"task": task}))
    return sources


def excluded(axes: dict[str, Any], rule: dict[str, Any]) -> bool:
    """Whether every axis the rule names has the rule's value in this cell."""
    return all(axes[key] == value for key, value in rule.items())


def cell_options(
    grid: FinetuneGrid, axes: dict[str, Any], source: dict[str, str], start: CompressedStart | None
) -> FinetuneOptions:
    """The ``tuneyard finetune`` options of one cell; a bad ``options:`` entry names its field."""
    fields: dict[str, Any] = {
        **({"tokenizer": grid.tokenizer_path} if grid.tokenizer_path is not None else {}),
        **grid.options,
        **source,
        "checkpoint": str(start.folder) if start is not None else axes["model"],
        "strategy": axes["strategy"],
        "seed": axes["seed"],
        "epochs": grid.epochs,
        "batch_size": grid.batch_size,
    }
    if grid.learning_rate is not None:
        fields["learning_rate"] = grid.learning_rate
    if axes["lora_rank"] is not None:
        fields["lora"] = {
            **grid.options.get("lora", {}),
            "r": axes["lora_rank"],
            "layers": axes["lora_layers"],
        }
    try:
        return FinetuneOptions.model_validate(fields)
    except ValidationError as exc:
        error = format_validation_error(FinetuneOptions, exc)
        raise ConfigError(f"finetuning: {error.message}", error.hint) from None


def cell_id(options: FinetuneOptions, start: CompressedStart | None = None) -> str:
    """A hash of everything that shapes the run (not where it or its compressed start is filed)."""
    shaping = options.model_dump(mode="json", exclude=PLACEMENT_FIELDS)
    for field, default in LATER_FIELDS.items():
        if shaping.get(field) == default:
            shaping.pop(field)
    if start is not None:
        shaping["checkpoint"] = {"model": start.options.model, "compression": start.id}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:ID_LENGTH]


def cell_state(folder: Path, storage: Storage) -> str:
    """``new``, ``complete``, ``interrupted`` (the manifest still says running) or ``failed``.

    Read through the yard's storage: on shared storage another machine may have run the cell.
    """
    manifest = read_manifest_if_any(folder, storage)
    if manifest is None:
        return "new"
    return {"complete": "complete", "failed": "failed"}.get(manifest.status, "interrupted")
