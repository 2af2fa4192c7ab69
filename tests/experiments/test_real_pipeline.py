"""The seed-003 chain on real parts: Debian rows labelled by SmolLM2 behind llama.cpp's server, SmolLM2
LoRA-tuned on those labels, merged, exported to GGUF and validated in llama.cpp, as one pipeline file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ["games", "graphics", "net", "science", "sound", "text"]
PROMPT = "Package: {{ text }}\nWhich Debian section: " + ", ".join(SECTIONS) + "? Answer as JSON."


@pytest.mark.slow
def test_prepare_label_finetune_merge_export_validate_on_smollm2(
    cli, llama_server, smollm2_yard, tmp_path
) -> None:
    from tuneyard.models.gguf import packaged_gguf

    schema = {"type": "object", "properties": {"label": {"enum": SECTIONS}}, "required": ["label"]}
    steps = [
        {"name": "data", "prepare": {"source": str(REPO / "data" / "debian_topics"), "num_samples": 6,
                                     "name": "packages"}},
        {"name": "labels", "label": {
            "data": "${data}", "teacher": "smollm2", "base_url": llama_server, "no_api_key": True,
            "prompt": PROMPT,
            "answer": {"json_schema": schema}, "target": "{{ answer.label }}", "max_tokens": 24,
            "concurrency": 2,
            # the confidence column is tests/label/test_real_teacher.py's to check: llama-cpp-python
            # log-softmaxes its whole logits buffer and sorts the vocabulary for each answer token
            "logprobs": False,
        }},
        {"name": "tuned", "finetune": {
            "checkpoint": str(packaged_gguf()), "data": "${labels}", "task_type": "causal_lm",
            "prompt_column": "text", "response_column": "label", "strategy": "lora", "epochs": 1,
            "batch_size": 8, "learning_rate": 1e-3, "max_length": 256,
        }},
        {"name": "merged", "merge": {"checkpoint": "${tuned}"}},
        {"name": "exported", "export": {"checkpoint": "${merged}", "quant": "q8_0"}},
        {"name": "checked", "validate": {
            "export": "${exported}", "samples": 4, "answers": {"max_new_tokens": 8},
        }},
    ]  # fmt: skip
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "smol", "steps": steps}))
    yard = smollm2_yard
    result = cli("--yard", yard, "pipeline", spec)
    assert result.exit_code == 0, result.stderr
    state = json.loads((yard / "experiments" / "smol" / "pipeline.json").read_text())["steps"]
    assert [entry["status"] for entry in state.values()] == ["complete"] * 6
    export = yard / state["exported"]["path"]
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["kind"] == "export" and "validation" in manifest["metrics"]
    assert (
        manifest["metrics"]["validation"]["tokenizer_identical"] == 1.0
    )  # llama.cpp tokenizes as transformers
    labels = json.loads((yard / state["labels"]["path"] / "manifest.json").read_text())
    assert labels["metrics"]["outcomes"]["labelled"] == 18 and labels["parents"][1]["role"] == "teacher"
    again = cli("--yard", yard, "pipeline", spec)
    assert again.exit_code == 0 and again.stderr.count("done earlier, skipped") == 6
