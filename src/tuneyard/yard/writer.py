"""Writing artifacts into the yard without ever overwriting or half-writing one.

Two shapes of write, both on top of the yard's :class:`~tuneyard.yard.storage.Storage`:

* :class:`ArtifactWriter` for artifacts made in one go (a compressed model, an
  export): files go into a staging folder, which is published onto the claimed final
  name only when complete. An interrupted write leaves no folder that looks complete.
  :func:`new_folder` is the same without a manifest, for results filed inside another
  artifact (an eval's ``evaluation_results/<name>/``, grader logs).
* :class:`RunWriter` for long runs (fine-tuning) that users watch while they grow:
  the run folder exists from the start with ``status: running`` in its manifest, each
  ``checkpoint-*`` / ``best`` / ``last`` inside it is itself published whole
  (:func:`replace_folder`), and the status becomes ``complete`` (or ``failed``) at the end.

Names are claimed with an exclusive create: if ``name`` exists the artifact gets
``name-2``, ``name-3``, ... so two writers racing for one name both succeed with
distinct folders.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from tuneyard.errors import ArtifactExistsError
from tuneyard.yard.manifest import Manifest, list_files, read_manifest, update_manifest, write_manifest
from tuneyard.yard.storage import Storage, is_checkpoint_file

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

MAX_SUFFIX = 10_000


def claim_folder(storage: Storage, target: Path) -> Path:
    """Claim ``target`` (or the first free ``target-N``) as an empty folder, atomically."""
    for number in range(1, MAX_SUFFIX):
        candidate = target if number == 1 else target.with_name(f"{target.name}-{number}")
        if storage.create_exclusive(candidate):
            return candidate
    raise ArtifactExistsError(f"{target} and {MAX_SUFFIX} numbered variants already exist.")


def refuse_to_replace(target: Path, force: bool, what: str = "file") -> None:
    """Raise unless ``target`` is free or ``force`` says the user means to replace it.

    For derived outputs a user names (``runs aggregate -o``, ``report --output-dir``): a
    name that exists may be someone's result, so replacing it is a choice, never a default.
    An empty folder is free.
    """
    empty_folder = target.is_dir() and not any(target.iterdir())
    if target.exists() and not empty_folder and not force:
        raise exists_error(target, what)


def exists_error(target: Path, what: str) -> ArtifactExistsError:
    """The refusal to replace a user's ``target``, and how to get past it."""
    return ArtifactExistsError(
        f"{target} exists; this would replace that {what}.",
        "Choose another name, or add --force to replace it.",
    )


def write_new_file(storage: Storage, target: Path, text: str, force: bool, what: str = "file") -> None:
    """Write ``text`` to ``target`` whole, never replacing a file unless ``force``.

    For derived files a user names (``runs aggregate -o``). :meth:`Storage.write_new` writes a
    temporary sibling and publishes it as ``target``, refusing when the name exists, so a file
    someone created after :func:`refuse_to_replace` looked is kept
    (checking, then writing, would replace it). ``force`` writes over whatever is there.
    Either way readers never see a part of the file.
    """
    if force:
        storage.write_text(target, text)
        return
    try:
        storage.write_new(target, text.encode())
    except FileExistsError:
        raise exists_error(target, what) from None


@contextlib.contextmanager
def new_folder(storage: Storage, target: Path) -> Iterator[tuple[Path, Path]]:
    """Yield ``(staging, final)``: write into the first; it is published as the second on success.

    ``final`` is ``target`` or, when taken, ``target-N``, claimed first so concurrent
    writers get distinct folders. On failure the staging folder and the claim are
    removed: nothing half-written is left looking complete.
    """
    final = claim_folder(storage, target)
    with fill_claimed(storage, final) as staged:
        yield staged, final


@contextlib.contextmanager
def fill_claimed(storage: Storage, claimed: Path) -> Iterator[Path]:
    """Yield a staging folder that is published onto the empty folder ``claimed`` on success.

    For a caller that claimed an exact name itself (a release's version folder, which
    must not become ``1.2.0-2``). On failure the staging folder and the claim are removed.
    """
    staged = storage.staging_folder(claimed)
    try:
        yield staged
    except BaseException:
        storage.delete(staged)
        storage.delete(claimed)
        raise
    storage.publish(staged, claimed)


@contextlib.contextmanager
def replace_folder(storage: Storage, target: Path) -> Iterator[Path]:
    """Yield a staging folder that replaces ``target`` as a whole when the block succeeds.

    For folders meant to be replaced (a run's ``best/`` and ``last/``, a report): the
    old version stays in place until the new one is complete.
    """
    staged = storage.staging_folder(target)
    try:
        yield staged
    except BaseException:
        storage.delete(staged)
        raise
    storage.publish(staged, target)


class ArtifactWriter:
    """Context manager for a one-shot artifact; write files under :attr:`path`."""

    def __init__(self, yard: Yard, manifest: Manifest, target: Path) -> None:
        self.yard = yard
        self.manifest = manifest
        self.requested_path = target
        self.final_path = claim_folder(yard.storage, target)
        self.path = yard.storage.staging_folder(self.final_path)
        manifest.name = self.final_path.name
        manifest.path = yard.relative(self.final_path)
        manifest.status = "running"
        write_manifest(self.path, manifest, yard.storage)

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
        storage = self.yard.storage
        if exc_type is not None:
            storage.delete(self.path)
            storage.delete(self.final_path)
            return
        self.manifest.files = list_files(self.path)
        self.manifest.status = "complete"
        write_manifest(self.path, self.manifest, storage)
        storage.publish(self.path, self.final_path)
        self.path = self.final_path
        self.yard.register(self.manifest)


def merge_view(on_disk: Manifest, own: Manifest, folder: Path) -> None:
    """Set ``on_disk`` to a writer's own view ``own``, keeping what other processes added.

    Others add metric keys (their own key wins only where the writer has none) and file
    entries (kept while the file exists); every other field is the writer's.
    """
    metrics = {**on_disk.metrics, **own.metrics}
    listed = {entry.path for entry in own.files}
    added = [entry for entry in on_disk.files if entry.path not in listed and (folder / entry.path).is_file()]
    for name in type(own).model_fields:
        setattr(on_disk, name, getattr(own, name))
    on_disk.metrics = metrics
    on_disk.files = [*own.files, *added]


class RunWriter:
    """A long run written in place: status ``running`` until :meth:`complete`.

    :attr:`manifest` is the run's own view. Every write goes through
    :func:`~tuneyard.yard.manifest.update_manifest`, so metric keys that another
    process added meanwhile (``tuneyard eval`` of the run's ``best/``) are kept.
    """

    def __init__(
        self, yard: Yard, manifest: Manifest, path: Path, requested_path: Path | None = None
    ) -> None:
        self.yard = yard
        self.manifest = manifest
        self.path = path
        self.requested_path = requested_path or path

    @classmethod
    def start(
        cls, yard: Yard, manifest: Manifest, folder: Path, requested_path: Path | None = None
    ) -> RunWriter:
        """Write the first manifest of a new run into ``folder``, claimed already (:func:`claim_folder`)."""
        manifest.name = folder.name
        manifest.path = yard.relative(folder)
        manifest.status = "running"
        write_manifest(folder, manifest, yard.storage)
        yard.register(manifest)
        return cls(yard, manifest, folder, requested_path)

    @classmethod
    def resume(cls, yard: Yard, folder: Path) -> RunWriter:
        """Continue writing an existing run (the only way to write into one)."""
        writer = cls(yard, read_manifest(folder, yard.storage), folder)
        yard.storage.restore_replaced(folder)
        writer.manifest.stop_reason = None
        writer.manifest.status = "running"
        writer.save()
        return writer

    @property
    def renamed(self) -> bool:
        """True when the requested name was taken and a ``-N`` suffix was added."""
        return self.path != self.requested_path

    def update(self, change: Callable[[Manifest], None]) -> None:
        """Apply ``change`` to the manifest on disk (under its lock), keep the result, refresh the index."""
        self.manifest = update_manifest(self.path, change, self.yard.storage)
        self.yard.register(self.manifest)

    def save(self) -> None:
        """Write this writer's view of the manifest, keeping what others added (see :func:`merge_view`)."""
        own = self.manifest
        self.update(lambda on_disk: merge_view(on_disk, own, self.path))

    def subfolder(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """A subfolder replaced as a whole, e.g. ``best`` or ``checkpoint-2-1500``."""
        return replace_folder(self.yard.storage, self.path / name)

    def complete(self) -> None:
        """Mark the run complete, listing its files with their checksums (not ``checkpoint-*``'s)."""
        self.manifest.files = list_files(self.path, unhashed=is_checkpoint_file)
        self.manifest.status = "complete"
        self.yard.storage.sync(self.path)
        self.save()

    def fail(self, reason: str | None = None) -> None:
        """Mark the run failed (``reason`` says why); its folder stays for inspection or ``--resume``."""
        self.manifest.status = "failed"
        self.manifest.stop_reason = reason
        self.yard.storage.sync(self.path)
        self.save()
