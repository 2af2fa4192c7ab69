"""Paired comparison of two models on the same rows: the difference, its interval, its p-value.

Two models scored on the same split of the same data answered the same questions, so
the honest comparison is row by row: a difference of one row in accuracy is noise when
the two models disagree on many rows in both directions, and a signal when every
disagreement goes one way. From each eval's per-example file (``predictions.csv`` of a
classification eval, ``predictions.jsonl`` of a graded generation eval) this module
takes every row's score — 1/0 for a correct/wrong class, the grader's score for an
answer — matches the rows of the two evals by id, and reports:

* the paired difference of the means (B - A), with a percentile bootstrap confidence
  interval: :data:`RESAMPLES` resamples of the rows (the same rows for both models),
  drawn by numpy with a fixed seed, so the interval is reproducible;
* McNemar's exact test: among the rows where the two scores differ, how surprising the
  split between "A better" and "B better" is if neither model were better (two-sided
  binomial test with p = 1/2, :func:`scipy.stats.binomtest`). With 0/1 scores this is
  McNemar's exact test; with graded scores between 0 and 1 it is the sign test, its
  generalisation.

Rows that are not the same (an id on one side only, or one id with another gold label or
reference) make the comparison meaningless, and are refused rather than dropped.

Which evals are paired (:func:`compare_artifacts`): folders of the same name under
both artifacts' ``evaluation_results/`` (``{task}_{split}``, see
:mod:`tuneyard.evaluate.placement`), the newest of each (a repeated eval gets a ``-2``
suffix).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tuneyard.errors import EvaluationError
from tuneyard.evaluate.placement import RESULTS_FOLDER

RESAMPLES = 10_000
CONFIDENCE = 0.95
SEED = 0
# Resamples drawn per numpy call: bounds memory at CHUNK x rows.
CHUNK = 500
# Up to this many distinct row differences, resamples are drawn as counts (resampled_means).
FEW_VALUES = 64
_REPEAT_SUFFIX = re.compile(r"^(?P<name>.+?)(?:-(?P<number>\d+))?$")


@dataclass(frozen=True)
class RowScores:
    """One eval's rows: each row id's score, and what it was scored against (gold and text, or reference)."""

    folder: Path
    metric: str  # "accuracy" (classification) or "score" (the grader's, generation)
    scores: dict[str, float]
    truths: dict[str, str]


@dataclass(frozen=True)
class PairedComparison:
    """Two evals on the same rows: means, the paired difference B - A, its interval and p-value."""

    metric: str
    rows: int
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    a_better: int  # rows where A scored higher than B
    b_better: int
    p_value: float
    resamples: int = RESAMPLES
    confidence: float = CONFIDENCE
    seed: int = SEED


def row_scores(folder: Path) -> RowScores | str:
    """The per-row scores of the eval filed in ``folder``, or why it has none."""
    from tuneyard.task_types.causal_lm.generation import PREDICTIONS_FILE as ANSWERS_FILE
    from tuneyard.task_types.sequence_classification.eval_files import PREDICTIONS_FILE

    table, answers = folder / PREDICTIONS_FILE, folder / ANSWERS_FILE
    if table.is_file():
        with table.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and "correct" not in rows[0]:
            return f"{table} has no 'correct' column (a regression eval has no per-row right or wrong)"
        return RowScores(
            folder,
            "accuracy",
            {row["id"]: float(row["correct"] == "True") for row in rows},
            {row["id"]: f"{row['gold']}\t{row['text']}\t{row.get('text_pair', '')}" for row in rows},
        )
    if answers.is_file():
        lines = [json.loads(line) for line in answers.read_text().splitlines() if line.strip()]
        if lines and "score" not in lines[0]:
            return f"{answers} holds answers without grades"
        return RowScores(
            folder,
            "score",
            {str(line["id"]): float(line["score"]) for line in lines},
            {str(line["id"]): str(line["reference"]) for line in lines},
        )
    return f"{folder} has no per-example predictions ({PREDICTIONS_FILE} or {ANSWERS_FILE})"


def checked(scores: RowScores | str) -> RowScores:
    """``scores``, or the refusal that says why an eval without per-row scores cannot be paired."""
    if isinstance(scores, str):
        raise EvaluationError(
            f"{scores}, so its rows cannot be paired with another model's.",
            "Compare classification evals or graded generation evals of `tuneyard eval` "
            "(perplexity and regression evals have no per-row right or wrong).",
        )
    return scores


def paired_arrays(a: RowScores, b: RowScores) -> tuple[np.ndarray, np.ndarray]:
    """A's and B's scores on the same rows, in A's order; refused unless the rows are the same."""
    if a.metric != b.metric:
        raise EvaluationError(
            f"{a.folder} is scored by {a.metric} and {b.folder} by {b.metric}: not the same kind of eval."
        )
    only_a, only_b = a.scores.keys() - b.scores.keys(), b.scores.keys() - a.scores.keys()
    if only_a or only_b:
        raise EvaluationError(
            f"{a.folder} and {b.folder} are not on the same rows: {len(only_a)} row ids only in the first "
            f"(e.g. {sorted(only_a)[:3]}), {len(only_b)} only in the second (e.g. {sorted(only_b)[:3]}).",
            "Evaluate both models on the same --data, --split and --samples.",
        )
    changed = [row for row in a.scores if a.truths[row] != b.truths[row]]
    if changed:
        raise EvaluationError(
            f"{a.folder} and {b.folder} share row ids but {len(changed)} rows differ in their "
            f"gold answer or text (e.g. id {changed[0]!r}): they were evaluated on different data.",
            "Evaluate both models on the same --data, --split and --samples.",
        )
    order = list(a.scores)
    return np.array([a.scores[row] for row in order]), np.array([b.scores[row] for row in order])


def resampled_means(differences: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """The mean of ``resamples`` resamples of the rows, drawn with replacement.

    Drawing n rows with replacement is drawing how many times each distinct value comes
    up (a multinomial over the values' shares). Right/wrong rows differ by -1, 0 or 1,
    so that costs a few numbers per resample instead of n (20,000 rows: 0.01 s instead
    of 4 s); many distinct values (graded scores) draw the rows themselves.
    """
    rows = len(differences)
    values, counts = np.unique(differences, return_counts=True)
    if len(values) <= FEW_VALUES:
        return rng.multinomial(rows, counts / rows, size=resamples) @ values / rows
    return differences[rng.integers(0, rows, size=(resamples, rows))].mean(axis=1)


def bootstrap_interval(
    differences: np.ndarray, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``differences`` (rows resampled with replacement)."""
    rng = np.random.default_rng(seed)
    chunks = [min(CHUNK, resamples - start) for start in range(0, resamples, CHUNK)]
    means = np.concatenate([resampled_means(differences, size, rng) for size in chunks])
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def mcnemar_exact(a_better: int, b_better: int) -> float:
    """Two-sided exact p-value of the split of the discordant rows (1.0 when there are none)."""
    from scipy.stats import binomtest

    discordant = a_better + b_better
    if discordant == 0:
        return 1.0
    return float(binomtest(b_better, discordant, 0.5, alternative="two-sided").pvalue)


def compare_scores(
    a: np.ndarray, b: np.ndarray, metric: str, resamples: int = RESAMPLES, seed: int = SEED
) -> PairedComparison:
    """The paired comparison of two score arrays over the same rows (B - A)."""
    if len(a) == 0:
        raise EvaluationError("the two evals have no rows to compare.")
    differences = b - a
    low, high = bootstrap_interval(differences, resamples, CONFIDENCE, seed)
    a_better, b_better = int((differences < 0).sum()), int((differences > 0).sum())
    return PairedComparison(
        metric=metric,
        rows=len(a),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=float(differences.mean()),
        low=low,
        high=high,
        a_better=a_better,
        b_better=b_better,
        p_value=mcnemar_exact(a_better, b_better),
        resamples=resamples,
        seed=seed,
    )


def compare_evals(a: RowScores, b: RowScores) -> PairedComparison:
    """The paired comparison of two evals' rows (B - A), refused unless the rows are the same."""
    return compare_scores(*paired_arrays(a, b), a.metric)


def latest_evals(artifact: Path) -> dict[str, Path]:
    """``{task}_{split}`` name -> the newest eval folder of that name under ``artifact``."""
    newest: dict[str, tuple[int, Path]] = {}
    root = artifact / RESULTS_FOLDER
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        match = _REPEAT_SUFFIX.match(folder.name)
        if not folder.is_dir() or folder.name.startswith(".") or match is None:
            continue
        number = int(match["number"] or 1)
        if number >= newest.get(match["name"], (0, folder))[0]:
            newest[match["name"]] = (number, folder)
    return {name: folder for name, (_, folder) in sorted(newest.items())}


@dataclass(frozen=True)
class ArtifactComparison:
    """Every eval two artifacts share: those compared row by row, and those with no per-row scores."""

    compared: list[tuple[str, PairedComparison]]
    without_rows: list[str]  # shared evals neither side has per-row scores for (perplexity, regression)


def compare_artifacts(a: Path, b: Path) -> ArtifactComparison:
    """Every eval both artifacts have (same task and split), compared row by row (B - A).

    An eval that neither side has per-row scores for is listed, not compared; one that
    only one side has them for is refused (see :func:`checked`).
    """
    evals_a, evals_b = latest_evals(a), latest_evals(b)
    compared, without_rows = [], []
    for name in (name for name in evals_a if name in evals_b):
        scores_a, scores_b = row_scores(evals_a[name]), row_scores(evals_b[name])
        if isinstance(scores_a, str) and isinstance(scores_b, str):
            without_rows.append(name)
        else:
            compared.append((name, compare_evals(checked(scores_a), checked(scores_b))))
    return ArtifactComparison(compared, without_rows)
