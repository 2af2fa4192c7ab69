"""Tokenizing a split: in memory, ``datasets`` never hashes the tokenizing function; read from cache
files, the tokenized split is still cached under the function's hash and found again."""

from __future__ import annotations

import inspect
from pathlib import Path

from datasets import DatasetDict, load_from_disk
from datasets.fingerprint import Hasher

from tuneyard.data.loading import TaskData
from tuneyard.models.loading import load_tokenizer
from tuneyard.task_types.data_loading import load_task_data
from tuneyard.task_types.sequence_classification.encoding import tokenize_task


def test_an_in_memory_split_is_tokenized_without_hashing_the_tokenizer(
    monkeypatch, topics_data, minilm
) -> None:
    hashed: list[object] = []
    hash_value = Hasher.hash.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Hasher, "hash", classmethod(lambda cls, value: hashed.append(value) or hash_value(cls, value))
    )
    task, tokenizer = load_task_data(data_dir=topics_data), load_tokenizer(minilm)
    hashed.clear()
    tokenized = tokenize_task(task, tokenizer, 32, splits=("validation",))["validation"]
    assert not [value for value in hashed if inspect.isfunction(value)]
    rows = task.split("validation")
    want = tokenizer(list(rows["text"]), truncation=True, max_length=32)["input_ids"]
    assert list(tokenized["input_ids"]) == want and list(tokenized["labels"]) == list(rows["label"])


def test_a_split_read_from_cache_files_finds_its_tokenized_rows_again(
    tmp_path: Path, topics_data, minilm
) -> None:
    task, tokenizer = load_task_data(data_dir=topics_data), load_tokenizer(minilm)
    task.split("validation").save_to_disk(tmp_path / "validation")
    on_disk = TaskData(
        task.spec, DatasetDict({"validation": load_from_disk(tmp_path / "validation")}), "disk"
    )
    first, second = (
        tokenize_task(on_disk, tokenizer, 32, splits=("validation",))["validation"] for _ in "12"
    )
    assert first.cache_files and first.cache_files == second.cache_files  # the second map read the first's
