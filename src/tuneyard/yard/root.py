"""The yard: a folder tree of artifacts, its layout config and its index."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ArtifactNotFoundError, ConfigError, LayoutError
from tuneyard.yard.fields import FILTERS
from tuneyard.yard.storage import LOCAL, Storage, open_url

if TYPE_CHECKING:
    from tuneyard.yard.change_journal import Cursor
    from tuneyard.yard.index import Index
    from tuneyard.yard.layout import Layout
    from tuneyard.yard.manifest import Manifest, Parent, TaskTypeOf
    from tuneyard.yard.scan import ScanReport
    from tuneyard.yard.writer import ArtifactWriter, RunWriter

CONFIG_FILE = "tuneyard.yaml"
STATE_DIR = ".tuneyard"
# Under STATE_DIR: what every machine of a shared yard works on (unfinished label jobs'
# journals), uploaded with the artifacts; the rest of STATE_DIR is this machine's cache.
SHARED_STATE = "shared"
INDEX_FILE = "index.db"
GITIGNORE_FILE = ".gitignore"
# Artifacts written or imported outside the root (--output-dir, runs import): one
# absolute path a line. A file, not an index table, so reindex can find them again.
EXTERNAL_FILE = "external.txt"
# On shared storage: the manifests of the last listing the local index was brought up to
# date with, by path relative to the root, each with its version (ETag and time).
LISTING_FILE = "listing.json"
HOME_ENV = "TUNEYARD_HOME"


def resolve_root(root: str | Path | None = None) -> Path:
    """``--yard DIR`` if given, else ``$TUNEYARD_HOME``, else the working directory."""
    chosen = root if root is not None else os.environ.get(HOME_ENV) or Path.cwd()
    return Path(chosen).expanduser().resolve()


def read_yard_config(root: Path, storage: Storage = LOCAL) -> dict[str, Any]:
    """The yard's ``tuneyard.yaml`` as a mapping (empty when there is none)."""
    import yaml

    config_file = root / CONFIG_FILE
    try:
        text = storage.read_text(config_file)
    except (FileNotFoundError, IsADirectoryError):
        return {}
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file} is not valid YAML: {exc}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{config_file} must hold a mapping, e.g. 'layout: {{run: ...}}'.")
    unknown = set(data) - {"layout"}
    if unknown:
        raise ConfigError(
            f"{config_file}: unknown field(s) {', '.join(sorted(unknown))}.", "Allowed fields: layout."
        )
    layout = data.get("layout") or {}
    if not isinstance(layout, dict) or not all(isinstance(v, str) for v in layout.values()):
        raise ConfigError(f"{config_file}: 'layout' must map artifact kinds to path templates.")
    return data


def enclosing_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that is a yard (has ``.tuneyard/`` or ``tuneyard.yaml``)."""
    for folder in (path.resolve(), *path.resolve().parents):
        if (folder / STATE_DIR).is_dir() or (folder / CONFIG_FILE).is_file():
            return folder
    return None


class Yard:
    """One yard root: where artifacts go (layout), how they are written, and the index."""

    def __init__(self, root: Path, storage: Storage = LOCAL, index_writes: bool = True) -> None:
        self.root = root
        self.storage = storage
        # False in a grid's worker processes (Ray tasks, --jobs): only the driver writes the
        # index; the workers' manifests are the truth it registers when a cell ends.
        self.index_writes = index_writes
        self.refreshed = False  # on shared storage: listed once per command, not per query

    @classmethod
    def open(cls, root: str | Path | None = None, index_writes: bool = True) -> Yard:
        """The yard at ``root``, ``$TUNEYARD_HOME`` or the working directory.

        A URL (``s3://bucket/prefix``) picks its storage by scheme and works in a local copy.
        """
        chosen = str(root if root is not None else os.environ.get(HOME_ENV, ""))
        if "://" in chosen:
            working_copy, storage = open_url(chosen)
            return cls(working_copy, storage, index_writes)
        from tuneyard.yard.objects import sharing_enabled

        sharing_enabled()  # a mistyped $TUNEYARD_SHARED_OBJECTS fails now, not at a run's first checkpoint
        return cls(resolve_root(root), index_writes=index_writes)

    @property
    def address(self) -> str:
        """What :meth:`open` takes to open this yard in another process: its URL, or its root folder.

        A grid's workers and a detached pipeline get it: the working copy's path alone would
        open a local yard there, whose writes never reach the shared one.
        """
        return self.storage.url or str(self.root)

    @cached_property
    def layout(self) -> Layout:
        """Layout templates: the defaults, overridden by ``tuneyard.yaml``."""
        from tuneyard.yard.layout import Layout

        return Layout(read_yard_config(self.root, self.storage).get("layout"))

    @property
    def state_dir(self) -> Path:
        """``.tuneyard/``: the index and the list of external artifacts."""
        return self.root / STATE_DIR

    @property
    def shared_state_dir(self) -> Path:
        """``.tuneyard/shared/``: work in progress that another machine may continue (label jobs)."""
        return self.state_dir / SHARED_STATE

    @property
    def has_index(self) -> bool:
        """Whether the index exists (read-only commands do not create one)."""
        return (self.state_dir / INDEX_FILE).is_file()

    @cached_property
    def index(self) -> Index:
        """The SQLite index (created on first use, which is when the yard is created)."""
        from tuneyard.yard.index import Index

        if not self.has_index and self.index_writes:
            self.write_gitignore()
        return Index.open(self.state_dir / INDEX_FILE)

    def heavy_folders(self) -> list[str]:
        """The top folders that hold weights and data: ``.tuneyard/`` and each layout template's first folder.

        Releases are not among them: their cards and changelogs are what a team commits.
        """
        firsts = (Path(template).parts[0] for template in self.layout.templates.values())
        return [f"{STATE_DIR}/", *sorted({f"{part}/" for part in firsts if "{" not in part})]

    def write_gitignore(self) -> bool:
        """Write ``.gitignore`` listing :meth:`heavy_folders` at the root, unless one exists; whether it did.

        Seed 001 keeps outputs out of git: a yard inside a repository must not stage
        gigabytes of weights on the next ``git add .``. A user's own file is never replaced.
        """
        target = self.root / GITIGNORE_FILE
        if target.exists() or self.storage.is_remote:  # a bucket is not a git working tree
            return False
        lines = ["# Written by tuneyard when this yard was created: weights and data stay out of git."]
        self.storage.write_text(target, "\n".join([*lines, *self.heavy_folders()]) + "\n")
        return True

    def relative(self, path: Path) -> str:
        """``path`` relative to the root in POSIX form, or absolute when outside."""
        resolved = path.resolve()
        if resolved.is_relative_to(self.root):
            return resolved.relative_to(self.root).as_posix()
        return resolved.as_posix()

    def parent_link(self, source: str | Path, role: str) -> Parent:
        """The lineage entry for a model a new artifact starts from.

        A local folder is recorded relative to the root (so the yard can move) with its
        manifest id when it has one; anything else (a hub id) is kept as given.
        """
        from tuneyard.yard.manifest import Parent, read_manifest_if_any

        folder = Path(source)
        if not folder.is_dir():
            return Parent(path=str(source), role=role)
        manifest = read_manifest_if_any(folder, self.storage)  # on S3: the bucket's, not the working copy's
        return Parent(id=manifest.id if manifest else None, path=self.relative(folder), role=role)

    def localize(self, folder: Path, only: Callable[[str], bool] | None = None) -> Path:
        """A folder the user named (``--resume RUN``), absolute and present on this machine.

        On shared storage a relative path is the yard's (as ``runs ls`` prints it), and
        the folder is downloaded into the working copy when missing or outdated there
        (``only`` the files it picks: see :meth:`Storage.localize`).
        """
        if self.storage.is_remote and not folder.is_absolute():
            folder = self.root / folder
        return self.storage.localize(folder.resolve(), only)

    def absolute(self, relative: str) -> Path:
        """Inverse of :meth:`relative`."""
        return (self.root / relative).resolve()

    def target_path(self, kind: str, output_dir: str | Path | None = None, **fields: object) -> Path:
        """Absolute folder for a new artifact: ``--output-dir`` or the layout template."""
        if output_dir is not None:
            return Path(output_dir).expanduser().resolve()
        path = (self.root / self.layout.relative_path(kind, **fields)).resolve()
        if not path.is_relative_to(self.root):
            raise LayoutError(f"layout for {kind!r} resolves outside the yard: {path}.")
        return path

    def project_folder(self, project: str) -> Path | None:
        """Absolute folder of ``project``'s runs and outputs (``outputs/{project}``; see :class:`Layout`)."""
        relative = self.layout.project_folder(project)
        return (self.root / relative).resolve() if relative is not None else None

    def create(self, manifest: Manifest, target: Path) -> ArtifactWriter:
        """Begin a one-shot artifact at ``target`` (or ``target-N`` if taken)."""
        from tuneyard.yard.writer import ArtifactWriter

        return ArtifactWriter(self, manifest, target)

    def claim(self, target: Path) -> Path:
        """Claim an empty folder at ``target`` (or ``target-N`` if taken) for a run about to start."""
        from tuneyard.yard.writer import claim_folder

        return claim_folder(self.storage, target)

    def start_run(self, manifest: Manifest, target: Path, claimed: Path | None = None) -> RunWriter:
        """Begin a long run at ``target`` (or ``target-N`` if taken), or in a folder ``claimed`` for it."""
        from tuneyard.yard.writer import RunWriter

        return RunWriter.start(self, manifest, claimed or self.claim(target), requested_path=target)

    def resume_run(self, folder: Path) -> RunWriter:
        """Continue an existing run folder (``--resume``)."""
        from tuneyard.yard.writer import RunWriter

        return RunWriter.resume(self, folder)

    def register(self, manifest: Manifest) -> None:
        """Record ``manifest`` in the index (the files stay the truth).

        A manifest nested inside another artifact (``run/best/manifest.json``)
        describes a part of that artifact and is not indexed on its own, exactly as
        ``reindex`` would skip it.
        """
        folder = self.absolute(manifest.path)
        if not self.index_writes or self.enclosing_artifact(folder) is not None:
            return
        if Path(manifest.path).is_absolute():
            self.remember_external([folder])
        self.index.upsert(manifest)

    def enclosing_artifact(self, folder: Path) -> Path | None:
        """The artifact folder (not an experiment workspace) that ``folder`` lies inside, if any."""
        from tuneyard.yard.scan import CONTAINER_KINDS

        for ancestor in folder.parents:
            if ancestor == self.root:
                return None
            try:
                kind = json.loads(self.storage.read_bytes(ancestor / "manifest.json")).get("kind")
            except (OSError, ValueError, AttributeError):
                continue
            if kind not in CONTAINER_KINDS:
                return ancestor
        return None

    def external_folders(self) -> list[Path]:
        """Artifact folders outside the root that this yard wrote or imported (still existing)."""
        try:
            lines = self.storage.read_text(self.state_dir / EXTERNAL_FILE).splitlines()
        except FileNotFoundError:
            return []
        return [Path(line) for line in dict.fromkeys(lines) if line and Path(line).is_dir()]

    def remember_external(self, folders: list[Path]) -> None:
        """Add folders outside the root to ``.tuneyard/external.txt`` (once each)."""
        if not folders:
            return
        known = {str(folder) for folder in self.external_folders()}
        new = [str(folder) for folder in dict.fromkeys(folders) if str(folder) not in known]
        if new:
            self.storage.append_text(self.state_dir / EXTERNAL_FILE, "".join(f"{line}\n" for line in new))

    def query(
        self,
        where: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        with_manifest: bool = False,
        include_archived: bool = False,
        **filters: str | None,
    ) -> list[dict[str, Any]]:
        """Artifacts matching ``--where`` and plain field filters (``arch="bert"``), as index rows.

        Each row holds the manifest's columns and ``metrics`` flattened to dotted keys;
        ``with_manifest`` adds the whole stored manifest. Archived artifacts
        (``runs archive``) only with ``include_archived``.
        """
        from tuneyard.yard.query import Condition, all_of, compile_sort, compile_where, equals

        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise ConfigError(f"unknown filter {min(unknown)!r}.", f"Filters: {', '.join(FILTERS)}.")
        conditions = [equals(name, value) for name, value in filters.items() if value is not None]
        if where:
            conditions.append(compile_where(where))
        if not include_archived:
            conditions.append(Condition("COALESCE(a.archived, 0) = 0", []))
        self.heal_index()
        if not self.has_index:
            return []
        order = compile_sort(sort) if sort else None
        return self.index.select(all_of(conditions), order, limit, with_manifest)

    def find(self, reference: str) -> dict[str, Any]:
        """The manifest record of one artifact, by folder path, id (or prefix) or name.

        A folder's manifest is asked of the storage, never of a local ``is_file()``: on
        object storage the working copy may still hold an artifact another machine removed
        or moved (until ``runs gc``).
        """
        from tuneyard.yard.manifest import read_manifest_if_any

        folder = Path(reference).expanduser()
        for candidate in (folder, self.root / reference):
            manifest = read_manifest_if_any(candidate, self.storage)
            if manifest is not None:
                manifest.path = self.relative(candidate)
                return manifest.to_data()
        self.heal_index()
        rows = self.index.find(reference) if self.has_index else []
        if not rows:
            raise ArtifactNotFoundError(
                f"no artifact named {reference!r} in the yard at {self.root}.",
                "List them with `tuneyard runs ls`; give a name, a path or an id.",
            )
        if len(rows) > 1:
            paths = "\n".join(f"  {row['path']}" for row in rows[:10])
            raise ArtifactNotFoundError(
                f"{len(rows)} artifacts are named {reference!r}.", f"Give one of their paths:\n{paths}"
            )
        record: dict[str, Any] = rows[0]["manifest"]
        return record

    def heal_index(self) -> ScanReport | None:
        """Rebuild a missing index from the manifests, in a folder that is a yard; the report, if rebuilt.

        A yard is a folder with ``.tuneyard/`` or ``tuneyard.yaml``: a query in any
        other folder (a home folder) must not walk its whole tree. A grid worker, which
        never writes the index, leaves it to the driver. SQLite's side files of the
        deleted database go first, so none of its pages come back.
        """
        is_yard = self.storage.is_remote or self.state_dir.is_dir() or (self.root / CONFIG_FILE).is_file()
        if not is_yard or not self.index_writes:
            return None
        if self.has_index:
            self.refresh_index()
            return None
        for suffix in ("-wal", "-shm"):
            self.storage.delete(self.state_dir / f"{INDEX_FILE}{suffix}")
        return self.reindex()  # on shared storage it remembers its listing: nothing to refresh after

    def refresh_index(self) -> None:
        """Index what other machines wrote and removed since this machine's last refresh (a yard
        on shared storage); once per command.

        From the change journal (:mod:`tuneyard.yard.change_journal`): one listing of the
        records named since this machine's cursor, less a window for clocks that disagree;
        the manifests that the unseen ones name are read in one batch (missing: removed), the
        rest of the yard not at all. Without a usable cursor (a first refresh, or one older
        than the journal's retention) the whole yard is listed instead, as ``runs reindex``
        does, and compared manifest by manifest with the versions the last listing recorded.
        Rows of artifacts whose manifest is gone (removed or moved elsewhere) are forgotten,
        so ``runs ls`` and :meth:`find` do not answer with them.
        """
        if not self.storage.is_remote or self.refreshed or not self.index_writes:
            return
        from tuneyard.yard.change_journal import Cursor, read_cursor, record_folders
        from tuneyard.yard.manifest import MANIFEST_FILE

        now = time.time_ns()
        cursor = read_cursor(self)
        unseen = cursor.unseen(self.storage) if cursor is not None and cursor.usable(now) else None
        if cursor is None or unseen is None:
            self.refresh_from_listing()
            return
        rechecked = record_folders(unseen, self.root)
        texts = self.storage.read_many([folder / MANIFEST_FILE for folder in rechecked])
        present = {folder for folder in rechecked if folder / MANIFEST_FILE in texts}
        listing = {self.root / relative: version for relative, version in self.last_listing().items()}
        for folder in rechecked - present:
            listing.pop(folder, None)
        # Known only to be current: a full listing (after a long pause) reads it again.
        listing.update(dict.fromkeys(present, ""))
        self.index_changed(present, listing, texts)
        if rechecked - present:
            self.index.remove([self.under_root(folder) for folder in rechecked - present])
        self.remember_listing(listing, Cursor.after(now, [*cursor.seen, *unseen]))

    def refresh_from_listing(self) -> None:
        """:meth:`refresh_index` from one listing of the whole yard (no usable journal cursor)."""
        listing, cursor = self.list_manifests()
        seen = self.last_listing()
        changed = {
            folder for folder, version in listing.items() if seen.get(self.under_root(folder)) != version
        }
        self.index_changed(changed, listing)
        self.forget_all_but(listing)
        self.remember_listing(listing, cursor)

    def index_changed(
        self, changed: set[Path], listing: dict[Path, str], texts: dict[Path, bytes] | None = None
    ) -> None:
        """Index the artifacts whose manifests in ``changed`` folders are new or rewritten, with
        ``listing`` every manifest folder of the yard now (``texts``: manifests read already).

        A changed manifest that no longer parses is listed as such, as ``runs reindex`` lists
        it, in place of the row its last good version left.
        """
        from tuneyard.yard.scan import Problem, corrupt_record, listed_manifests

        # The artifacts around a changed manifest tell whether it is an artifact or a part of one.
        around = {parent for folder in changed for parent in folder.parents if parent in listing}
        records: list[dict[str, Any]] = []
        problems: list[Problem] = []
        for folder, manifest in listed_manifests(self.storage, sorted(changed | around), problems, texts):
            if folder in changed:
                manifest.path = self.under_root(folder)
                records.append(manifest.to_data())
        records += [
            corrupt_record(self, problem)
            for problem in problems
            if problem.corrupt and problem.path.parent in changed
        ]
        self.index.upsert_many(records)

    def list_manifests(self) -> tuple[dict[Path, str], Cursor]:
        """Every manifest folder of the yard with its version (:meth:`Storage.manifest_versions`),
        and the journal cursor that listing brings this machine to.

        The journal is listed first: the changes its records name were made before them, so
        the full listing that follows holds them, and the next refresh need not read them.
        """
        from tuneyard.yard.change_journal import cursor_now

        cursor = cursor_now(self.storage)
        return self.storage.manifest_versions(self.root), cursor

    def forget_all_but(self, listing: dict[Path, str]) -> None:
        """Drop the rows of artifacts under the root that ``listing`` no longer has: another machine
        removed or moved them, and their rows would answer for them."""
        present = {self.under_root(folder) for folder in listing}
        gone = [path for path in self.index.paths() if not Path(path).is_absolute() and path not in present]
        if gone:
            self.index.remove(gone)

    def under_root(self, folder: Path) -> str:
        """:meth:`relative` of a folder known to be under the root, without resolving it on disk."""
        return folder.relative_to(self.root).as_posix()

    def last_listing(self) -> dict[str, str]:
        """The manifest versions of the last listing the index was brought up to date with (none: {})."""
        try:
            listed: dict[str, str] = json.loads(self.storage.read_text(self.state_dir / LISTING_FILE))
        except FileNotFoundError:  # never listed
            return {}
        return listed

    def remember_listing(self, listing: dict[Path, str], cursor: Cursor) -> None:
        """Record that the index is up to date with ``listing`` (every manifest folder, with its
        version) and the change journal up to ``cursor``: where the next refresh starts, and
        this command's refresh already."""
        from tuneyard.yard.change_journal import write_cursor

        versions = {self.under_root(folder): version for folder, version in sorted(listing.items())}
        self.storage.write_text(self.state_dir / LISTING_FILE, json.dumps(versions))
        write_cursor(self, cursor)
        self.refreshed = True

    def reindex(self, task_type_of: TaskTypeOf | None = None) -> ScanReport:
        """Rebuild the index from the manifests alone (see :func:`tuneyard.yard.scan.reindex`)."""
        from tuneyard.yard.scan import reindex

        return reindex(self, task_type_of)

    def import_paths(
        self,
        paths: list[Path],
        hash_files: bool = False,
        task_type_of: TaskTypeOf | None = None,
        trust: bool = False,
    ) -> ScanReport:
        """Index foreign model folders in place (see :func:`tuneyard.yard.scan.import_paths`)."""
        from tuneyard.yard.scan import import_paths

        return import_paths(self, paths, hash_files, task_type_of, trust)
