"""Writing artifacts into the yard without ever overwriting or half-writing one.

Two shapes of write:

* :class:`ArtifactWriter` for artifacts made in one go (a compressed model, an
  export): files go into a hidden temporary sibling, which is renamed onto the
  reserved final name only when complete. An interrupted write leaves no folder that
  looks complete.
* :class:`RunWriter` for long runs (fine-tuning) that users watch while they grow:
  the run folder exists from the start with ``status: running`` in its manifest, each
  checkpoint / ``best`` / ``last`` inside it is itself written atomically, and the
  status becomes ``complete`` (or ``failed``) at the end.

Names are reserved with ``mkdir``, which is atomic across processes: if ``name``
exists the artifact gets ``name-2``, ``name-3``, ... so two writers racing for one
name both succeed with distinct folders.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tuneyard.errors import ArtifactExistsError
from tuneyard.yard.manifest import Manifest, list_files, read_manifest, write_manifest

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

MAX_SUFFIX = 10_000
TEMP_PREFIX = ".tmp-"
CHECKPOINT_PREFIX = "checkpoint-"  # the Trainer-style working-state folders of a run


def reserve_folder(target: Path) -> Path:
    """Atomically claim ``target`` (or the first free ``target-N``) as an empty folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, MAX_SUFFIX):
        candidate = target if number == 1 else target.with_name(f"{target.name}-{number}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise ArtifactExistsError(f"{target} and {MAX_SUFFIX} numbered variants already exist.")


def temp_sibling(target: Path) -> Path:
    """A fresh hidden folder next to ``target``, on the same file system for rename."""
    temp = target.with_name(f"{TEMP_PREFIX}{target.name}-{os.getpid()}-{secrets.token_hex(4)}")
    temp.mkdir(parents=True)
    return temp


@contextlib.contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` when the block succeeds.

    For folders inside a run that are meant to be replaced (``best/``, ``last/``):
    the old one is moved aside, the new one renamed in, then the old one removed.
    """
    temp = temp_sibling(target)
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f"{TEMP_PREFIX}old-{target.name}-{secrets.token_hex(4)}")
        os.rename(target, old)
    os.rename(temp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class ArtifactWriter:
    """Context manager for a one-shot artifact; write files under :attr:`path`."""

    def __init__(self, yard: Yard, manifest: Manifest, target: Path) -> None:
        self.yard = yard
        self.manifest = manifest
        self.requested_path = target
        self.final_path = reserve_folder(target)
        self.path = temp_sibling(self.final_path)
        manifest.name = self.final_path.name
        manifest.path = yard.relative(self.final_path)
        manifest.status = "running"
        write_manifest(self.path, manifest)

    @property
    def renamed(self) -> bool:
        """True when the requested name was taken and a ``-N`` suffix was added."""
        return self.final_path != self.requested_path

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.final_path.rmdir()
            return
        self.manifest.files = list_files(self.path)
        self.manifest.status = "complete"
        write_manifest(self.path, self.manifest)
        # Renaming a folder onto the empty reserved one is atomic on POSIX.
        os.rename(self.path, self.final_path)
        self.path = self.final_path
        self.yard.register(self.manifest)


def is_checkpoint_file(relative: str) -> bool:
    """A file inside a run's ``checkpoint-*`` folder: resumable working state, not a result."""
    return relative.startswith(CHECKPOINT_PREFIX)


class RunWriter:
    """A long run written in place: status ``running`` until :meth:`complete`."""

    def __init__(self, yard: Yard, manifest: Manifest, path: Path) -> None:
        self.yard = yard
        self.manifest = manifest
        self.path = path
        self.requested_path = path

    @classmethod
    def start(cls, yard: Yard, manifest: Manifest, target: Path) -> RunWriter:
        """Reserve a fresh folder for a new run and write its first manifest."""
        folder = reserve_folder(target)
        manifest.name = folder.name
        manifest.path = yard.relative(folder)
        manifest.status = "running"
        writer = cls(yard, manifest, folder)
        writer.requested_path = target
        writer.save()
        return writer

    @classmethod
    def resume(cls, yard: Yard, folder: Path) -> RunWriter:
        """Continue writing an existing run (the only way to write into one)."""
        manifest = read_manifest(folder)
        manifest.status = "running"
        writer = cls(yard, manifest, folder)
        writer.save()
        return writer

    @property
    def renamed(self) -> bool:
        """True when the requested name was taken and a ``-N`` suffix was added."""
        return self.path != self.requested_path

    def save(self) -> None:
        """Write the manifest atomically and refresh the index entry."""
        write_manifest(self.path, self.manifest)
        self.yard.register(self.manifest)

    def subfolder(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """An atomically replaced subfolder, e.g. ``best`` or ``checkpoint-2-1500``."""
        return atomic_folder(self.path / name)

    def complete(self) -> None:
        """Mark the run complete, listing its files with their checksums (not ``checkpoint-*``'s)."""
        self.manifest.files = list_files(self.path, unhashed=is_checkpoint_file)
        self.manifest.status = "complete"
        self.save()

    def fail(self) -> None:
        """Mark the run failed; its folder stays for inspection or ``--resume``."""
        self.manifest.status = "failed"
        self.save()
