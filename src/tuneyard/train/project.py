"""Project-level outputs of a run filed under ``outputs/{project}/`` (``finetune --project P``).

When such a run completes, beside its folder ``outputs/P/{dataset}/{name}/``:

* ``{name}_weights.png``: per-layer norms of what training changed
  (:mod:`tuneyard.components.weight_changes`), from the final weights (``last/``);
* ``{name}_weights.csv``: the numbers that figure draws (``module,layer,norm``), for
  tables and tests;

and the project's ``outputs/P/metrics.csv`` is rebuilt (:mod:`tuneyard.yard.project`).
Each file is written atomically. They are derived views: the run folder and its
manifest stay the truth, and a resumed run that completes again replaces them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.yard.project import project_folder_of, refresh_project_metrics

if TYPE_CHECKING:
    from tuneyard.train.recipe import PreparedFinetune

WEIGHTS_PNG = "{name}_weights.png"
WEIGHTS_CSV = "{name}_weights.csv"


def write_project_outputs(prepared: PreparedFinetune) -> list[Path]:
    """The weight figure, its numbers and the refreshed ``metrics.csv`` of a completed project run.

    Nothing for a run without ``--project`` or filed outside the project's folder
    (``--output-dir``, a grid cell); returns the paths written.
    """
    from tuneyard.components.weight_changes import plot_weight_changes, weight_changes
    from tuneyard.models.layout import layout_of
    from tuneyard.task_types.base import LoadSettings

    plan, options, run = prepared.plan, prepared.options, prepared.run
    project = options.project
    if run is None or project is None or project_folder_of(prepared.yard, run.path, project) is None:
        return []

    def load_base() -> object:
        """The checkpoint the run started from, as its task type loads it (unquantized)."""
        return prepared.task_type.model.load(
            plan.parent,
            prepared.data.spec,
            options.reset_head,
            options.seed,
            LoadSettings(dtype=options.dtype),
        )

    written = []
    # Under FSDP each rank holds a shard of every weight: no whole layer to measure here.
    if not options.trainer.get("fsdp"):
        changes = weight_changes(prepared.model, layout_of(prepared.model), load_base)
        name = run.path.name
        figure = run.path.with_name(WEIGHTS_PNG.format(name=name))
        numbers = run.path.with_name(WEIGHTS_CSV.format(name=name))
        title = f"{name}: what {plan.strategy} training changed, per layer"
        written.append(plot_weight_changes(changes, figure, title))
        prepared.yard.storage.write_text(numbers, changes.csv_text())
        written.append(numbers)
    metrics = refresh_project_metrics(prepared.yard, project)
    return [*written, *([metrics] if metrics else [])]
