"""Malformed split files in every verb that reads data: the file, the line and the fix, exit 2.

finetune, eval and compress (calibration) all read local folders through one function;
each bad file is tried under finetune, and a truncated CSV under each verb.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD_ROWS = "text,label\nsoup with beans,cooking\nthe match ended,sports\n"

# file name -> (bytes, what the message must say)
BAD_FILES = {
    "unterminated quote": ("train.csv", b'text,label\n"soup with beans,cooking\nthe match,sports\n',
                           "the row starting on line 2 opens a quoted field that never closes"),
    "extra field": ("train.csv", b"text,label\nsoup,cooking\nthe match,sports,extra\n",
                    "line 3 has 3 fields, the header has 2"),
    "invalid JSON line": ("train.jsonl", b'{"text": "soup", "label": "cooking"}\n{"text": "x", label: 1}\n',
                          "line 2 is not valid JSON"),
    "not parquet": ("train.parquet", b"PAR1 this is not parquet", "is not a readable Parquet file"),
    "latin-1": ("train.csv", "text,label\nsoup,cooking\ncafé au lait,cooking\n".encode("latin-1"),
                "is not UTF-8 text (line 3"),
    "empty split": ("train.csv", b"text,label\n", "has no rows"),
    "empty file": ("train.csv", b"", "is empty"),
}  # fmt: skip


def bad_folder(root: Path, name: str, content: bytes) -> Path:
    """A data folder whose train split is ``content`` and whose validation split is fine."""
    root.mkdir(parents=True)
    (root / name).write_bytes(content)
    (root / "validation.csv").write_text(GOOD_ROWS)
    return root


def assert_clear_error(result, problem: str, folder: Path, file_name: str) -> None:  # type: ignore[no-untyped-def]
    shown = " ".join(result.stderr.split())  # rich wraps long lines
    assert result.exit_code == 2, result.stderr
    assert shown.startswith("error:") and "Traceback" not in result.stderr
    assert str(folder / file_name) in "".join(result.stderr.split()) and problem in shown


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_finetune_names_the_file_the_line_and_the_fix(cli, tiny_model, tmp_path, case) -> None:
    file_name, content, problem = BAD_FILES[case]
    folder = bad_folder(tmp_path / "data", file_name, content)
    args = ("--checkpoint", tiny_model("bert"), "--data", folder, "--epochs", "1", "-q")
    result = cli("--yard", tmp_path / "yard", "finetune", *args)
    assert_clear_error(result, problem, folder, file_name)
    assert not (tmp_path / "yard" / "models").exists()  # nothing that looks like a run


def test_eval_and_compress_calibration_refuse_a_truncated_csv(cli, tiny_model, tmp_path) -> None:
    truncated = b'text,label\nsoup,cooking\n"the match ended in a dr'
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.csv").write_text(GOOD_ROWS)
    (folder / "test.csv").write_bytes(truncated)
    (folder / "validation.csv").write_text(GOOD_ROWS)
    problem = "the row starting on line 3 opens a quoted field that never closes"
    evaluated = cli(
        "--yard", tmp_path, "eval", "--checkpoint", tiny_model("bert"), "--data", folder, "--split", "test"
    )
    assert_clear_error(evaluated, problem, folder, "test.csv")
    (folder / "train.csv").write_bytes(truncated)
    compress = ("--checkpoint", tiny_model("bert"), "--method", "whiten", "--rank", "4", "--data", folder)
    compressed = cli("--yard", tmp_path, "compress", *compress, "-q")
    assert_clear_error(compressed, problem, folder, "train.csv")
    assert not (tmp_path / "compressed_models").exists()
