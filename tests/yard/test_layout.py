"""Layout templates: defaults per kind, tuneyard.yaml overrides, safe field values, no escape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tuneyard.errors import ConfigError, LayoutError
from tuneyard.yard import Layout, Yard, format_layers, run_name


def test_default_templates_match_the_field_conventions(yard: Yard) -> None:
    root = yard.root
    assert yard.target_path("compressed", model="bert-base-uncased-SST-2", method="fwsvd", rank=64) == (
        root / "compressed_models/bert-base-uncased-SST-2_fwsvd_r64"
    )
    assert (
        yard.target_path("finetuned", arch="bert", method="fwsvd", name="bert-base-uncased-SST-2_fwsvd_r64")
        == root / "models/finetuned/bert/fwsvd/bert-base-uncased-SST-2_fwsvd_r64"
    )
    assert yard.target_path("run", project="clic_2025", dataset="recanvo", name="whisper_base_lora_012") == (
        root / "outputs/clic_2025/recanvo/whisper_base_lora_012"
    )
    assert yard.target_path("experiment", experiment="transfer") == root / "experiments/transfer"
    assert yard.target_path("model", arch="llama", name="smollm2-135m-instruct-q4_1") == (
        root / "models/imported/llama/smollm2-135m-instruct-q4_1"
    )


def test_run_names_follow_model_size_peft_layers() -> None:
    assert run_name("whisper", "base", "lora", "0,1,2") == "whisper_base_lora_012"
    assert run_name("whisper", "small", "lora", "7-12") == "whisper_small_lora_7-12"
    assert run_name("wav2vec2", "base", "frozen") == "wav2vec2_base_frozen"
    assert run_name("gpt2", None, "full") == "gpt2_full"
    # Concatenating 1 and 10 would read as "110": such parts are joined with '+'.
    assert format_layers("1,10") == "1+10"
    assert format_layers("0, 7-12") == "0+7-12"


def test_yard_config_overrides_one_template(yard: Yard) -> None:
    (yard.root / "tuneyard.yaml").write_text("layout:\n  compressed: low_rank/{method}/{model}-r{rank}\n")
    reopened = Yard.open(yard.root)
    assert reopened.target_path("compressed", model="minilm", method="whiten", rank=32) == (
        yard.root / "low_rank/whiten/minilm-r32"
    )
    # Other kinds keep their defaults.
    assert reopened.target_path("export", name="m") == yard.root / "exports/m"


def test_date_field_is_todays_utc_date_unless_given(yard: Yard) -> None:
    """Seed 004 names models ``{type}_{desc}_{date}`` with a YYYYMMDD date."""
    (yard.root / "tuneyard.yaml").write_text("layout:\n  export: exports/{name}_{date}\n")
    today = datetime.now(UTC).strftime("%Y%m%d")
    assert yard.target_path("export", name="bert_sst2") == yard.root / f"exports/bert_sst2_{today}"
    assert (
        yard.target_path("export", name="bert_sst2", date="20250101")
        == yard.root / "exports/bert_sst2_20250101"
    )


def test_output_dir_overrides_the_layout_even_outside_the_yard(yard: Yard, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "mine"
    assert yard.target_path("compressed", output_dir=elsewhere, model="x", method="y", rank=1) == elsewhere


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("layout: [1, 2]\n", "'layout' must map artifact kinds"),
        ("layouts:\n  run: x\n", "unknown field(s) layouts"),
        ("layout: {run: '../outside/{name}'}\n", "must be a relative path inside the yard"),
        ("layout: {run: '/abs/{name}'}\n", "must be a relative path inside the yard"),
        ("layout: {run: 'runs/{name'}\n", "is malformed"),
        ("layout: {run: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_yard_config_is_refused_with_the_reason(yard: Yard, yaml_text: str, message: str) -> None:
    (yard.root / "tuneyard.yaml").write_text(yaml_text)
    with pytest.raises((ConfigError, LayoutError)) as caught:
        Yard.open(yard.root).target_path("run", project="p", dataset="d", name="n")
    assert message in str(caught.value)


@pytest.mark.parametrize("value", ["../../etc", "a/b", "a\\b", ".hidden", "..", ""])
def test_field_values_that_would_change_folders_are_refused(yard: Yard, value: str) -> None:
    with pytest.raises(LayoutError) as caught:
        yard.target_path("export", name=value)
    assert "{name}" in caught.value.message
    assert caught.value.hint


def test_unsafe_characters_become_dashes(yard: Yard) -> None:
    path = yard.target_path("export", name="my run: v1*")
    assert path == yard.root / "exports/my-run--v1-"
    assert path.is_relative_to(yard.root)


def test_missing_field_and_unknown_kind_name_what_is_needed() -> None:
    layout = Layout()
    with pytest.raises(LayoutError, match=r"needs \{rank\}"):
        layout.relative_path("compressed", model="m", method="fwsvd")
    with pytest.raises(LayoutError, match="no layout template for artifact kind 'checkpoint'") as caught:
        layout.relative_path("checkpoint", name="x")
    assert "compressed" in (caught.value.hint or "")


def test_a_symlink_cannot_lead_a_template_out_of_the_yard(yard: Yard, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (yard.root / "exports").symlink_to(outside, target_is_directory=True)
    with pytest.raises(LayoutError, match="resolves outside the yard"):
        yard.target_path("export", name="m")


def test_project_folder_is_the_run_template_up_to_its_project_component() -> None:
    assert Layout().project_folder("clic 2025") == Path("outputs/clic-2025")
    assert Layout({"run": "{project}/{dataset}/{name}"}).project_folder("p") == Path("p")
    # no folder of the project's own: no metrics.csv to keep
    assert Layout({"run": "runs/{dataset}/{name}"}).project_folder("p") is None
    assert Layout({"run": "runs/{dataset}/{project}/{name}"}).project_folder("p") is None
    assert Layout({"run": "runs/{project}-{dataset}/{name}"}).project_folder("p") is None
