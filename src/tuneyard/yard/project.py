"""A project's ``metrics.csv``: one row per completed run filed under ``outputs/{project}/``.

Rebuilt whole from the index each time a run of the project completes (or ``tuneyard
eval`` adds scores to a completed one), with the table
of ``tuneyard runs aggregate`` (:func:`~tuneyard.yard.summary.aggregate_table`), and
replaced atomically. Two runs finishing at once must not each write a table missing the
other: every run registers its ``complete`` status in the index *before* it refreshes,
and the refresh (query, then write) holds an exclusive lock on the project folder, so
whichever refresh comes last sees both runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import LayoutError
from tuneyard.yard.summary import aggregate_table, format_csv

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

METRICS_FILE = "metrics.csv"


def project_runs(yard: Yard, project: str, folder: Path) -> list[dict[str, Any]]:
    """The manifests of ``project``'s completed runs inside ``folder``, oldest first.

    Runs of the project filed elsewhere (``--output-dir``, a grid's cells under
    ``experiments/``) are not rows of this folder's table.
    """
    rows = yard.query(kind="run", project=project, status="complete", sort="created", with_manifest=True)
    return [row["manifest"] for row in rows if yard.absolute(row["path"]).is_relative_to(folder)]


def project_folder_of(yard: Yard, run_folder: Path, project: str | None) -> Path | None:
    """The folder of ``project`` when ``run_folder`` is filed inside it, else None.

    None for a run without a project, one filed elsewhere (``--output-dir``, a grid's
    cell), or a layout that gives projects no folder of their own.
    """
    if not project:
        return None
    try:
        folder = yard.project_folder(project)
    except LayoutError:  # a name the layout refuses: the run was filed with --output-dir
        return None
    return folder if folder is not None and run_folder.resolve().is_relative_to(folder) else None


def refresh_project_metrics(yard: Yard, project: str) -> Path | None:
    """Rewrite ``outputs/{project}/metrics.csv`` from the index; None: the layout has no project folder."""
    folder = yard.project_folder(project)
    if folder is None or not folder.is_dir():
        return None
    target = folder / METRICS_FILE
    with yard.storage.lock(folder):
        columns, rows = aggregate_table(project_runs(yard, project, folder))
        yard.storage.write_text(target, format_csv(columns, rows))
    return target
