"""``compress_model``: load a model, plan ranks, calibrate, factorise, file it in the yard.

Every check that can refuse the request (method, rank, ratio, calibration data,
labels) runs before anything is written; the folder is written through the yard's
atomic writer, so a failure leaves nothing that looks complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tuneyard.components.calibration import CalibrationSet
from tuneyard.compress.adasvd import allocate_ranks
from tuneyard.compress.calibration import draw_calibration, load_rows
from tuneyard.compress.factorize import weighted_svds
from tuneyard.compress.held_out import HeldOut
from tuneyard.compress.method import CompressionMethod
from tuneyard.compress.options import CompressOptions
from tuneyard.compress.ranks import (
    RankSpec,
    break_even_rank,
    check_rank,
    check_ratio,
    parse_rank,
    rank_for_ratio,
)
from tuneyard.compress.registry import build_method
from tuneyard.compress.statistics import LayerStatistics, collect_fisher, collect_input_statistics
from tuneyard.data.loading import TaskData
from tuneyard.data.prepare import data_parents
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import CompressionError
from tuneyard.models.compressed_folder import (
    CalibrationInfo,
    CompressionInfo,
    LayerInfo,
    ParamCounts,
    is_compressed_folder,
    write_compressed_folder,
)
from tuneyard.models.layout import ModelLayout, layout_of
from tuneyard.models.lowrank import (
    LowRankLinear,
    compressible_modules,
    linear_bias,
    linear_weight,
    replace_module,
)
from tuneyard.task_types import get_task_type
from tuneyard.task_types.base import CompressionSubject, TaskType
from tuneyard.task_types.model_card import write_model_card
from tuneyard.task_types.model_loading import resolve_checkpoint, task_type_of_model
from tuneyard.yard.layout import model_display_name
from tuneyard.yard.manifest import Manifest
from tuneyard.yard.root import Yard


@dataclass
class CompressionResult:
    """What ``compress_model`` made and anything the user should be told."""

    path: Path
    info: CompressionInfo
    seconds: float
    renamed: bool
    model: Any = None  # the compressed model, in memory (eval mode)
    notes: list[str] = field(default_factory=list)
    held_out: list[tuple[str, float, float]] = field(default_factory=list)  # (metric, before, after)


@dataclass
class LayerPlan:
    """One compressible layer: its shape, type and the rank it gets (None: stays dense)."""

    name: str
    shape: tuple[int, int]
    module_type: str | None
    rank: int | None = None
    dense_reason: str | None = None


def count_parameters(model: nn.Module) -> int:
    """Stored weights of ``model``, shared tensors counted once."""
    return sum(parameter.numel() for parameter in model.parameters())


def plan_layers(
    modules: dict[str, nn.Module], layout: ModelLayout, rank: RankSpec | None, ratio: float | None
) -> list[LayerPlan]:
    """Each layer's rank from ``--rank`` or ``--ratio``; layers at break-even stay dense."""
    plans = []
    for name, module in modules.items():
        shape = tuple(linear_weight(module).shape)
        plan = LayerPlan(name, (int(shape[0]), int(shape[1])), layout.module_type(name))
        requested = (
            rank.for_type(plan.module_type) if rank is not None else rank_for_ratio(plan.shape, ratio or 0)
        )
        check_rank(name, plan.shape, requested)
        if requested >= break_even_rank(plan.shape):
            m, n = plan.shape
            plan.dense_reason = (
                f"rank {requested} >= break-even {break_even_rank(plan.shape)} for {m} x {n}: "
                f"{requested * (m + n)} factor weights would not be fewer than {m * n} dense"
            )
        else:
            plan.rank = requested
        plans.append(plan)
    return plans


def budget_for(plans: list[LayerPlan], rank: RankSpec | None, ratio: float | None) -> int:
    """adasvd's weight budget: ``ratio x`` the compressible weights, or what ``--rank`` would cost."""
    if ratio is not None:
        return int(ratio * sum(m * n for m, n in (plan.shape for plan in plans)))
    return sum(
        plan.rank * sum(plan.shape) if plan.rank is not None else plan.shape[0] * plan.shape[1]
        for plan in plans
    )


def _progress(enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """A progress bar on stderr when it is a terminal (in a log, rich would leave blank lines)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@contextlib.contextmanager
def _step(progress: Any, description: str, total: int) -> Iterator[Callable[[], None]]:
    if progress is None:
        yield lambda: None
        return
    task = progress.add_task(description, total=total)
    yield lambda: progress.advance(task)
    progress.remove_task(task)


def _quiet_transformers_bars() -> None:
    """transformers' own loading bars would interleave with ours (or break --quiet)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()


def _statistics(
    method: CompressionMethod,
    model: nn.Module,
    modules: dict[str, nn.Module],
    calibration: CalibrationSet,
    progress: Any,
) -> dict[str, LayerStatistics]:
    stats: dict[str, LayerStatistics] = {name: LayerStatistics() for name in modules}
    wants = method.statistics
    if wants & {"gram", "abs_mean"}:
        with _step(progress, "calibration batches", len(calibration.batches)) as advance:
            stats = collect_input_statistics(
                model,
                modules,
                calibration.batches,
                gram="gram" in wants,
                abs_mean="abs_mean" in wants,
                on_batch=advance,
            )
    if "fisher" in wants:
        with _step(progress, "fisher batches", len(calibration.batches)) as advance:
            fisher = collect_fisher(model, modules, calibration.batches, on_batch=advance)
        # Layers reading one input share a statistics object; each has Fisher weights of its own.
        stats = {name: dataclasses.replace(stats[name], fisher=values) for name, values in fisher.items()}
    return stats


def compress_model(options: CompressOptions, yard: Yard, progress: bool = False) -> CompressionResult:
    """Compress ``options.model`` and write it to the yard; see the module docstring."""
    started = time.perf_counter()
    method = build_method(options.method, **options.method_settings())
    rank = _check_request(options, method)
    notes: list[str] = []
    _quiet_transformers_bars()
    # A GGUF file is compressed as the float32 folder it is imported to (once), its lineage included.
    options = options.model_copy(update={"model": resolve_checkpoint(options.model, yard)}).in_yard(yard)
    with _progress(progress) as bar:
        data = _load_data(options)
        spec = data.spec if data is not None else None
        task_type = _task_type_for(options, spec)
        subject = _load_subject(task_type, options, spec)
        model = subject.model
        layout = layout_of(model)
        modules = compressible_modules(model, layout)
        if not modules:
            raise CompressionError(
                f"{options.model} has no linear layers in its {layout.blocks} blocks to compress."
            )
        plans = plan_layers(modules, layout, rank, options.ratio)
        calibration = _calibration_for(method, options, data, task_type, subject.tokenizer, notes)
        held_out = HeldOut.measure(task_type, model, subject.tokenizer, data, options)
        params_before = count_parameters(model)
        head_note = task_type.compression.prepare_head(subject, method.needs_labels, calibration)
        notes += [head_note] if head_note else []
        layers = _factorise(model, modules, plans, method, calibration, rank, options.ratio, bar)
        notes += [f"{plan.name} stays dense: {plan.dense_reason}." for plan in plans if plan.rank is None]
        held_out.measure_after(model)
        info = _compression_info(
            options, method, rank, model, layout, plans, layers, subject.head, calibration, params_before
        )
        # A bare encoder compressed without a head is no task's model yet: it records none.
        recorded = task_type.name if subject.head != "none" else None
        result_path, requested = _write(yard, options, info, rank, subject, recorded, held_out)
    renamed = result_path != requested
    if renamed:
        notes.append(
            f"{yard.relative(requested)} exists: wrote {yard.relative(result_path)} instead (a -N suffix)."
        )
    return CompressionResult(
        result_path, info, time.perf_counter() - started, renamed, model, notes, held_out.table()
    )


def _load_data(options: CompressOptions) -> TaskData | None:
    """The ``--task`` / ``--data`` rows (labels optional): calibration, held-out text, a head's size."""
    if not (options.task or options.data):
        return None
    return load_rows(options.task, options.data, options)


def _task_type_for(options: CompressOptions, spec: TaskSpec | None) -> TaskType:
    """The model's task type (recorded, or inferred from its class); else the data's.

    A language model stays one whatever its data (a classification folder's text is
    read as plain text); a bare encoder takes the task type of its calibration data.
    """
    from tuneyard.models.loading import load_config

    load_config(options.model)  # a missing folder or an unknown hub id: the error says which
    found = task_type_of_model(options.model)
    if found is not None:
        return found
    return get_task_type(spec.task_type if spec is not None else options.task_type)


def _load_subject(task_type: TaskType, options: CompressOptions, spec: TaskSpec | None) -> CompressionSubject:
    """The dense model to compress, shaped by its task type (refusing a compressed one, and one
    whose task type declares no compression role: a plugin's may not)."""
    if Path(options.model).is_dir() and is_compressed_folder(Path(options.model)):
        raise CompressionError(
            f"{options.model} is already a compressed model.", "Compress the original (dense) model instead."
        )
    if task_type.compression is None:
        raise CompressionError(
            f"{options.model} is a {task_type.name} model, and task type {task_type.name} does not "
            "say how to compress its models (it has no compression role).",
            "Compress a model of another task type, or give that task type a CompressionRole.",
        )
    return task_type.compression.load_for_compression(options.model, spec, options.seed)


def _check_request(options: CompressOptions, method: CompressionMethod) -> RankSpec | None:
    """Refuse impossible requests before any loading; the parsed rank (None with --ratio)."""
    if (options.rank is None) == (options.ratio is None):
        raise CompressionError("give exactly one of --rank N (or attn=..,ffn=..) and --ratio R.")
    if options.ratio is not None:
        check_ratio(options.ratio)
    if method.needs_calibration and not (options.task or options.data):
        raise CompressionError(
            f"method {method.name!r} needs calibration data, and none was given.",
            "Pass --task NAME (e.g. sst2) or --data DIR with a train file.",
        )
    return parse_rank(options.rank) if options.rank is not None else None


def _calibration_for(
    method: CompressionMethod,
    options: CompressOptions,
    data: TaskData | None,
    task_type: TaskType,
    tokenizer: Any,
    notes: list[str],
) -> CalibrationSet | None:
    """Calibration batches when the method reads data; refuses unlabelled data for fwsvd."""
    if not method.needs_calibration or data is None:
        return None
    calibration = draw_calibration(
        data,
        task_type,
        tokenizer,
        options.calib_samples,
        options.batch_size,
        options.max_length,
        options.seed,
    )
    if method.needs_labels and not calibration.labelled:
        raise CompressionError(
            f"method {method.name!r} needs labelled calibration data; {calibration.source} has no "
            f"{options.label_column!r} labels.",
            "Add a label column (or name it with --label-column), or use whiten / asvd.",
        )
    if calibration.samples < options.calib_samples:
        notes.append(f"the train split has only {calibration.samples} rows; all of them were used.")
    return calibration


def _factorise(
    model: nn.Module,
    modules: dict[str, nn.Module],
    plans: list[LayerPlan],
    method: CompressionMethod,
    calibration: CalibrationSet | None,
    rank: RankSpec | None,
    ratio: float | None,
    bar: Any,
) -> dict[str, LayerInfo]:
    """Statistics, SVDs, (adasvd) rank allocation, and the swap to LowRankLinear, in place."""
    targets = {
        plan.name: modules[plan.name] for plan in plans if plan.rank is not None or method.allocates_ranks
    }
    stats = _statistics(method, model, targets, calibration, bar) if calibration is not None else {}
    weights = {name: linear_weight(module).detach() for name, module in targets.items()}
    with _step(bar, "SVD", len(weights)) as advance:
        svds = weighted_svds(method, weights, stats, on_layer=advance)
    if method.allocates_ranks:
        chosen = allocate_ranks(
            {name: svd.sigma for name, svd in svds.items()},
            {plan.name: plan.shape for plan in plans},
            budget_for(plans, rank, ratio),
        )
        for plan in plans:
            plan.rank, plan.dense_reason = chosen[plan.name], None
    layers: dict[str, LayerInfo] = {}
    for plan in plans:
        if plan.rank is None:
            continue
        module = modules[plan.name]
        left, right = svds[plan.name].factors(plan.rank)
        dtype = linear_weight(module).dtype
        replace_module(
            model, plan.name, LowRankLinear.from_factors(left.to(dtype), right.to(dtype), linear_bias(module))
        )
        m, n = plan.shape
        layers[plan.name] = LayerInfo(
            rank=plan.rank,
            shape=plan.shape,
            module_type=plan.module_type,
            params_before=m * n,
            params_after=plan.rank * (m + n),
        )
    model.eval()
    return layers


def _compression_info(
    options: CompressOptions,
    method: CompressionMethod,
    rank: RankSpec | None,
    model: Any,
    layout: ModelLayout,
    plans: list[LayerPlan],
    layers: dict[str, LayerInfo],
    head: str,
    calibration: CalibrationSet | None,
    params_before: int,
) -> CompressionInfo:
    compressible_before = sum(plan.shape[0] * plan.shape[1] for plan in plans)
    dense_kept = sum(plan.shape[0] * plan.shape[1] for plan in plans if plan.rank is None)
    return CompressionInfo(
        arch=layout.arch,
        model_type=model.config.model_type,
        model_class=type(model).__name__,
        method=method.name,
        rank=rank.uniform if rank is not None else None,
        ranks_by_type=dict(rank.by_type) if rank is not None and rank.by_type else None,
        ratio=options.ratio,
        base_model=options.model,
        task=options.task,
        calibration=None
        if calibration is None
        else CalibrationInfo(
            source=calibration.source,
            samples=calibration.samples,
            max_length=options.max_length,
            seed=options.seed,
            labelled=calibration.labelled,
        ),
        head=head,
        layers=layers,
        dense_layers={plan.name: plan.dense_reason or "" for plan in plans if plan.rank is None},
        params=ParamCounts(
            total_before=params_before,
            total_after=count_parameters(model),
            compressible_before=compressible_before,
            compressible_after=dense_kept + sum(layer.params_after for layer in layers.values()),
        ),
        method_options=method.options(),
        seed=options.seed,
    )


def _write(
    yard: Yard,
    options: CompressOptions,
    info: CompressionInfo,
    rank: RankSpec | None,
    subject: CompressionSubject,
    task_type: str | None,
    held_out: HeldOut,
) -> tuple[Path, Path]:
    """Write the folder atomically; returns (where it went, where it was asked to go)."""
    label = model_display_name(options.model)
    if rank is not None:
        target = yard.target_path(
            "compressed", output_dir=options.output_dir, model=label, method=info.method, rank=rank.label
        )
    else:
        target = yard.target_path(
            "compressed_ratio",
            output_dir=options.output_dir,
            model=label,
            method=info.method,
            ratio=options.ratio,
        )
    manifest = Manifest(
        kind="compressed",
        name=target.name,
        arch=info.arch,
        method=info.method,
        rank=info.rank,
        task=options.task,
        task_type=task_type,
        dataset=options.dataset_name() if info.calibration or held_out.rows else None,
        parents=[yard.parent_link(options.model, "base"), *data_parents(options.data, yard)],
        config=options.model_dump(),
        metrics={
            "params_before": info.params.total_before,
            "params_after": info.params.total_after,
            "compressible_ratio": round(info.params.ratio, 6),
            "layers_compressed": len(info.layers),
        }
        | held_out.metrics(),
    )
    with yard.create(manifest, target) as writer:
        write_compressed_folder(subject.model, subject.tokenizer, info, writer.path)
        write_model_card(yard, manifest, writer.path)
    return writer.final_path, writer.requested_path
