"""``tuneyard report PATH``: every plot that fits a run, a model, a grid or a project.

What gets drawn depends on what ``PATH`` holds:

* a run (``training_log.csv``) — ``{name}_training_curves.png``;
* a model, a compressed model or a run with ``best/`` — ``{name}_weights.png``
  (only when ``PATH`` itself is the model or run: a project would load every model);
* an ``eval_grid_results.json`` — ``{name}_eval_grid_heatmap.png``;
* two or more artifacts with metrics (a project folder) — the curves of each run and
  ``comparison_{metric}.png``.

The plots go to ``PATH/report/`` (or ``--output-dir``), published as a whole and
atomically. An earlier report there is replaced only with ``force`` (``--force``), and a
folder holding anything but an earlier report's PNGs never is.

In a yard on shared storage ``PATH`` may be another machine's: what a report reads
(manifests, training logs, grid results, an earlier report; the whole model only when
``PATH`` is one) is downloaded into the working copy first, and the report is uploaded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tuneyard.errors import ModelError, TuneyardError
from tuneyard.report.curves import LOG_FILE
from tuneyard.yard.index import flatten_metrics
from tuneyard.yard.manifest import MANIFEST_FILE, Manifest, read_manifest
from tuneyard.yard.root import Yard
from tuneyard.yard.storage import LOCAL, Storage
from tuneyard.yard.writer import refuse_to_replace, replace_folder

REPORT_FOLDER = "report"
GRID_FILE = "eval_grid_results.json"
SKIPPED_FOLDERS = {REPORT_FOLDER, "evaluation_results", "tensorboard"}
# The files a report reads besides a model's weights: what is fetched from shared storage.
READ_FILES = {
    MANIFEST_FILE,
    LOG_FILE,
    GRID_FILE,
    "config.json",
    "adapter_config.json",
    "compression_info.json",
}


@dataclass
class Report:
    """The report folder and what went into it (plus what could not be drawn, and why)."""

    folder: Path
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def find_artifacts(top: Path, storage: Storage = LOCAL) -> list[tuple[Path, Manifest]]:
    """Outermost artifact folders at or below ``top`` (a run's ``best/`` belongs to the run)."""
    found: list[tuple[Path, Manifest]] = []
    for manifest_file in sorted(top.rglob(MANIFEST_FILE), key=lambda path: (len(path.parts), path)):
        folder = manifest_file.parent
        relative = folder.relative_to(top)
        if any(part.startswith(".") or part in SKIPPED_FOLDERS for part in relative.parts):
            continue
        if any(folder.is_relative_to(outer) for outer, _ in found):
            continue
        found.append((folder, read_manifest(folder, storage)))
    return found


def choose_metric(artifacts: list[tuple[Path, Manifest]], requested: str | None) -> str | None:
    """``--metric`` if given, else the flattened key most artifacts share (accuracy keys first)."""
    counts = Counter(key for _, manifest in artifacts for key in flatten_metrics(manifest.metrics))
    if requested is not None:
        if requested not in counts:
            raise TuneyardError(
                f"no artifact under the report path has metric {requested!r}.",
                f"Metrics found: {', '.join(sorted(counts)[:20]) or '(none)'}.",
            )
        return requested
    if not counts:
        return None
    return max(counts, key=lambda key: (counts[key], key.endswith(".accuracy"), key))


def _weights_plot(model_path: Path, target: Path, base: Path | None, report: Report) -> None:
    """Load the model (and its base, for a compressed one) and draw its weight analysis."""
    from tuneyard.models.compressed_folder import is_compressed_folder, read_compression_info
    from tuneyard.models.layout import layout_of
    from tuneyard.models.loading import resolve_model_folder
    from tuneyard.report.weights import analyse_weights, plot_weights
    from tuneyard.task_types.model_loading import load

    folder = resolve_model_folder(model_path)
    model = load(folder)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layout = layout_of(inner)
    layers = analyse_weights(inner, layout)
    base_layers = None
    if is_compressed_folder(folder):
        base_path = base or Path(read_compression_info(folder).base_model).expanduser()
        if base_path.is_dir():
            base_layers = analyse_weights(load(base_path), layout)
        else:
            report.notes.append(
                f"base model {base_path} is not a local folder: energy kept not plotted (pass --base DIR)."
            )
    title = f"{target.name.removesuffix('_weights.png')}: weights ({layout.arch})"
    report.plots.append(plot_weights(layers, base_layers, target, title))


def _grid_plot(grid_file: Path, target: Path, report: Report) -> None:
    from tuneyard.evaluate.transfer_grid import draw_grid_heatmap

    drawn = draw_grid_heatmap(json.loads(grid_file.read_text()), target)
    if drawn is None:
        report.notes.append(f"{grid_file} has no complete cell to draw.")
    else:
        report.plots.append(drawn)


def _comparison_plot(
    artifacts: list[tuple[Path, Manifest]], metric: str | None, folder: Path, report: Report
) -> None:
    from tuneyard.report.comparison import plot_metric_comparison

    chosen = choose_metric(artifacts, metric)
    scored = [(m.name, flatten_metrics(m.metrics).get(chosen)) for _, m in artifacts] if chosen else []
    scored = [(name, value) for name, value in scored if value is not None]
    if len(scored) < 2:
        report.notes.append("fewer than two runs share a metric: no comparison chart.")
        return
    names = [name for name, _ in scored]
    labels = [f"{name} ({i + 1})" if names.count(name) > 1 else name for i, name in enumerate(names)]
    target = folder / f"comparison_{chosen}.png"
    report.plots.append(plot_metric_comparison(labels, [v for _, v in scored], str(chosen), target))


def refuse_foreign_folder(folder: Path) -> None:
    """A report replaces its folder: only allow that for an earlier report (PNG files only)."""
    if folder.is_dir() and any(not p.is_file() or p.suffix != ".png" for p in folder.iterdir()):
        raise TuneyardError(
            f"{folder} holds files other than an earlier report's PNGs; the report would replace them.",
            "Choose an empty or new --output-dir.",
        )


def is_report_input(relative: str) -> bool:
    """Whether a file (its path under the report's folder) is one a report reads, weights aside."""
    posix = PurePosixPath(relative)
    return posix.name in READ_FILES or posix.parts[0] == REPORT_FOLDER


def report_folder_here(path: str | Path, yard: Yard) -> Path:
    """``path`` on this machine with what a report of it reads (see the module docstring)."""
    from tuneyard.models.loading import resolve_model_folder

    top = yard.localize(Path(path).expanduser(), only=is_report_input)
    if yard.storage.is_remote:
        try:
            yard.storage.localize(resolve_model_folder(top))
        except ModelError:
            pass  # not a model: its weights are not drawn
    return top


def build_report(
    path: str | Path,
    output_dir: str | Path | None = None,
    metric: str | None = None,
    base: str | Path | None = None,
    force: bool = False,
    yard: Yard | None = None,
) -> Report:
    """Draw every plot that fits ``path`` (see the module docstring); ``yard``: the one it may lie in."""
    from tuneyard.models.loading import resolve_model_folder
    from tuneyard.report.curves import plot_training_curves

    yard = yard or Yard(Path.cwd())
    top = report_folder_here(path, yard)
    if not top.is_dir():
        raise TuneyardError(
            f"report path {top} is not a folder.", "Give a run, model, grid or project folder."
        )
    artifacts = find_artifacts(top, yard.storage)
    final = Path(output_dir).expanduser().resolve() if output_dir else top / REPORT_FOLDER
    refuse_foreign_folder(final)
    refuse_to_replace(final, force, "report")
    name = top.parent.name if top.name in ("best", "last") else top.name
    with replace_folder(yard.storage, final) as temp:
        report = Report(folder=final)
        runs = [folder for folder, _ in artifacts] or [top]
        for run in runs:
            if (run / LOG_FILE).is_file():
                run_name = run.name if run != top else name
                report.plots.append(
                    plot_training_curves(
                        run / LOG_FILE,
                        temp / f"{run_name}_training_curves.png",
                        f"{run_name}: training curves",
                    )
                )
        try:
            resolve_model_folder(top)
        except ModelError:
            pass
        else:
            _weights_plot(
                top, temp / f"{name}_weights.png", Path(base).expanduser() if base else None, report
            )
        for grid_file in sorted(top.rglob(GRID_FILE)):
            grid_name = grid_file.parent.name
            _grid_plot(grid_file, temp / f"{grid_name}_eval_grid_heatmap.png", report)
        if len(artifacts) >= 2:
            _comparison_plot(artifacts, metric, temp, report)
        if not report.plots:
            raise TuneyardError(
                f"nothing to report in {top}: no {LOG_FILE}, model, {GRID_FILE} or runs with metrics.",
                "Point at a run, model, eval grid or project folder.",
            )
    report.plots = [final / plot.name for plot in report.plots]
    return report
