"""Which files of the yard the web view may send: those inside an artifact folder of the yard.

A requested path is joined to the artifact's folder and resolved (``..`` and symlinks
followed) before anything is read; a result outside that folder is refused. The path
arrives percent-decoded once by the server and is never decoded again, so a
double-encoded ``%252e%252e`` stays a literal (missing) name.

On a yard in shared storage the folder is this machine's copy: a file is downloaded into it
(:meth:`Storage.localize`, a no-op on disk) once it has passed that check, and a page's
plots are the PNGs the bucket holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneyard.errors import TuneyardError
from tuneyard.yard.root import Yard

PLOT_SUFFIX = ".png"
MAX_PLOTS = 48


class OutsideArtifactError(TuneyardError):
    """A requested file lies outside the artifact's folder (or the artifact outside the yard)."""


def artifact_folder(yard: Yard, record: dict[str, Any]) -> Path:
    """The artifact's folder, resolved; refused when it lies outside the yard root.

    Artifacts written with ``--output-dir`` elsewhere are listed, but their files are
    not served: the web view shows the yard and nothing else of the machine.
    """
    folder = yard.absolute(str(record["path"]))
    if not folder.is_relative_to(yard.root):
        raise OutsideArtifactError(
            f"{record['path']} lies outside the yard {yard.root}; its files are not served."
        )
    return folder


def artifact_file(yard: Yard, record: dict[str, Any], relative: str) -> Path:
    """The file ``relative`` inside the artifact's folder; :class:`OutsideArtifactError` if it leads out.

    Raises :class:`FileNotFoundError` for a path inside the folder that is not a file.
    """
    folder = artifact_folder(yard, record)
    candidate = (folder / relative).resolve()
    if not candidate.is_relative_to(folder):
        raise OutsideArtifactError(f"{relative!r} leads outside the artifact {record['path']}.")
    yard.storage.localize(candidate)
    if not candidate.is_file():
        raise FileNotFoundError(relative)
    return candidate


def plots(yard: Yard, record: dict[str, Any]) -> list[str]:
    """The PNG files in the artifact's folder (reports, confusion matrices...), relative to it."""
    try:
        folder = artifact_folder(yard, record)
    except OutsideArtifactError:
        return []
    yard.storage.localize(folder, only=lambda relative: relative.endswith(PLOT_SUFFIX))
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob(f"*{PLOT_SUFFIX}")):
        if path.resolve().is_relative_to(folder) and path.is_file():
            found.append(path.relative_to(folder).as_posix())
        if len(found) == MAX_PLOTS:
            break
    return found
