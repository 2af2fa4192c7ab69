"""Labelling against a server that fails on purpose: each row ends once, costs add up, kills lose nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from label_rows import PROMPT, write_rows

from tuneyard.label.client import JSON_SCHEMA_FALLBACK
from tuneyard.label.labeller import JOBS_DIR, label_dataset
from tuneyard.label.options import LabelOptions
from tuneyard.yard.root import Yard

KEY = "sk-test-0123456789abcdefSECRET"


def options(server_url: str, data: Path, **extra: object) -> LabelOptions:
    fields = {
        "data": str(data), "teacher": "fault-teacher", "base_url": server_url, "prompt": PROMPT,
        "answer": {"choices": ["alpha", "beta", "gamma"]}, "no_api_key": True,
    }  # fmt: skip
    return LabelOptions.model_validate(fields | extra)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_a_thousand_rows_through_429s_timeouts_and_bad_bodies_each_end_exactly_once(
    fault_server, tmp_path
) -> None:
    server = fault_server(rate_429=0.10, rate_slow=0.05, slow_seconds=2, rate_malformed=0.02, seed=3)
    data = write_rows(tmp_path / "rows", 1000)
    yard = Yard.open(tmp_path / "yard")
    result = label_dataset(options(server.url, data, concurrency=8, timeout=0.5, max_retries=2), yard)

    journal = read_jsonl(result.path / "journal.jsonl")
    assert len(journal) == 1000 and len({entry["row"] for entry in journal}) == 1000  # no duplicate
    outcomes = Counter(entry["status"] for entry in journal)
    assert outcomes["labelled"] + outcomes["failed"] == 1000 and outcomes["rejected"] == 0
    failed = read_jsonl(result.path / "failed.jsonl")
    assert len(failed) == outcomes["failed"] and all(entry["reason"] for entry in failed)
    # With 3 tries a row fails only when all three drew a fault: about 0.17^3 of rows.
    assert outcomes["failed"] < 30
    assert {entry["reason"] for entry in failed} <= {"timed out", "HTTP 429: slow down"} | {
        entry["reason"] for entry in failed if entry["reason"].startswith("malformed reply")
    }

    manifest = json.loads((result.path / "manifest.json").read_text())
    metrics = manifest["metrics"]
    expected = {"labelled": outcomes["labelled"], "rejected": 0, "failed": outcomes["failed"]}
    assert metrics["outcomes"] == expected
    assert metrics["rows"] == {"train": outcomes["labelled"]}
    cost_log = read_jsonl(result.path / "requests.jsonl")
    assert metrics["requests"] == len(cost_log)
    assert metrics["prompt_tokens"] == sum(line["prompt_tokens"] for line in cost_log)
    assert metrics["completion_tokens"] == sum(line["completion_tokens"] for line in cost_log)
    # ...and they are what the server reported in the replies the client received
    # (a slow reply's usage never arrived: the client had given up on it).
    served = [request for request in server.requests() if request["outcome"] == "ok"]
    assert metrics["prompt_tokens"] == sum(request["tokens"][0] for request in served)
    assert Counter(line["outcome"] for line in cost_log)["ok"] == len(served) == outcomes["labelled"]
    drawn = Counter(request["outcome"] for request in server.requests())
    assert drawn["429"] > 50 and drawn["slow"] > 20 and drawn["malformed"] > 5  # the faults did happen
    assert not (tmp_path / "yard" / ".tuneyard" / "shared" / JOBS_DIR / "x").exists()


def test_answers_outside_the_choices_are_asked_again_then_kept_apart_with_their_reason(
    fault_server, tmp_path
) -> None:
    server = fault_server(rate_outside=0.3, seed=1)
    data = write_rows(tmp_path / "rows", 60)
    result = label_dataset(options(server.url, data, answer_retries=1), Yard.open(tmp_path / "yard"))
    rejected = read_jsonl(result.path / "rejected.jsonl")
    assert rejected, "with 30% outside answers and one retry, about 9% of rows stay outside"
    assert all("'banana' is not one of: alpha, beta, gamma" in entry["reason"] for entry in rejected)
    asked = Counter(request["row"] for request in server.requests())
    assert all(asked[entry["row"]] == 2 for entry in rejected)  # the first ask and one retry
    labels = read_parquet(result.path / "train.parquet")
    assert set(labels["label"]) <= {"alpha", "beta", "gamma"} and len(labels["label"]) == 60 - len(rejected)


def test_min_confidence_keeps_low_confidence_answers_apart(fault_server, tmp_path) -> None:
    server = fault_server()
    data = write_rows(tmp_path / "rows", 80)
    result = label_dataset(options(server.url, data, min_confidence=0.6), Yard.open(tmp_path / "yard"))
    kept = read_parquet(result.path / "train.parquet")
    rejected = read_jsonl(result.path / "rejected.jsonl")
    assert kept["confidence"] and min(kept["confidence"]) >= 0.6
    assert rejected and all(entry["confidence"] < 0.6 for entry in rejected)
    assert all(entry["reason"].endswith("is under --min-confidence 0.6") for entry in rejected)
    assert len(kept["id"]) + len(rejected) == 80


def test_a_server_without_logprobs_or_structured_output_is_asked_without_them(fault_server, tmp_path) -> None:
    server = fault_server(refuse="logprobs,response_format")
    data = write_rows(tmp_path / "rows", 10)
    label = {"enum": ["alpha", "beta", "gamma"]}
    schema = {"type": "object", "properties": {"label": label}, "required": ["label"]}
    result = label_dataset(
        options(
            server.url,
            data,
            answer={"json_schema": schema},
            target="{{ answer.label }}",
            prompt=PROMPT + ' As JSON: {"label": ...}',
        ),  # fmt: skip
        Yard.open(tmp_path / "yard"),
    )
    assert result.dropped == [JSON_SCHEMA_FALLBACK, "response_format", "logprobs"]
    kept = read_parquet(result.path / "train.parquet")
    assert len(kept["label"]) == 10 and set(kept["label"]) <= {"alpha", "beta", "gamma"}
    assert kept["confidence"] == [None] * 10
    card = (result.path / "README.md").read_text()
    assert (
        "request options the server refused: response_format json_schema -> json_object with the schema; "
        "response_format (asked without); logprobs (asked without)"
    ) in card


def read_parquet(path: Path) -> dict[str, list]:
    from datasets import Dataset

    return Dataset.from_parquet(str(path)).to_dict()


def tuneyard(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "tuneyard", *map(str, args)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint
    )


def default_sigint() -> None:
    """Ctrl-C as at a terminal: a background shell (a CI runner's, say) starts children ignoring SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def label_args(yard: Path, server_url: str, data: Path) -> list[object]:
    return [
        "--yard", yard, "label", "--data", data, "--teacher", "fault-teacher", "--base-url", server_url,
        "--prompt", PROMPT, "--choices", "alpha,beta,gamma", "--concurrency", "8", "-q",
    ]  # fmt: skip


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_a_job_stopped_in_the_middle_then_rerun_loses_nothing_and_asks_little_twice(
    fault_server, tmp_path, stop
) -> None:
    data = write_rows(tmp_path / "rows", 200)
    env = os.environ | {"OPENAI_API_KEY": KEY}
    killed_server = fault_server(delay=0.02)
    first = tuneyard(*label_args(tmp_path / "yard", killed_server.url, data), env=env)
    journals = tmp_path / "yard" / ".tuneyard" / "shared" / JOBS_DIR
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = [len(path.read_text().splitlines()) for path in journals.glob("*/journal.jsonl")]
        if lines and lines[0] >= 60:
            break
        time.sleep(0.05)
    first.send_signal(stop)
    _, stopped_err = first.communicate(timeout=60)
    if stop == signal.SIGINT:
        assert first.returncode == 130
        assert "Run the same command again: only the rows without a result are asked." in stopped_err
    journalled = len(next(journals.glob("*/journal.jsonl")).read_text().splitlines())
    assert 60 <= journalled < 200, "the kill must land in the middle"
    assert not (tmp_path / "yard" / "datasets").exists()  # nothing that looks complete

    rerun = tuneyard(*label_args(tmp_path / "yard", killed_server.url, data), "--resume", env=env)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    asked = Counter(request["row"] for request in killed_server.requests())
    assert set(asked) == set(range(200))
    assert sum(asked.values()) <= 200 + 8  # only rows in flight at the kill are asked twice

    clean_server = fault_server(delay=0.02)
    clean = tuneyard(*label_args(tmp_path / "clean-yard", clean_server.url, data), env=env)
    clean_out, clean_err = clean.communicate(timeout=300)
    assert clean.returncode == 0, clean_err
    resumed, uninterrupted = Path(out.strip()), Path(clean_out.strip())
    assert read_parquet(resumed / "train.parquet") == read_parquet(uninterrupted / "train.parquet")
    assert (resumed / "train.parquet").read_bytes() == (uninterrupted / "train.parquet").read_bytes()
    assert not list(journals.glob("*/journal.jsonl"))  # finished: the job's journal is gone
