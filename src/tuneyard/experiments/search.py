"""The smallest model within X points of dense: chosen on validation, reported on test.

An experiment's ``search:`` block names a fine-tuned (dense) model, its data, the methods
to try, a ratio range and a tolerance. For each method the search compresses the model
at a ratio (task-aware calibration on the data), recovers it with a short fine-tune
(distilled from the dense model, the default for a model compressed from a fine-tuned
one; ``recovery: null`` scores the compressed model as it is), scores it on the
``select_on`` split (validation), and halves the range: towards smaller ratios when the
score is within ``within`` of dense, towards larger ones when it is not.

A verdict that the rows cannot settle is not taken from one model: when the paired
bootstrap interval of a probe's difference to dense (:mod:`tuneyard.evaluate.paired`,
the same validation rows) holds the tolerance, the probe is made again with other
calibration seeds (up to ``calib_seeds`` models) and the verdict is the mean's. The
bisection assumes scores fall as the ratio does; where its probes say otherwise (a
smaller ratio meets, a larger one misses) the pair is reported, not smoothed over.

The smallest ratio that met is each method's answer; its model (the best seed on
validation) and dense are then scored once on the ``report_on`` split (test), which no
choice saw, each with a bootstrap interval over the rows and the paired difference to
dense (interval and McNemar's p). Every probe is a cell of the search, kept in
``experiments/{exp}/search/{method}-{ratio}[-s{seed}]-{id}/`` and in ``search.json``,
so a rerun reuses the probes already made and an interrupted search goes on where it
stopped.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from tuneyard.config import StrictModel
from tuneyard.errors import ConfigError
from tuneyard.evaluate.paired import (
    RowScores,
    bootstrap_interval,
    checked,
    compare_evals,
    paired_arrays,
    row_scores,
)
from tuneyard.task_types.data_loading import load_data
from tuneyard.yard.manifest import read_manifest_if_any, utc_now

if TYPE_CHECKING:
    from tuneyard.evaluate.paired import PairedComparison
    from tuneyard.yard.root import Yard

SEARCH_DIR = "search"
SEARCH_FILE = "search.json"
RATIO_STEP = 0.01  # probes are rounded to this: a finer ratio changes no rank worth a probe


class SearchSpec(StrictModel):
    """``search:``: which model, which methods, how close to dense, over which ratios, on which splits."""

    model: str = Field(description="The dense fine-tuned model (a run folder or its best/).")
    data: str = Field(description="Its data: calibration rows, recovery rows and the scored splits.")
    methods: list[str] = Field(default_factory=lambda: ["whiten"], min_length=1)
    ratios: tuple[float, float] = Field(default=(0.1, 0.9), description="The range searched: [low, high].")
    within: float = Field(default=0.01, ge=0, lt=1, description="Allowed drop from dense in the metric.")
    metric: str = "accuracy"
    select_on: str = Field(default="validation", description="The split the ratio is chosen on.")
    report_on: str = Field(default="test", description="The split the chosen models are reported on.")
    probes: int = Field(default=4, ge=1, le=12, description="Bisection steps per method.")
    calib_seeds: int = Field(
        default=3, ge=1, le=8,
        description="Models per ratio at most (calibration seeds 0, 1, ...), made while the verdict is "
        "within noise; 1: one model per ratio.",
    )  # fmt: skip
    calib_samples: int = Field(default=128, gt=0)
    recovery: dict[str, Any] | None = Field(
        default_factory=lambda: {"epochs": 1, "learning_rate": 1e-4},
        description="Options of the recovery fine-tune (any tuneyard finetune option); null: none.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_split_was_both(cls, data: Any) -> Any:
        if isinstance(data, dict) and "split" in data:
            raise ConfigError(
                f"search.split: {data['split']} chose and reported on one split; the search now chooses on "
                "one and reports on another.",
                "Delete split:, or write select_on: validation (the ratio is chosen on it) and "
                "report_on: test (the chosen models are scored on it).",
            )
        return data

    @model_validator(mode="after")
    def _ordered_range(self) -> SearchSpec:
        low, high = self.ratios
        if not 0 < low < high < 1:
            raise ConfigError(
                f"search.ratios {list(self.ratios)} must be 0 < low < high < 1.", "e.g. [0.1, 0.9]"
            )
        if self.select_on == self.report_on:
            raise ConfigError(
                f"search: select_on and report_on are both {self.select_on!r}: a score the choice saw is "
                "no report of it.",
                "select_on: validation, report_on: test.",
            )
        return self


@dataclass
class Probe:
    """One compressed-and-recovered model (one calibration seed) and its score on ``select_on``."""

    method: str
    ratio: float
    seed: int
    id: str
    folder: str  # relative to the yard, as every path the journal keeps: the same on every machine
    model: str  # what was scored: the compressed model, or its recovery's best/
    score: float
    results: str  # its eval's folder (per-row scores), relative to the yard
    finished: str


@dataclass
class Point:
    """One ratio of the bisection: its models (one per calibration seed) and the verdict of their mean.

    ``low``/``high``: the paired bootstrap interval of (mean per-row score - dense's) on
    ``select_on``; ``noisy``: it still holds the tolerance after the last seed.
    """

    ratio: float
    probes: list[Probe]
    score: float
    meets: bool
    low: float
    high: float
    noisy: bool


@dataclass
class Candidate:
    """A model scored once on ``report_on``: the metric, the mean row score's interval, the pair to dense."""

    label: str
    model: str
    score: float
    low: float
    high: float
    versus_dense: PairedComparison | None = None


@dataclass
class MethodResult:
    method: str
    smallest: float | None  # the smallest ratio that met the target on select_on (None: not even the highest)
    path: list[Point]
    non_monotonic: list[tuple[float, float]] = field(default_factory=list)  # (smaller met, larger missed)
    chosen: Candidate | None = None  # the smallest ratio's best seed, on report_on


@dataclass
class SearchResult:
    dense: float  # on select_on
    target: float
    methods: list[MethodResult]
    dense_report: Candidate  # dense on report_on


def probe_id(search: SearchSpec, method: str, ratio: float, seed: int) -> str:
    """A probe's identity: everything that shapes its model and score."""
    shaping = search.model_dump(
        mode="json", exclude={"methods", "ratios", "probes", "within", "calib_seeds", "report_on"}
    )
    text = json.dumps({**shaping, "method": method, "ratio": ratio, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class Journal:
    """``search.json``: probes by id, evals by (model, split); rewritten after each, reused by a rerun.

    Paths in the yard are kept relative to it, so a search begun on one machine of a yard
    in object storage is continued on another (whose working copy lies elsewhere); an
    older journal's absolute paths inside the yard are read as relative ones.
    """

    def __init__(self, path: Path, yard: Yard) -> None:
        self.path, self.yard = path, yard
        try:
            stored = json.loads(yard.storage.read_text(path))
        except FileNotFoundError:
            stored = {}
        self.probes: dict[str, dict[str, Any]] = {
            identity: {
                **entry,
                "folder": self.portable(entry["folder"]),
                "model": self.portable(entry["model"]),
            }
            for identity, entry in stored.get("probes", {}).items()
        }
        self.evals: dict[str, dict[str, Any]] = {
            self.eval_key(*json.loads(key)): entry for key, entry in stored.get("evals", {}).items()
        }
        self.report: dict[str, Any] = {}

    def portable(self, model: str | Path) -> str:
        """``model`` relative to the yard when it is an absolute path inside it; else as given (a hub id)."""
        return self.yard.relative(Path(model)) if Path(model).is_absolute() else str(model)

    def eval_key(self, model: str | Path, data: str, split: str, metric: str) -> str:
        """The key of an eval of ``model`` in :attr:`evals`."""
        return json.dumps([self.portable(model), self.portable(data), split, metric])

    def write(self) -> None:
        document = {"probes": self.probes, "evals": self.evals, "report": self.report}
        self.yard.storage.write_text(self.path, json.dumps(document, indent=2) + "\n")


def evaluate(model: str | Path, split: str, search: SearchSpec, journal: Journal) -> tuple[float, RowScores]:
    """The model's ``metric`` on ``split`` and its per-row scores, as ``tuneyard eval`` files them.

    An eval the journal holds (same model, data, split and metric, its folder still there)
    is read back instead of run again.
    """
    from tuneyard.data.options import DataOptions
    from tuneyard.evaluate.model_eval import evaluate_model

    yard = journal.yard
    key = journal.eval_key(model, search.data, split, search.metric)
    kept = journal.evals.get(key)
    if kept is not None and kept_results(journal, kept["results"]) is not None:
        return kept["score"], checked(row_scores(yard.absolute(kept["results"])))
    data = load_data(DataOptions(data=search.data).in_yard(yard))
    outcome = evaluate_model(model, data, yard, split=split)
    metrics = outcome.result.metrics
    if search.metric not in metrics:
        raise ConfigError(
            f"search.metric {search.metric!r} is not a metric of this eval.",
            f"Metrics: {', '.join(metrics)}.",
        )
    value = float(metrics[search.metric])
    journal.evals[key] = {"score": value, "results": yard.relative(outcome.folder)}
    journal.write()
    return value, checked(row_scores(outcome.folder))


def make_probe(search: SearchSpec, method: str, ratio: float, seed: int, folder: Path, yard: Yard) -> Path:
    """Compress at ``ratio`` (calibration rows drawn with ``seed``), recover unless ``recovery`` is null."""
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    compressed = folder / "compressed"
    if read_manifest_if_any(compressed, yard.storage) is not None:
        yard.storage.localize(compressed)  # compressed earlier, maybe on another machine: recovered here
    else:
        compress_model(
            CompressOptions(model=search.model, method=method, ratio=ratio, data=search.data, seed=seed,
                            calib_samples=search.calib_samples, output_dir=str(compressed)),
            yard,
        )  # fmt: skip
    if search.recovery is None:
        return compressed
    recovered = folder / "recovered"
    options = FinetuneOptions.model_validate(
        {**search.recovery, "checkpoint": str(compressed), "data": search.data, "output_dir": str(recovered)}
    )
    return finetune(options, yard).path / "best"


def run_search(
    search: SearchSpec, folder: Path, yard: Yard, on_probe: Callable[[Probe], None] | None = None
) -> SearchResult:
    """Dense's score, each method's bisection on ``select_on``, then the answers on ``report_on``."""
    journal = Journal(folder / SEARCH_FILE, yard)
    dense, dense_rows = evaluate(search.model, search.select_on, search, journal)
    target = dense - search.within
    results = []
    for method in search.methods:
        path: list[Point] = []

        def meets(ratio: float, method: str = method, path: list[Point] = path) -> bool:
            point = probe_point(search, method, ratio, folder, journal, dense_rows, target, on_probe)
            path.append(point)
            return point.meets

        smallest = bisect_ratios(*search.ratios, search.probes, meets)
        results.append(MethodResult(method, smallest, path, non_monotonic(path)))
    dense_report = report_candidate("dense", search.model, search, journal, None)
    for result in results:
        if result.smallest is not None:
            point = next(point for point in result.path if point.ratio == result.smallest)
            best = max(point.probes, key=lambda probe: probe.score)  # chosen on select_on too
            label = f"{result.method} {best.ratio:g} (seed {best.seed})"
            model = str(journal.yard.absolute(best.model))
            result.chosen = report_candidate(label, model, search, journal, dense_report)
    journal.report = {
        "select_on": search.select_on, "report_on": search.report_on, "dense": dense, "target": target,
        "candidates": [asdict(c) for c in [dense_report, *(r.chosen for r in results if r.chosen)]],
        "non_monotonic": {r.method: r.non_monotonic for r in results if r.non_monotonic},
    }  # fmt: skip
    journal.write()
    return SearchResult(dense, target, results, dense_report)


def probe_point(
    search: SearchSpec,
    method: str,
    ratio: float,
    folder: Path,
    journal: Journal,
    dense_rows: RowScores,
    target: float,
    on_probe: Callable[[Probe], None] | None,
) -> Point:
    """The models at ``ratio``: seed 0, then more seeds while the interval to dense holds the tolerance."""
    probes: list[Probe] = []
    rows: list[np.ndarray] = []
    for seed in range(search.calib_seeds):
        probe = reuse(journal, search, method, ratio, seed) or new_probe(
            search, method, ratio, seed, folder, journal
        )
        journal.probes[probe.id] = asdict(probe)
        journal.write()
        if on_probe is not None:
            on_probe(probe)
        probes.append(probe)
        dense_array, probe_array = paired_arrays_of(dense_rows, journal, probe)
        rows.append(probe_array)
        low, high = bootstrap_interval(np.mean(rows, axis=0) - dense_array)
        noisy = low <= -search.within <= high
        if not noisy:
            break
    score = statistics.fmean(probe.score for probe in probes)
    return Point(ratio, probes, score, score >= target, low, high, noisy)


def paired_arrays_of(dense_rows: RowScores, journal: Journal, probe: Probe) -> tuple[np.ndarray, np.ndarray]:
    """Dense's and the probe's per-row scores on the same rows (refused if they are not the same rows)."""
    return paired_arrays(dense_rows, checked(row_scores(journal.yard.absolute(probe.results))))


def non_monotonic(path: list[Point]) -> list[tuple[float, float]]:
    """Probed ratios that contradict the bisection's assumption: the smaller met, the larger missed."""
    return [
        (small.ratio, large.ratio)
        for small in path
        for large in path
        if small.ratio < large.ratio and small.meets and not large.meets
    ]


def report_candidate(
    label: str, model: str, search: SearchSpec, journal: Journal, dense: Candidate | None
) -> Candidate:
    """``model`` on ``report_on``: the metric, its mean row score's bootstrap interval, the pair to dense."""
    score, rows = evaluate(model, search.report_on, search, journal)
    low, high = bootstrap_interval(np.array(list(rows.scores.values())))
    versus = None
    if dense is not None:
        _, dense_rows = evaluate(dense.model, search.report_on, search, journal)
        versus = compare_evals(dense_rows, rows)
    return Candidate(label, journal.portable(model), score, low, high, versus)


def bisect_ratios(low: float, high: float, probes: int, meets: Callable[[float], bool]) -> float | None:
    """The smallest ratio in ``[low, high]`` for which ``meets`` holds, found in at most ``probes`` calls.

    The first probe is ``high``: if even it misses, nothing smaller is tried (None). Then
    the interval halves towards the smaller ratios that still meet; ratios are rounded to
    :data:`RATIO_STEP`, and the search stops when the next probe would repeat one.
    """
    smallest: float | None = None
    ratio = high
    for _ in range(probes):
        ratio = round(round(ratio / RATIO_STEP) * RATIO_STEP, 4)
        if meets(ratio):
            smallest = high = ratio
        elif smallest is None and ratio == high:
            return None
        else:
            low = ratio
        following = round(round((low + high) / 2 / RATIO_STEP) * RATIO_STEP, 4)
        if following in (low, high, ratio):
            break
        ratio = following
    return smallest


def reuse(journal: Journal, search: SearchSpec, method: str, ratio: float, seed: int) -> Probe | None:
    entry = journal.probes.get(probe_id(search, method, ratio, seed))
    if entry is None or kept_results(journal, entry["results"]) is None:
        return None
    return Probe(**entry)


def kept_results(journal: Journal, results: str) -> Path | None:
    """An eval's results folder the journal names, present on this machine (None: gone).

    On a yard in object storage it may have been written by another machine: it is localized.
    """
    folder = journal.yard.storage.localize(journal.yard.absolute(results))
    return folder if folder.is_dir() else None


def new_probe(
    search: SearchSpec, method: str, ratio: float, seed: int, folder: Path, journal: Journal
) -> Probe:
    identity = probe_id(search, method, ratio, seed)
    name = f"{method}-{ratio:g}" + (f"-s{seed}" if seed else "")
    probe_folder = folder / SEARCH_DIR / f"{name}-{identity}"
    model = make_probe(search, method, ratio, seed, probe_folder, journal.yard)
    value, rows = evaluate(model, search.select_on, search, journal)
    results = journal.yard.relative(rows.folder)
    return Probe(
        method,
        ratio,
        seed,
        identity,
        journal.portable(probe_folder),
        journal.portable(model),
        value,
        results,
        utc_now(),
    )
