"""The yard: a folder tree of artifacts, its layout config and its index."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tuneyard.errors import ConfigError, LayoutError
from tuneyard.yard.layout import Layout
from tuneyard.yard.manifest import Manifest
from tuneyard.yard.writer import ArtifactWriter, RunWriter

if TYPE_CHECKING:
    from tuneyard.yard.index import Index

CONFIG_FILE = "tuneyard.yaml"
STATE_DIR = ".tuneyard"
HOME_ENV = "TUNEYARD_HOME"


def resolve_root(root: str | Path | None = None) -> Path:
    """``--yard DIR`` if given, else ``$TUNEYARD_HOME``, else the working directory."""
    chosen = root if root is not None else os.environ.get(HOME_ENV) or Path.cwd()
    return Path(chosen).expanduser().resolve()


def read_yard_config(root: Path) -> dict[str, Any]:
    """The yard's ``tuneyard.yaml`` as a mapping (empty when there is none)."""
    config_file = root / CONFIG_FILE
    if not config_file.is_file():
        return {}
    try:
        data = yaml.safe_load(config_file.read_text()) or {}
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


class Yard:
    """One yard root: where artifacts go (layout), how they are written, and the index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = Layout(read_yard_config(root).get("layout"))

    @classmethod
    def open(cls, root: str | Path | None = None) -> Yard:
        """The yard at ``root``, ``$TUNEYARD_HOME`` or the working directory."""
        return cls(resolve_root(root))

    @cached_property
    def index(self) -> Index:
        """The SQLite index (created on first use)."""
        from tuneyard.yard.index import Index

        return Index.open(self.root / STATE_DIR / "index.db")

    def relative(self, path: Path) -> str:
        """``path`` relative to the root in POSIX form, or absolute when outside."""
        resolved = path.resolve()
        if resolved.is_relative_to(self.root):
            return resolved.relative_to(self.root).as_posix()
        return resolved.as_posix()

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

    def create(self, manifest: Manifest, target: Path) -> ArtifactWriter:
        """Begin a one-shot artifact at ``target`` (or ``target-N`` if taken)."""
        return ArtifactWriter(self, manifest, target)

    def start_run(self, manifest: Manifest, target: Path) -> RunWriter:
        """Begin a long run at ``target`` (or ``target-N`` if taken)."""
        return RunWriter.start(self, manifest, target)

    def resume_run(self, folder: Path) -> RunWriter:
        """Continue an existing run folder (``--resume``)."""
        return RunWriter.resume(self, folder)

    def register(self, manifest: Manifest) -> None:
        """Record ``manifest`` in the index (the files stay the truth)."""
        self.index.upsert(manifest)
