"""The manifest schema: fields, secrets redaction, round trip, the committed JSON Schema."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tuneyard import __version__
from tuneyard.errors import ManifestError
from tuneyard.yard import Manifest, Parent, read_manifest, write_manifest
from tuneyard.yard.manifest import REDACTED, export_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "manifest.schema.json"


def test_manifest_round_trips_with_every_field(tmp_path: Path) -> None:
    manifest = Manifest(
        kind="finetuned",
        name="bert-base-uncased-SST-2_fwsvd_r64",
        arch="bert",
        method="fwsvd",
        rank=64,
        strategy="lowrank",
        task="sst2",
        dataset="glue/sst2",
        parents=[
            Parent(id="01JD7H", path="compressed_models/bert-base-uncased-SST-2_fwsvd_r64", role="init")
        ],
        metrics={"sst2": {"validation": {"accuracy": 0.912}}},
    )
    write_manifest(tmp_path, manifest)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["schema"] == 1
    assert len(data["id"]) == 26
    assert data["versions"]["tuneyard"] == __version__ and "torch" in data["versions"]
    assert data["created"].endswith("Z") and data["host"]
    assert read_manifest(tmp_path) == manifest


def test_ids_sort_by_creation_and_never_repeat() -> None:
    # A ULID orders by its millisecond: ids made 2 ms apart must sort in the order they were made
    # (within one millisecond the random part decides, so a tight loop would test nothing).
    spaced = []
    for _ in range(30):
        spaced.append(Manifest(kind="run", name="r").id)
        time.sleep(0.002)
    assert sorted(spaced) == spaced
    ids = [Manifest(kind="run", name="r").id for _ in range(2000)]
    assert len(set(ids)) == len(ids)


def test_secrets_are_redacted_at_any_depth(tmp_path: Path) -> None:
    config = {
        "teacher": {"api_key": "sk-123", "base_url": "http://x", "headers": [{"Authorization-Token": "t0k"}]},
        "hf_token": "hf_abc",
        "password": "hunter2",
        "db": {"Secret": "s"},
        "lr": 3e-4,
        "token_budget": None,
        "tokenizer": "/models/tokenizer",
        "max_new_tokens": 64,
    }
    write_manifest(tmp_path, Manifest(kind="run", name="r", config=config))
    text = (tmp_path / "manifest.json").read_text()
    for secret in ("sk-123", "t0k", "hf_abc", "hunter2", '"s"'):
        assert secret not in text
    saved = read_manifest(tmp_path).config
    assert saved["teacher"]["api_key"] == REDACTED and saved["teacher"]["base_url"] == "http://x"
    assert saved["lr"] == 3e-4
    assert (
        saved["tokenizer"] == "/models/tokenizer" and saved["max_new_tokens"] == 64
    )  # settings, not secrets
    assert saved["token_budget"] is None  # an unset value reveals nothing and stays as it is


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "has no manifest.json"),
        ("{not json", "is not readable JSON"),
        ('{"kind": "spaceship", "name": "x"}', "field 'kind'"),
        ('{"kind": "run"}', "field 'name'"),
        (
            '{"schema": 2, "kind": "run", "name": "x"}',
            "field 'schema' input should be less than or equal to 1",
        ),
    ],
)
def test_bad_manifests_are_named_with_the_field(tmp_path: Path, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(tmp_path)


def test_committed_json_schema_matches_the_model(tmp_path: Path) -> None:
    export_json_schema(tmp_path / "schema.json")
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads((tmp_path / "schema.json").read_text()), (
        "docs/manifest.schema.json is stale: regenerate it with "
        "python -c 'from pathlib import Path; from tuneyard.yard.manifest import export_json_schema; "
        'export_json_schema(Path("docs/manifest.schema.json"))\''
    )
    schema = json.loads(SCHEMA_FILE.read_text())
    assert {"schema", "kind", "name", "parents", "config", "metrics", "files", "status"} <= set(
        schema["properties"]
    )


def test_file_digests_are_real_and_follow_a_file_that_changed(tmp_path: Path) -> None:
    import hashlib
    import os

    from tuneyard.yard.manifest import list_files

    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"first version")
    os.link(weights, tmp_path / "same-file-hard-linked.safetensors")
    first = {entry.path: entry.sha256 for entry in list_files(tmp_path)}
    assert first == {
        name: hashlib.sha256(b"first version").hexdigest()
        for name in ("model.safetensors", "same-file-hard-linked.safetensors")
    }

    weights.write_bytes(b"other version")  # same size, rewritten in place, later mtime
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert {entry.sha256 for entry in list_files(tmp_path)} == {hashlib.sha256(b"other version").hexdigest()}


def test_a_completed_run_hashes_its_results_but_not_its_checkpoints(tmp_path: Path) -> None:
    import hashlib

    from tuneyard.yard import Yard

    yard = Yard.open(tmp_path)
    run = yard.start_run(Manifest(kind="run", name="r"), yard.target_path("export", name="r"))
    for folder in ("best", "checkpoint-1-10"):
        with run.subfolder(folder) as temp:
            (temp / "model.safetensors").write_bytes(folder.encode())
    run.complete()
    files = {entry.path: entry for entry in read_manifest(run.path).files}
    assert files["best/model.safetensors"].sha256 == hashlib.sha256(b"best").hexdigest()
    assert files["checkpoint-1-10/model.safetensors"].sha256 is None
    assert files["checkpoint-1-10/model.safetensors"].bytes == len("checkpoint-1-10")
