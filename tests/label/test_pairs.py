"""``label`` making preference pairs: a teacher (a real server process) ranks two answers."""

from __future__ import annotations

import json
from pathlib import Path

from fault_server import answer_for

from tuneyard.data.options import DataOptions
from tuneyard.task_types.data_loading import load_data


def write_answers(folder: Path, count: int) -> Path:
    """Rows with a question and two answers to it; every fourth row's answers are the same."""
    folder.mkdir(parents=True)
    for split, offset in (("train", 0), ("validation", count)):
        rows = [
            {"id": offset + i, "question": f"row={offset + i}: which topic is item {offset + i}?",
             "student": f"I think item {offset + i} might be about many things", "expert": "cooking"}
            for i in range(count)
        ]  # fmt: skip
        for row in rows[::4]:
            row["student"] = row["expert"]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_a_teacher_ranking_two_answers_files_the_pairs_dpo_reads(cli, fault_server, tmp_path) -> None:
    server = fault_server(choices="A,B")
    data = write_answers(tmp_path / "answers", 8)
    prompt = "{{ question }}\nA: {{ student }}\nB: {{ expert }}\nWhich is better, A or B?"
    result = cli(
        "--yard", tmp_path / "yard", "label", "--data", data, "--teacher", "judge", "--base-url", server.url,
        "--no-api-key", "--prompt", prompt, "--prompt-column", "question", "--candidates", "student,expert",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    folder = Path(result.stdout.strip())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["metrics"]["pairs_left_out"] == 4  # rows 0 and 4 of each split: the same answer twice
    asked = sorted(request["row"] for request in server.requests())
    assert asked == [i for i in range(16) if i % 8 % 4]  # those 4 were never sent (nor paid for)
    assert "the teacher ranked `student` (A) against `expert` (B)" in (folder / "README.md").read_text()

    pairs = load_data(DataOptions(data=str(folder)))
    assert pairs.spec.task_type == "preference" and pairs.spec.problem == "pairs"
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    expected = {}
    for row in rows:
        if row["student"] == row["expert"]:
            continue
        verdict, _ = answer_for(prompt.replace("{{ question }}", row["question"]).replace(
            "{{ student }}", row["student"]).replace("{{ expert }}", row["expert"]), ["A", "B"])  # fmt: skip
        expected[row["id"]] = (
            (row["student"], row["expert"]) if verdict == "A" else (row["expert"], row["student"])
        )
    train = pairs.splits["train"]
    assert {
        row["id"]: (row["chosen"][0]["content"], row["rejected"][0]["content"]) for row in train
    } == expected
    assert {row["prompt"][0]["content"] for row in train} <= {row["question"] for row in rows}
    assert {chosen == "cooking" for chosen, _ in expected.values()} == {
        True,
        False,
    }  # each column won somewhere


def assert_user_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_pair_options_that_cannot_make_pairs_are_refused(cli, fault_server, tmp_path) -> None:
    server = fault_server(choices="A,B")
    data = write_answers(tmp_path / "answers", 4)
    yard = tmp_path / "yard"
    base = ("--yard", yard, "label", "--data", data, "--teacher", "judge", "--base-url", server.url,
            "--no-api-key", "--prompt", "{{ question }}")  # fmt: skip
    result = cli(*base, "--prompt-column", "question", "--candidates", "student")
    assert_user_error(result, "--candidates names 1 columns; the teacher ranks two")
    result = cli(*base, "--prompt-column", "question", "--candidates", "student,student")
    assert_user_error(result, "--candidates names 'student' twice", "Name two different answer columns")
    result = cli(*base, "--prompt-column", "question", "--rejected-column", "answer")
    assert_user_error(
        result, "the train split has no column 'answer' for the preference pairs", "Its columns:"
    )
    result = cli(*base, "--rejected-column", "student")
    assert_user_error(result, "--prompt-column and --rejected-column or --candidates go together")
    result = cli(*base, "--prompt-column", "question", "--candidates", "student,expert", "--choices", "x,y")
    assert_user_error(result, "with --candidates the teacher's target says which answer is better: A or B")
    assert not list(yard.rglob("manifest.json")) and server.requests() == []
