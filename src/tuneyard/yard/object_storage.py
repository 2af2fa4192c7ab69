"""A yard on object storage (S3 through fsspec's ``s3fs``): the remote copy is the truth.

The rest of tuneyard addresses yard files by local ``Path``; here those paths are the
*working copy* of the yard on this machine, one folder per yard URL under
``$TUNEYARD_YARD_CACHE`` (default ``~/.cache/tuneyard/yards``). :class:`ObjectStorage`
maps a path under that folder to its object key and keeps both sides in step:

* writes go to the working copy and are uploaded (one ``PUT`` is atomic on S3);
* reads of yard files (manifests, logs, listings) ask the object store, so another
  machine's artifacts are seen; :meth:`localize` downloads files a reader opens by
  path (a model folder) when they are missing or outdated here;
* ``publish`` uploads a staged folder file by file with ``manifest.json`` last, so an
  interrupted upload never looks complete (reindex and ``runs ls`` only see folders
  with a manifest);
* identical bytes cross the wire once per process: a file of at least
  :data:`~tuneyard.yard.objects.MIN_SHARED_BYTES` whose sha256 is that of an object this
  process put in the bucket is made there by a server-side copy (S3 ``CopyObject``), as a
  run's checkpoint, ``best/`` and ``last/`` hold one set of weights; and ``sync`` skips a
  file this process put at its key and has not changed since (S3's ``LastModified`` has
  whole seconds, too coarse to tell);
* ``create_exclusive`` is a conditional put (``If-None-Match: *``) of a claim marker
  that records who claimed the name; ``runs gc`` removes a claimed folder that never
  got its manifest once its writer is gone (:meth:`claim_of`);
* ``lock`` is a lease object, also taken with a conditional put, broken when older
  than :data:`LEASE_S` (its holder was killed);
* ``.tuneyard/`` (the SQLite index) and staging folders (``.tmp-*``) stay local: the
  index is a cache per machine, rebuilt by listing the remote manifests. Only
  ``.tuneyard/shared/`` (unfinished label jobs' journals, the change journal) is the
  team's, and uploaded;
* every manifest put in or removed from the bucket is followed by a change record
  (:mod:`tuneyard.yard.change_journal`): how another machine's refresh finds it by
  listing the journal, not the whole yard (:meth:`changes_after`);
* :meth:`ObjectStorage.fetch_artifact` brings one artifact given by URL (``--checkpoint
  s3://...``) into a cache of this machine, for a verb run without its yard;
* :meth:`stale_copies` finds what ``runs gc`` gives back of this machine's disk: copies of
  artifacts the bucket no longer holds, or holds in another version.

The endpoint and credentials come from the standard places (``AWS_ENDPOINT_URL`` or
``FSSPEC_S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` ..., ``~/.aws``), read by botocore
and fsspec themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import hashlib
import json
import os
import posixpath
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsspec.asyn import sync as fsspec_sync

from tuneyard.errors import ArtifactNotFoundError, ConfigError
from tuneyard.yard.change_journal import JOURNAL, is_listed_manifest, record_for, stamp
from tuneyard.yard.manifest import sha256_of
from tuneyard.yard.objects import MIN_SHARED_BYTES
from tuneyard.yard.root import SHARED_STATE, STATE_DIR
from tuneyard.yard.storage import (
    LOCAL,
    TEMP_PREFIX,
    Claim,
    Entry,
    Storage,
    model_files,
    temp_name,
)

CACHE_ENV = "TUNEYARD_YARD_CACHE"
# The name marker of a claimed folder, and the lease object of a locked one.
CLAIM_MARKER = ".tuneyard-claim"
LOCK_OBJECT = ".tuneyard-lock"
# A lock older than this was left by a killed holder (a manifest update takes milliseconds).
LEASE_S = 60.0
# Files of one folder sent at once (s3fs's own default for a batch of puts is larger; a
# checkpoint has a handful of files, a tokenizer folder a dozen).
CONCURRENT_SENDS = 8
MANIFEST = "manifest.json"
LOCAL_ONLY = STATE_DIR  # the index: a cache of this machine, never uploaded (but for SHARED_STATE)
ARTIFACTS_CACHE = "artifacts"  # under the cache root: artifacts fetched by URL, one folder per content
SOURCE_RECORD = ".source.json"  # in such a folder: the URL it was fetched from, which gc checks again
# Fail fast on a wrong endpoint instead of botocore's minutes of retries.
CLIENT_CONFIG = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}


def cache_root() -> Path:
    """Where working copies of remote yards live on this machine."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser().resolve()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (base / "tuneyard" / "yards").resolve()


@dataclass(frozen=True)
class Sent:
    """What this process put at an object key: the working-copy file and its version then."""

    home: Path
    version: tuple[int, int, int]  # (inode, size, mtime_ns): a file rewritten or replaced differs


def version_of(path: Path) -> tuple[int, int, int] | None:
    """``path``'s (inode, size, mtime_ns), or None when it is gone."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns)


class ObjectStorage(Storage):
    """The yard at ``url`` (``s3://bucket/prefix``) with its working copy at ``local_root``."""

    is_remote = True

    def __init__(self, fs: Any, url: str, local_root: Path) -> None:
        self.fs = fs
        self.url = url
        self.remote_root = fs._strip_protocol(url).rstrip("/")
        self.local_root = local_root
        self.sent: dict[str, Sent] = {}  # by object key: what this process put there
        self.journal = f"{self.remote_root}/{JOURNAL}"

    @classmethod
    def open(cls, url: str) -> ObjectStorage:
        """Connect to the yard at ``url``; a ``ConfigError`` naming the fix when that cannot work."""
        storage = cls(
            filesystem(url, f"the yard {url}"),
            url,
            cache_root() / hashlib.sha256(url.encode()).hexdigest()[:16],
        )
        storage.check_reachable()
        storage.local_root.mkdir(parents=True, exist_ok=True)
        return storage

    def check_reachable(self) -> None:
        """List the yard's bucket once, turning a wrong endpoint, bucket or credentials into a hint."""
        bucket = self.remote_root.split("/", 1)[0]
        try:
            self.fs.ls(bucket, refresh=True)
        except Exception as exc:  # botocore's connection, credential and HTTP errors share no base
            raise ConfigError(
                f"cannot reach the yard {self.url}: {exc}.",
                "Check the bucket name, the endpoint (AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL) "
                "and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or ~/.aws).",
            ) from exc

    def key(self, path: Path) -> str | None:
        """The object key of a working-copy path; None for paths that stay local."""
        if not path.is_relative_to(self.local_root):
            return None
        relative = path.relative_to(self.local_root)
        # staging folders are built here and uploaded by publish; the index is this machine's
        staged = any(part.startswith(TEMP_PREFIX) for part in relative.parts)
        machines_own = relative.parts[:1] == (LOCAL_ONLY,) and relative.parts[1:2] != (SHARED_STATE,)
        if staged or machines_own:
            return None
        return posixpath.join(self.remote_root, relative.as_posix()) if relative.parts else self.remote_root

    def read_bytes(self, path: Path) -> bytes:
        key = self.key(path)
        if key is None:
            return LOCAL.read_bytes(path)
        data: bytes = self.fs.cat_file(key)
        return data

    def write_bytes(self, path: Path, data: bytes) -> None:
        key = self.key(path)
        LOCAL.write_bytes(path, data)
        if key is not None:
            self.fs.pipe_file(key, data)
            self.record_sent(path, key)
            self.note_changes([key])

    def append_text(self, path: Path, text: str) -> None:
        key = self.key(path)
        if key is not None and not path.exists():
            self.localize(path)  # the lines another machine wrote come first
        LOCAL.append_text(path, text)
        if key is not None:
            self.fs.put_file(str(path), key)
            self.record_sent(path, key)

    def create_exclusive(self, path: Path) -> bool:
        key = self.key(path)
        if key is None:
            return LOCAL.create_exclusive(path)
        self.fs.invalidate_cache(key)
        if self.fs.exists(key):
            return False
        claim = Claim(socket.gethostname(), os.getpid(), time.time())
        if not self.put_new(f"{key}/{CLAIM_MARKER}", json.dumps(claim.__dict__).encode()):
            return False
        path.mkdir(parents=True, exist_ok=True)
        return True

    def put_new(self, key: str, data: bytes) -> bool:
        """Put ``data`` at ``key`` unless an object is there (S3's ``If-None-Match: *``); whether it was put.

        s3fs reads a refusal as ``FileExistsError`` only when the server names the failed
        condition, as AWS and moto do; SeaweedFS answers the same 412 without naming it,
        which s3fs raises as a plain ``OSError``.
        """
        try:
            self.fs.pipe_file(key, data, mode="create")
        except OSError as error:
            if isinstance(error, FileExistsError) or is_precondition_failed(error):
                return False
            raise
        return True

    def claim_of(self, folder: Path) -> Claim | None:
        key = self.key(folder)
        if key is None:
            return None
        try:
            return Claim(**json.loads(self.fs.cat_file(f"{key}/{CLAIM_MARKER}")))
        except FileNotFoundError:
            return None

    def list(self, folder: Path) -> list[Entry]:
        key = self.key(folder)
        if key is None:
            return LOCAL.list(folder)
        self.fs.invalidate_cache(key)  # s3fs caches listings: another machine's writes must show
        try:
            listing = self.fs.ls(key, detail=True)
        except FileNotFoundError:
            return []
        entries = {
            posixpath.basename(item["name"].rstrip("/")): item["type"] == "directory"
            for item in listing
            if item["name"].rstrip("/") != key
        }
        return [Entry(name, is_dir) for name, is_dir in sorted(entries.items())]

    def staging_folder(self, target: Path) -> Path:
        return LOCAL.staging_folder(target)

    def publish(self, staged: Path, target: Path) -> None:
        key = self.key(target)
        if key is not None:
            files = sorted(
                path.relative_to(staged).as_posix() for path in staged.rglob("*") if path.is_file()
            )
            # manifest.json last: a folder without one is an unfinished upload, never a result
            self.send([(staged / name, f"{key}/{name}", target / name) for name in files if name != MANIFEST])
            if MANIFEST in files:
                self.send([(staged / MANIFEST, f"{key}/{MANIFEST}", target / MANIFEST)])
            self.fs.invalidate_cache(key)
            kept = {f"{key}/{name}" for name in files} | {f"{key}/{CLAIM_MARKER}"}
            stale = [name for name in objects_under(self.fs, key) if name not in kept]
            if stale:
                self.remove_objects(stale)
                self.note_changes(stale)  # a replaced version's nested manifest (best/) may be gone
        LOCAL.rename_into_place(staged, target)  # unshared: localize() rewrites working-copy files

    def publish_new(self, staged: Path, target: Path) -> None:
        key = self.key(target)
        if key is None:
            LOCAL.publish_new(staged, target)
        elif staged.is_dir():
            if not self.create_exclusive(target):  # a conditional put of the claim marker
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            self.publish(staged, target)
        else:
            self.fs.invalidate_cache(key)
            if not self.put_new(key, staged.read_bytes()):
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            self.note_changes([key])
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)  # the working copy follows the bucket

    def delete(self, path: Path) -> None:
        key = self.key(path)
        LOCAL.delete(path)
        if key is None:
            return
        self.fs.invalidate_cache(key)
        try:
            removed = list(objects_under(self.fs, key))  # the objects under key, or key itself
        except FileNotFoundError:
            return
        self.remove_objects(removed)
        self.note_changes(removed)

    def remove_objects(self, keys: list[str]) -> None:
        """Delete the objects at ``keys``, names taken literally (a name with ``[`` is no pattern)."""
        literal = [key for key in keys if not glob.has_magic(key)]
        if literal:
            self.fs.rm(literal)  # one request per 1,000 keys
        for key in keys:
            if glob.has_magic(key):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(key)

    def note_changes(self, keys: list[str]) -> None:
        """Put a change record for each manifest among ``keys``, just written or removed, after the
        change itself: a record that another machine lists always names a change already made."""
        below = f"{self.remote_root}/"
        names = [record_for(key.removeprefix(below)) for key in keys if key.startswith(below)]
        records = {f"{self.journal}/{name}": b"" for name in names if name is not None}
        if records:
            self.fs.pipe(records)

    def changes_after(self, mark_ns: int) -> list[str] | None:
        # One listing of the journal from the mark on (S3's StartAfter), which s3fs's find does not offer.
        bucket, prefix, _ = self.fs.split_path(f"{self.journal}/")
        request = {"Bucket": bucket, "Prefix": prefix, "StartAfter": f"{prefix}{stamp(mark_ns)}"}
        records = []
        while True:
            page = self.fs.call_s3("list_objects_v2", **request)
            records += [item["Key"].removeprefix(prefix) for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return records
            request["ContinuationToken"] = page["NextContinuationToken"]

    def forget_changes(self, records: list[str]) -> None:
        self.remove_objects([f"{self.journal}/{record}" for record in records])

    @contextlib.contextmanager
    def lock(self, path: Path) -> Iterator[None]:
        key = self.key(path)
        if key is None:
            with LOCAL.lock(path):
                yield
            return
        lease = f"{key}/{LOCK_OBJECT}"
        holder = json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode()
        wait = 0.02
        while not self.put_new(lease, holder):
            self.break_stale_lease(lease)
            time.sleep(wait)
            wait = min(wait * 2, 0.5)
        try:
            yield
        finally:
            self.fs.rm_file(lease)

    def break_stale_lease(self, lease: str) -> None:
        """Delete a lease object older than :data:`LEASE_S`: its holder was killed."""
        try:
            modified = self.fs.info(lease, refresh=True)["LastModified"].timestamp()
        except FileNotFoundError:
            return
        if time.time() - modified > LEASE_S:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(lease)

    def restore_replaced(self, folder: Path) -> list[str]:
        # Remote folders are never moved aside; only the working copy can hold such versions.
        return LOCAL.restore_replaced(folder) if folder.is_dir() else []

    def localize(self, path: Path, only: Callable[[str], bool] | None = None) -> Path:
        key = self.key(path)
        if key is None:
            return path
        self.fs.invalidate_cache(key)
        remote = objects_under(self.fs, key)
        if not remote:
            return path
        for name, info in remote.items():
            relative = posixpath.relpath(name, key)
            local = path if relative == "." else path / relative
            if posixpath.basename(name) in (CLAIM_MARKER, LOCK_OBJECT) or is_current(local, info):
                continue
            if only is not None and relative != "." and not only(relative):
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(name, str(local))
        return path

    def read_many(self, paths: list[Path]) -> dict[Path, bytes]:
        keys = {path: self.key(path) for path in paths}
        found = LOCAL.read_many([path for path, key in keys.items() if key is None])
        by_key = {key: path for path, key in keys.items() if key is not None}
        # fsspec's cat takes a name with * ? [ for a pattern: those few are read one by one.
        literal = [key for key in by_key if not glob.has_magic(key)]
        if literal:
            # One concurrent batch, one GET each: s3fs's default chunked read asks each size first (HEAD).
            contents = self.fs.cat(literal, on_error="omit", max_concurrency=1)
            found.update({by_key[key]: data for key, data in contents.items()})
        for key in by_key.keys() - set(literal):
            with contextlib.suppress(FileNotFoundError):
                found[by_key[key]] = self.fs.cat_file(key)
        return found

    def manifest_versions(self, top: Path) -> dict[Path, str]:
        key = self.key(top)
        if key is None:
            return {}
        self.fs.invalidate_cache(key)
        # One paginated listing of the keys: S3 can neither filter by suffix nor by date.
        try:
            found = objects_under(self.fs, key)
        except FileNotFoundError:
            return {}
        versions = {}
        for name, info in found.items():
            if is_listed_manifest(posixpath.relpath(name, key)):  # as a folder walk, .hidden ones left out
                folder = top / posixpath.relpath(posixpath.dirname(name), key)
                versions[folder] = f"{info.get('ETag')} {info['LastModified'].isoformat()}"
        return versions

    def sync(self, folder: Path) -> None:
        key = self.key(folder)
        if key is None or not folder.is_dir():
            return
        self.fs.invalidate_cache(key)
        remote = objects_under(self.fs, key)
        changed = []
        for local in sorted(folder.rglob("*")):
            relative = local.relative_to(folder).as_posix()
            if not local.is_file() or any(part.startswith(".") for part in local.relative_to(folder).parts):
                continue
            name = f"{key}/{relative}"
            info = remote.get(name)
            if info is None or not (self.holds(name, local) or is_current(local, info, newer_side="remote")):
                changed.append((local, name, local))
        self.send(changed)

    def send(self, files: list[tuple[Path, str, Path]]) -> None:
        """Put each ``(source, key, home)``'s file at ``key``; ``home`` is where it lives afterwards here.

        A file with the bytes of an object this process put earlier is copied there on
        the server instead (:meth:`copy_source`): a run's checkpoint, ``best/`` and ``last/``
        hold the same weights, hundreds of MB that need not be uploaded three times. The
        files go at once, up to :data:`CONCURRENT_SENDS`, on s3fs's own event loop (no thread
        of ours: a failing process sends its state at exit too): a checkpoint's optimizer
        state need not wait for its weights' copy.
        """
        fsspec_sync(self.fs.loop, self.send_all, [(source, key) for source, key, _ in files])
        for source, key, home in files:
            self.record_sent(source, key, home)
        self.note_changes([key for _, key, _ in files])

    async def send_all(self, files: list[tuple[Path, str]]) -> None:
        """Copy or upload every ``(source, key)`` concurrently; the first failure raises."""
        limit = asyncio.Semaphore(CONCURRENT_SENDS)

        async def send_file(source: Path, key: str) -> None:
            origin = self.copy_source(source, key)
            async with limit:
                if origin is not None:  # S3 CopyObject
                    with contextlib.suppress(FileNotFoundError):  # the origin is gone since: upload
                        await self.fs._cp_file(origin, key)
                        return
                await self.fs._put_file(str(source), key)

        await asyncio.gather(*(send_file(source, key) for source, key in files))

    def copy_source(self, local: Path, target: str) -> str | None:
        """The key of an object this process put whose bytes are ``local``'s (same sha256), if any,
        other than ``target`` (S3 refuses to copy an object onto itself).

        Only for files of at least ``MIN_SHARED_BYTES`` (a copy request saves nothing on a
        small one); only while the file sent is unchanged here, so its sha256 (the
        manifest's, cached per file version) still names the object's bytes. Candidates
        are the objects of the same size, so most files are hashed by nobody here.
        """
        size = local.stat().st_size
        if size < MIN_SHARED_BYTES:
            return None
        for key, sent in list(self.sent.items()):  # another thread may record a file meanwhile
            if key != target and sent.version[1] == size and version_of(sent.home) == sent.version:
                if sha256_of(sent.home) == sha256_of(local):
                    return key
        return None

    def record_sent(self, source: Path, key: str, home: Path | None = None) -> None:
        """Remember that ``source``'s bytes are at ``key``, the file living at ``home`` (or ``source``)."""
        version = version_of(source)
        if version is not None:
            self.sent[key] = Sent(home or source, version)

    def holds(self, key: str, local: Path) -> bool:
        """Whether this process put ``local``, as it is now, at ``key``."""
        sent = self.sent.get(key)
        return sent is not None and sent.home == local and version_of(local) == sent.version

    def stale_copies(self, older_than_s: float) -> list[Path]:
        now = time.time()
        self.fs.invalidate_cache(self.remote_root)
        # Every folder that still holds an object: a copy of one of them may serve a reader.
        held = {posixpath.dirname(name) for name in objects_under(self.fs, self.remote_root)}
        held |= {parent for folder in held for parent in posixpath_parents(folder)}
        return self.removed_working_copies(held, older_than_s, now) + self.outdated_fetches(older_than_s, now)

    def removed_working_copies(self, held: set[str], older_than_s: float, now: float) -> list[Path]:
        """Artifact folders of the working copy under which the bucket holds nothing any more
        (removed or moved by another machine), outermost only, left alone within the grace period."""
        manifests = sorted(self.local_root.rglob(MANIFEST), key=lambda path: len(path.parts))
        removed: list[Path] = []
        for manifest in manifests:
            key = self.key(manifest.parent)
            if key is None or key in held or any(manifest.is_relative_to(folder) for folder in removed):
                continue
            if now - manifest.stat().st_mtime >= older_than_s:
                removed.append(manifest.parent)
        return removed

    def outdated_fetches(self, older_than_s: float, now: float) -> list[Path]:
        """Folders of :meth:`fetch_artifact`'s cache fetched from this yard whose artifact has
        changed since (a new listing digest) or is gone; fetched within the grace period: kept."""
        outdated = []
        for record in sorted((cache_root() / ARTIFACTS_CACHE).glob(f"*/{SOURCE_RECORD}")):
            url = json.loads(record.read_text())["url"]
            key = self.fs._strip_protocol(url).rstrip("/")
            if not key.startswith(f"{self.remote_root}/") or now - record.stat().st_mtime < older_than_s:
                continue
            try:
                current = listing_digest(remote_files(self.fs, url, key))
            except ArtifactNotFoundError:
                current = None
            if current != record.parent.name:
                outdated.append(record.parent)
        return outdated

    @classmethod
    def fetch_artifact(cls, url: str) -> Path:
        """The file or folder at ``url`` in this machine's cache, downloaded unless there already.

        The cache folder is named by the sha256 of the remote listing (each object's
        relative name, size and ETag, the object store's content checksum), so a second
        call costs one listing and an artifact changed since (an eval added its results)
        is fetched again into a new folder. A run's ``checkpoint-*`` folders (resumable
        working state, not a model) are left out. The download goes to a temporary
        folder renamed into place, so a killed fetch is never taken for a cached one; it
        records its URL, so ``runs gc`` on the yard can tell when the copy is outdated.
        """
        fs = filesystem(url, url)
        key = fs._strip_protocol(url).rstrip("/")
        wanted = remote_files(fs, url, key)
        digest = listing_digest(wanted)
        folder = cache_root() / ARTIFACTS_CACHE / digest
        target = folder / posixpath.basename(key)
        if folder.is_dir():
            return target
        staged = folder.with_name(temp_name(digest))
        for relative in wanted:
            local = staged / posixpath.basename(key) / relative if relative != "." else staged / target.name
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(key if relative == "." else f"{key}/{relative}", str(local))
        (staged / SOURCE_RECORD).write_text(json.dumps({"url": url}))
        try:
            staged.rename(folder)
        except OSError:  # another process fetched the same content first: use theirs
            LOCAL.delete(staged)
        return target


def objects_under(fs: Any, key: str) -> dict[str, dict[str, Any]]:
    """The objects at or under ``key``, by key, with their details: objects only.

    A server that keeps folders (SeaweedFS keeps one after its last object is deleted) would
    otherwise show ``key`` itself as a directory: s3fs's ``find`` names what ``info`` says of
    the key when nothing is listed under it.
    """
    return {name: info for name, info in fs.find(key, detail=True).items() if info["type"] != "directory"}


def is_precondition_failed(error: OSError) -> bool:
    """Whether s3fs raised ``error`` for an S3 412 (PreconditionFailed) answer."""
    response = getattr(error.__cause__, "response", None) or {}
    return (
        response.get("Error", {}).get("Code") == "PreconditionFailed"
        or response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
    )


def filesystem(url: str, subject: str) -> Any:
    """An fsspec file system for ``url``'s scheme, or a ``ConfigError`` saying that ``subject`` needs what."""
    scheme = url.split("://", 1)[0]
    try:
        import fsspec

        return fsspec.filesystem(scheme, config_kwargs=CLIENT_CONFIG, skip_instance_cache=True)
    except ImportError as exc:
        raise ConfigError(
            f"{subject} needs {scheme}fs, which is not installed.",
            "Install it with `pip install 'tuneyard[s3]'`.",
        ) from exc


def remote_files(fs: Any, url: str, key: str) -> dict[str, dict[str, Any]]:
    """The objects of the artifact at ``key`` a model needs, by name relative to it (``.``: a file).

    A ``ConfigError`` when the store cannot be reached, ``ArtifactNotFoundError`` when
    nothing is there or only an upload stopped before its manifest.
    """
    try:
        found = objects_under(fs, key)
    except FileNotFoundError:
        found = {}
    except Exception as exc:  # botocore's connection, credential and HTTP errors share no base
        raise ConfigError(
            f"cannot reach {url}: {exc}.",
            "Check the endpoint (AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL) and the credentials "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or ~/.aws).",
        ) from exc
    files = {posixpath.relpath(name, key): info for name, info in found.items()}
    if not files:
        raise ArtifactNotFoundError(
            f"no artifact at {url}: the store holds no object under that key.",
            "Check the URL; `tuneyard --yard s3://BUCKET/PREFIX runs ls` lists a yard's artifacts by path.",
        )
    if CLAIM_MARKER in files and MANIFEST not in files:
        raise ArtifactNotFoundError(
            f"{url} is an unfinished upload: claimed, and no manifest.json yet.",
            "Wait for its writer to finish (a killed one's upload is removed by `tuneyard runs gc`).",
        )
    return {
        name: info
        for name, info in files.items()
        if posixpath.basename(name) not in (CLAIM_MARKER, LOCK_OBJECT) and model_files(name)
    }


def posixpath_parents(key: str) -> list[str]:
    """``a/b/c`` -> ``a/b``, ``a``: the folders above an object key."""
    parents = []
    while "/" in key:
        key = posixpath.dirname(key)
        parents.append(key)
    return parents


def listing_digest(files: dict[str, dict[str, Any]]) -> str:
    """The sha256 of an artifact's listing (each object's relative name, size and ETag): names its content."""
    listing = sorted((name, info["size"], str(info.get("ETag"))) for name, info in files.items())
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def is_current(local: Path, info: dict[str, Any], newer_side: str = "local") -> bool:
    """Whether the working-copy file and the remote object agree: same size, and ``newer_side`` not older.

    A download leaves the local file newer than its object, an upload the object newer
    than its file; the other way round, one side changed since.
    """
    try:
        stat = local.stat()
    except FileNotFoundError:
        return False
    remote_time = info["LastModified"].timestamp()
    in_order = stat.st_mtime >= remote_time if newer_side == "local" else remote_time >= stat.st_mtime
    return stat.st_size == info["size"] and in_order
