"""Seed 002's own config.yaml (tests/experiments/seed002/config.yaml, verbatim from the seed) is read
with its meaning: every field of its sections maps through one table, and an adapted copy runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

SEED_FILE = Path(__file__).parent / "seed002" / "config.yaml"
REPO = Path(__file__).resolve().parents[2]
COMMENT = "  # Similar structure for second task\n"  # task2 in the seed: a comment, no fields
TOPICS = REPO / "data" / "debian_topics"
# tuneyard's own fields of each section beyond seed 002's: a field the parser accepts is one or the other.
TUNEYARD_FIELDS = {
    "finetuning": {
        "models", "data", "task", "tasks", "compressions", "strategies", "lora_ranks", "lora_layers", "seeds",
        "epochs", "learning_rate", "batch_size", "options", "exclude",
    },
    "evals": {
        "models", "tasks", "split", "nb_eval_samples", "checkpoint_to_eval", "batch_size", "max_length",
        "grader", "backend", "server_url", "server_model", "api_key_env",
    },
    "task": {"assistant_template"},
}  # fmt: skip


def accepted_fields(model: type) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_the_fields_the_file_accepts_are_seed_002s_and_tuneyards_own() -> None:
    from tuneyard.data.formatting import TaskFormat
    from tuneyard.experiments.seed002_fields import seed_fields
    from tuneyard.experiments.spec import EvalGrid, FinetuneGrid

    seed = yaml.safe_load(SEED_FILE.read_text())
    listed = {
        "task": set(seed["task1"]), "finetuning": set(seed["finetuning"]), "evals": set(seed["evals"]),
    }  # fmt: skip
    parsers = {"task": TaskFormat, "finetuning": FinetuneGrid, "evals": EvalGrid}
    for section, parser in parsers.items():
        table = {field.name for field in seed_fields(section)}
        assert table == listed[section], section  # the table holds every field of the seed, and only those
        accepted = accepted_fields(parser)
        assert table <= accepted, section
        assert accepted - table == TUNEYARD_FIELDS[section] - table, section


def test_the_docs_show_the_table() -> None:
    from tuneyard.experiments.seed002_fields import markdown_table

    assert markdown_table() in (REPO / "docs" / "experiments.md").read_text()


def write_json_topics(folder: Path) -> Path:
    """data/debian_topics with seed 002's answer column ``ground_truth`` (JSON), texts cut to fit."""
    folder.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        with (TOPICS / f"{split}.csv").open() as source, (folder / f"{split}.jsonl").open("w") as target:
            for row in csv.DictReader(source):
                answer = json.dumps({"section": row["label"]})
                target.write(
                    json.dumps({"id": row["id"], "text": row["text"][:160], "ground_truth": answer}) + "\n"
                )
    return folder


def adapted_copy(seed: str, data: Path, model: Path) -> str:
    """Seed 002's file with this repo's data and a tiny model: paths, model names, prompts, task2 filled.

    task1 has no image column (the Debian rows are text).
    """
    task2 = (
        "  dataset: TOPICS\n  system_prompt: Answer with the section name only.\n"
        "  user_prompt: 'Section of: {{ text }}'\n  assistant_text_column: label\n"
        "  grader: exact\n  sample_percent: 0.01\n"
    ).replace("TOPICS", str(TOPICS))
    replacements = {
        "your/huggingface/dataset": str(data),
        "Your system prompt": "Answer in JSON with the package's Debian section.",
        "Your user prompt": "Package: {{ text }}",
        "  image_column: image\n": "",
        COMMENT: task2,
        "/path/to/your/base/model": str(model),
        "/path/to/tokenizer": str(model),
    }
    for old, new in replacements.items():
        assert old in seed
        seed = seed.replace(old, new)
    return seed


@pytest.mark.slow  # 4 fine-tuning cells and 8 graded evals: over a minute on 2 cores
def test_seed_002s_file_runs_as_its_users_write_it(cli, tiny_decoder, tmp_path) -> None:
    data = write_json_topics(tmp_path / "debian_json")
    config = tmp_path / "config.yaml"
    config.write_text(adapted_copy(SEED_FILE.read_text(), data, tiny_decoder("llama")))
    yard = tmp_path / "yard"
    plan = cli("--yard", yard, "grid", config, "--dry-run")
    assert plan.exit_code == 0, plan.stderr
    names = [line.split()[1] for line in plan.stdout.splitlines()[1:-1]]
    assert [name.split("-", 3)[-1] for name in names] == [
        f"{task}-{cell}"
        for task in ("task1", "task2")
        for cell in ("full-s42", "lora-r8-s42", "lora-r16-s42", "lora-r32-s42")
    ]  # seed 002 trains each start on each task
    warnings = " ".join(plan.stderr.split())
    assert "warning: evals.model_server_args reaches a server only with evals.backend: server" in warnings

    # The run trains on task1 only (tuneyard's own field), to keep this test's time; both tasks are scored.
    config.write_text(config.read_text().replace("  epochs: 1\n", "  tasks: [task1]\n  epochs: 1\n", 1))
    result = cli("--yard", yard, "grid", config)
    assert result.exit_code == 0, result.stderr
    experiment = yard / "experiments" / "config"  # no experiment: in the file: named after it
    rows = json.loads((experiment / "formatted_datasets" / "task1" / "manifest.json").read_text())["metrics"]
    assert rows["rows"] == {
        "train": 16,
        "validation": 3,
        "test": 3,
    }  # sample_percent 0.01: 1 % of 1602/342/342
    with (experiment / "metrics.csv").open() as file:
        cells = list(csv.DictReader(file))
    assert [cell["state"] for cell in cells] == ["complete"] * 4
    assert all(cell["task1"] != "" and cell["task2"] != "" for cell in cells)  # last/'s scores, per cell
    document = json.loads((experiment / "eval_grid_results.json").read_text())
    assert {model["key"].rsplit("/", 1)[-1] for model in document["models"]} == {"last"}  # -1: the latest
    graders = {(cell["task"].rsplit("/", 1)[-1], cell["grader"]["grader"]) for cell in document["cells"]}
    assert graders == {("task1", "json"), ("task2", "exact")}  # each task graded by its own grader
    assert all(cell["status"] == "complete" for cell in document["cells"]) and len(document["cells"]) == 8


def test_the_verbatim_file_names_its_empty_task_and_with_task2_filled_plans_its_cells(cli, tmp_path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(SEED_FILE.read_text())
    empty = cli("--yard", tmp_path, "grid", config, "--dry-run")
    assert empty.exit_code == 2 and "task2: is empty" in empty.stderr
    config.write_text(
        SEED_FILE.read_text().replace(COMMENT, "  user_prompt: x\n  assistant_text_column: y\n")
    )
    plan = cli("--yard", tmp_path, "grid", config, "--dry-run")
    assert plan.exit_code == 0 and plan.stdout.splitlines()[-1] == "8 new", plan.stderr  # 4 per task


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("sample_percent: 0.01", "sample_percent: 5"),
            "to keep 5 % of each split write sample_percent: 0.05",
        ),
        (("checkpoint_to_eval: -1", "checkpoint_to_eval: 3"), "-1 is the latest (last/)"),
        (("grader: JSONGrader", "grader: FancyGrader"), "task 'task1': unknown grader 'FancyGrader'"),
        (
            ("fusion+encoder+decoder: true", "fusion+encoder+decoder: true\n  strategies: [lora]"),
            "leaves out full",
        ),
    ],
)
def test_a_bad_seed_field_is_refused_naming_it_and_the_fix(cli, tmp_path, edit, message) -> None:
    text = SEED_FILE.read_text().replace(COMMENT, "  user_prompt: x\n  assistant_text_column: y\n")
    config = tmp_path / "config.yaml"
    config.write_text(text.replace(*edit))
    result = cli("--yard", tmp_path, "grid", config, "--dry-run")
    assert result.exit_code == 2 and message in " ".join(result.stderr.split()), result.stderr


def spec_of(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    from tuneyard.experiments.spec import load_experiment

    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return load_experiment(path)


def test_evals_only_and_finetune_only_files(tmp_path) -> None:
    from tuneyard.errors import ConfigError

    task = "sections: {dataset: d, user_prompt: '{{ text }}', assistant_text_column: label, grader: json}\n"
    evals_only = spec_of(tmp_path, task + "evals: {models: [base/a], checkpoint_to_eval: -1}\n")
    assert evals_only.finetuning is None and evals_only.evals is not None
    assert (evals_only.evals.tasks, evals_only.evals.checkpoint_to_eval) == (["sections"], "last")
    finetune_only = spec_of(tmp_path, task + "finetuning: {model_path: base/a, lora_ranks: [4]}\n")
    assert finetune_only.finetuning is not None and finetune_only.evals is None
    assert (finetune_only.finetuning.models, finetune_only.finetuning.tasks) == (["base/a"], ["sections"])
    assert finetune_only.finetuning.strategies == ["lora"] and finetune_only.warnings == []
    with pytest.raises(ConfigError, match="needs a finetuning: section"):
        spec_of(tmp_path, task + "evals: {nb_eval_samples: 4}\n")
    with pytest.raises(ConfigError, match="both under tasks: and at the top level"):
        spec_of(tmp_path, task + "tasks: {" + task.strip() + "}\nevals: {models: [m]}\n")


def test_fields_with_no_meaning_here_are_warned_about_by_name(tmp_path) -> None:
    spec = spec_of(
        tmp_path,
        "finetuning: {model_path: m, data: d, fusion: true, fusion+decoder: true, fusion+encoder: false}\n"
        "evals: {tasks: [d], model_server_args: {max_model_len: 4096}}\n",
    )
    named = [warning.split(" has no meaning")[0] for warning in spec.warnings]
    assert named[:2] == ["finetuning.fusion", "finetuning.fusion+decoder"]
    assert named[2].startswith("evals.model_server_args reaches a server only with evals.backend: server")
    assert len(named) == 3


def test_model_server_args_reach_the_server_of_a_served_eval(tmp_path) -> None:
    """Seed 002's model_server_args are the options of the server tuneyard starts (evals.backend: server)."""
    spec = spec_of(
        tmp_path,
        "evals: {models: [m.gguf], tasks: [d], backend: server, model_server_args: {n_ctx: 4096}}\n",
    )
    server = spec.evals.server_options()
    assert (server.backend, server.server_args) == ("server", {"n_ctx": 4096})
    assert spec.warnings == []  # passed through, so nothing to warn about


def test_minus_one_is_the_runs_latest_folder_in_eval_grid_too(tmp_path) -> None:
    from tuneyard.evaluate.transfer_grid import checkpoint_to_eval

    for folder in ("best", "last", "checkpoint-1-4"):
        (tmp_path / "run" / folder).mkdir(parents=True)
    assert checkpoint_to_eval(str(tmp_path / "run"), "-1") == str(tmp_path / "run" / "last")
