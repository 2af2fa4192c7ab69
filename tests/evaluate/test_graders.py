"""Graders on tricky inputs, and `tuneyard grade` on JSONL / CSV files."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.components.graders import ChoiceGrader, JsonGrader, RegexGrader, make_grader, parse_json_answer
from tuneyard.errors import EvaluationError


@pytest.mark.parametrize(
    ("prediction", "reference", "score"),
    [
        ("  Paris \n", "paris", 1.0),
        ("PARIS.", "Paris", 1.0),
        ('"New   York"', "new york", 1.0),
        ("Paris, France", "Paris", 0.0),
        ("", "Paris", 0.0),
    ],
)
def test_exact_ignores_case_whitespace_quotes_and_final_period(
    prediction: str, reference: str, score: float
) -> None:
    assert make_grader("exact").grade(prediction, reference).score == score


def test_contains_finds_the_normalised_reference_inside_the_answer() -> None:
    grader = make_grader("contains")
    assert grader.grade("The capital is   PARIS, of course.", "paris").score == 1.0
    assert grader.grade("The capital is Lyon.", "paris").score == 0.0


def test_regex_with_pattern_extracts_the_answer_group() -> None:
    grader = RegexGrader(r"answer:\s*(\w+)")
    assert grader.grade("Let me think. Answer: B", "b").score == 1.0
    assert grader.grade("Answer: C", "b").score == 0.0
    missing = grader.grade("I do not know", "b")
    assert (missing.score, missing.parsed) == (0.0, False)


def test_regex_without_pattern_treats_the_reference_as_the_pattern() -> None:
    grader = RegexGrader()
    assert grader.grade("Order #12345 shipped", r"#\d{5}\b").score == 1.0
    assert grader.grade("Order #12 shipped", r"#\d{5}\b").score == 0.0


def test_invalid_regex_is_a_clear_error() -> None:
    with pytest.raises(EvaluationError, match=r"--pattern '\(unclosed' is not a valid regular expression"):
        RegexGrader("(unclosed")


def test_json_answer_in_code_fence_with_trailing_text_and_extra_fields_gets_full_credit() -> None:
    prediction = (
        'Sure!\n```json\n{"name": " Ada Lovelace ", "year": 1815.0, "note": "extra"}\n```\nHope this helps.'
    )
    grade = JsonGrader(["name", "year"]).grade(prediction, '{"name": "ada lovelace", "year": 1815}')
    assert (grade.score, grade.parsed, grade.fields) == (1.0, True, {"name": True, "year": True})


def test_json_trailing_text_after_object_without_fence_parses() -> None:
    assert parse_json_answer('{"a": 1} and that is all {not json') == {"a": 1}


def test_json_partial_credit_per_field_and_missing_field_is_wrong() -> None:
    grader = JsonGrader(["a", "b", "c", "d"])
    grade = grader.grade('{"a": 1, "b": "X", "c": [1, 2]}', {"a": 1, "b": "y", "c": [1, 2], "d": None})
    assert grade.fields == {"a": True, "b": False, "c": True, "d": False}
    assert grade.score == pytest.approx(0.5)


def test_invalid_json_is_counted_as_unparsable_not_just_wrong() -> None:
    grader = JsonGrader(["a"])
    for answer in ('{"a": 1', "no json here", "[1, 2]"):
        grade = grader.grade(answer, '{"a": 1}')
        assert (grade.score, grade.parsed) == (0.0, False), answer
        assert grade.error


def test_json_field_missing_from_reference_is_a_clear_error() -> None:
    with pytest.raises(EvaluationError, match="grader field 'year' is not in the reference") as error:
        JsonGrader(["name", "year"]).grade('{"name": "x"}', '{"name": "x", "born": 1}')
    assert "born, name" in (error.value.hint or "")


def test_choice_picks_the_single_label_named_and_rejects_ambiguity() -> None:
    grader = ChoiceGrader(["positive", "negative", "neutral"])
    assert grader.grade(" Positive.", "positive").score == 1.0
    assert grader.grade("The sentiment is negative", "positive").score == 0.0
    ambiguous = grader.grade("either positive or negative", "positive")
    assert (ambiguous.score, ambiguous.parsed) == (0.0, False)
    assert not grader.grade("nonpositive", "positive").parsed  # whole words only
    with pytest.raises(EvaluationError, match="reference 'mixed' is not one of the choices"):
        grader.grade("positive", "mixed")


def test_unknown_grader_lists_the_known_ones() -> None:
    with pytest.raises(EvaluationError, match="unknown grader 'fuzzy'") as error:
        make_grader("fuzzy")
    assert "exact, contains, regex, json, choice" in (error.value.hint or "")


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_grade_cli_json_grader_prints_summary_and_writes_per_sample_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    predictions = write_jsonl(
        tmp_path / "answers.jsonl",
        [
            {
                "id": "q1",
                "prediction": '{"name": "Ada", "year": 1815}',
                "reference": {"name": "ada", "year": 1815},
            },
            {
                "id": "q2",
                "prediction": '```json\n{"name": "Alan", "year": 1900}\n``` done',
                "reference": '{"name": "Alan", "year": 1912}',
            },
            {"id": "q3", "prediction": "I cannot answer", "reference": {"name": "Grace", "year": 1906}},
        ],
    )
    assert (
        run_cli(
            [
                "grade",
                "--predictions",
                str(predictions),
                "--grader",
                "json",
                "--fields",
                "name,year",
                "--output-dir",
                str(tmp_path / "out"),
                "--format",
                "json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["score"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert summary["unparsable"] == 1 and summary["score_parsed"] == pytest.approx(0.75)
    assert summary["field_accuracy"] == pytest.approx({"name": 2 / 3, "year": 1 / 3})
    logs = [
        json.loads(line)
        for line in (tmp_path / "out" / "grader_logs" / "answers_json" / "samples.jsonl").open()
    ]
    assert [(log["id"], log["score"], log["parsed"]) for log in logs] == [
        ("q1", 1.0, True),
        ("q2", 0.5, True),
        ("q3", 0.0, False),
    ]


def test_grade_cli_csv_choice_grader_and_second_run_keeps_first_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    predictions = tmp_path / "labels.csv"
    with predictions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(
            [
                ["id", "prediction", "reference"],
                [1, "Positive", "positive"],
                [2, "negative!", "positive"],
                [3, "no idea", "negative"],
            ]
        )
    for _ in range(2):
        assert run_cli(["grade", "--predictions", str(predictions), "--grader", "choice"]) == 0
    text = capsys.readouterr().out
    assert "score" in text and "0.3333" in text and "unparsable" in text
    assert sorted(p.name for p in (tmp_path / "grader_logs").iterdir()) == [
        "labels_choice",
        "labels_choice-2",
    ]


def test_grade_cli_missing_field_exits_2_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "{}", "reference": {"a": 1}}])
    assert run_cli(["grade", "--predictions", str(predictions), "--grader", "json", "--fields", "a,b"]) == 2
    assert "error: grader field 'b' is not in the reference" in capsys.readouterr().err
    assert not (tmp_path / "grader_logs").exists() or not any((tmp_path / "grader_logs").iterdir())


def test_grade_cli_file_without_reference_column_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_cli: Callable[[list[str]], int]
) -> None:
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "x"}])
    assert run_cli(["grade", "--predictions", str(predictions), "--grader", "exact"]) == 2
    assert "record 1 has no 'reference' field" in capsys.readouterr().err
