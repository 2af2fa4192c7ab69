"""``tuneyard release pack NAME@VERSION -o OUT``: a release as a Hugging Face model repository.

``OUT`` is a folder, or a ``.tar`` of one (named ``{name}-{version}/`` inside), that
``huggingface-cli upload`` takes as it is and another yard's ``tuneyard runs import``
indexes (a ``.tar`` it unpacks first):

* the released model's own files: weights, ``config.json``, tokenizer, an adapter's
  ``adapter_config.json`` (the yard's ``manifest.json`` is left out: it describes the
  folder in this yard);
* ``README.md``: the release's card, its snippets run in the packed folder;
* the GGUF files of the exports made from the released artifact, if any;
* for an adapter whose base is a folder (not a hub id), that base in ``base/``, which
  the packed ``adapter_config.json`` names, so the pack loads with nothing else present.

``OUT`` is never overwritten without ``force``: the pack is built in a temporary sibling
and renamed onto it once complete, so an interrupted pack leaves no ``OUT``.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from tuneyard.errors import ArtifactExistsError
from tuneyard.models.loading import ADAPTER_CONFIG, adapter_base, resolve_model_folder
from tuneyard.release.card import release_title
from tuneyard.release.registry import Registry, Release
from tuneyard.task_types.model_card import CARD_FILE, loading_section, render_card
from tuneyard.yard.lineage import descendants, lineage, read_record
from tuneyard.yard.manifest import MANIFEST_FILE
from tuneyard.yard.root import Yard
from tuneyard.yard.storage import Storage

ARCHIVE_SUFFIX = ".tar"
BASE_FOLDER = "base"  # an adapter's base, when it is a folder, inside the pack
IN_THE_PACK = "Run in this folder (the unpacked pack, or a clone of the repository it was uploaded to)"
_LEFT_OUT = (MANIFEST_FILE, CARD_FILE)  # the yard's record of the folder; the card is the release's


def pack_release(registry: Registry, reference: str, out: Path, force: bool = False) -> Path:
    """Pack the release ``reference`` (``NAME@VERSION`` or ``NAME@ALIAS``) into ``out``; returns ``out``."""
    release = registry.resolve(reference)
    artifact = registry.artifact_folder(release)
    model = resolve_model_folder(artifact)
    out = out.expanduser().resolve()
    if out.exists() and not force:  # refused before the copying; publish_new closes the window after it
        raise _exists(out)
    storage = registry.storage
    staged = storage.staging_folder(out)
    try:
        filled = staged
        if out.suffix == ARCHIVE_SUFFIX:
            folder = staged / f"{release.name}-{release.version}"
            _fill(registry.yard, release, artifact, model, folder)
            filled = staged / out.name
            with tarfile.open(filled, "w") as tar:
                tar.add(folder, arcname=folder.name)
        else:
            _fill(registry.yard, release, artifact, model, staged)
        _publish(storage, filled, out, force)
    finally:
        storage.delete(staged)  # what is left of it: all of it on failure, the tar's folder on success
    return out


def _publish(storage: Storage, filled: Path, out: Path, force: bool) -> None:
    """``filled`` as ``out``: replacing what is there only with ``force``, however late it appeared."""
    if force:
        storage.publish(filled, out)
        return
    try:
        storage.publish_new(filled, out)
    except FileExistsError:
        raise _exists(out) from None


def _exists(out: Path) -> ArtifactExistsError:
    return ArtifactExistsError(f"{out} exists.", "Choose another -o, or pass --force to replace it.")


def _fill(yard: Yard, release: Release, artifact: Path, model: Path, folder: Path) -> None:
    """Write the repository into ``folder``: ``model``'s files, ``artifact``'s GGUF exports, the card."""
    folder.mkdir(exist_ok=True)
    _copy_model_files(model, folder)
    for gguf in exported_gguf_files(yard, artifact):
        shutil.copyfile(gguf, folder / gguf.name)
    if (folder / ADAPTER_CONFIG).is_file():
        _carry_base(model, folder)
    card = render_card(
        release.manifest,
        lineage(yard, release.manifest),
        title=release_title(release.manifest),
        loading=loading_section(folder, ".", where=IN_THE_PACK),
        library_name="peft" if (folder / ADAPTER_CONFIG).is_file() else "transformers",
        license_id=str(release.manifest["release"]["license"]),
    )
    (folder / CARD_FILE).write_text(card)


def _copy_model_files(model: Path, folder: Path) -> None:
    """Copies (never links: a user may edit the pack) of the model folder's files."""
    for path in sorted(model.iterdir()):
        if path.is_file() and path.name not in _LEFT_OUT:
            shutil.copyfile(path, folder / path.name)


def _carry_base(model: Path, folder: Path) -> None:
    """Name the adapter's base in the packed ``adapter_config.json``: a hub id as it is, a folder
    copied into ``base/`` (the folder is not where the pack goes)."""
    base = adapter_base(model)
    config_file = folder / ADAPTER_CONFIG
    config = json.loads(config_file.read_text())
    if isinstance(base, Path):
        (folder / BASE_FOLDER).mkdir()
        _copy_model_files(base, folder / BASE_FOLDER)
        base = BASE_FOLDER
    config["base_model_name_or_path"] = base
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def exported_gguf_files(yard: Yard, artifact: Path) -> list[Path]:
    """The GGUF files of every export made from ``artifact`` (directly or through a merge)."""
    record = read_record(yard, artifact)
    if record is None:
        return []
    record["path"] = yard.relative(artifact)
    found: list[Path] = []
    pending = descendants(yard, record)
    while pending:
        node = pending.pop(0)
        if node.kind == "export":
            found += sorted(yard.absolute(node.path).glob("*.gguf"))
        pending += node.children
    return found
