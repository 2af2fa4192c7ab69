"""The file operations the yard needs, behind one small interface.

Every write into a yard goes through a :class:`Storage`: whole files are written
atomically, folders are built in a staging place and published in one step, names are
claimed exclusively, and read-modify-write of one file is serialised by a lock. The
rest of tuneyard never calls ``os.replace`` or ``shutil.rmtree`` on yard paths, so a
yard on object storage is a second implementation of this class, not a change to
every verb (the mlflow artifact-repository shape: build locally, then publish).

Temporary names are one convention for files and folders alike,
``.tmp-{name}-{pid}-{hex}``: hidden, never taken for a result, and carrying the pid of
the process that wrote them, which is how ``tuneyard runs gc`` tells an abandoned write
from one still in progress.

:class:`LocalStorage` is durable: a file (or every file of a staged folder) and its
folder are flushed to disk (``fsync``) before the rename that publishes them, and the
parent folder after it, so a name that has appeared survives a power loss with its
content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib
import os
import secrets
import shutil
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Yard roots given as a URL: the Storage class for each scheme, imported when a yard uses it.
STORAGE_BY_SCHEME = {"s3": "tuneyard.yard.object_storage:ObjectStorage"}

TEMP_PREFIX = ".tmp-"
# A folder replaced by a newer one is moved aside under this prefix until the new one is in.
REPLACED_PREFIX = f"{TEMP_PREFIX}old-"


CHECKPOINT_PREFIX = "checkpoint-"  # the Trainer-style working-state folders of a run


def is_checkpoint_file(relative: str) -> bool:
    """A file inside a run's ``checkpoint-*`` folder: resumable working state, not a result."""
    return relative.startswith(CHECKPOINT_PREFIX)


def model_files(relative: str) -> bool:
    """A :meth:`Storage.localize` filter for a verb that loads a model: all but a run's checkpoints."""
    return not is_checkpoint_file(relative)


def model_description_files(relative: str) -> bool:
    """A :meth:`Storage.localize` filter for naming a model without loading it: its JSON files
    (config, manifest, adapter config), no weights."""
    return relative.endswith(".json") and model_files(relative)


def temp_name(name: str) -> str:
    """``.tmp-{name}-{pid}-{hex}``: the hidden sibling a write of ``name`` works in."""
    return f"{TEMP_PREFIX}{name}-{os.getpid()}-{secrets.token_hex(4)}"


def replaced_name(name: str) -> str | None:
    """For ``.tmp-old-{name}-{pid}-{hex}``, the name of the folder it was moved aside from."""
    if not name.startswith(REPLACED_PREFIX):
        return None
    return name.removeprefix(REPLACED_PREFIX).rsplit("-", 2)[0]


@dataclass(frozen=True)
class Entry:
    """One name in a folder listing."""

    name: str
    is_dir: bool


@dataclass(frozen=True)
class Claim:
    """Who claimed a folder on shared storage, and when: how gc tells an abandoned claim."""

    host: str
    pid: int
    time: float

    def abandoned(self, older_than_s: float, now: float) -> bool:
        """Older than the grace period, and its writer is gone (known only on its own host)."""
        if now - self.time < older_than_s:
            return False
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class Storage(ABC):
    """What the yard does with files; one implementation per kind of place (local disk, object store)."""

    # Whether the yard's truth lives elsewhere and its paths are a local working copy.
    is_remote = False
    # The URL such a yard was opened with, which opens it again in another process (None: local).
    url: str | None = None

    @abstractmethod
    def read_bytes(self, path: Path) -> bytes:
        """The whole content of a file (``FileNotFoundError`` when there is none)."""

    def read_text(self, path: Path) -> str:
        """:meth:`read_bytes` decoded as UTF-8."""
        return self.read_bytes(path).decode()

    @abstractmethod
    def write_bytes(self, path: Path, data: bytes) -> None:
        """Replace ``path`` with ``data`` atomically: readers see the old or the new content, never a part."""

    def write_text(self, path: Path, text: str) -> None:
        """:meth:`write_bytes` of UTF-8 text."""
        self.write_bytes(path, text.encode())

    @abstractmethod
    def append_text(self, path: Path, text: str) -> None:
        """Append ``text`` to a log file (created when missing), flushed to disk on return."""

    @abstractmethod
    def create_exclusive(self, path: Path) -> bool:
        """Create the empty folder ``path``; False when the name exists already (someone else has it)."""

    @abstractmethod
    def list(self, folder: Path) -> list[Entry]:
        """The entries of ``folder`` in name order (empty when it does not exist)."""

    @abstractmethod
    def staging_folder(self, target: Path) -> Path:
        """A fresh, empty local folder to build ``target`` in, then :meth:`publish` it."""

    @abstractmethod
    def publish(self, staged: Path, target: Path) -> None:
        """Make the finished ``staged`` folder visible as ``target`` in one step.

        ``target`` may be missing, an empty claimed folder, or an older version, which
        is replaced (and deleted) only once the new one is in place.
        """

    @abstractmethod
    def publish_new(self, staged: Path, target: Path) -> None:
        """Make the finished ``staged`` file or folder visible as ``target``, which must not exist.

        ``FileExistsError`` when the name is taken, however late it appeared (a check
        before the write would leave a window in which someone's file gets replaced), and
        ``staged`` is then left to the caller. For results a user names (``runs aggregate
        -o``, ``release pack -o``, an import's converted checkpoint): never replaced unasked.
        """

    def write_new(self, path: Path, data: bytes) -> None:
        """Write the file ``path`` whole unless the name is taken: then ``FileExistsError``, nothing written.

        A temporary sibling, then :meth:`publish_new`.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(temp_name(path.name))
        try:
            write_durably(temp, data)
            self.publish_new(temp, path)
        finally:
            temp.unlink(missing_ok=True)

    @abstractmethod
    def delete(self, path: Path) -> None:
        """Remove a file or a folder tree; a missing path is not an error."""

    @abstractmethod
    def lock(self, path: Path) -> contextlib.AbstractContextManager[None]:
        """Hold an exclusive lock on the folder ``path`` across processes for the ``with`` block."""

    @abstractmethod
    def restore_replaced(self, folder: Path) -> list[str]:
        """Put back versions that a killed :meth:`publish` had moved aside; returns their names."""

    def localize(self, path: Path, only: Callable[[str], bool] | None = None) -> Path:
        """``path`` (a file or a folder) present and current on this machine, for readers that open it.

        ``only`` picks, by their POSIX path relative to ``path``, the files of a folder a
        reader needs (a report reads manifests and logs, not weights); default all.
        """
        return path

    def sync(self, folder: Path) -> None:
        """Send what was written in place under ``folder`` (a run's logs) to where the yard lives."""

    def read_many(self, paths: list[Path]) -> dict[Path, bytes]:
        """The content of each file of ``paths`` that exists (the others are left out).

        On object storage one concurrent batch of requests, where reading file by file
        pays a round trip each: how a reindex reads thousands of manifests.
        """
        found = {}
        for path in paths:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
                found[path] = self.read_bytes(path)
        return found

    def manifest_versions(self, top: Path) -> dict[Path, str]:
        """Every folder under ``top`` with a manifest, and a version of that manifest that
        changes whenever it is written again (the object store's ETag and time); from one listing.

        Where the yard is shared (object storage), how the local index learns what other
        machines wrote and removed, by comparing with the versions of its last listing;
        a local yard's writers update the index themselves (empty here).
        """
        return {}

    def changes_after(self, mark_ns: int) -> list[str] | None:
        """The names of the yard's change records written after ``mark_ns`` (the writer's clock,
        ns since the epoch), in name order, from one listing of the journal; None where the
        storage keeps no journal (a local yard's writers update the index themselves).

        See :mod:`tuneyard.yard.change_journal` for the names and how a refresh reads them.
        """
        return None

    def forget_changes(self, records: list[str]) -> None:
        """Delete change records by name (``runs gc``, past the journal's retention)."""

    def claim_of(self, folder: Path) -> Claim | None:
        """Who claimed ``folder``, where names are claimed with a record of it (object storage)."""
        return None

    def stale_copies(self, older_than_s: float) -> list[Path]:
        """Local copies of artifacts whose truth elsewhere is gone or changed (object storage).

        What ``runs gc`` frees of this machine's disk, never touching the yard itself;
        copies made within ``older_than_s`` seconds are left to whoever is reading them.
        """
        return []


def open_url(url: str) -> tuple[Path, Storage]:
    """The local working copy and the storage of a yard root given as a URL, by its scheme."""
    storage = storage_class(url).open(url)
    return storage.local_root, storage


def is_storage_url(text: str | Path) -> bool:
    """Whether ``text`` is a URL of a scheme with a yard storage (``s3://...``), not a path or hub id."""
    return isinstance(text, str) and "://" in text and text.split("://", 1)[0] in STORAGE_BY_SCHEME


def fetch_artifact(url: str) -> Path:
    """The artifact folder at ``url`` (``s3://bucket/yard/outputs/p/run``) as a local folder.

    Downloaded once into a cache on this machine, keyed by the sha256 of the remote
    folder's content listing, so a second call reuses it and a changed artifact is
    fetched anew (see the implementation's ``fetch_artifact``).
    """
    fetched: Path = storage_class(url).fetch_artifact(url)
    return fetched


def storage_class(url: str) -> Any:
    """The Storage class for ``url``'s scheme (imported now), or a ``ConfigError`` naming the schemes."""
    from tuneyard.errors import ConfigError

    scheme = url.split("://", 1)[0]
    if scheme not in STORAGE_BY_SCHEME:
        raise ConfigError(
            f"no yard storage for {scheme}:// URLs ({url}).",
            f"Use a local folder or one of: {', '.join(f'{name}://' for name in STORAGE_BY_SCHEME)}.",
        )
    module, name = STORAGE_BY_SCHEME[scheme].split(":")
    return getattr(importlib.import_module(module), name)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` and flush it to disk, before a rename or link publishes it."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data and metadata to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (the folder itself last)."""
    for directory, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(directory) / name
            if not path.is_symlink():
                _fsync(path)
        _fsync(Path(directory))


class LocalStorage(Storage):
    """A yard on a local (or network-mounted POSIX) file system."""

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def write_bytes(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(temp_name(path.name))
        try:
            write_durably(temp, data)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync(path.parent)

    def append_text(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        with path.open("a", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if created:
            _fsync(path.parent)

    def create_exclusive(self, path: Path) -> bool:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            return False
        _fsync(path.parent)
        return True

    def list(self, folder: Path) -> list[Entry]:
        try:
            with os.scandir(folder) as scan:
                return sorted(
                    (Entry(entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan),
                    key=lambda entry: entry.name,
                )
        except (FileNotFoundError, NotADirectoryError):
            return []

    def staging_folder(self, target: Path) -> Path:
        # A sibling: on the same file system as the target, so publishing is a rename.
        staged = target.with_name(temp_name(target.name))
        staged.mkdir(parents=True)
        return staged

    def publish(self, staged: Path, target: Path) -> None:
        from tuneyard.yard.objects import share_folder

        share_folder(staged, target)  # weight files become links to the yard's shared objects
        self.rename_into_place(staged, target)

    def rename_into_place(self, staged: Path, target: Path) -> None:
        """:meth:`publish` without sharing weight files: for a working copy whose files are rewritten."""
        _fsync_tree(staged)
        try:
            os.rename(staged, target)  # onto nothing or onto an empty claimed folder: atomic
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            old = target.with_name(temp_name(f"old-{target.name}"))
            os.rename(target, old)
            os.rename(staged, target)
            _fsync(target.parent)
            self.delete(old)
        _fsync(target.parent)

    def publish_new(self, staged: Path, target: Path) -> None:
        if staged.is_dir():
            if not self.create_exclusive(target):
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            self.rename_into_place(staged, target)  # onto the empty folder just claimed: atomic
            return
        _fsync(staged)
        os.link(staged, target)  # a hard link fails when the name exists, where a rename replaces
        os.unlink(staged)
        _fsync(target.parent)

    def delete(self, path: Path) -> None:
        from tuneyard.yard.objects import releasing

        with releasing(path):  # the shared weight objects only this folder linked to go with it
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        # flock on the folder itself: no lock file to list or clean up, and a folder's
        # inode stays the same while the files in it are replaced by renames.
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def restore_replaced(self, folder: Path) -> list[str]:
        restored = []
        for entry in self.list(folder):
            name = replaced_name(entry.name)
            if name is None or not entry.is_dir:
                continue
            target = folder / name
            if target.exists():
                self.delete(folder / entry.name)
            else:
                os.rename(folder / entry.name, target)
                restored.append(name)
        if restored:
            _fsync(folder)
        return restored


# The storage of local paths: every yard today, and files tuneyard writes outside one.
LOCAL = LocalStorage()
