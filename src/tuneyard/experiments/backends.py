"""Where a grid's cells run: in this process, in ``--jobs`` local processes, or as Ray tasks.

A cell travels as a :class:`CellTask` (plain data: the yard root, the run folder, the
resolved options as JSON) to :func:`run_cell_task`, which every backend calls: in this
process, in a spawned process of a ``ProcessPoolExecutor``, or in a Ray worker
(``ray.remote(run_cell_task)``) on this machine or a cluster sharing the yard's path.
Workers open the yard without index writes; the driver registers each finished cell's
manifest, so the SQLite index has one writer however many cells run at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from tuneyard.errors import ConfigError, TuneyardError

Backend = Literal["local", "ray"]


@dataclass(frozen=True)
class Execution:
    """How the cells run: ``local`` (``jobs`` at once) or ``ray`` (each cell a task asking for
    ``cpus_per_cell`` CPUs and ``gpus_per_cell`` GPUs; Ray sets each task's visible GPUs)."""

    backend: Backend = "local"
    jobs: int = 1
    ray_address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0


@dataclass(frozen=True)
class CellTask:
    """One cell to run, as plain data any backend can ship."""

    yard: str  # Yard.address: a URL for a yard on shared storage
    folder: str
    resume: bool
    options: dict[str, Any]
    threads: int
    log: str  # finetune_logs/{cell}.log (:mod:`tuneyard.experiments.cell_log`)


@dataclass(frozen=True)
class CellOutcome:
    """What became of a cell: its folder's state, and the error when it failed."""

    folder: str
    state: str
    error: str | None = None


def run_cell_task(task: CellTask | dict[str, Any]) -> dict[str, Any]:
    """Run (or resume) one cell; returns a :class:`CellOutcome` as a dict. Runs in a worker."""
    import torch

    from tuneyard.experiments.cell_log import cell_log
    from tuneyard.experiments.cells import cell_state
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    task = task if isinstance(task, CellTask) else CellTask(**task)
    torch.set_num_threads(task.threads)
    yard = Yard.open(task.yard, index_writes=False)
    folder = Path(task.folder)
    started = time.perf_counter()
    with cell_log(yard.storage, Path(task.log), task.options, task.resume) as log:
        try:
            if task.resume:
                finetune(None, yard, resume=folder)  # type: ignore[arg-type]
            else:
                finetune(FinetuneOptions.model_validate(task.options), yard)
        except TuneyardError as exc:
            log.error("failed after %.1f s: %s%s", time.perf_counter() - started, exc.message,
                      f" ({exc.hint})" if exc.hint else "")  # fmt: skip
            return asdict(CellOutcome(task.folder, "failed", exc.message))
        except BaseException:
            log.exception("stopped after %.1f s", time.perf_counter() - started)
            raise
        state = cell_state(folder, yard.storage)
        log.info("%s after %.1f s", state, time.perf_counter() - started)
    return asdict(CellOutcome(task.folder, state))


def run_tasks(tasks: list[CellTask], execution: Execution) -> Iterator[CellOutcome]:
    """Each task's outcome as it finishes (in order for one local job)."""
    if execution.backend == "ray":
        yield from _on_ray(tasks, execution)
    elif execution.jobs == 1:
        for task in tasks:
            yield CellOutcome(**run_cell_task(task))
    else:
        yield from _in_processes(tasks, execution.jobs)


def threads_per_cell(jobs: int) -> int:
    """This machine's cores shared between ``jobs`` cells running at once (at least one each)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _in_processes(tasks: list[CellTask], jobs: int) -> Iterator[CellOutcome]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # no forked torch or tokenizer threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [pool.submit(run_cell_task, asdict(task)) for task in tasks]
        for future in as_completed(futures):
            yield CellOutcome(**future.result())


def _on_ray(tasks: list[CellTask], execution: Execution) -> Iterator[CellOutcome]:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--backend ray needs Ray.", "pip install 'tuneyard[ray]' (or pip install ray)."
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=execution.ray_address, include_dashboard=False, logging_level="ERROR",
                log_to_driver=False,
            )  # fmt: skip
        except ConnectionError as exc:
            raise ConfigError(
                f"cannot reach the Ray cluster at {execution.ray_address}: {exc}",
                "Start one (ray start --head) or drop --ray-address to start a local instance.",
            ) from None
    remote = ray.remote(num_cpus=execution.cpus_per_cell, num_gpus=execution.gpus_per_cell)(run_cell_task)
    try:
        check_placeable(ray.nodes(), execution)
        pending = {remote.remote(asdict(task)): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            yield CellOutcome(**ray.get(done[0]))
    finally:
        if started_here:
            ray.shutdown()


def check_placeable(nodes: list[dict[str, Any]], execution: Execution) -> None:
    """Refuse a cell no node of the cluster can hold (Ray would wait for it forever)."""
    for resource, asked in (("CPU", execution.cpus_per_cell), ("GPU", execution.gpus_per_cell)):
        largest = max((node["Resources"].get(resource, 0) for node in nodes if node["Alive"]), default=0)
        if asked > largest:
            flag = f"--{resource.lower()}s-per-cell"
            raise ConfigError(
                f"{flag} {asked:g}: no node of the Ray cluster has that many {resource}s "
                f"(the largest has {largest:g}).",
                f"Lower {flag}, or add a node with {asked:g} {resource}s to the cluster.",
            )
