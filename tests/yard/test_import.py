"""runs import: foreign model folders indexed in place, with inferred metadata."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tuneyard.errors import ArtifactNotFoundError, ConfigError
from tuneyard.yard import Yard, read_manifest


def snapshot(folder: Path) -> dict[str, str]:
    """Every file (but manifests) under ``folder`` with its content hash."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


@pytest.fixture
def old_checkpoints(tmp_path: Path) -> Path:
    """A foreign tree as FlashSVD and the audio projects leave it."""
    top = tmp_path / "old"
    bert = top / "compressed_models" / "bert-base-uncased-SST-2_fwsvd_r64"
    bert.mkdir(parents=True)
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (bert / "flashsvd_state_dict.pt").write_bytes(b"pickle")
    modern = top / "compressed_models" / "modernbert-base_whiten_r32"
    modern.mkdir(parents=True)
    (modern / "compression_info.json").write_text(
        json.dumps({"arch": "modernbert", "method": "whiten", "rank": 32})
    )
    audio = top / "outputs" / "clic_2025" / "recanvo" / "whisper_base_lora_012"
    (audio / "checkpoint-7752").mkdir(parents=True)
    (audio / "checkpoint-7752" / "model.safetensors").write_bytes(b"st")
    (audio / "checkpoint-7752" / "nested").mkdir()
    (audio / "checkpoint-7752" / "nested" / "adapter_config.json").write_text("{}")
    (top / "notes").mkdir()
    (top / "notes" / "readme.txt").write_text("not a model")
    (top / ".cache" / "hidden-model").mkdir(parents=True)
    (top / ".cache" / "hidden-model" / "config.json").write_text("{}")
    return top


def test_import_finds_model_folders_and_writes_only_a_manifest(yard: Yard, old_checkpoints: Path) -> None:
    before = snapshot(old_checkpoints)
    report = yard.import_paths([old_checkpoints])
    assert report.problems == []
    assert sorted(folder.relative_to(old_checkpoints).as_posix() for folder in report.imported) == [
        "compressed_models/bert-base-uncased-SST-2_fwsvd_r64",
        "compressed_models/modernbert-base_whiten_r32",
        "outputs/clic_2025/recanvo/whisper_base_lora_012/checkpoint-7752",
    ]
    assert snapshot(old_checkpoints) == before
    assert sorted(
        p.relative_to(old_checkpoints).as_posix() for p in old_checkpoints.rglob("manifest.json")
    ) == [
        "compressed_models/bert-base-uncased-SST-2_fwsvd_r64/manifest.json",
        "compressed_models/modernbert-base_whiten_r32/manifest.json",
        "outputs/clic_2025/recanvo/whisper_base_lora_012/checkpoint-7752/manifest.json",
    ]
    rows = {row["name"]: row for row in yard.query()}
    bert = rows["bert-base-uncased-SST-2_fwsvd_r64"]
    assert (bert["kind"], bert["arch"], bert["method"], bert["rank"], bert["status"]) == (
        "model",
        "bert",
        "fwsvd",
        64,
        "complete",
    )
    assert read_manifest(Path(bert["path"])).inferred == ["arch", "method", "rank"]
    modern = read_manifest(Path(rows["modernbert-base_whiten_r32"]["path"]))
    assert (modern.arch, modern.method, modern.rank, modern.inferred) == ("modernbert", "whiten", 32, [])
    whisper = rows["whisper_base_lora_012/checkpoint-7752"]
    assert (whisper["arch"], whisper["method"]) == ("whisper", "unknown")
    files = read_manifest(Path(whisper["path"])).files
    assert [(f.path, f.bytes, f.sha256) for f in files] == [
        ("model.safetensors", 2, None),
        ("nested/adapter_config.json", 2, None),
    ]


def test_import_again_keeps_ids_and_survives_reindex(yard: Yard, old_checkpoints: Path) -> None:
    yard.import_paths([old_checkpoints])
    first = {row["path"]: row["id"] for row in yard.query()}
    again = yard.import_paths([old_checkpoints / "compressed_models"], hash_files=True)
    assert again.imported == [] and again.indexed == 2
    assert {row["path"]: row["id"] for row in yard.query()} == first
    # Outside the yard, yet a rebuilt index finds them again.
    (yard.root / ".tuneyard" / "index.db").unlink()
    assert Yard.open(yard.root).reindex().indexed == 3


def test_hash_option_records_checksums(yard: Yard, old_checkpoints: Path) -> None:
    folder = old_checkpoints / "compressed_models" / "bert-base-uncased-SST-2_fwsvd_r64"
    yard.import_paths([folder], hash_files=True)
    sums = {f.path: f.sha256 for f in read_manifest(folder).files}
    assert sums["flashsvd_state_dict.pt"] == hashlib.sha256(b"pickle").hexdigest()


def test_import_inside_the_yard_infers_from_the_yard_relative_path(yard: Yard) -> None:
    folder = yard.root / "legacy" / "roberta_ada_r8"
    folder.mkdir(parents=True)
    (folder / "pytorch_model.bin").write_bytes(b"w")
    yard.import_paths([yard.root / "legacy"])
    row = yard.query()[0]
    assert (row["path"], row["arch"], row["method"], row["rank"]) == (
        "legacy/roberta_ada_r8",
        "roberta",
        "adasvd",
        8,
    )


def test_import_of_a_missing_folder_is_refused(yard: Yard, tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="no such folder"):
        yard.import_paths([tmp_path / "nope"])


def test_a_tar_of_one_model_folder_is_unpacked_into_the_yard_and_imported(yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "packed" / "gpt2_standard_r8"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    (folder / "model.safetensors").write_bytes(b"w")
    archive = tmp_path / "model.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(folder, arcname=folder.name)
    yard.import_paths([archive])
    imported = yard.root / "models" / "imported" / "gpt2" / "gpt2_standard_r8"
    assert sorted(path.name for path in imported.iterdir()) == [
        "config.json",
        "manifest.json",
        "model.safetensors",
    ]
    assert [row["path"] for row in yard.query()] == ["models/imported/gpt2/gpt2_standard_r8"]


@pytest.mark.parametrize("member", ["../outside.txt", "two/config.json"])
def test_a_tar_that_is_not_one_safe_model_folder_is_refused_and_leaves_nothing(
    yard: Yard, tmp_path: Path, member: str
) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        for name in ("one/config.json", member):
            data = b"{}"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfigError, match="bad.tar"):
        yard.import_paths([archive])
    assert [path for path in yard.root.rglob("*") if path.name != ".tuneyard"] == []  # no staging left
    assert not (tmp_path / "outside.txt").exists()


def test_import_of_many_folders(yard: Yard, tmp_path: Path) -> None:
    top = tmp_path / "many"
    for number in range(500):
        folder = top / f"group{number % 10}" / f"gpt2_standard_r{number}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"w")
    report = yard.import_paths([top])
    assert len(report.imported) == 500
    assert len(yard.query(where="method = standard and arch = gpt2 and rank >= 250")) == 250


def test_imported_folders_are_dated_by_their_files(yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "old" / "gpt2_fw_r4"
    folder.mkdir(parents=True)
    for name, moment in (("model.safetensors", 1_700_000_000), ("config.json", 1_600_000_000)):
        (folder / name).write_text("{}")
        os.utime(folder / name, (moment, moment))
    yard.import_paths([folder])
    assert read_manifest(folder).created == "2023-11-14T22:13:20.000000Z"  # the newest file, not today
