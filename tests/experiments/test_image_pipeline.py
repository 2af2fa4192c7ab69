"""The seed-003 chain for a vision-language model as one pipeline file: images prepared, labelled by a
teacher behind an OpenAI-compatible server on 127.0.0.1 (the images sent as data URLs), a tiny model of
SmolVLM's architecture LoRA-tuned on the teacher's answers, merged, exported to GGUF Q8_0 with its
projector, and validated in llama.cpp's mtmd; a rerun skips every step."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.slow
def test_label_finetune_merge_export_validate_a_vision_language_model(
    cli, tiny_vlm, digit_images, fault_server, tmp_path
) -> None:
    server = fault_server()  # it answers an image's size ("8x8"), read from the data URL it was sent
    steps = [
        {"name": "data", "prepare": {"source": str(digit_images), "name": "digits", "test_fraction": 0.3}},
        {"name": "labels", "label": {
            "data": "${data}", "teacher": "fault-teacher", "base_url": server.url, "no_api_key": True,
            "prompt": "How large is this image?", "image_column": "image",
            "answer": {"regex": "[0-9]+x[0-9]+"},
        }},
        {"name": "tuned", "finetune": {
            "checkpoint": str(tiny_vlm), "data": "${labels}", "image_question": "How large is this image?",
            "strategy": "lora", "epochs": 1, "batch_size": 4,
            "task_options": {"train_connector": True, "max_answer_tokens": 8},
        }},
        {"name": "merged", "merge": {"checkpoint": "${tuned}"}},
        {"name": "exported", "export": {"checkpoint": "${merged}", "quant": "q8_0"}},
        {"name": "checked", "validate": {
            "export": "${exported}", "split": "test", "samples": 4, "answers": {"max_new_tokens": 8},
        }},
    ]  # fmt: skip
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "vision", "steps": steps}))
    yard = tmp_path / "yard"
    result = cli("--yard", yard, "pipeline", spec)
    assert result.exit_code == 0, result.stderr
    state = json.loads((yard / "experiments" / "vision" / "pipeline.json").read_text())["steps"]
    assert [entry["status"] for entry in state.values()] == ["complete"] * 6
    asked = server.requests()
    assert asked and all(request["outcome"] == "ok" for request in asked)
    run = json.loads((yard / state["tuned"]["path"] / "manifest.json").read_text())
    assert run["task_type"] == "image_text_to_text"
    export = yard / state["exported"]["path"]
    assert len(list(export.glob("mmproj-*.gguf"))) == 1
    validation = json.loads((export / "manifest.json").read_text())["metrics"]["validation"]
    assert validation["images"] == 4 and 0 <= validation["greedy_identical"] <= 1
    assert 0 <= validation["accuracy_gguf"] <= 1 and 0 <= validation["accuracy_hf"] <= 1

    again = cli("--yard", yard, "pipeline", spec)
    assert again.exit_code == 0 and again.stderr.count("done earlier, skipped") == 6
    assert len(server.requests()) == len(asked)  # the teacher is not asked again
