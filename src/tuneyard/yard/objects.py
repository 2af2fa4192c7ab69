"""Shared bytes: weight files stored once, content-addressed, hard-linked into artifacts.

Keep-k checkpoints, ``best/`` and ``last/``, frozen and LoRA runs of one base and the
model folders derived from them hold many byte-identical weight files. When a local
yard publishes a folder (:meth:`tuneyard.yard.storage.LocalStorage.publish`), each
weight file in it (a :data:`WEIGHT_SUFFIXES` file of at least :data:`MIN_SHARED_BYTES`)
is hashed and filed under ``.tuneyard/objects/<sha256[:2]>/<sha256>`` (DVC's cache
layout): the first copy of some content becomes the object by a hard link, and every
later copy is replaced by a hard link to it. An artifact folder stays an ordinary
folder of ordinary files; only the disk holds one copy.

Why hard links: the link count is the reference count. An object whose count is 1 is
held by the store alone: a deletion through the storage removes the objects only the
deleted folder linked to (:func:`releasing`), and ``runs gc`` the ones a deletion by
hand or a killed process left (:func:`unreferenced`). No other record of who uses what
has to be kept in step. Removing an object never takes
bytes from an artifact (its links keep the inode), so a killed or racing gc cannot
leave a dangling file. Writers hold a shared lock on the store while they link, and
whoever removes objects an exclusive one, counting links again under it, so an object
is never removed between a writer finding it and linking to it.

Where a hard link cannot be made (a file system without them, the per-inode link
limit), the file is reflinked from the object when the file system can (a copy-on-write
clone on btrfs or XFS) and otherwise stays the copy it is; either way a line in
``.tuneyard/objects/unshared.log`` records it.

Nothing rewrites a published weight file in place: folders are replaced whole (a
staging sibling renamed over them), small files through ``Storage.write_bytes``. The
objects are made read-only as a guard. A yard on object storage keeps its working copy
unshared (its downloads rewrite files in place), and its bucket has no hard links:
there is no dedup there.

``TUNEYARD_SHARED_OBJECTS=off`` turns the store off for the publishes of one process
(each weight file keeps its own copy; nothing is hashed): for a file system where hard
links are unwelcome, or to measure what the store costs (``bench/objects.py``).
Deletions and ``runs gc`` still release objects that earlier publishes made.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.errors import ConfigError
from tuneyard.yard.manifest import sha256_of
from tuneyard.yard.root import STATE_DIR
from tuneyard.yard.storage import temp_name

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

OBJECTS_FOLDER = "objects"  # under the yard's .tuneyard/
UNSHARED_LOG = "unshared.log"
# Files worth sharing: weights in the formats tuneyard and the Trainer write. Data and
# tokenizer files are left alone, so a writer that rewrites one in place harms nothing else.
WEIGHT_SUFFIXES = frozenset({".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ckpt"})
MIN_SHARED_BYTES = 1 << 20
READ_ONLY = 0o444
# FICLONE from linux/fs.h: make the target file share the source's extents (reflink).
_FICLONE = 0x40049409
# A hard link cannot be made here: another device, no hard links, too many links to the inode.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}
SHARING_ENV = "TUNEYARD_SHARED_OBJECTS"
_ON, _OFF = frozenset({"on", "1", "true", "yes"}), frozenset({"off", "0", "false", "no"})


def sharing_enabled() -> bool:
    """Whether publishes link weight files to the store: ``$TUNEYARD_SHARED_OBJECTS``, on when unset."""
    value = os.environ.get(SHARING_ENV, "on")
    if value.strip().lower() not in _ON | _OFF:
        raise ConfigError(
            f"{SHARING_ENV}={value!r} is neither on nor off.",
            f"Set {SHARING_ENV}=off to keep every weight file a copy of its own, or unset it.",
        )
    return value.strip().lower() in _ON


def store_for(target: Path) -> Path | None:
    """The object store of the local yard that ``target`` lies in, or None outside any yard."""
    for folder in target.resolve().parents:
        if (folder / STATE_DIR).is_dir():
            return folder / STATE_DIR / OBJECTS_FOLDER
    return None


def object_path(store: Path, digest: str) -> Path:
    """``objects/<sha256[:2]>/<sha256>``."""
    return store / digest[:2] / digest


def is_weight_file(path: Path, status: os.stat_result) -> bool:
    """A regular file in a weight format, big enough to be worth a link."""
    return (
        stat.S_ISREG(status.st_mode) and path.suffix in WEIGHT_SUFFIXES and status.st_size >= MIN_SHARED_BYTES
    )


def weight_files(folder: Path) -> Iterator[Path]:
    """The weight files anywhere under ``folder``."""
    return (path for path, status in lstats(tree_files(folder)) if is_weight_file(path, status))


@contextlib.contextmanager
def locked(store: Path, mode: int) -> Iterator[None]:
    """Hold ``flock(mode)`` on the store folder: shared for writers that link, exclusive for gc."""
    store.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(store, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, mode)
        yield
    finally:
        os.close(descriptor)


def share_folder(staged: Path, target: Path) -> None:
    """Link each weight file of ``staged`` (about to be published as ``target``) to its object.

    A no-op outside a yard (a report written to a user's folder) and when
    :func:`sharing_enabled` says the store is off.
    """
    store = store_for(target) if sharing_enabled() else None
    paths = list(weight_files(staged)) if store is not None else []
    if store is None or not paths:
        return
    with locked(store, fcntl.LOCK_SH):
        for path in paths:
            reason = share_file(store, path)
            if reason is not None:
                record_unshared(store, target / path.relative_to(staged), reason)


def share_file(store: Path, path: Path) -> str | None:
    """Make ``path`` a hard link to its content's object; None, or why it stays a copy of its own."""
    obj = object_path(store, sha256_of(path))
    obj.parent.mkdir(exist_ok=True)
    try:
        os.link(path, obj)  # the first copy of this content becomes the object
        os.chmod(obj, READ_ONLY)
        return None
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        return f"not stored: {os.strerror(exc.errno or 0)}"
    if os.path.samestat(obj.stat(), path.stat()):
        return None  # a link already (best/ made from a checkpoint's files)
    temp = path.with_name(temp_name(path.name))  # the link is made aside, then renamed over the copy
    try:
        reason = link_or_clone(obj, temp)
        if temp.exists():
            os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return reason


def link_or_clone(obj: Path, temp: Path) -> str | None:
    """Hard-link ``obj`` at ``temp``, else reflink it there; None, or why ``temp`` is no link (or absent)."""
    try:
        os.link(obj, temp)
        return None
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        why = os.strerror(exc.errno or 0)
    return f"reflinked ({why})" if clone(obj, temp) else f"copy ({why})"


def clone(source: Path, target: Path) -> bool:
    """A copy-on-write clone of ``source`` at ``target`` where the file system can; whether it could."""
    try:
        with source.open("rb") as src, target.open("xb") as dst:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except OSError:
        target.unlink(missing_ok=True)
        return False
    return True


def record_unshared(store: Path, path: Path, reason: str) -> None:
    """Append ``time  path  reason`` to ``objects/unshared.log``: a weight file that holds its own bytes."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with (store / UNSHARED_LOG).open("a") as handle:
        handle.write(f"{stamp}  {path}  {reason}\n")


def objects(store: Path) -> Iterator[Path]:
    """Every object file in the store."""
    for prefix in sorted(store.iterdir()) if store.is_dir() else ():
        if prefix.is_dir() and len(prefix.name) == 2:
            yield from sorted(prefix.iterdir())


def unreferenced(store: Path, leftovers: Iterable[Path] = ()) -> list[Path]:
    """Objects no artifact links to: the store's own link is their only one.

    Links under ``leftovers`` (what gc deletes first: a killed writer's staging folder)
    do not count.
    """
    doomed = Counter(
        (status.st_dev, status.st_ino) for path in leftovers for _, status in lstats(tree_files(path))
    )
    found = []
    for obj in objects(store):
        status = obj.lstat()
        if status.st_nlink - doomed[(status.st_dev, status.st_ino)] <= 1:
            found.append(obj)
    return found


def tree_files(path: Path) -> Iterator[Path]:
    """``path`` when it is a file, else every file under it (nothing when it does not exist)."""
    if path.is_dir() and not path.is_symlink():
        for directory, _, files in os.walk(path):
            yield from (Path(directory) / name for name in files)
    elif path.is_file() or path.is_symlink():
        yield path


def lstats(paths: Iterable[Path]) -> Iterator[tuple[Path, os.stat_result]]:
    """Each path with its ``lstat``; one removed meanwhile is skipped."""
    for path in paths:
        try:
            yield path, path.lstat()
        except FileNotFoundError:
            continue


def remove_objects(store: Path, listed: Iterable[Path]) -> None:
    """Delete the ``listed`` objects that are still unreferenced, under the store's exclusive lock.

    Counted again under the lock: an object a writer linked to since it was listed stays.
    """
    with locked(store, fcntl.LOCK_EX):
        for obj, status in lstats(listed):
            if status.st_nlink == 1:
                obj.unlink()


@contextlib.contextmanager
def releasing(path: Path) -> Iterator[None]:
    """Around the deletion of ``path``: remove the objects that only its weight files linked to.

    So a pruned checkpoint, a replaced ``best/`` or a removed run gives its bytes back at
    once rather than at the next ``runs gc``. An object that any other folder links to, or
    that a writer links to meanwhile (counted under the exclusive lock), stays.
    """
    store = store_for(path)
    if store is None or not store.is_dir():
        yield
        return
    inodes = {
        (status.st_dev, status.st_ino)
        for file, status in lstats(tree_files(path))
        if is_weight_file(file, status)
    }
    yield
    if not inodes:
        return
    with locked(store, fcntl.LOCK_EX):
        for obj, status in lstats(objects(store)):
            if status.st_nlink == 1 and (status.st_dev, status.st_ino) in inodes:
                obj.unlink()


@dataclass
class Usage:
    """Bytes of one artifact: ``logical`` as its files add up, ``stored`` with shared files counted once.

    ``exclusive`` is what ``runs rm`` and then ``runs gc`` would give back: bytes of the
    files no other artifact holds.
    """

    path: str
    files: int
    logical: int
    stored: int
    exclusive: int


@dataclass
class YardUsage:
    """``runs du``: each artifact's usage and the yard's totals."""

    artifacts: list[Usage]
    logical: int
    stored: int
    unreferenced_objects: int
    unreferenced_bytes: int


def folder_files(folder: Path, skip: set[Path]) -> Iterator[os.stat_result]:
    """``lstat`` of each visible file under ``folder``, not descending into ``skip`` (other artifacts)."""
    for directory, subfolders, files in os.walk(folder):
        base = Path(directory)
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and base / name not in skip]
        for name in files:
            if not name.startswith("."):
                status = (base / name).lstat()
                if stat.S_ISREG(status.st_mode):
                    yield status


def usage(folders: dict[str, Path], store: Path | None) -> YardUsage:
    """Logical and stored bytes of the artifacts ``folders`` (shown path -> folder), and of them all.

    A file's inode is its identity: links to one object count once per artifact and
    once in the total, whichever folders they appear in.
    """
    # Other artifacts' folders are not descended into. One set for all: a walk never meets
    # its own top folder, and a copy per artifact made 10,000 artifacts quadratic.
    skip = set(folders.values())
    object_stats = [obj.lstat() for obj in objects(store)] if store is not None else []
    store_inodes = {(status.st_dev, status.st_ino) for status in object_stats}
    artifacts = []
    distinct: dict[tuple[int, int], int] = {}
    for shown, folder in folders.items():
        statuses = list(folder_files(folder, skip))
        artifacts.append(usage_of(shown, statuses, store_inodes))
        distinct.update(((status.st_dev, status.st_ino), status.st_size) for status in statuses)
    orphans = [status for status in object_stats if status.st_nlink == 1]
    return YardUsage(
        artifacts=artifacts,
        logical=sum(item.logical for item in artifacts),
        stored=sum(distinct.values()),
        unreferenced_objects=len(orphans),
        unreferenced_bytes=sum(status.st_size for status in orphans),
    )


def usage_of(shown: str, statuses: list[os.stat_result], store_inodes: set[tuple[int, int]]) -> Usage:
    """One artifact's :class:`Usage`; a file is exclusive when every link to it but the store's is here."""
    own: dict[tuple[int, int], os.stat_result] = {}
    links_here: dict[tuple[int, int], int] = {}
    for status in statuses:
        key = (status.st_dev, status.st_ino)
        own[key] = status
        links_here[key] = links_here.get(key, 0) + 1
    exclusive = sum(
        status.st_size
        for key, status in own.items()
        if status.st_nlink - (key in store_inodes) <= links_here[key]
    )
    return Usage(
        path=shown,
        files=len(statuses),
        logical=sum(status.st_size for status in statuses),
        stored=sum(status.st_size for status in own.values()),
        exclusive=exclusive,
    )


def yard_usage(yard: Yard, reference: str | None = None) -> YardUsage:
    """``runs du``: one artifact (a name, path or id) or every indexed one, archived included."""
    if reference is not None:
        paths = [str(yard.find(reference)["path"])]
    else:
        paths = [str(row["path"]) for row in yard.query(include_archived=True)]
    folders = {path: yard.absolute(path) for path in sorted(paths)}
    return usage(folders, yard.state_dir / OBJECTS_FOLDER)
