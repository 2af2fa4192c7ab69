"""A fine-tuning plan is decided before any weight loads, and travels as JSON to whoever runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tuneyard.train.options import FinetuneOptions
from tuneyard.train.plan import FinetunePlan, plan_finetune
from tuneyard.train.recipe import load_data, prepare_from_plan
from tuneyard.yard import Yard, read_manifest


def test_a_plan_made_here_runs_elsewhere_from_its_json(
    tiny_model: Callable[..., Path], topics: Path, tmp_path: Path
) -> None:
    yard = Yard.open(tmp_path)
    options = FinetuneOptions(
        checkpoint=str(tiny_model("bert")),
        data=str(topics),
        strategy="lora",
        lora={"r": 4, "layers": "1"},
        epochs=1,
        project="p",
    )
    plan = plan_finetune(options, yard, load_data(options))
    assert (plan.task_type, plan.strategy, plan.metric, plan.learning_rate) == (
        "sequence_classification",
        "lora",
        "accuracy",
        2e-4,
    )
    assert plan.target == tmp_path / "outputs" / "p" / "topics" / "bert_tiny_lora_1" and plan.train_rows == 64
    assert not plan.target.exists()  # nothing is written by planning

    shipped = FinetunePlan.from_json(plan.to_json())
    assert shipped == plan
    result = prepare_from_plan(shipped, yard).train()
    assert result.path == plan.target
    manifest = read_manifest(plan.target)
    assert manifest.status == "complete" and manifest.strategy == "lora" and manifest.config["lora"]["r"] == 4
    assert manifest.training is not None and manifest.training.step == 4  # 64 rows, batch 16
