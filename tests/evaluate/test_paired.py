"""Paired comparison of two models on the same rows: a hand-computed table, `runs compare` on real evals."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuneyard.errors import EvaluationError
from tuneyard.evaluate.paired import RESAMPLES, RowScores, compare_evals, compare_scores
from tuneyard.yard import Yard

# 10 rows: both right on 2, both wrong on 1, only A right on row 3, only B right on rows 4-9.
A = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0], dtype=float)
B = np.array([1, 1, 0, 0, 1, 1, 1, 1, 1, 1], dtype=float)


def two_sided_binomial(successes: int, trials: int) -> float:
    """Two-sided exact p of ``successes`` in ``trials`` fair coin flips, summed by hand (symmetric case)."""
    tail = min(successes, trials - successes)
    return min(1.0, 2 * sum(math.comb(trials, k) for k in range(tail + 1)) / 2**trials)


def test_hand_computed_table_gives_mcnemar_exact_p_and_a_seeded_interval() -> None:
    paired = compare_scores(A, B, "accuracy")
    assert (paired.a_better, paired.b_better, paired.rows) == (1, 6, 10)
    assert paired.mean_a == pytest.approx(0.3) and paired.mean_b == pytest.approx(0.8)
    assert paired.difference == pytest.approx(0.5)
    # 1 of 7 discordant rows goes A's way: p = 2 * (C(7,0) + C(7,1)) / 2^7 = 16/128.
    assert paired.p_value == pytest.approx(16 / 128) == pytest.approx(two_sided_binomial(1, 7))
    # Row differences: six +1, one -1, three 0: sd sqrt(0.7 - 0.5^2) = 0.671, standard error
    # 0.212, so the normal approximation gives 0.5 +- 0.416; a mean of 10 rows moves in steps
    # of 0.1, so the percentile interval is [0.1, 0.9].
    assert (paired.low, paired.high) == (pytest.approx(0.1), pytest.approx(0.9))
    assert paired.resamples == RESAMPLES
    assert compare_scores(A, B, "accuracy") == paired  # same seed, same interval
    # Swapping the models flips the sign and keeps the p-value.
    swapped = compare_scores(B, A, "accuracy")
    assert swapped.difference == pytest.approx(-0.5) and swapped.p_value == pytest.approx(paired.p_value)


@pytest.mark.parametrize("distinct", ["few", "many"])
def test_bootstrap_interval_matches_the_normal_approximation_on_many_rows(distinct: str) -> None:
    from tuneyard.evaluate.paired import FEW_VALUES, bootstrap_interval

    rng = np.random.default_rng(7)
    # Right/wrong rows (3 distinct differences: counted draws) or graded ones (all distinct: rows drawn).
    differences = rng.integers(-1, 2, 2000).astype(float) if distinct == "few" else rng.normal(0.1, 1, 2000)
    assert (len(np.unique(differences)) <= FEW_VALUES) == (distinct == "few")
    low, high = bootstrap_interval(differences)
    half = 1.96 * differences.std() / math.sqrt(len(differences))
    assert low == pytest.approx(differences.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(differences.mean() + half, abs=0.1 * half)


def test_no_disagreement_gives_p_one_and_a_zero_interval() -> None:
    paired = compare_scores(A, A.copy(), "accuracy")
    assert paired.p_value == 1.0 and (paired.low, paired.high) == (0.0, 0.0)


def test_rows_that_differ_are_refused(tmp_path: Path) -> None:
    def rows(ids: list[str], gold: str = "pos") -> RowScores:
        return RowScores(tmp_path, "accuracy", dict.fromkeys(ids, 1.0), dict.fromkeys(ids, gold))

    with pytest.raises(EvaluationError, match="not on the same rows: 1 row ids only in the first"):
        compare_evals(rows(["ex0", "ex1"]), rows(["ex0"]))
    with pytest.raises(EvaluationError, match="differ in their gold answer or text"):
        compare_evals(rows(["ex0"]), rows(["ex0"], gold="neg"))


def correctness(results: Path) -> dict[str, float]:
    """The ``correct`` column of an eval's ``predictions.csv``, by row id."""
    with (results / "predictions.csv").open(newline="") as handle:
        return {row["id"]: float(row["correct"] == "True") for row in csv.DictReader(handle)}


def test_runs_compare_prints_paired_difference_interval_and_p_of_two_evaluated_models(
    yard: Yard,
    run_in_yard: Callable[..., Path],
    data_folder: Callable[..., Path],
    cli: Callable[..., Any],
) -> None:
    first, second = run_in_yard("bert", name="first"), run_in_yard("roberta", name="second")
    data = data_folder(labels=("neg", "pos", "pos"), rows=24)  # unbalanced: two constant guesses differ
    for run in (first, second):
        evaluated = cli("--yard", yard.root, "eval", "--checkpoint", run / "best", "--data", data, "--quiet")
        assert evaluated.exit_code == 0, evaluated.stderr

    result = cli("--yard", yard.root, "runs", "compare", "first", "second")
    assert result.exit_code == 0, result.stderr
    a = correctness(first / "evaluation_results" / "toy_validation")
    b = correctness(second / "evaluation_results" / "toy_validation")
    a_better = sum(a[row] > b[row] for row in a)
    b_better = sum(b[row] > a[row] for row in a)
    mean_a, mean_b = sum(a.values()) / 24, sum(b.values()) / 24
    lines = result.stdout.splitlines()
    assert "paired on the same rows, B - A: A = first, B = second" in lines
    line = next(line for line in lines if line.startswith("  toy_validation  accuracy"))
    assert f"n=24  A {mean_a:.4f}  B {mean_b:.4f}  diff {mean_b - mean_a:+.4f}" in line
    assert f"McNemar p={two_sided_binomial(b_better, a_better + b_better):.4g} " in line
    assert f"(A better on {a_better} rows, B on {b_better})" in line
    low, high = map(float, re.search(r"95% CI \[(\S+), (\S+)\]", line).groups())  # type: ignore[union-attr]
    assert low <= mean_b - mean_a <= high
    assert "10,000 resamples of the rows (seed 0)" in lines[-1]

    # A second eval of B on fewer rows is the newest: the rows no longer match, and that is refused.
    cli("--yard", yard.root, "eval", "--checkpoint", second / "best", "--data", data, "--nb-eval-samples", 8)
    assert (second / "evaluation_results" / "toy_validation-2").is_dir()
    refused = cli("--yard", yard.root, "runs", "compare", "first", "second")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: ")
    assert "not on the same rows: 16 row ids only in the first" in refused.stderr


def graded_eval(folder: Path, scores: list[float], references: list[str] | None = None) -> Path:
    """An eval folder with ``predictions.jsonl`` as a graded generation eval writes it."""
    from tuneyard.task_types.causal_lm.generation import Generation, Generations, write_predictions

    references = references or [f"answer {i}" for i in range(len(scores))]
    rows = [
        Generation(i, "prompt", "request", "said", reference, 2, 0.1)
        for i, reference in enumerate(references)
    ]
    folder.mkdir(parents=True)
    write_predictions(folder, Generations(rows), scores)
    return folder


def test_artifacts_pair_their_newest_graded_evals_and_skip_evals_without_rows(tmp_path: Path) -> None:
    from tuneyard.evaluate.paired import compare_artifacts

    first, second = tmp_path / "first", tmp_path / "second"
    graded_eval(first / "evaluation_results" / "chat_test", [1, 0, 0.5, 1, 0, 0])
    graded_eval(second / "evaluation_results" / "chat_test", [0, 0, 0, 0, 0, 0])  # older, not used
    graded_eval(second / "evaluation_results" / "chat_test-2", [1, 1, 1, 1, 0, 0.5])
    graded_eval(second / "evaluation_results" / "other_test", [1])  # only one side has it
    for artifact in (first, second):  # a perplexity eval: metrics.json, no per-row file
        (artifact / "evaluation_results" / "text_validation").mkdir()
        (artifact / "evaluation_results" / "text_validation" / "metrics.json").write_text("{}")

    comparison = compare_artifacts(first, second)
    assert comparison.without_rows == ["text_validation"]
    [(name, paired)] = comparison.compared
    # Rows 1, 2 and 5 went B's way (0 -> 1, 0.5 -> 1, 0 -> 0.5), none A's: the sign test's
    # p = 2 / 2^3; the difference is (1 + 0.5 + 0.5) / 6.
    assert (name, paired.metric, paired.a_better, paired.b_better) == ("chat_test", "score", 0, 3)
    assert paired.difference == pytest.approx(2 / 6) and paired.p_value == pytest.approx(2 / 8)

    graded_eval(second / "evaluation_results" / "chat_test-3", [1] * 6, [f"other {i}" for i in range(6)])
    with pytest.raises(EvaluationError, match="6 rows differ in their gold answer or text"):
        compare_artifacts(first, second)
    (first / "evaluation_results" / "chat_test" / "predictions.jsonl").unlink()
    with pytest.raises(EvaluationError, match="has no per-example predictions"):
        compare_artifacts(first, second)


def test_eval_grid_compares_every_two_models_row_by_row(
    yard: Yard,
    run_in_yard: Callable[..., Path],
    data_folder: Callable[..., Path],
    cli: Callable[..., Any],
) -> None:
    runs = [run_in_yard("bert", name="first"), run_in_yard("roberta", name="second")]
    data = data_folder(labels=("neg", "pos", "pos"), rows=24)
    grid = cli(
        "--yard", yard.root, "eval-grid", "--models", *runs, "--tasks", data,
        "--experiment", "pairs", "--quiet",
    )  # fmt: skip
    assert grid.exit_code == 0, grid.stderr
    table = yard.root / "experiments" / "pairs" / "eval_grid_paired.csv"
    assert f"McNemar p): {table}" in grid.stderr
    with table.open(newline="") as handle:
        [row] = list(csv.DictReader(handle))
    a, b = (correctness(run / "evaluation_results" / "toy_validation") for run in runs)
    a_better, b_better = sum(a[i] > b[i] for i in a), sum(b[i] > a[i] for i in a)
    assert (row["task"], row["model_a"], row["model_b"], row["metric"], row["rows"]) == (
        "toy", "first", "second", "accuracy", "24"
    )  # fmt: skip
    assert (int(row["a_better"]), int(row["b_better"])) == (a_better, b_better)
    assert float(row["difference"]) == pytest.approx((sum(b.values()) - sum(a.values())) / 24, abs=1e-6)
    assert float(row["p_value"]) == pytest.approx(two_sided_binomial(b_better, a_better + b_better), rel=1e-5)
    assert float(row["ci_low"]) <= float(row["difference"]) <= float(row["ci_high"]) and row["refused"] == ""
