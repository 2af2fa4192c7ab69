"""The chain teacher -> preference pairs -> DPO as one pipeline file (a server process, a tiny decoder)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def write_questions(folder: Path) -> Path:
    """Topic questions with the student's own (verbose, wrong-format) answer to each."""
    folder.mkdir(parents=True)
    for split, count, offset in (("train", 8, 0), ("validation", 4, 8)):
        rows = [
            {"id": offset + i, "question": f"row={offset + i} which topic : goal oven pitch",
             "student": f"Well, question {offset + i} could be about a lot of different things really"}
            for i in range(count)
        ]  # fmt: skip
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_a_teacher_writes_the_chosen_answers_and_dpo_trains_on_them_in_one_pipeline(
    cli, fault_server, tiny_decoder, tmp_path
) -> None:
    server = fault_server(choices="sports,cooking")
    steps = [
        {"name": "pairs", "label": {
            "data": str(write_questions(tmp_path / "questions")), "teacher": "teacher",
            "base_url": server.url,
            "no_api_key": True, "prompt": "{{ question }}? Answer sports or cooking.",
            "answer": {"choices": ["sports", "cooking"]},
            "pairs": {"prompt_column": "question", "rejected_column": "student"},
        }},
        {"name": "aligned", "finetune": {
            "checkpoint": str(tiny_decoder("llama")), "data": "${pairs}", "strategy": "lora", "epochs": 1,
            "batch_size": 4, "max_length": 48, "learning_rate": 1e-3, "task_options": {"objective": "dpo"},
        }},
    ]  # fmt: skip
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "align", "steps": steps}))
    yard = tmp_path / "yard"
    result = cli("--yard", yard, "pipeline", spec)
    assert result.exit_code == 0, result.stderr
    state = json.loads((yard / "experiments" / "align" / "pipeline.json").read_text())["steps"]
    pairs, run = yard / state["pairs"]["path"], yard / state["aligned"]["path"]
    assert len(server.requests()) == 12  # one answer per question
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["task_type"] == "preference"
    assert manifest["config"]["task_options"]["objective"] == "dpo"
    assert manifest["parents"][-1]["path"].startswith("experiments/align/steps/pairs-")  # lineage
    assert 0.0 <= manifest["metrics"][pairs.name]["rewards/accuracies"] <= 1.0
    from datasets import Dataset

    train = Dataset.from_parquet(str(pairs / "train.parquet"))
    assert set(train["chosen"]) <= {"sports", "cooking"} and all(
        r.startswith("Well,") for r in train["rejected"]
    )
