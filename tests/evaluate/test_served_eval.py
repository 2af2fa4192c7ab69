"""``tuneyard eval --backend server``: answers from a real llama.cpp server on 127.0.0.1, graded here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = 8
CHOICES = "games,graphics,net,science,sound,text"


def section_questions(folder: Path) -> Path:
    """The first rows of the real Debian section questions (chat rows), as a test split."""
    folder.mkdir()
    lines = (REPO / "data" / "debian_sections_chat" / "test.jsonl").read_text().splitlines()[:ROWS]
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def predictions(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_served_answers_match_in_process_ones_on_the_real_smollm2(
    cli, llama_server, smollm2_yard, tmp_path
) -> None:
    """The real SmolLM2-135M-Instruct (its wheel's Q4_1 GGUF): in-process (transformers, the file
    dequantized) and through llama.cpp's server (the file itself), on the same rows, same grader."""
    from tuneyard.models.gguf import packaged_gguf

    data = section_questions(tmp_path / "sections")
    yard = ("--yard", smollm2_yard)
    answers = ("--data", data, "--split", "test", "--grader", "choice", "--choices", CHOICES)
    answers += ("--max-new-tokens", "12", "-q")
    in_process = cli(*yard, "eval", "--checkpoint", packaged_gguf(), *answers)
    assert in_process.exit_code == 0, in_process.stderr
    served = cli(
        *yard,
        "eval",
        "--checkpoint",
        packaged_gguf(),
        *answers,
        "--backend",
        "server",
        "--server-arg",
        "n_ctx=1024",
    )
    assert served.exit_code == 0, served.stderr
    assert "on llama.cpp server" in served.stderr

    model = smollm2_yard / "models" / "imported" / "llama" / "SmolLM2-135M-Instruct.Q4_1"
    here = predictions(model / "evaluation_results" / "sections_test")
    there = predictions(model / "evaluation_results" / "served_sections_test")
    assert [row["id"] for row in here] == [row["id"] for row in there]
    assert [row["prompt"] for row in here] == [row["prompt"] for row in there]  # one chat template rendering
    identical = sum(a["prediction"] == b["prediction"] for a, b in zip(here, there, strict=True))
    # Q4_1 in llama.cpp (activations quantized to 8 bits) against its float32 dequantization in
    # transformers: 6 of the 8 greedy answers identical when this was written. Which ones differ
    # depends on the CPU (llama.cpp picks its kernels by instruction set; on an AVX-512 machine,
    # 2026-12-08, the served side got one more right), so the scores may differ, on those rows only.
    assert identical >= ROWS // 2, [
        (a["prediction"], b["prediction"]) for a, b in zip(here, there, strict=True)
    ]

    manifest = json.loads((model / "manifest.json").read_text())
    local, remote = manifest["metrics"]["sections_test"], manifest["metrics"]["served_sections_test"]
    assert local["choice"] == sum(row["score"] for row in here) / ROWS
    assert remote["choice"] == sum(row["score"] for row in there) / ROWS
    same_answers = [(a, b) for a, b in zip(here, there, strict=True) if a["prediction"] == b["prediction"]]
    assert all(a["score"] == b["score"] for a, b in same_answers)
    assert (
        "perplexity" in local and "perplexity" not in remote
    )  # a server gives no reference log-probabilities
    recorded = manifest["config"]["served_evals"]["served_sections_test"]
    assert recorded["backend"] == "server" and recorded["server"] == "llama.cpp"
    assert recorded["server_args"] == {"n_ctx": "1024"}
    document = json.loads(
        (model / "evaluation_results" / "served_sections_test" / "metrics.json").read_text()
    )
    assert document["backend"] == recorded and document["grader"]["grader"] == "choice"
    assert (model / "evaluation_results" / "served_sections_test" / "grader_logs" / "test_choice").is_dir()

    # A server started elsewhere (the llama_server fixture, the same file), named by its URL: the same
    # answers, filed beside the first served eval (never over it); the model is the one the server lists.
    given = cli(*yard, "eval", "--checkpoint", packaged_gguf(), *answers, "--backend", "server",
                "--server-url", llama_server)  # fmt: skip
    assert given.exit_code == 0, given.stderr
    again = predictions(model / "evaluation_results" / "served_sections_test-2")
    assert [row["prediction"] for row in again] == [row["prediction"] for row in there]
    manifest = json.loads((model / "manifest.json").read_text())
    recorded = manifest["config"]["served_evals"]["served_sections_test"]
    assert (recorded["server"], recorded["url"], recorded["model"]) == ("url", llama_server, "smollm2")


def test_a_model_with_no_server_to_run_it_is_refused_before_any_work(
    cli, tiny_decoder, chat_topics, tmp_path
):
    folder = tiny_decoder("llama")
    result = cli("--yard", tmp_path / "yard", "eval", "--checkpoint", folder, "--data", chat_topics,
                 "--backend", "server")  # fmt: skip
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"error: --backend server has no server to run {folder}" in message
    assert "tuneyard export --format gguf" in message and "--server-url" in message
    assert not (tmp_path / "yard" / "models").exists()  # nothing imported or written


def test_a_classifier_has_no_answers_to_serve(cli, tiny_model, topics_data, tmp_path) -> None:
    model = tiny_model("bert")
    result = cli("--yard", tmp_path / "yard", "eval", "--checkpoint", model, "--data", topics_data,
                 "--backend", "server", "--server-url", "http://127.0.0.1:9/v1")  # fmt: skip
    assert result.exit_code == 2
    assert "asks a server for answers to chat prompts" in " ".join(result.stderr.split())


def test_help_explains_the_backend(cli) -> None:
    result = cli("eval", "--help")
    text = " ".join(result.stdout.split())
    for flag in ("--backend", "--server-url", "--server-model", "--api-key-env", "--server-arg"):
        assert flag in text
    assert "llama.cpp's server for a .gguf file" in text


def test_llama_cpp_serves_on_this_process_threads_unless_the_user_says(tmp_path) -> None:
    import torch

    from tuneyard.evaluate.model_server import LLAMA_CPP, server_command

    def flags(args: dict[str, object]) -> dict[str, str]:
        command = server_command(LLAMA_CPP, tmp_path / "m.gguf", "m", 8000, args)
        return dict(zip(command[3::2], command[4::2], strict=False))

    threads = str(torch.get_num_threads())
    assert (flags({})["--n_threads"], flags({})["--n_threads_batch"]) == (threads, threads)
    chosen = flags({"n_threads": 3, "n_ctx": 2048})
    assert (chosen["--n_threads"], chosen["--n_threads_batch"], chosen["--n_ctx"]) == ("3", threads, "2048")
