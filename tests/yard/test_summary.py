"""aggregate (one row per run) and compare (differences side by side) over manifest records."""

from __future__ import annotations

from tuneyard.yard.summary import KEY_FIELDS, aggregate_table, compare_table


def record(name: str, rank: int, lr: float, metrics: dict[str, object]) -> dict[str, object]:
    return {
        "name": name,
        "path": f"outputs/p/d/{name}",
        "kind": "run",
        "arch": "whisper",
        "rank": rank,
        "config": {"lora": {"r": rank, "layers": [0, 1, 2]}, "lr": lr, "seed": 0},
        "metrics": metrics,
    }


RECORDS = [
    record("whisper_base_lora_012", 8, 1e-4, {"accuracy": 0.8, "test": {"f1": 0.7}}),
    record(
        "whisper_base_lora_7-12", 16, 1e-4, {"accuracy": 0.9, "loss": 0.3, "label": "text is not a metric"}
    ),
]


def test_aggregate_has_one_row_per_run_and_a_column_per_metric_and_varying_config() -> None:
    columns, rows = aggregate_table(RECORDS)
    assert columns == [*KEY_FIELDS, "config.lora.r", "metrics.accuracy", "metrics.loss", "metrics.test.f1"]
    assert [row[0] for row in rows] == ["whisper_base_lora_012", "whisper_base_lora_7-12"]
    assert [row[-4:] for row in rows] == [[8, 0.8, None, 0.7], [16, 0.9, 0.3, None]]


def test_compare_lists_only_differences_unless_asked() -> None:
    assert compare_table(RECORDS) == [
        ["rank", 8, 16, None],
        ["config.lora.r", 8, 16, None],
        ["metrics.accuracy", 0.8, 0.9, 0.1],
        ["metrics.test.f1", 0.7, None, None],
        ["metrics.loss", None, 0.3, None],
    ]
    every = {row[0]: row[1:] for row in compare_table(RECORDS, every_field=True)}
    assert every["config.seed"] == [0, 0, None] and every["config.lora.layers"] == [
        "[0, 1, 2]",
        "[0, 1, 2]",
        None,
    ]


def test_a_runs_training_numbers_are_columns_after_the_metrics_but_not_its_last_scores() -> None:
    trained = {
        **RECORDS[0],
        "training": {"train_runtime": 5.2, "trainable_parameters": 3650, "last": {"accuracy": 0.5}},
    }
    columns, rows = aggregate_table([trained, RECORDS[1]])
    assert columns[-2:] == ["training.train_runtime", "training.trainable_parameters"]
    assert [row[-2:] for row in rows] == [[5.2, 3650.0], [None, None]]
    assert not any(column.startswith("training.last") for column in columns)
