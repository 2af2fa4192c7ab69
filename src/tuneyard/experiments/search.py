"""The smallest model within X points of dense: a bisection over the compression ratio.

An experiment's ``search:`` block names a fine-tuned (dense) model, its data, the methods
to try, a ratio range and a tolerance. For each method the search compresses the model
at a ratio (task-aware calibration on the data), recovers it with a short fine-tune
(distilled from the dense model, the default for a model compressed from a fine-tuned
one; ``recovery: null`` scores the compressed model as it is), scores it on the split,
and halves the range: towards smaller ratios when the score is within ``within`` of
dense, towards larger ones when it is not. The smallest ratio that met the target is the
answer; every probe is a cell of the search, kept in
``experiments/{exp}/search/{method}-{ratio}-{id}/`` and in ``search.json``, so a rerun
reuses the probes already made and an interrupted search goes on where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from tuneyard.config import StrictModel
from tuneyard.errors import ConfigError
from tuneyard.task_types.data_loading import load_data
from tuneyard.yard.manifest import utc_now

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

SEARCH_DIR = "search"
SEARCH_FILE = "search.json"
RATIO_STEP = 0.01  # probes are rounded to this: a finer ratio changes no rank worth a probe


class SearchSpec(StrictModel):
    """``search:``: which model, which methods, how close to dense, over which ratios."""

    model: str = Field(description="The dense fine-tuned model (a run folder or its best/).")
    data: str = Field(description="Its data: calibration rows, recovery rows and the scored split.")
    methods: list[str] = Field(default_factory=lambda: ["whiten"], min_length=1)
    ratios: tuple[float, float] = Field(default=(0.1, 0.9), description="The range searched: [low, high].")
    within: float = Field(default=0.01, ge=0, lt=1, description="Allowed drop from dense in the metric.")
    metric: str = "accuracy"
    split: str = "test"
    probes: int = Field(default=4, ge=1, le=12, description="Bisection steps per method.")
    calib_samples: int = Field(default=128, gt=0)
    recovery: dict[str, Any] | None = Field(
        default_factory=lambda: {"epochs": 1, "learning_rate": 1e-4},
        description="Options of the recovery fine-tune (any tuneyard finetune option); null: none.",
    )

    @model_validator(mode="after")
    def _ordered_range(self) -> SearchSpec:
        low, high = self.ratios
        if not 0 < low < high < 1:
            raise ConfigError(
                f"search.ratios {list(self.ratios)} must be 0 < low < high < 1.", "e.g. [0.1, 0.9]"
            )
        return self


@dataclass
class Probe:
    """One compressed-and-recovered model and its score."""

    method: str
    ratio: float
    id: str
    folder: str
    score: float
    meets: bool
    finished: str


@dataclass
class MethodResult:
    method: str
    smallest: float | None  # the smallest ratio that met the target (None: not even the highest)
    path: list[Probe]


def probe_id(search: SearchSpec, method: str, ratio: float) -> str:
    """A probe's identity: everything that shapes its model and score."""
    shaping = search.model_dump(mode="json", exclude={"methods", "ratios", "probes", "within"})
    text = json.dumps({**shaping, "method": method, "ratio": ratio}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def score(model: str | Path, search: SearchSpec, yard: Yard) -> float:
    """The model's ``metric`` on the split, as ``tuneyard eval`` files it."""
    from tuneyard.data.options import DataOptions
    from tuneyard.evaluate.model_eval import evaluate_model

    data = load_data(DataOptions(data=search.data).in_yard(yard))
    outcome = evaluate_model(model, data, yard, split=search.split)
    metrics = outcome.result.metrics
    if search.metric not in metrics:
        raise ConfigError(
            f"search.metric {search.metric!r} is not a metric of this eval.",
            f"Metrics: {', '.join(metrics)}.",
        )
    return float(metrics[search.metric])


def make_probe(search: SearchSpec, method: str, ratio: float, folder: Path, yard: Yard) -> Path:
    """Compress at ``ratio``, recover (unless ``recovery`` is null), return the model to score."""
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    compressed = folder / "compressed"
    if not (compressed / "manifest.json").is_file():
        compress_model(
            CompressOptions(model=search.model, method=method, ratio=ratio, data=search.data,
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
) -> tuple[float, list[MethodResult]]:
    """Dense's score, then each method's bisection (probes reused from ``search.json``)."""
    journal = folder / SEARCH_FILE
    stored = json.loads(journal.read_text()) if journal.is_file() else {}
    done: dict[str, dict[str, Any]] = stored.get("probes", {})
    scored = dense_scored(search)
    dense = stored.get("dense") if stored.get("dense_of") == scored else None
    dense = dense if dense is not None else score(search.model, search, yard)
    target = dense - search.within
    results = []
    for method in search.methods:
        path: list[Probe] = []

        def meets(ratio: float, method: str = method, path: list[Probe] = path) -> bool:
            probe = reuse(done, search, method, ratio) or new_probe(
                search, method, ratio, folder, yard, target
            )
            done[probe.id] = asdict(probe)
            write_journal(journal, done, dense, scored, yard)
            path.append(probe)
            if on_probe is not None:
                on_probe(probe)
            return probe.meets

        smallest = bisect_ratios(*search.ratios, search.probes, meets)
        results.append(MethodResult(method, smallest, path))
    return dense, results


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


def reuse(done: dict[str, dict[str, Any]], search: SearchSpec, method: str, ratio: float) -> Probe | None:
    entry = done.get(probe_id(search, method, ratio))
    return Probe(**entry) if entry else None


def new_probe(
    search: SearchSpec, method: str, ratio: float, folder: Path, yard: Yard, target: float
) -> Probe:
    identity = probe_id(search, method, ratio)
    probe_folder = folder / SEARCH_DIR / f"{method}-{ratio:g}-{identity}"
    model = make_probe(search, method, ratio, probe_folder, yard)
    value = score(model, search, yard)
    return Probe(method, ratio, identity, str(probe_folder), value, value >= target, utc_now())


def dense_scored(search: SearchSpec) -> dict[str, str]:
    """What the dense score depends on: a journal's score is reused only when all of it matches."""
    return {"model": search.model, "data": search.data, "split": search.split, "metric": search.metric}


def write_journal(
    path: Path, probes: dict[str, dict[str, Any]], dense: float, dense_of: dict[str, str], yard: Yard
) -> None:
    yard.storage.write_text(
        path, json.dumps({"dense_of": dense_of, "dense": dense, "probes": probes}, indent=2) + "\n"
    )
