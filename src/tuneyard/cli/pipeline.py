"""``tuneyard pipeline``: run a pipeline file (or detach it), or show a pipeline's state."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.errors import ConfigError

if TYPE_CHECKING:
    from tuneyard.yard.storage import Storage


def pipeline(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="The pipeline YAML, or `status` followed by the experiment.")],
    experiment: Annotated[str | None, typer.Argument(help="With status: the experiment's name.")] = None,
    background: Annotated[
        bool, typer.Option("--background", help="Detach; log to experiments/{exp}/logs/pipeline_{time}.log.")
    ] = False,
    detached: Annotated[
        bool, typer.Option("--detached", hidden=True, help="Set by --background in the process it starts.")
    ] = False,
) -> None:
    """Run named steps (prepare, label, finetune, eval, merge, export, validate) chained by ${step}.

    Example: tuneyard pipeline pipeline.yaml --background; then tuneyard pipeline status smol

    A rerun skips finished steps, continues an interrupted finetune, reruns a changed step and its followers.

    A pre-flight check (options, keys, servers, llama.cpp, GPU, disk) lists every problem before any step.
    """
    from tuneyard.experiments.pipeline import (
        STATE_FILE,
        experiment_folder,
        load_pipeline,
        run_pipeline,
        send_logs_at_exit,
    )

    yard = yard_from(ctx)
    if target == "status":
        if experiment is None:
            raise ConfigError("give the experiment: tuneyard pipeline status NAME.")
        show_status(yard.target_path("experiment", experiment=experiment) / STATE_FILE, yard.storage)
        return
    spec = load_pipeline(target)
    if background:
        log = detach(Path(target), yard.address, experiment_folder(spec, yard))
        out.print(str(log))
        return
    if detached:
        send_logs_at_exit(spec, yard)
    quiet_libraries()
    words = {
        "skipped": "done earlier, skipped",
        "running": "running",
        "resumed": "resuming",
        "complete": "done",
    }
    run_pipeline(spec, yard, lambda step, what: note(f"{step.name} ({step.verb}): {words[what]}"))
    out.print(str(experiment_folder(spec, yard) / STATE_FILE))


def detach(path: Path, address: str, folder: Path) -> Path:
    """Start this pipeline in a new session, its output in a timestamped log; returns the log.

    ``address`` is the yard's (its URL on shared storage); the pipeline sends the log there as
    each step starts and ends, and once more as it exits (its error, if it failed).
    """
    from tuneyard.experiments.pipeline import LOGS_DIR

    logs = folder / LOGS_DIR
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"pipeline_{datetime.now(UTC):%Y%m%d-%H%M%S}.log"
    with open(log, "w") as handle:
        subprocess.Popen(
            [sys.executable, "-m", "tuneyard", "--yard", address, "pipeline", str(path.resolve()),
             "--detached"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    note(f"running in the background; follow it with: tail -f {log}")
    return log


def show_status(state_file: Path, storage: Storage) -> None:
    """Each step's state, hash, artifact (or error) and when it finished."""
    from tuneyard.cli.output import format_table
    from tuneyard.experiments.pipeline import read_state

    steps = read_state(state_file, storage)
    if not steps:
        raise ConfigError(f"no pipeline has run in {state_file.parent}.", "Check the experiment's name.")
    rows = [
        [name, entry.get("verb"), entry.get("status"), entry.get("hash"),
         entry.get("error") or entry.get("path") or entry.get("folder"), entry.get("finished")]
        for name, entry in steps.items()
    ]  # fmt: skip
    out.print(
        format_table(["step", "verb", "state", "hash", "artifact", "finished"], rows), end="", markup=False
    )


def register(app: typer.Typer) -> None:
    """Add ``pipeline`` to the root app."""
    app.command("pipeline")(pipeline)
