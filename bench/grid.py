"""Benchmark: what ``tuneyard grid`` adds per cell, and the Ray backend against the local one.

Setup: the real all-MiniLM-L6-v2, ``--rows`` Debian topics training rows (and 64
validation rows), ``--cells`` LoRA cells (ranks 4, 8, 12, ...; 1 epoch, batch 32,
length 64), no eval grid.

- **Overhead**: the same cells run (a) as separate ``finetune(options)`` library calls in
  this process, each into its own folder (what ``tuneyard finetune`` does, without the
  process start-up), and (b) as one ``run_experiment`` (planning, state reads, the driver's
  indexing, ``metrics.csv``); ABBA over ``--rounds`` rounds, fresh yards. Reported: (b) / (a)
  wall time, paired; goal <= 1.02. Also the wall time of a rerun with every cell complete
  (planning and skipping only).
- **Ray**: the first two cells through ``--backend ray`` (a local instance started for the
  grid, ``num_cpus`` = the machine's, one CPU per cell) against the local backend in this
  process, once each; reported as the ratio of wall times (Ray's start-up included).

    python bench/grid.py                 # 4 cells of 256 rows, 2 rounds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from finetune import default_model, subset  # bench/: python bench/x.py puts it on sys.path
from pairs import quiet_libraries, spread
from results import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


def experiment(data: Path, cells: int, folder: Path) -> Path:
    spec = {
        "experiment": "bench",
        "finetuning": {
            "models": [default_model()], "data": str(data), "strategies": ["lora"],
            "lora_ranks": [4 * (i + 1) for i in range(cells)], "epochs": 1, "batch_size": 32,
            "learning_rate": 1e-3, "options": {"max_length": 64},
        },
    }  # fmt: skip
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def separate_calls(spec_path: Path, yard_dir: Path) -> float:
    """Each cell as its own ``finetune(options)`` call; seconds."""
    from tuneyard.experiments.cells import expand
    from tuneyard.experiments.spec import load_experiment
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    yard = Yard.open(yard_dir)
    cells = expand(load_experiment(spec_path), None, yard_dir / "compressed")
    started = time.perf_counter()
    for cell in cells:
        finetune(cell.options.model_copy(update={"name": cell.name}), yard)
    return time.perf_counter() - started


def grid_run(spec_path: Path, yard_dir: Path, execution: Any = None) -> float:
    from tuneyard.experiments.backends import Execution
    from tuneyard.experiments.grid import run_experiment
    from tuneyard.experiments.spec import load_experiment
    from tuneyard.yard.root import Yard

    started = time.perf_counter()
    run_experiment(
        load_experiment(spec_path), Yard.open(yard_dir), spec_path, execution=execution or Execution()
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    from tuneyard.experiments.backends import Execution

    quiet_libraries()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        data = subset(REPO / "data" / "debian_topics", args.rows, 64, scratch / "data")
        spec = experiment(data, args.cells, scratch)
        separate_calls(spec, scratch / "warm-up")  # imports, first model load
        times: dict[str, list[float]] = {"separate": [], "grid": []}
        for number in range(args.rounds):
            order = ["separate", "grid"] if number % 2 == 0 else ["grid", "separate"]
            for side in order:
                yard = scratch / f"{side}{number}"
                times[side].append(separate_calls(spec, yard) if side == "separate" else grid_run(spec, yard))
            last = {side: values[-1] for side, values in times.items()}
            print(
                f"round {number + 1}: separate {last['separate']:.1f} s, grid {last['grid']:.1f} s",
                flush=True,
            )
        rerun = grid_run(spec, scratch / "grid0")
        (scratch / "two").mkdir()
        two = experiment(data, 2, scratch / "two")
        local = grid_run(two, scratch / "local-two")
        on_ray = grid_run(two, scratch / "ray-two", Execution(backend="ray"))
    ratios = [grid / separate for separate, grid in zip(times["separate"], times["grid"], strict=True)]
    per_cell = (
        statistics.median(g - s for s, g in zip(times["separate"], times["grid"], strict=True)) / args.cells
    )
    verdict = "met" if statistics.median(ratios) <= 1.02 else "not met"
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/grid.py --rows {args.rows} --cells "
        f"{args.cells} --rounds {args.rounds}` (MiniLM LoRA cells, 1 epoch)",
        "",
        f"- grid / separate finetune calls, wall time, paired over {args.rounds} rounds: "
        f"**{spread(ratios)}** "
        f"(medians {statistics.median(times['grid']):.1f} vs {statistics.median(times['separate']):.1f} s; "
        f"{per_cell:+.2f} s per cell; goal <= 1.02: {verdict})",
        f"- rerun with all {args.cells} cells complete (plan, read states, skip, metrics.csv): {rerun:.2f} s",
        f"- 2 cells, --backend ray (local instance started by the grid) / local in this process: "
        f"**{on_ray / local:.2f}x** ({on_ray:.1f} vs {local:.1f} s, Ray's start-up included)",
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("grid", "\n".join(lines))


if __name__ == "__main__":
    main()
