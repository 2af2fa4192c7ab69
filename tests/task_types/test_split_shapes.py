"""Folders whose splits' columns say their shape (causal LM: chat or text; preference: pairs or KTO rows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tuneyard.data.options import ColumnOptions
from tuneyard.errors import DataError
from tuneyard.task_types.causal_lm.data import load_folder as load_chat_folder
from tuneyard.task_types.preference.data import load_folder as load_preference_folder

CHAT = {"messages": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}]}
TEXT = {"text": "Two and two make four."}
PAIR = {"prompt": "2 + 2?", "chosen": "4", "rejected": "5"}
KTO = {"prompt": "2 + 2?", "completion": "4", "label": True}

# (loader, the train split's row, the problem it poses, a row of the other shape, the words for both)
CASES = {
    "causal_lm": (load_chat_folder, CHAT, "generation", TEXT, "chat rows and plain text"),
    "preference": (load_preference_folder, PAIR, "pairs", KTO, "preference pairs and KTO's unpaired rows"),
}


def write_folder(folder: Path, splits: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir()
    for split, row in splits.items():
        (folder / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    return folder


@pytest.mark.parametrize("task_type", CASES)
def test_a_folder_of_one_shape_is_read_with_that_problem(task_type: str, tmp_path: Path) -> None:
    load, row, problem, _, _ = CASES[task_type]
    folder = write_folder(tmp_path / "sums", {"train": row, "validation": row})
    spec, splits = load(folder, ColumnOptions())
    assert (spec.name, spec.task_type, spec.problem, spec.main_metric) == ("sums", task_type, problem, "loss")
    assert sorted(splits) == ["train", "validation"] and splits["validation"].num_rows == 1


@pytest.mark.parametrize("task_type", CASES)
def test_splits_of_different_shapes_are_refused_with_both_named(task_type: str, tmp_path: Path) -> None:
    load, row, _, other, words = CASES[task_type]
    folder = write_folder(tmp_path / "sums", {"train": row, "validation": other})
    with pytest.raises(DataError) as refused:
        load(folder, ColumnOptions())
    assert f"{folder} mixes {words} across its splits." in str(refused.value)
    assert "Give every split the same columns" in refused.value.hint
