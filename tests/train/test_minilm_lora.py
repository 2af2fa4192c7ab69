"""LoRA on chosen layers of the real MiniLM (all-MiniLM-L6-v2) learns a real task.

Debian package descriptions -> 6 sections (a balanced slice, ``minilm_runs``): the
majority-class baseline is 1/6. A file of its own, so ``--dist loadfile`` runs it beside
``test_minilm.py`` rather than after it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from minilm_runs import COMMON, MAJORITY, assert_files_report, debian_slice_fixture  # noqa: F401

from tuneyard.train.options import FinetuneOptions
from tuneyard.train.recipe import finetune
from tuneyard.yard.root import Yard

pytestmark = pytest.mark.slow


def test_lora_on_chosen_layers_learns(minilm: Path, debian_slice: Path, tmp_path: Path) -> None:
    options = FinetuneOptions(
        checkpoint=str(minilm),
        data=str(debian_slice),
        strategy="lora",
        epochs=1,
        learning_rate=1e-3,
        lora={"r": 8, "layers": "2-5"},
        project="minilm",
        **COMMON,
    )
    result = finetune(options, Yard.open(tmp_path))
    assert result.path.name == "minilm_l6_lora_2-5"
    assert result.best_metrics["accuracy"] > MAJORITY + 0.4, result.best_metrics
    assert_files_report(result.path, result.best_metrics["accuracy"])
    adapter = json.loads((result.path / "best" / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == [2, 3, 4, 5] and adapter["r"] == 8
