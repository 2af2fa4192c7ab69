"""``tuneyard label`` from the command line: the key stays secret, bad input is refused, images travel."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from label_rows import PROMPT, write_rows
from media_data import digits_imagefolder

KEY = "sk-test-0123456789abcdefSECRET"


def label(cli, yard: Path, url: str, data: Path, *extra: object):  # type: ignore[no-untyped-def]
    return cli(
        "--yard", yard, "label", "--data", data, "--teacher", "fault-teacher", "--base-url", url,
        "--prompt", PROMPT, "--choices", "alpha,beta,gamma", *extra,
    )  # fmt: skip


def test_the_api_key_reaches_the_server_and_nothing_else(cli, fault_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fault_server(env={"FAULT_SERVER_KEY": KEY, "PATH": "/usr/bin:/bin"}, rate_500=0.2, seed=2)
    data = write_rows(tmp_path / "rows", 40, splits=("train", "test"))
    yard = tmp_path / "yard"
    extra = ("--min-confidence", "0.5", "--max-retries", "1", "--price-prompt", "2.5")
    result = label(cli, yard, server.url, data, *extra)
    assert result.exit_code == 0, result.stderr
    assert all(request["authorized"] for request in server.requests())  # the key was sent...
    refused = fault_server(always="401")
    denied = label(cli, yard, refused.url, data)
    assert denied.exit_code == 2 and "refused the API key (401)" in denied.stderr
    written = [path for path in yard.rglob("*") if path.is_file()]
    assert len(written) > 5
    for path in written:  # ...and is nowhere else: no file of the yard, no output
        assert KEY.encode() not in path.read_bytes(), path
    for output in (result.stdout, result.stderr, denied.stdout, denied.stderr):
        assert KEY not in output
    manifest = json.loads((Path(result.stdout.strip()) / "manifest.json").read_text())
    assert manifest["metrics"]["cost"] == pytest.approx(manifest["metrics"]["prompt_tokens"] * 2.5e-6)
    assert [parent["role"] for parent in manifest["parents"]] == ["data", "teacher"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing column", "the prompt or target template names a column the train split lacks"),
        ("unreachable", "cannot reach the teacher at http://127.0.0.1:"),
        ("missing key", "the API key's environment variable TUNEYARD_TEST_NO_KEY is not set"),
        ("never matches", "answers matched the answer format; stopped so as not to pay for more"),
        ("bad regex", "--answer-regex '(' is not a regular expression"),
        ("malformed file", "the row starting on line 3 opens a quoted field that never closes"),
    ],
)
def test_bad_input_is_refused_with_the_fix_and_nothing_is_filed(
    cli, fault_server, tmp_path, monkeypatch, case, message
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    data = write_rows(tmp_path / "rows", 50)
    url = fault_server(always="outside").url if case == "never matches" else fault_server().url
    extra: list[object] = {
        "missing column": ["--prompt", "{{ title }}"],
        "unreachable": [],
        "missing key": ["--api-key-env", "TUNEYARD_TEST_NO_KEY"],
        "never matches": ["--answer-retries", "0"],
        "bad regex": ["--choices", None, "--answer-regex", "("],
        "malformed file": [],
    }[case]
    if case == "malformed file":
        (data / "train.jsonl").unlink()
        (data / "train.csv").write_text('id,text\n1,fine\n"2,never closed\n3,more\n')
    if case == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/v1"
    if None in extra:  # --choices None: drop the default --choices pair
        result = cli(
            "--yard", tmp_path / "yard", "label", "--data", data, "--teacher", "t", "--base-url", url,
            "--prompt", PROMPT, "--answer-regex", "(",
        )  # fmt: skip
    else:
        result = label(cli, tmp_path / "yard", url, data, "--max-retries", "1", *extra)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error:") and message in " ".join(result.stderr.split())
    assert not (tmp_path / "yard" / "datasets").exists()


def test_an_imagefolder_is_sent_as_images_and_labelled(cli, fault_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    images = digits_imagefolder(tmp_path / "digits")
    prepared = cli("--yard", tmp_path, "prepare", images, "--name", "digits", "-q")
    assert prepared.exit_code == 0, prepared.stderr
    server = fault_server()
    result = cli(
        "--yard", tmp_path, "label", "--data", "digits", "--teacher", "vision", "--base-url", server.url,
        "--prompt", "What size is this digit? row={{ label }}", "--image-column", "image",
        "--answer-regex", r"\d+x\d+", "--target", "{{ answer }} pixels", "--name", "digit-sizes", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    from datasets import Dataset

    labelled = Dataset.from_parquet(str(Path(result.stdout.strip()) / "train.parquet"))
    assert set(labelled["label"]) == {"8x8 pixels"}  # the server decoded each PNG it was sent
    assert "original_label" in labelled.column_names and len(labelled) == len(server.requests())
    manifest = json.loads((Path(result.stdout.strip()) / "manifest.json").read_text())
    assert manifest["parents"][0]["path"] == "datasets/digits"


def test_the_teacher_is_shown_each_image_as_the_student_will_see_it(
    cli, fault_server, tmp_path, tiny_vlm, tiny_model
) -> None:
    """The 8x8 digits, prepared the llama.cpp way for a student whose images are resized to 64 px:
    the teacher (it answers the size of the PNG it decodes) is sent 64x64 pictures."""
    images = digits_imagefolder(tmp_path / "digits")
    yard = tmp_path / "yard"
    assert cli("--yard", yard, "prepare", images, "--name", "digits", "-q").exit_code == 0
    server = fault_server()
    ask = (
        "--yard", yard, "label", "--data", "digits", "--teacher", "vision",
        "--base-url", server.url, "--no-api-key", "--prompt", "What size is this digit?",
        "--image-column", "image", "--answer-regex", r"\d+x\d+", "-q",
    )  # fmt: skip
    result = cli(*ask, "--image-preprocess", "llamacpp", "--student", tiny_vlm, "--name", "seen")
    assert result.exit_code == 0, result.stderr
    from datasets import Dataset

    labelled = Dataset.from_parquet(str(Path(result.stdout.strip()) / "train.parquet"))
    assert set(labelled["label"]) == {"64x64"}

    asked = len(server.requests())
    alone = cli(*ask, "--image-preprocess", "llamacpp")
    assert alone.exit_code == 2 and "--image-preprocess and --student go together" in alone.stderr
    text_student = cli(*ask, "--image-preprocess", "llamacpp", "--student", tiny_model("bert", num_labels=3))
    assert text_student.exit_code == 2 and text_student.stderr.startswith("error:")
    assert "is a sequence_classification model" in text_student.stderr
    unknown = cli(*ask, "--image-preprocess", "ollama", "--student", tiny_vlm)
    assert unknown.exit_code == 2 and "unknown image preprocessing 'ollama'" in unknown.stderr
    assert len(server.requests()) == asked  # refused before any request
