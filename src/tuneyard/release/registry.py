"""The release store: ``releases/{name}/{version}/``, the alias log and the changelog.

Layout of one release name::

    releases/{name}/
        1.0.0/manifest.json   kind: release; its parent is the released artifact (by id)
        1.0.0/README.md       the model card
        CHANGELOG.md          regenerated from the versions' manifests at each release
        aliases.log           one JSON line per alias move, the only record of aliases

A release is immutable: its version folder is claimed with an exclusive create, built
in a staging folder and published whole, all under a lock on ``releases/{name}/``, so two
releases of one name at once get distinct versions (``--bump``) or the second a clear
conflict (the same ``--version``), never a mixed folder. A release references its
artifact's files; it copies no weights.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneyard.errors import ArtifactExistsError, ArtifactNotFoundError, ConfigError
from tuneyard.release.card import render_release_card
from tuneyard.release.changelog import render_changelog
from tuneyard.release.semver import Bump, Version, next_version
from tuneyard.task_types.model_card import CARD_FILE, DEFAULT_LICENSE
from tuneyard.yard.lineage import lineage, read_record, resolve
from tuneyard.yard.manifest import MODEL_KINDS, Manifest, list_files, utc_now, write_manifest
from tuneyard.yard.root import Yard
from tuneyard.yard.writer import fill_claimed

RELEASES_FOLDER = "releases"
CHANGELOG_FILE = "CHANGELOG.md"
ALIAS_LOG = "aliases.log"
RELEASE_ROLE = "release"  # the role of the artifact in a release manifest's parents
REFERENCE_PREFIX = "release:"  # tuneyard.load("release:NAME@production")

# A name is one folder; '@' separates it from a version or an alias in references.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# An alias is a word: never a version, so NAME@X always says which one it means.
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# Copied from the artifact, so `runs ls --kind release --task ...` filters releases too.
_COPIED_FIELDS = ("arch", "method", "rank", "strategy", "task", "task_type", "dataset", "project")


@dataclass(frozen=True)
class Release:
    """One published version of a release name, as its manifest records it."""

    name: str
    version: Version
    folder: Path
    manifest: dict[str, Any]
    aliases: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    @property
    def notes(self) -> str:
        """The release notes given with ``--notes``."""
        return str(self.manifest["release"]["notes"])

    @property
    def artifact_link(self) -> dict[str, Any]:
        """The parent link to the released artifact (its path and manifest id)."""
        return dict(self.manifest["parents"][0])


@dataclass(frozen=True)
class AliasMove:
    """One line of ``aliases.log``: ``alias`` moved from version ``before`` (None: new) to ``after``."""

    time: str
    alias: str
    before: str | None
    after: str


def check_name(name: str) -> str:
    """``name`` when it can name a release folder; a :class:`ConfigError` otherwise."""
    if _NAME.fullmatch(name) is None:
        raise ConfigError(
            f"release name {name!r} is not a plain name.",
            "Use letters, digits, '.', '_' and '-' (a letter or digit first), e.g. --name topics.",
        )
    return name


def split_reference(reference: str) -> tuple[str, str | None]:
    """``"NAME@production"`` -> ``("NAME", "production")``; ``"NAME"`` -> ``("NAME", None)``."""
    name, _, selector = reference.removeprefix(REFERENCE_PREFIX).partition("@")
    return check_name(name), selector or None


class Registry:
    """The releases of one yard."""

    def __init__(self, yard: Yard) -> None:
        self.yard = yard
        self.storage = yard.storage

    @property
    def root(self) -> Path:
        """``releases/`` of the yard."""
        return self.yard.root / RELEASES_FOLDER

    def folder(self, name: str) -> Path:
        """``releases/{name}/``."""
        return self.root / check_name(name)

    # -- reading ---------------------------------------------------------------

    def names(self) -> list[str]:
        """Every release name that has at least one published version, in name order."""
        return [
            entry.name
            for entry in self.storage.list(self.root)
            if entry.is_dir and _NAME.fullmatch(entry.name) and self.releases(entry.name)
        ]

    def releases(self, name: str) -> list[Release]:
        """The published versions of ``name``, oldest first (claimed but unpublished ones are not)."""
        folder = self.folder(name)
        aliases = self.aliases(name)
        found = []
        for entry in self.storage.list(folder):
            if not (entry.is_dir and Version.is_version(entry.name)):
                continue
            record = read_record(self.yard, folder / entry.name)
            if record is None or record.get("kind") != "release":
                continue
            version = Version.parse(entry.name)
            pointing = tuple(alias for alias, target in aliases.items() if target == entry.name)
            found.append(Release(name, version, folder / entry.name, record, pointing))
        return sorted(found, key=lambda release: release.version)

    def alias_log(self, name: str) -> list[AliasMove]:
        """Every alias move of ``name``, oldest first (a line torn by a killed writer is skipped)."""
        try:
            text = self.storage.read_text(self.folder(name) / ALIAS_LOG)
        except FileNotFoundError:
            return []
        moves = []
        for line in text.splitlines():
            try:
                moves.append(AliasMove(**json.loads(line)))
            except (ValueError, TypeError):
                continue
        return moves

    def aliases(self, name: str) -> dict[str, str]:
        """Where each alias of ``name`` points now: the last move of each in the log."""
        return {move.alias: move.after for move in self.alias_log(name)}

    def resolve(self, reference: str) -> Release:
        """The release ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` names (``NAME``: the newest)."""
        name, selector = split_reference(reference)
        releases = self.releases(name)
        if not releases:
            known = ", ".join(self.names()) or "none yet"
            raise ArtifactNotFoundError(
                f"no release named {name!r} in {self.root}.",
                f"Release names: {known}. Make one with `tuneyard release ARTIFACT --name {name}`.",
            )
        if selector is None:
            return releases[-1]
        version = self.aliases(name).get(selector, selector)
        for release in releases:
            if str(release.version) == version:
                return release
        versions = ", ".join(str(release.version) for release in releases)
        aliases = ", ".join(self.aliases(name)) or "none"
        raise ArtifactNotFoundError(
            f"{name} has no version or alias {selector!r}.", f"Versions: {versions}. Aliases: {aliases}."
        )

    def artifact_folder(self, release: Release) -> Path:
        """The folder of the artifact ``release`` points at, found by path or, if it moved, by id."""
        found = resolve(self.yard, release.artifact_link)
        if found.state != "artifact":
            raise ArtifactNotFoundError(
                f"the artifact of {release.reference}, {found.path}, is gone from the yard.",
                "A release references its artifact's files: restore the folder, or release another artifact.",
            )
        return self.yard.absolute(found.path)

    # -- writing ---------------------------------------------------------------

    def create(
        self,
        artifact: str,
        name: str,
        notes: str,
        version: str | None = None,
        bump: Bump | None = None,
        license_id: str = DEFAULT_LICENSE,
    ) -> Release:
        """Release the model artifact ``artifact`` (name, path or id) as ``name`` at a new version.

        ``version`` is the exact new version; otherwise ``bump`` (default ``minor``)
        increments the newest one, and the first release of a name is ``1.0.0``.
        """
        if version is not None and bump is not None:
            raise ConfigError(
                "--version and --bump both given.", "Give one: --version 1.2.0 or --bump minor."
            )
        requested = Version.parse(version) if version is not None else None
        record = self._releasable(artifact)
        name_folder = self.folder(name)
        self.storage.create_exclusive(name_folder)  # exists from now on: the lock below needs it
        with self.storage.lock(name_folder):
            released = [release.version for release in self.releases(name)]
            chosen = requested or next_version(released, bump or Bump.minor)
            target = self._claim(name, chosen, released)
            manifest = self._manifest(record, name, chosen, notes, license_id, target)
            with fill_claimed(self.storage, target) as staged:
                data = manifest.to_data()
                card = render_release_card(data, lineage(self.yard, data), license_id)
                self.storage.write_text(staged / CARD_FILE, card)
                manifest.files = list_files(staged)
                write_manifest(staged, manifest, self.storage)
            self.yard.register(manifest)
            releases = self.releases(name)
            changelog = render_changelog(name, [release.manifest for release in releases])
            self.storage.write_text(name_folder / CHANGELOG_FILE, changelog)
        return next(release for release in releases if release.version == chosen)

    def move_alias(self, reference: str, alias: str) -> AliasMove:
        """Point ``alias`` of the release ``reference`` names at it, and log the move."""
        if _ALIAS.fullmatch(alias) is None or Version.is_version(alias):
            raise ConfigError(
                f"alias {alias!r} is not a word.",
                "Use letters, digits, '_' and '-', starting with a letter, e.g. production.",
            )
        release = self.resolve(reference)
        folder = self.folder(release.name)
        with self.storage.lock(folder):
            move = AliasMove(utc_now(), alias, self.aliases(release.name).get(alias), str(release.version))
            self.storage.append_text(folder / ALIAS_LOG, json.dumps(move.__dict__) + "\n")
        return move

    def _releasable(self, artifact: str) -> dict[str, Any]:
        """The manifest record of ``artifact``, refused unless it is a complete model artifact."""
        record = self.yard.find(artifact)
        if record["kind"] not in MODEL_KINDS:
            raise ConfigError(
                f"{record['path']} is a {record['kind']} artifact, not a model.",
                f"Release a model artifact: one of kinds {', '.join(MODEL_KINDS)} (`tuneyard runs ls`).",
            )
        if record["status"] != "complete":
            raise ConfigError(
                f"{record['path']} is {record['status']}, not complete.",
                "Release a run that finished (`tuneyard runs ls --status complete`).",
            )
        return record

    def _claim(self, name: str, version: Version, released: list[Version]) -> Path:
        """Claim ``releases/{name}/{version}`` exactly; a version released already is a conflict."""
        target = self.folder(name) / str(version)
        if version in released:
            newest = max(released)
            raise ArtifactExistsError(
                f"{name} {version} is released already (releases are immutable).",
                f"Release a new version: --bump patch gives {newest.bumped(Bump.patch)}, "
                f"or --version with a version not in: {', '.join(str(v) for v in sorted(released))}.",
            )
        if not self.storage.create_exclusive(target):
            raise ArtifactExistsError(
                f"{target} exists but holds no release: an interrupted release left it.",
                "Remove it with `tuneyard runs gc --older-than 0`, then release again.",
            )
        return target

    def _manifest(
        self, record: dict[str, Any], name: str, version: Version, notes: str, license_id: str, target: Path
    ) -> Manifest:
        """The release manifest: the artifact's fields, config and metrics as released, and its link."""
        artifact_folder = self.yard.absolute(record["path"])
        return Manifest(
            kind="release",
            name=f"{name}@{version}",
            path=self.yard.relative(target),
            status="complete",
            parents=[self.yard.parent_link(artifact_folder, RELEASE_ROLE)],
            config=record.get("config") or {},
            metrics=record.get("metrics") or {},
            versions=record.get("versions") or {},  # what the artifact was made with
            release={"name": name, "version": str(version), "notes": notes, "license": license_id},
            **{field: record.get(field) for field in _COPIED_FIELDS},
        )
