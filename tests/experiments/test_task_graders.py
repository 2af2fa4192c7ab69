"""A task's own grader (its ``grader:`` with settings) scores its answers in the grid, eval-grid and a
pipeline; ``evals.grader`` / ``answers.grader`` override it; each result records the grader that scored it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ANSWER = {"section": "net"}  # every answer the model learns
TASK = """
sections:
  dataset: DATA
  system_prompt: Answer in JSON.
  user_prompt: "Package: {{ text }}"
  assistant_text_column: ground_truth
  grader: {name: JSONGrader, fields: [section]}
"""


def write_rows(folder: Path) -> Path:
    """Train rows all answered ``{"section": "net"}``; test references also name the package, so an answer
    that is right on ``section`` scores 1 under the json grader (fields: section) and 0 under exact."""
    folder.mkdir(parents=True)
    packages = [f"pkg{number}" for number in range(24)]
    for split, names in (("train", packages[:16]), ("validation", packages[16:20]), ("test", packages[20:])):
        with (folder / f"{split}.jsonl").open("w") as file:
            for name in names:
                reference = ANSWER if split == "train" else {**ANSWER, "package": name}
                row = {"id": name, "text": f"{name}: a network tool", "ground_truth": json.dumps(reference)}
                file.write(json.dumps(row) + "\n")
    return folder


@pytest.fixture(scope="module")
def json_task(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """(task file, yard, prepared task folder, model): a tiny SmolLM2-tokenizer decoder that answers
    ``{"section": "net"}`` to every prompt (fine-tuned on the task's train rows until it does)."""
    from smol_decoders import build_smol_decoder

    from tuneyard.data.prepare import PrepareOptions, prepare_dataset
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    root = tmp_path_factory.mktemp("graders")
    spec = root / "tasks.yaml"
    spec.write_text(TASK.replace("DATA", str(write_rows(root / "rows"))))
    yard = Yard.open(root / "yard")
    data = prepare_dataset(PrepareOptions(task_spec=str(spec), task="sections"), yard).path
    base = build_smol_decoder(root / "smol", hidden=64, intermediate=128)
    options = FinetuneOptions(
        checkpoint=str(base), data=str(data), strategy="full", epochs=6, batch_size=4, learning_rate=1e-2,
        max_length=64, save_steps=24,
    )  # fmt: skip
    run = finetune(options, yard).path
    return spec, yard, data, run / "best"


def test_the_model_answers_what_it_learned(json_task) -> None:
    from tuneyard.data.options import DataOptions
    from tuneyard.evaluate.model_eval import evaluate_model
    from tuneyard.task_types.data_loading import load_data

    _, yard, data, model = json_task
    outcome = evaluate_model(model, load_data(DataOptions(data=str(data))), yard, split="test")
    answers = [json.loads(line)["prediction"] for line in (outcome.folder / "predictions.jsonl").open()]
    assert answers == [json.dumps(ANSWER)] * 4, answers


def grid_cell(yard: Path, experiment: str) -> dict:  # type: ignore[type-arg]
    (cell,) = json.loads((yard / "experiments" / experiment / "eval_grid_results.json").read_text())["cells"]
    return cell  # type: ignore[no-any-return]


def test_the_grid_grades_with_the_tasks_grader_and_evals_grader_overrides_it(
    cli, json_task, tmp_path
) -> None:
    spec, yard, _, model = json_task
    experiment = tmp_path / "experiment.yaml"
    evals = f"evals: {{models: [{model}], nb_eval_samples: 4}}\n"
    experiment.write_text(spec.read_text() + evals)  # evals only: the file's task, graded its way
    assert cli("--yard", yard.root, "grid", experiment).exit_code == 0
    cell = grid_cell(yard.root, "experiment")
    assert cell["grader"] == {"grader": "json", "fields": ["section"], "pattern": None, "choices": []}
    assert (cell["main_metric"], cell["metrics"]["json"]) == ("json", 1.0)
    experiment.write_text(spec.read_text() + evals.replace("}", ", grader: exact}"))
    assert (
        cli("--yard", yard.root, "grid", experiment).exit_code == 0
    )  # another grader: the cell is graded again
    cell = grid_cell(yard.root, "experiment")
    assert (cell["grader"]["grader"], cell["main_metric"], cell["metrics"]["exact"]) == (
        "exact",
        "exact",
        0.0,
    )


def test_eval_grid_and_a_pipeline_grade_with_the_tasks_grader(cli, json_task, tmp_path) -> None:
    spec, yard, data, model = json_task
    result = cli("--yard", yard.root, "eval-grid", "--models", model, "--tasks", data, "--split", "test",
                 "--output-dir", tmp_path / "grid")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (cell,) = json.loads((tmp_path / "grid" / "eval_grid_results.json").read_text())["cells"]
    assert (cell["grader"]["grader"], cell["metrics"]["json"]) == ("json", 1.0)

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"""
experiment: graded
steps:
  - name: data
    prepare: {{task_spec: {spec}, task: sections, name: sections_again}}
  - name: task_grader
    eval: {{checkpoint: {model}, data: "${{data}}", split: test, output_dir: {tmp_path / "json"}}}
  - name: exact
    eval: {{checkpoint: {model}, data: "${{data}}", split: test, output_dir: {tmp_path / "exact"},
           answers: {{grader: exact}}}}
""")
    assert cli("--yard", yard.root, "pipeline", pipeline).exit_code == 0
    (json_results,) = (tmp_path / "json").iterdir()  # output_dir/{task}_{split}
    (exact_results,) = (tmp_path / "exact").iterdir()
    by_task = json.loads((json_results / "metrics.json").read_text())
    by_exact = json.loads((exact_results / "metrics.json").read_text())
    assert (by_task["grader"]["grader"], by_task["metrics"]["json"]) == ("json", 1.0)
    assert (by_exact["grader"]["grader"], by_exact["metrics"]["exact"]) == ("exact", 0.0)
    answers = [[json.loads(line)["prediction"] for line in (folder / "predictions.jsonl").open()]
               for folder in (json_results, exact_results)]  # fmt: skip
    assert answers[0] == answers[1]  # the same answers, scored 1 and 0
