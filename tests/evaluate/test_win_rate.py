"""``tuneyard win-rate``: a judge (a real OpenAI-compatible server process) compares two evals' answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REQUESTS = [f"Which section is package {i} in?" for i in range(6)]
PROMPTS = [f"<|im_start|>user\n{request}<|im_end|>\n<|im_start|>assistant\n" for request in REQUESTS]


def write_eval(folder: Path, answers: list[str], model: str | None = None) -> Path:
    """An eval folder's ``predictions.jsonl`` (the fields ``tuneyard eval`` writes for chat data), and with
    ``model`` its ``metrics.json`` naming the model (relative to the yard) on split ``prefs_validation``."""
    folder.mkdir(parents=True)
    if model is not None:
        record = {"model": model, "task": "prefs", "split": "validation", "metrics": {"exact": 0.5}}
        (folder / "metrics.json").write_text(json.dumps(record))
    lines = [
        {"id": i, "prompt": PROMPTS[i], "request": REQUESTS[i], "prediction": answer, "reference": "games",
         "tokens": 3, "seconds": 0.1}
        for i, answer in enumerate(answers)
    ]  # fmt: skip
    (folder / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_the_win_rate_counts_the_judges_verdicts_in_both_orders(cli, fault_server, tmp_path) -> None:
    server = fault_server(choices="A,B")
    tuned = write_eval(tmp_path / "tuned" / "prefs_validation", ["games", "net", "sound", "text", "net", "x"])
    start = write_eval(
        tmp_path / "start" / "prefs_validation",
        ["games", "net", "The package is a game", "It is text", "Network tools", "Science things"],
    )
    yard = tmp_path / "yard"
    result = cli(
        "--yard", yard, "win-rate", "--candidate", tuned, "--baseline", start, "--teacher", "judge",
        "--base-url", server.url, "--no-api-key", "--price-prompt", "1.5", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (
        len(server.requests()) == 8
    )  # 4 prompts with different answers, each in both orders; ties not asked
    [written] = (tuned / "win_rates").glob("*.json")
    win_rate = json.loads(written.read_text())
    judged = Path(win_rate["judgements"])
    from datasets import Dataset

    rows = Dataset.from_parquet(str(judged / "train.parquet"))
    assert sorted(zip(rows["id"], rows["order"], strict=True)) == [
        (key, order) for key in ("2", "3", "4", "5") for order in ("baseline", "candidate")
    ]
    wins = sum((order == "candidate") == (verdict == "A") for order, verdict in zip(
        rows["order"], rows["teacher_answer"], strict=True))  # fmt: skip
    assert (win_rate["wins"], win_rate["losses"], win_rate["ties"], win_rate["unjudged"]) == (
        wins,
        8 - wins,
        4,
        0,
    )
    assert win_rate["win_rate"] == (wins + 2) / 12
    assert float(result.stdout) == pytest.approx((wins + 2) / 12, abs=1e-4)
    assert win_rate["judge_prompt"].startswith("Which answer to the request below is better")
    # the judge reads the request as the user wrote it, not the chat template's rendering
    assert sorted(set(rows["prompt"])) == REQUESTS[2:]
    assert not any("<|im_start|>" in prompt for prompt in rows["prompt"])
    asked = {(row["id"], row["order"]): row["first"] for row in rows}
    assert asked["2", "candidate"] == "sound" and asked["2", "baseline"] == "The package is a game"
    cost_log = [json.loads(line) for line in (judged / "requests.jsonl").read_text().splitlines()]
    manifest = json.loads((judged / "manifest.json").read_text())
    assert len(cost_log) == 8 and manifest["metrics"]["cost"] > 0
    assert manifest["metrics"]["cost"] == pytest.approx(sum(line["cost"] for line in cost_log))


def test_evals_of_different_prompts_are_refused(cli, fault_server, tmp_path) -> None:
    tuned = write_eval(tmp_path / "tuned", ["a"] * 6)
    other = write_eval(tmp_path / "other", ["b"] * 6)
    lines = (other / "predictions.jsonl").read_text().splitlines()
    (other / "predictions.jsonl").write_text("\n".join(lines[:5]) + "\n")
    server = fault_server(choices="A,B")
    args = ("--teacher", "judge", "--base-url", server.url, "--no-api-key")
    result = cli("--yard", tmp_path / "yard", "win-rate", "--candidate", tuned, "--baseline", other, *args)
    assert result.exit_code == 2 and "the two evals did not answer the same prompts" in result.stderr
    assert "--nb-eval-samples" in result.stderr and server.requests() == []
    assert not (tuned / "win_rates").exists()


def test_the_judgements_are_named_after_the_models_compared(cli, fault_server, tmp_path) -> None:
    yard = tmp_path / "yard"
    run, start = yard / "outputs" / "p" / "prefs" / "smol_dpo", yard / "models" / "imported" / "SmolLM2.Q4_1"
    for artifact, kind in ((run, "run"), (start, "model")):
        artifact.mkdir(parents=True)
        (artifact / "manifest.json").write_text(json.dumps({"kind": kind}))
    answers = ["games", "net", "sound", "text", "net", "x"]
    results = run / "evaluation_results"
    evals = {
        "best": write_eval(results / "prefs_validation", answers, f"{run.relative_to(yard)}/best"),
        "last": write_eval(results / "last_prefs_validation", answers[::-1], f"{run.relative_to(yard)}/last"),
        "start": write_eval(
            start / "evaluation_results" / "prefs_validation", ["y"] * 6, str(start.relative_to(yard))
        ),
    }
    server = fault_server(choices="A,B")
    names = []
    for candidate in ("best", "last"):
        result = cli(
            "--yard", yard, "win-rate", "--candidate", evals[candidate], "--baseline", evals["start"],
            "--teacher", "judge", "--base-url", server.url, "--no-api-key", "-q",
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        [written] = (evals[candidate] / "win_rates").glob("*.json")
        names.append(Path(json.loads(written.read_text())["judgements"]).name)
    assert names == [
        "smol_dpo-vs-SmolLM2-Q4_1-prefs_validation",
        "last_smol_dpo-vs-SmolLM2-Q4_1-prefs_validation",
    ]
