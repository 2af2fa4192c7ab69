"""A real teacher: SmolLM2-135M-Instruct behind llama-cpp-python's server labels real Debian packages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneyard.label.client import JSON_SCHEMA_FALLBACK
from tuneyard.label.output import CONFIDENCE_COLUMN

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ["games", "graphics", "net", "science", "sound", "text"]


@pytest.mark.slow
def test_smollm2_labels_debian_packages_through_llama_cpp_server(cli, llama_server, tmp_path) -> None:
    yard = ("--yard", tmp_path / "yard")
    sample = ("--split", "test", "--num-samples", "12", "--name", "packages", "-q")
    prepared = cli(*yard, "prepare", REPO / "data" / "debian_topics", *sample)
    assert prepared.exit_code == 0, prepared.stderr
    schema = tmp_path / "section.json"
    schema.write_text(json.dumps(
        {"type": "object", "properties": {"label": {"enum": SECTIONS}}, "required": ["label"]}
    ))  # fmt: skip
    prompt = "Package: {{ text }}\nWhich Debian section: " + ", ".join(SECTIONS) + "? Answer as JSON."
    result = cli(
        *yard, "label", "--data", "packages", "--teacher", "smollm2", "--base-url", llama_server,
        "--no-api-key", "--prompt", prompt, "--answer-schema", schema, "--target", "{{ answer.label }}",
        "--max-tokens", "24", "--concurrency", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    folder = Path(result.stdout.strip())
    manifest = json.loads((folder / "manifest.json").read_text())
    metrics = manifest["metrics"]
    # llama.cpp's server takes the schema as a json_object request: its grammar keeps every answer valid.
    assert manifest["config"]["dropped_request_options"] == [JSON_SCHEMA_FALLBACK]
    assert metrics["outcomes"] == {"labelled": 12, "rejected": 0, "failed": 0}
    from datasets import Dataset

    labelled = Dataset.from_parquet(str(folder / "test.parquet"))
    assert set(labelled["label"]) <= set(SECTIONS) and len(labelled) == 12
    assert all(0 < confidence <= 1 for confidence in labelled[CONFIDENCE_COLUMN])  # from real logprobs
    assert all(json.loads(answer)["label"] == label for answer, label in zip(
        labelled["teacher_answer"], labelled["label"], strict=True))  # fmt: skip
    cost_log = [json.loads(line) for line in (folder / "requests.jsonl").read_text().splitlines()]
    assert metrics["prompt_tokens"] == sum(line["prompt_tokens"] for line in cost_log) > 12 * 20
    assert 0 <= metrics["agreement_with_original"] <= 1  # the teacher's agreement with Debian's own sections
    assert [parent["role"] for parent in manifest["parents"]] == ["data", "teacher"]
