"""``tuneyard runs ...`` end to end: what a user sees on stdout/stderr and on disk."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuneyard.yard import Yard

Run = Callable[..., Any]


def test_ls_table_shows_filtered_runs_with_the_metric_asked_about(tuneyard: Run, cli_yard: Yard) -> None:
    result = tuneyard(
        "runs",
        "ls",
        "--kind",
        "run",
        "--where",
        "metrics.sst2.accuracy > 0.8",
        "--sort",
        "-metrics.sst2.accuracy",
    )
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "name",
        "kind",
        "arch",
        "method",
        "rank",
        "task",
        "status",
        "created",
        "metrics.sst2.accuracy",
        "path",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["bert_base_lora", "bert_base_full"]
    assert lines[1].split()[-2:] == ["0.91", "outputs/demo/sst2/bert_base_lora"]


def test_ls_json_and_csv_carry_the_documented_fields(tuneyard: Run, cli_yard: Yard) -> None:
    listed = json.loads(tuneyard("runs", "ls", "--format", "json", "--sort", "name").out)
    assert [item["name"] for item in listed] == ["bert-base_fwsvd_r64", "bert_base_full", "bert_base_lora"]
    required = {
        "name",
        "path",
        "kind",
        "arch",
        "method",
        "rank",
        "task",
        "dataset",
        "strategy",
        "status",
        "created",
        "metrics",
    }
    assert all(required <= set(item) for item in listed)
    assert listed[2]["metrics"] == {"sst2.accuracy": 0.91} and listed[2]["strategy"] == "lora"
    table = list(csv.DictReader(io.StringIO(tuneyard("runs", "ls", "-f", "csv", "--project", "demo").out)))
    assert {row["name"]: row["metrics.sst2.accuracy"] for row in table} == {
        "bert_base_lora": "0.91",
        "bert_base_full": "0.87",
    }
    assert "metrics.params" not in table[0]  # only metrics the listed runs have


def test_ls_after_the_index_was_deleted_rebuilds_it_and_lists_everything(
    tuneyard: Run, cli_yard: Yard
) -> None:
    before = tuneyard("runs", "ls").out
    cli_yard.index.close()
    for path in (cli_yard.root / ".tuneyard").glob("index.db*"):
        path.unlink()
    result = tuneyard("runs", "ls")
    assert result.code == 0
    assert result.err == "the index was missing: rebuilt it from 3 manifests.\n"
    assert result.out == before and len(result.out.splitlines()) == 4


def test_ls_lists_an_artifact_with_a_corrupt_manifest_and_its_path(tuneyard: Run, cli_yard: Yard) -> None:
    (cli_yard.root / "outputs/demo/sst2/bert_base_full/manifest.json").write_text("{not json")
    assert tuneyard("runs", "reindex", "--quiet").code == 0
    rows = json.loads(tuneyard("runs", "ls", "--status", "corrupt", "--format", "json").out)
    assert [(row["name"], row["status"], row["path"]) for row in rows] == [
        ("bert_base_full", "corrupt", "outputs/demo/sst2/bert_base_full")
    ]


def test_ls_in_an_empty_folder_says_there_is_no_index(tuneyard: Run, tmp_path: Path) -> None:
    result = tuneyard("--yard", str(tmp_path), "runs", "ls")
    assert result.code == 0
    assert result.out.splitlines() == ["name  kind  arch  method  rank  task  status  created  metrics  path"]
    assert "no index" in result.err and "tuneyard runs reindex" in result.err
    assert not (tmp_path / ".tuneyard").exists()  # a read-only command creates nothing


def test_yard_root_from_flag_env_or_working_directory(
    tuneyard: Run, cli_yard: Yard, tmp_path: Path, monkeypatch: Any
) -> None:
    count = len(json.loads(tuneyard("runs", "ls", "-f", "json").out))  # TUNEYARD_HOME
    assert count == 3
    assert json.loads(tuneyard("--yard", str(tmp_path), "runs", "ls", "-f", "json").out) == []
    monkeypatch.delenv("TUNEYARD_HOME")
    monkeypatch.chdir(cli_yard.root)
    assert len(json.loads(tuneyard("runs", "ls", "-f", "json").out)) == 3


def test_show_prints_fields_lineage_metrics_and_files(tuneyard: Run, cli_yard: Yard) -> None:
    result = tuneyard("runs", "show", "bert-base_fwsvd_r64")
    assert result.code == 0, result.err
    assert "path      compressed_models/bert-base_fwsvd_r64" in result.out
    # Children in the order they were made.
    assert (
        "children:\n  run  outputs/demo/sst2/bert_base_lora\n  run  outputs/demo/sst2/bert_base_full\n"
        in result.out
    )
    assert "metrics:\n  params  2e+07" in result.out
    files = result.out.split("files (1, 7 bytes):\n")[1].splitlines()
    assert [line.split() for line in files] == [
        ["model.safetensors", "7", hashlib.sha256(b"weights").hexdigest()[:16]]
    ]
    run = json.loads(tuneyard("runs", "show", "outputs/demo/sst2/bert_base_lora", "-f", "json").out)
    assert run["parents"][0]["path"] == "compressed_models/bert-base_fwsvd_r64"
    assert run["metrics"] == {"sst2": {"accuracy": 0.91}}


def test_show_by_id_prefix_and_unknown_names(tuneyard: Run, cli_yard: Yard) -> None:
    artifact_id = cli_yard.query(kind="compressed")[0]["id"]
    assert "bert-base_fwsvd_r64" in tuneyard("runs", "show", artifact_id[:10].lower()).out
    missing = tuneyard("runs", "show", "no-such-run")
    assert missing.code == 2
    assert missing.err.startswith("error: no artifact named 'no-such-run'")


def test_compare_shows_only_differences(tuneyard: Run, cli_yard: Yard) -> None:
    result = tuneyard("runs", "compare", "bert_base_lora", "bert_base_full", "-f", "csv")
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(result.out))}
    assert rows["field"] == [
        "outputs/demo/sst2/bert_base_lora",
        "outputs/demo/sst2/bert_base_full",
        "Δ outputs/demo/sst2/bert_base_full",
    ]
    assert rows["strategy"] == ["lora", "full", ""]
    assert rows["config.lr"] == ["0.0001", "3e-05", ""]
    assert rows["metrics.sst2.accuracy"] == ["0.91", "0.87", "-0.04"]
    assert "config.epochs" not in rows and "task" not in rows
    too_few = tuneyard("runs", "compare", "bert_base_lora")
    assert too_few.code == 2 and "two or more" in too_few.err


def test_aggregate_writes_one_row_per_run(tuneyard: Run, cli_yard: Yard, tmp_path: Path) -> None:
    target = cli_yard.root / "outputs" / "demo" / "metrics.csv"
    result = tuneyard("runs", "aggregate", "--project", "demo", "-o", str(target))
    assert result.code == 0, result.err
    assert "wrote 2 rows" in result.err
    rows = list(csv.DictReader(target.open()))
    assert [
        (row["name"], row["strategy"], row["config.lr"], row["metrics.sst2.accuracy"]) for row in rows
    ] == [("bert_base_lora", "lora", "0.0001", "0.91"), ("bert_base_full", "full", "3e-05", "0.87")]
    assert "config.epochs" not in rows[0]  # the same in every run


def test_aggregate_refuses_to_replace_a_file_without_force(tuneyard: Run, cli_yard: Yard) -> None:
    target = cli_yard.root / "mine.csv"
    target.write_text("someone's table\n")
    refused = tuneyard("runs", "aggregate", "--project", "demo", "-o", str(target))
    assert refused.code == 2
    assert f"error: {target} exists" in refused.err and "--force" in refused.err
    assert target.read_text() == "someone's table\n"
    assert not [p for p in cli_yard.root.iterdir() if p.name.startswith(".tmp-")]
    replaced = tuneyard("runs", "aggregate", "--project", "demo", "-o", str(target), "--force")
    assert replaced.code == 0, replaced.err
    assert [row["name"] for row in csv.DictReader(target.open())] == ["bert_base_lora", "bert_base_full"]


def test_reindex_import_and_gc_commands(tuneyard: Run, cli_yard: Yard, tmp_path: Path) -> None:
    (cli_yard.root / ".tuneyard" / "index.db").unlink()
    reindexed = tuneyard("runs", "reindex", "--quiet")
    assert reindexed.code == 0 and reindexed.out.startswith("indexed 3 artifacts in ")
    foreign = tmp_path / "foreign" / "roberta-base_standard_r40"
    foreign.mkdir(parents=True)
    (foreign / "model.safetensors").write_bytes(b"w")
    imported = tuneyard("runs", "import", str(tmp_path / "foreign"), "-q")
    assert imported.out.startswith("imported 1 model folders (0 already had a manifest)")
    assert json.loads(tuneyard("runs", "ls", "--kind", "model", "-f", "json").out)[0]["method"] == "standard"
    leftover = cli_yard.root / "exports" / ".tmp-x-999999999-0badc0de"
    leftover.mkdir(parents=True)
    os.utime(leftover, (0, 0))
    dry = tuneyard("runs", "gc", "--dry-run")
    assert (
        dry.out
        == "would remove  exports/.tmp-x-999999999-0badc0de  (temporary folder of an interrupted write)\n"
    )
    assert leftover.exists()
    tuneyard("runs", "gc")
    assert not leftover.exists()


def test_a_metric_no_artifact_has_gets_a_did_you_mean_note(tuneyard: Run, cli_yard: Yard) -> None:
    result = tuneyard("runs", "ls", "--where", "metrics.sst2.acuracy > 0.5")
    assert result.code == 0
    assert result.out.count("\n") == 1  # only the header
    assert (
        result.err
        == "note: no artifact in the yard has metrics.sst2.acuracy; did you mean metrics.sst2.accuracy?\n"
    )
    assert tuneyard("runs", "ls", "--where", "metrics.sst2.accuracy > 0.99").err == ""
