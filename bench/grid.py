"""Benchmark: what ``tuneyard grid`` adds per cell, and the Ray backend against the local one.

Setup: the real all-MiniLM-L6-v2, ``--rows`` Debian topics training rows (and 64
validation rows), ``--cells`` LoRA cells (ranks 4, 8, 12, ...; 1 epoch, batch 32,
length 64), no eval grid. Every round runs four sides, each into a fresh yard:

- ``separate``: the cells as separate ``finetune(options)`` library calls in this
  process (what ``tuneyard finetune`` does, without the process start-up);
- ``grid``: the same cells as one ``run_experiment`` (planning, state reads, the
  driver's indexing, ``metrics.csv``);
- ``local`` and ``ray``: the first two cells as one grid on the local backend in this
  process, and through ``--backend ray`` (a local Ray instance started and shut down by
  each grid, ``num_cpus`` = the machine's, one CPU per cell; its start-up is timed, as
  a user waits for it).

``--warmup`` untimed rounds of all four first (imports, the first model load, Ray's
first start), then ``--rounds`` rounds, the order reversed every other round
(``bench/pairs.py``). Reported, each as the median of the per-round ratios with their
range: grid / separate wall time (goal <= 1.02) and ray / local wall time; and the
wall time of a rerun of the last grid with every cell complete (planning and skipping
only). Prints the command and the lines for ``bench/RESULTS.md`` (``## grid``), and
appends them there unless ``--no-append``.

    python bench/grid.py        # 4 cells of 256 rows, 1 warm-up + 5 rounds: about 14 min on 2 quiet cores
    python bench/grid.py --rows 16 --cells 1 --rounds 1 --warmup 0 --no-append   # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from finetune import default_model, subset  # bench/: python bench/x.py puts it on sys.path
from pairs import quiet_libraries, ratios, rotate, spread
from results import command_line, record

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

    cells = expand(load_experiment(spec_path), None, yard_dir / "compressed")
    started = time.perf_counter()
    yard = Yard.open(yard_dir)  # timed, as the grid's own opening of its yard is
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


def sides(spec: Path, two: Path, scratch: Path) -> dict[str, Callable[[int], float]]:
    """The four timed sides of a round, each into a fresh yard named by side and round."""
    from tuneyard.experiments.backends import Execution

    def yard(side: str, round_number: int) -> Path:
        return scratch / f"{side}{round_number}"

    return {
        "separate": lambda n: separate_calls(spec, yard("separate", n)),
        "grid": lambda n: grid_run(spec, yard("grid", n)),
        "local": lambda n: grid_run(two, yard("local", n)),
        "ray": lambda n: grid_run(two, yard("ray", n), Execution(backend="ray")),
    }


def print_round(round_number: int, seconds: dict[str, float]) -> None:
    if round_number >= 0:
        print(
            f"round {round_number + 1}: separate {seconds['separate']:.1f} s, grid {seconds['grid']:.1f} s; "
            f"2 cells local {seconds['local']:.1f} s, ray {seconds['ray']:.1f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=256)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (every side once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of every side first")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    quiet_libraries()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        data = subset(REPO / "data" / "debian_topics", args.rows, 64, scratch / "data")
        spec = experiment(data, args.cells, scratch)
        (scratch / "two").mkdir()
        two = experiment(data, 2, scratch / "two")
        times = rotate(sides(spec, two, scratch), args.rounds, args.warmup, print_round)
        rerun = grid_run(spec, scratch / f"grid{args.rounds - 1}")
    overhead = ratios(times["grid"], times["separate"])
    added = [grid - separate for grid, separate in zip(times["grid"], times["separate"], strict=True)]
    per_cell = statistics.median(added) / args.cells
    verdict = "met" if statistics.median(overhead) <= 1.02 else "not met"
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; `{command_line('grid.py', args)}` "
        "(MiniLM LoRA cells, 1 epoch)",
        "",
        f"- grid / separate finetune calls, wall time, paired over {args.rounds} rounds: "
        f"**{spread(overhead)}** "
        f"(medians {statistics.median(times['grid']):.1f} vs {statistics.median(times['separate']):.1f} s; "
        f"{per_cell:+.2f} s per cell; goal <= 1.02: {verdict})",
        f"- rerun with all {args.cells} cells complete (plan, read states, skip, metrics.csv): {rerun:.2f} s",
        f"- 2 cells, --backend ray (a local instance started by each grid) / local in this process, "
        f"wall time, paired over {args.rounds} rounds: **{spread(ratios(times['ray'], times['local']))}** "
        f"(medians {statistics.median(times['ray']):.1f} vs {statistics.median(times['local']):.1f} s, "
        "Ray's start-up included)",
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("grid", "\n".join(lines))


if __name__ == "__main__":
    main()
