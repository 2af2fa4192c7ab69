"""Lineage: ``runs show`` walks an artifact's parents back to the model the chain started from."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tuneyard.yard import Yard
from tuneyard.yard.lineage import lineage

BASE = "base/SmolLM2-135M-Instruct"
COMPRESSED = "compressed_models/smollm2_svd_r8"
RUN = "outputs/demo/chat/smollm2_lora"
MERGED = "models/merged/llama/smollm2_lora"
EXPORT = "exports/smollm2_lora_q8_0"


@dataclass
class Chain:
    """The folders of a base -> compressed -> run -> merged -> export chain."""

    yard: Yard
    compressed: Path
    run: Path
    merged: Path
    export: Path


@pytest.fixture
def chain(yard: Yard, make_artifact: Callable[..., Path]) -> Chain:
    """Artifacts linked as the verbs link them (``Yard.parent_link``), from a downloaded base model.

    The merged model names the run as its ``adapter`` and the compressed model as its
    ``base``, both artifacts of the yard, as ``tuneyard export`` writes a LoRA merge.
    """
    base = yard.root / BASE
    base.mkdir(parents=True)
    (base / "config.json").write_text('{"model_type": "llama"}')  # a plain folder: no manifest
    compressed = make_artifact(
        "compressed",
        layout={"model": "smollm2", "method": "svd", "rank": 8},
        parents=[yard.parent_link(base, "base")],
    )
    run = make_artifact(
        "run",
        layout={"project": "demo", "dataset": "chat", "name": "smollm2_lora"},
        parents=[yard.parent_link(compressed, "init")],
    )
    merged = make_artifact(
        "merged",
        layout={"arch": "llama", "name": "smollm2_lora"},
        parents=[yard.parent_link(run, "adapter"), yard.parent_link(compressed, "base")],
    )
    export = make_artifact(
        "export", layout={"name": "smollm2_lora_q8_0"}, parents=[yard.parent_link(merged, "source")]
    )
    return Chain(yard, compressed, run, merged, export)


def shown_lineage(cli: Callable[..., Any], yard: Yard, reference: str) -> list[list[str]]:
    """The lines of ``runs show``'s lineage section, split into words (none: no section)."""
    result = cli("--yard", yard.root, "runs", "show", reference)
    assert result.exit_code == 0, result.stderr
    if "\nlineage:\n" not in result.stdout:
        return []
    section = result.stdout.split("\nlineage:\n")[1].splitlines()
    return [line.split() for line in itertools.takewhile(lambda line: line.startswith("  "), section)]


def json_lineage(cli: Callable[..., Any], yard: Yard, reference: str) -> list[dict[str, Any]]:
    result = cli("--yard", yard.root, "runs", "show", reference, "--format", "json")
    assert result.exit_code == 0, result.stderr
    steps: list[dict[str, Any]] = json.loads(result.stdout)["lineage"]
    return steps


def manifest_id(folder: Path) -> str:
    identifier: str = json.loads((folder / "manifest.json").read_text())["id"]
    return identifier


def test_show_walks_an_export_back_to_its_base_model_oldest_first(
    cli: Callable[..., Any], chain: Chain
) -> None:
    assert shown_lineage(cli, chain.yard, EXPORT) == [
        ["base", BASE],
        ["compressed", COMPRESSED],
        ["run", RUN],
        ["merged", MERGED],
        ["export", EXPORT],
    ]
    result = cli("--yard", chain.yard.root, "runs", "show", EXPORT)
    # The direct parents first, then the whole chain, then the files.
    assert result.stdout.index("parents:") < result.stdout.index("lineage:") < result.stdout.index("files (")


def test_json_lineage_carries_kind_path_id_role_and_state(cli: Callable[..., Any], chain: Chain) -> None:
    steps = json_lineage(cli, chain.yard, EXPORT)
    assert steps[:3] == [
        {"kind": "base", "path": BASE, "id": None, "role": "base", "state": "external"},
        {
            "kind": "compressed",
            "path": COMPRESSED,
            "id": manifest_id(chain.compressed),
            "role": "init",
            "state": "artifact",
        },
        {"kind": "run", "path": RUN, "id": manifest_id(chain.run), "role": "adapter", "state": "artifact"},
    ]
    assert [(step["path"], step["role"]) for step in steps[3:]] == [(MERGED, "source"), (EXPORT, None)]


def test_the_library_returns_the_same_chain(chain: Chain) -> None:
    steps = lineage(chain.yard, chain.yard.find(EXPORT))
    assert [(step.kind, step.path) for step in steps] == [
        ("base", BASE),
        ("compressed", COMPRESSED),
        ("run", RUN),
        ("merged", MERGED),
        ("export", EXPORT),
    ]


def test_the_chain_goes_through_the_run_not_the_base_whatever_their_order(
    cli: Callable[..., Any], chain: Chain
) -> None:
    manifest_file = chain.merged / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["parents"].reverse()  # base first, adapter second
    manifest_file.write_text(json.dumps(manifest))
    assert [line[1] for line in shown_lineage(cli, chain.yard, EXPORT)] == [
        BASE,
        COMPRESSED,
        RUN,
        MERGED,
        EXPORT,
    ]


def test_no_lineage_section_when_the_parents_section_says_it_all(
    cli: Callable[..., Any], chain: Chain
) -> None:
    assert shown_lineage(cli, chain.yard, COMPRESSED) == []  # its one parent is the base
    assert [step["path"] for step in json_lineage(cli, chain.yard, COMPRESSED)] == [BASE, COMPRESSED]
    assert shown_lineage(cli, chain.yard, RUN) == [["base", BASE], ["compressed", COMPRESSED], ["run", RUN]]


def test_a_deleted_run_is_shown_missing_and_the_walk_goes_on_through_the_base(
    cli: Callable[..., Any], chain: Chain
) -> None:
    shutil.rmtree(chain.run)
    # The index still holds the run's manifest: its kind is known and the walk goes through it.
    assert shown_lineage(cli, chain.yard, EXPORT) == [
        ["base", BASE],
        ["compressed", COMPRESSED],
        ["run", RUN, "(missing)"],
        ["merged", MERGED],
        ["export", EXPORT],
    ]
    assert cli("--yard", chain.yard.root, "runs", "reindex").exit_code == 0
    # Forgotten by the index: only the link's role is known; the merged model's base goes on.
    assert shown_lineage(cli, chain.yard, EXPORT) == [
        ["base", BASE],
        ["compressed", COMPRESSED],
        ["adapter", RUN, "(missing)"],
        ["merged", MERGED],
        ["export", EXPORT],
    ]


def test_a_single_parent_that_is_gone_ends_the_chain_without_a_crash(
    cli: Callable[..., Any], chain: Chain
) -> None:
    shutil.rmtree(chain.merged)
    assert cli("--yard", chain.yard.root, "runs", "reindex").exit_code == 0
    steps = json_lineage(cli, chain.yard, EXPORT)
    assert [(step["kind"], step["path"], step["state"]) for step in steps] == [
        ("source", MERGED, "missing"),
        ("export", EXPORT, "artifact"),
    ]


def test_a_moved_parent_is_found_by_its_id(cli: Callable[..., Any], chain: Chain) -> None:
    moved = chain.yard.root / "models" / "merged" / "llama" / "smollm2_lora_v2"
    chain.merged.rename(moved)
    assert cli("--yard", chain.yard.root, "runs", "reindex").exit_code == 0
    assert shown_lineage(cli, chain.yard, EXPORT)[-2:] == [
        ["merged", "models/merged/llama/smollm2_lora_v2"],
        ["export", EXPORT],
    ]


def test_a_cycle_in_hand_edited_manifests_ends_the_walk(cli: Callable[..., Any], chain: Chain) -> None:
    manifest_file = chain.compressed / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    export_id = json.loads((chain.export / "manifest.json").read_text())["id"]
    manifest["parents"] = [{"id": export_id, "path": EXPORT, "role": "base"}]
    manifest_file.write_text(json.dumps(manifest))
    assert shown_lineage(cli, chain.yard, EXPORT) == [
        ["export", EXPORT, "(cycle)"],
        ["compressed", COMPRESSED],
        ["run", RUN],
        ["merged", MERGED],
        ["export", EXPORT],
    ]


def test_ls_lists_exports_by_kind(cli: Callable[..., Any], chain: Chain) -> None:
    result = cli("--yard", chain.yard.root, "runs", "ls", "--kind", "export", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert [(row["kind"], row["path"]) for row in json.loads(result.stdout)] == [("export", EXPORT)]
    table = cli("--yard", chain.yard.root, "runs", "ls", "--kind", "export").stdout.splitlines()
    assert len(table) == 2 and table[1].split()[1] == "export" and table[1].endswith(EXPORT)


def test_lineage_up_goes_from_an_export_back_to_its_base_in_one_command(
    cli: Callable[..., Any], chain: Chain
) -> None:
    result = cli("--yard", chain.yard.root, "runs", "lineage", EXPORT, "--up")
    assert result.exit_code == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["up", "(oldest", "first):"],
        ["base", BASE, "(external)"],
        ["compressed", COMPRESSED],
        ["run", RUN],
        ["merged", MERGED],
        ["export", EXPORT],
    ]


def test_lineage_down_is_a_tree_found_by_id_after_a_rename(cli: Callable[..., Any], chain: Chain) -> None:
    root = chain.yard.root
    (root / RUN).rename(root / "outputs/demo/chat/renamed")
    assert cli("--yard", root, "runs", "reindex", "--quiet").exit_code == 0
    result = cli("--yard", root, "runs", "lineage", "outputs/demo/chat/renamed", "--down")
    assert result.stdout.splitlines() == [
        "down (made from outputs/demo/chat/renamed):",
        f"  merged  {MERGED}",  # its manifest still names the run's old path; the id finds it
        f"    export  {EXPORT}",
    ]
    # The merge was made from the compressed model too: it appears once, under the first parent.
    assert cli("--yard", root, "runs", "lineage", COMPRESSED, "--down").stdout.splitlines()[1:] == [
        "  run  outputs/demo/chat/renamed",
        f"  merged  {MERGED}",
        f"    export  {EXPORT}",
    ]
    data = json.loads(cli("--yard", root, "runs", "lineage", MERGED, "--format", "json").stdout)
    assert [step["path"] for step in data["up"]] == [BASE, COMPRESSED, "outputs/demo/chat/renamed", MERGED]
    assert data["down"] == [
        {"kind": "export", "path": EXPORT, "id": manifest_id(chain.export), "children": []}
    ]


def test_lineage_as_graphviz_dot(cli: Callable[..., Any], chain: Chain) -> None:
    dot = cli("--yard", chain.yard.root, "runs", "lineage", RUN, "--format", "dot").stdout
    assert dot.startswith("digraph lineage {\n  rankdir=LR;\n")
    assert f'"{COMPRESSED}" -> "{RUN}" [label="init"];' in dot
    assert f'"{RUN}" -> "{MERGED}";' in dot and f'"{MERGED}" -> "{EXPORT}";' in dot
    assert f'"{RUN}" [label="run\\n{RUN}"];' in dot


def test_where_descends_from_filters_on_ancestry(cli: Callable[..., Any], chain: Chain) -> None:
    def listed(where: str) -> list[str]:
        result = cli("--yard", chain.yard.root, "runs", "ls", "--where", where, "--format", "json")
        assert result.exit_code == 0, result.stderr
        return sorted(row["path"] for row in json.loads(result.stdout))

    assert listed(f"descends_from = '{COMPRESSED}'") == sorted([RUN, MERGED, EXPORT])
    assert listed(f"descends_from = '{BASE}'") == sorted([COMPRESSED, RUN, MERGED, EXPORT])  # a plain folder
    assert listed("descends_from = smollm2_lora and kind = export") == [EXPORT]  # by name
    assert listed(f"not descends_from = '{RUN}'") == sorted([COMPRESSED, RUN])
    root = chain.yard.root
    (root / RUN).rename(root / "outputs/demo/chat/renamed")
    assert cli("--yard", root, "runs", "reindex", "--quiet").exit_code == 0
    assert listed("descends_from = 'outputs/demo/chat/renamed'") == sorted([MERGED, EXPORT])  # by id
    bad = cli("--yard", root, "runs", "ls", "--where", "descends_from ~ x")
    assert bad.exit_code == 2 and "expected '='" in bad.stderr
