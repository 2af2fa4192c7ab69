"""``tuneyard runs``: list, show, compare and aggregate artifacts; archive, rm, reindex, import, du, gc.

Parsing and printing only: every command is one call into :mod:`tuneyard.yard`.
Nothing here imports torch, transformers or pydantic-heavy code at module level.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tuneyard.cli.console import err, note, out
from tuneyard.cli.context import yard_from
from tuneyard.cli.output import OutputFormat, format_rows
from tuneyard.errors import ConfigError
from tuneyard.yard.fields import BY_NAME, COLUMNS, FILTERS, LISTED, TABLE

if TYPE_CHECKING:
    from tuneyard.yard.lineage import Descendant, LineageStep

runs_app = typer.Typer(
    help="Query the yard: ls, show, lineage, compare, aggregate, archive, rm, reindex, import, du, gc.",
    no_args_is_help=True,
)

SUMMARY_METRICS = 2

WhereOpt = Annotated[
    str | None,
    typer.Option(
        "--where", "-w", help="Filter, e.g. \"metrics.accuracy >= 0.8 and (rank <= 64 or name ~ 'bert*')\"."
    ),
]
SortOpt = Annotated[
    str | None, typer.Option("--sort", help="Sort keys, '-' for descending: -metrics.accuracy,name.")
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="table, json or csv.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress messages.")]
ArchivedOpt = Annotated[
    bool, typer.Option("--include-archived", help="Show archived artifacts too (`runs archive`).")
]
ReferenceArg = Annotated[str, typer.Argument(metavar="NAME_OR_PATH", help="A name, folder, or id (prefix).")]


def register(app: typer.Typer) -> None:
    """Add the ``runs`` group to the root app."""
    app.add_typer(runs_app, name="runs")


def flag_of(name: str) -> str:
    """A field's filter flag: ``task_type`` -> ``--task-type``."""
    return "--" + name.replace("_", "-")


def with_filter_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` one ``--FIELD VALUE`` option per filterable manifest field.

    The options come from the field table (:mod:`tuneyard.yard.fields`); the command
    receives their values together as its ``filters`` argument.
    """
    signature = inspect.signature(command, eval_str=True)
    flags = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[str | None, typer.Option(flag_of(name), help=BY_NAME[name].help)],
        )
        for name in FILTERS
    ]
    kept = [parameter for parameter in signature.parameters.values() if parameter.name != "filters"]

    @functools.wraps(command)
    def with_filters(*args: Any, **kwargs: Any) -> None:
        filters = {name: kwargs.pop(name) for name in FILTERS}
        command(*args, filters=filters, **kwargs)

    with_filters.__signature__ = signature.replace(parameters=[*kept, *flags])  # type: ignore[attr-defined]
    return with_filters


def metrics_summary(metrics: dict[str, float]) -> str:
    """A few metrics as ``key=value`` for the ``metrics`` table column."""
    shown = [f"{key}={value:.4g}" for key, value in list(metrics.items())[:SUMMARY_METRICS]]
    extra = len(metrics) - SUMMARY_METRICS
    return " ".join(shown) + (f" (+{extra})" if extra > 0 else "")


def print_listing(rows: list[dict[str, Any]], fmt: OutputFormat, shown_metrics: list[str]) -> None:
    """Print ``runs ls`` rows in the chosen format."""
    if fmt is OutputFormat.json:
        objects = [{**{name: row[name] for name in COLUMNS}, "metrics": row["metrics"]} for row in rows]
        out.out(format_rows(fmt, [], [], objects), end="")
        return
    if fmt is OutputFormat.csv:
        keys = sorted({key for row in rows for key in row["metrics"]})
        columns = [*LISTED, *(f"metrics.{key}" for key in keys)]
        table = [
            [*(row[name] for name in LISTED), *(row["metrics"].get(key) for key in keys)] for row in rows
        ]
        out.out(format_rows(fmt, columns, table), end="")
        return
    metric_columns = [f"metrics.{key}" for key in shown_metrics] or ["metrics"]
    columns = [*TABLE, *metric_columns, "path"]
    table = []
    for row in rows:
        values = {**row, "created": row["created"][:16].replace("T", " ")}
        metrics = (
            [row["metrics"].get(key) for key in shown_metrics]
            if shown_metrics
            else [metrics_summary(row["metrics"])]
        )
        table.append([*(values[name] for name in TABLE), *metrics, row["path"]])
    out.out(format_rows(fmt, columns, table), end="")


@runs_app.command("ls")
@with_filter_options
def ls(
    ctx: typer.Context,
    filters: dict[str, str | None],
    where: WhereOpt = None,
    sort: SortOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Show at most N.")] = None,
    fmt: FormatOpt = OutputFormat.table,
    include_archived: ArchivedOpt = False,
) -> None:
    """List artifacts, newest first.

    Example: tuneyard runs ls --arch bert --where "metrics.accuracy >= 0.8 and rank <= 64" --sort -rank
    """
    from tuneyard.yard.query import mentioned_metric_keys

    yard = yard_from(ctx)
    healed = yard.heal_index()
    if healed is not None:
        note(f"the index was missing: rebuilt it from {healed.indexed} manifests.")
        for problem in healed.problems:
            note(f"warning: {problem.path}: {problem.message}")
    rows = yard.query(where=where, sort=sort, limit=limit, include_archived=include_archived, **filters)
    shown_metrics = mentioned_metric_keys(where, sort)
    if not yard.has_index:
        note(f"no index in {yard.root} yet: the yard is empty, or run `tuneyard runs reindex`.")
    elif shown_metrics:
        for message in yard.index.unknown_metric_notes(shown_metrics):
            note(f"note: {message}")
    print_listing(rows, fmt, shown_metrics)


def aligned(pairs: list[tuple[str, Any]], indent: str = "  ") -> list[str]:
    """``key  value`` lines with the values in one column; None shows as ``-``."""
    width = max((len(key) for key, _ in pairs), default=0)
    return [f"{indent}{key.ljust(width)}  {'-' if value is None else value}".rstrip() for key, value in pairs]


def lineage_pairs(chain: list[LineageStep]) -> list[tuple[str, Any]]:
    """The ``lineage`` section: one ``kind  path`` line per model, oldest first.

    Empty (no section) unless the chain reaches beyond the direct parents, which the
    ``parents`` section already shows.
    """
    if len(chain) <= 2:
        return []
    return [
        (step.kind, step.path + ("" if step.state in ("artifact", "external") else f"  ({step.state})"))
        for step in chain
    ]


def show_text(record: dict[str, Any], children: list[dict[str, Any]], chain: list[LineageStep]) -> str:
    """``runs show`` as readable sections: fields, parents, lineage, children, metrics, config, files."""
    from tuneyard.yard.index import flatten_metrics
    from tuneyard.yard.summary import flatten_config

    fields = [(name, record[name]) for name in (*COLUMNS, "host") if record.get(name) is not None]
    if record.get("inferred"):
        fields.append(("inferred", f"{', '.join(record['inferred'])} (guessed from config.json or the path)"))
    if record.get("versions"):
        fields.append(("versions", ", ".join(f"{k} {v}" for k, v in record["versions"].items())))
    lines = aligned(fields, indent="")
    files = record.get("files") or []
    sections: list[tuple[str, list[tuple[str, Any]]]] = [
        (
            "parents",
            [
                (p.get("role", "base"), p["path"] + (f"  ({p['id']})" if p.get("id") else ""))
                for p in record.get("parents") or []
            ],
        ),
        ("lineage", lineage_pairs(chain)),
        ("children", [(child["kind"], child["path"]) for child in children]),
        (
            "metrics",
            [(key, f"{value:.6g}") for key, value in flatten_metrics(record.get("metrics") or {}).items()],
        ),
        ("config", list(flatten_config(record.get("config") or {}).items())),
        ("checkpoints", checkpoint_pairs(record)),
        (
            f"files ({len(files)}, {sum(entry['bytes'] for entry in files):,} bytes)",
            [
                (entry["path"], f"{entry['bytes']:>12,}  {(entry.get('sha256') or 'not hashed')[:16]}")
                for entry in files[:20]
            ]
            + ([(f"... {len(files) - 20} more", "")] if len(files) > 20 else []),
        ),
    ]
    for title, pairs in sections:
        if pairs:
            lines.append(f"{title}:")
            lines.extend(aligned(pairs))
    return "\n".join(lines) + "\n"


def checkpoint_pairs(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """An imported PyTorch checkpoint's epoch and, per file, how many tensors and weights it holds."""
    import math

    tensors = record.get("tensors") or {}
    if not tensors:
        return []
    epoch = (record.get("training") or {}).get("epoch")
    pairs: list[tuple[str, Any]] = [("epoch", f"{epoch:g}")] if epoch is not None else []
    for name, shapes in tensors.items():
        weights = sum(math.prod(shape) for shape in shapes.values())
        pairs.append((name, f"{len(shapes)} tensors, {weights:,} weights"))
    return pairs


@runs_app.command("show")
def show(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME_OR_PATH", help="A name, folder, or id (prefix).")],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table (readable text) or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """Show one artifact: fields, lineage (parents, ancestors, children), metrics, config, files.

    The lineage section walks the parents back to the model the chain started from
    (see tuneyard.yard.lineage for which parent it follows).

    Example: tuneyard runs show exports/smollm2_135m_lora_q8_0
    """
    import json

    from tuneyard.yard.lineage import family

    yard = yard_from(ctx)
    record = yard.find(reference)
    relatives = family(yard, record)
    if fmt is OutputFormat.json:
        out.out(json.dumps({**record, **relatives.to_data()}, indent=2))
    elif fmt is OutputFormat.csv:
        raise ConfigError(
            "runs show prints one artifact: --format table or json.", "Use runs ls -f csv for tables."
        )
    else:
        out.out(show_text(record, relatives.children, relatives.chain), end="")


class LineageFormat(StrEnum):
    """How ``runs lineage`` prints."""

    text = "text"
    json = "json"
    dot = "dot"


@runs_app.command("lineage")
def lineage_(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME_OR_PATH", help="A name, folder, or id (prefix).")],
    up: Annotated[bool, typer.Option("--up", help="Only the ancestors, oldest first.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Only the descendants, as a tree.")] = False,
    fmt: Annotated[LineageFormat, typer.Option("--format", "-f", help="text, json or dot (Graphviz).")] = (
        LineageFormat.text
    ),
) -> None:
    """An artifact's lineage both ways: the models it came from, and what was made from it.

    Up follows the parents back to the model the chain started from (see
    tuneyard.yard.lineage); down lists the merges, exports, releases and runs made from
    it, and from those, found by manifest id so renamed folders keep their place.

    Example: tuneyard runs lineage exports/smollm2_lora_q8_0 --up --format dot | dot -Tpng > lineage.png
    """
    import json

    from tuneyard.yard.lineage import descendants, lineage, lineage_dot

    yard = yard_from(ctx)
    record = yard.find(reference)
    both = up == down
    chain = lineage(yard, record) if up or both else lineage(yard, {**record, "parents": []})
    tree = descendants(yard, record) if down or both else []
    if fmt is LineageFormat.json:
        payload = {"up": [step.to_data() for step in chain], "down": [node.to_data() for node in tree]}
        out.out(json.dumps(payload, indent=2))
    elif fmt is LineageFormat.dot:
        out.out(lineage_dot(chain, tree), end="")
    else:
        out.out(lineage_text(chain, tree, show_up=up or both, show_down=down or both), end="")


def lineage_text(chain: list[LineageStep], tree: list[Descendant], show_up: bool, show_down: bool) -> str:
    """``runs lineage`` as text: the ancestors oldest first, then the descendants indented as a tree."""
    lines = []
    if show_up:
        lines.append("up (oldest first):")
        lines += aligned([(step.kind, step.path + ("" if step.state == "artifact" else f"  ({step.state})"))
                          for step in chain])  # fmt: skip
    if show_down:
        lines.append(f"down (made from {chain[-1].path}):")
        lines += descendant_lines(tree, "  ") or ["  (nothing)"]
    return "\n".join(lines) + "\n"


def descendant_lines(tree: tuple[Descendant, ...] | list[Descendant], indent: str) -> list[str]:
    """One ``kind  path`` line per descendant, each level indented two more spaces."""
    lines = []
    for node in tree:
        lines.append(f"{indent}{node.kind}  {node.path}")
        lines += descendant_lines(node.children, indent + "  ")
    return lines


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    references: Annotated[list[str], typer.Argument(metavar="A B [C...]", help="Two or more artifacts.")],
    every_field: Annotated[bool, typer.Option("--all", help="Show equal fields too.")] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Config and metric differences of two or more artifacts, side by side, with metric deltas.

    The last columns hold each metric's difference from the first artifact (B - A).
    With --format table, every eval that the first and another artifact both have (same
    task and split) is then compared row by row: the paired difference B - A, its 95%
    bootstrap interval and McNemar's exact p-value. Rows that differ are refused.

    Example: tuneyard runs compare bert_r64 bert_r128 --format csv
    """
    from tuneyard.yard.summary import compare_table

    if len(references) < 2:
        raise ConfigError(
            f"runs compare needs two or more artifacts, got {len(references)}.",
            "Example: tuneyard runs compare run-a run-b",
        )
    yard = yard_from(ctx)
    records = [yard.find(reference) for reference in references]
    # Δ columns: each artifact after the first, minus the first (names can repeat; paths cannot).
    columns = [
        "field",
        *(record["path"] for record in records),
        *(f"Δ {record['path']}" for record in records[1:]),
    ]
    rows = compare_table(records, every_field)
    if not rows and fmt is OutputFormat.table:
        note("no differences (--all shows every field).")
    out.out(format_rows(fmt, columns, rows), end="")
    if fmt is OutputFormat.table:
        for record in records[1:]:
            print_paired(yard.absolute(records[0]["path"]), yard.absolute(record["path"]))


def print_paired(first: Path, second: Path) -> None:
    """The row-by-row comparison of every eval two artifacts share (B - A)."""
    from tuneyard.evaluate.paired import CONFIDENCE, RESAMPLES, SEED, compare_artifacts

    comparison = compare_artifacts(first, second)
    for name in comparison.without_rows:
        note(f"{name}: no per-row scores on either side (perplexity or regression), not paired.")
    if not comparison.compared:
        note(f"no eval of the same task and split in both {first.name} and {second.name}: nothing paired.")
        return
    out.out(f"\npaired on the same rows, B - A: A = {first.name}, B = {second.name}")
    for name, paired in comparison.compared:
        out.out(
            f"  {name}  {paired.metric}  n={paired.rows}  A {paired.mean_a:.4f}  B {paired.mean_b:.4f}  "
            f"diff {paired.difference:+.4f}  {CONFIDENCE:.0%} CI [{paired.low:+.4f}, {paired.high:+.4f}]  "
            f"McNemar p={paired.p_value:.4g} (A better on {paired.a_better} rows, B on {paired.b_better})"
        )
    out.out(
        f"CI: percentile bootstrap, {RESAMPLES:,} resamples of the rows (seed {SEED}); "
        "p: exact binomial test on the rows where A and B differ."
    )


@runs_app.command("aggregate")
@with_filter_options
def aggregate(
    ctx: typer.Context,
    filters: dict[str, str | None],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    where: WhereOpt = None,
    sort: SortOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="csv (default), json or table.")] = (
        OutputFormat.csv
    ),
    include_archived: ArchivedOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output file if it exists.")] = False,
) -> None:
    """One row per run: key fields, the config fields that vary, one column per metric.

    Example: tuneyard runs aggregate --project clic_2025 --status running -o running.csv
    """
    from tuneyard.yard.summary import aggregate_table
    from tuneyard.yard.writer import refuse_to_replace, write_new_file

    target = output.expanduser().resolve() if output else None
    if target:
        refuse_to_replace(target, force)
    yard = yard_from(ctx)
    rows = yard.query(
        where=where, sort=sort or "created", with_manifest=True, include_archived=include_archived, **filters
    )
    columns, table = aggregate_table([row["manifest"] for row in rows])
    text = format_rows(fmt, columns, table)
    if target is None:
        out.out(text, end="")
        return
    write_new_file(yard.storage, target, text, force)
    note(f"wrote {len(table)} rows x {len(columns)} columns to {output}")


def spinner(message: str, quiet: bool) -> AbstractContextManager[Any]:
    """A spinner on stderr while a long command works, when stderr is a terminal and not ``--quiet``."""
    return err.status(message, spinner="dots") if err.is_terminal and not quiet else nullcontext()


@runs_app.command("archive")
def archive(
    ctx: typer.Context,
    reference: ReferenceArg,
    undo: Annotated[bool, typer.Option("--undo", help="Bring it back into default listings.")] = False,
) -> None:
    """Take an artifact out of default listings; its files stay (runs ls --include-archived shows it).

    Recorded in its manifest, so `runs reindex` keeps it archived.

    Example: tuneyard runs archive bert_base_full   (and back: tuneyard runs archive --undo bert_base_full)
    """
    from tuneyard.yard.lifecycle import set_archived

    manifest = set_archived(yard_from(ctx), reference, archived=not undo)
    out.out(f"{'unarchived' if undo else 'archived'}  {manifest.path}")


@runs_app.command("unarchive")
def unarchive(ctx: typer.Context, reference: ReferenceArg) -> None:
    """Bring an archived artifact back into default listings (same as runs archive --undo).

    Example: tuneyard runs unarchive bert_base_full
    """
    archive(ctx, reference, undo=True)


@runs_app.command("rm")
def rm(
    ctx: typer.Context,
    reference: ReferenceArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even what a release or a later artifact references.")
    ] = False,
) -> None:
    """Delete an artifact's folder and its index entry.

    Refused while a release, a merge, an export or a run started from it references it
    (by manifest id, or its path), or while it is running, unless --force.

    Example: tuneyard runs rm outputs/demo/sst2/bert_base_full
    """
    from tuneyard.yard.lifecycle import remove

    removed = remove(yard_from(ctx), reference, force=force)
    for row in removed.referrers:
        note(f"warning: {row['path']} keeps a parent link to the removed {removed.path}.")
    out.out(f"removed  {removed.path}")


@runs_app.command("reindex")
def reindex(ctx: typer.Context, quiet: QuietOpt = False) -> None:
    """Rebuild the index from the manifest.json files alone.

    Example: tuneyard --yard ~/yard runs reindex
    """
    from tuneyard.task_types.model_loading import infer_task_type_quietly

    yard = yard_from(ctx)
    start = time.perf_counter()
    with spinner("reindexing: reading every manifest.json ...", quiet):
        report = yard.reindex(task_type_of=infer_task_type_quietly)
    for problem in report.problems:
        note(f"warning: {problem.path}: {problem.message}")
    out.out(f"indexed {report.indexed} artifacts in {time.perf_counter() - start:.2f} s")


@runs_app.command("import")
def import_(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="PATH...", help="Model folders, folders to search, or a .tar of one (release pack)."
        ),
    ],
    hash_files: Annotated[
        bool, typer.Option("--hash", help="Record sha256 of every file (slow for big weights).")
    ] = False,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Unpickle .pt checkpoints that hold more than tensors (custom classes). "
            "Their code runs: only for files from a source you trust.",
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Index foreign model folders in place: writes a manifest.json into each.

    {Name}_best.pt / {Name}_last.pt checkpoints also get their weights written beside them
    as safetensors, read with torch.load(weights_only=True).

    A .tar of one model folder (tuneyard release pack -o FILE.tar) is unpacked into the yard first.

    Example: tuneyard runs import ~/old_checkpoints/compressed_models
    """
    from tuneyard.task_types.model_loading import infer_task_type_quietly

    yard = yard_from(ctx)
    start = time.perf_counter()
    with spinner("importing: looking for model folders ...", quiet):
        report = yard.import_paths(paths, hash_files, task_type_of=infer_task_type_quietly, trust=trust)
    for problem in report.problems:
        note(f"warning: {problem.path}: {problem.message}")
    known = report.indexed - len(report.imported)
    out.out(
        f"imported {len(report.imported)} model folders ({known} already had a manifest) "
        f"in {time.perf_counter() - start:.2f} s"
    )


def mib(size: int) -> str:
    """Bytes as MiB with one decimal, as the table shows them."""
    return f"{size / 2**20:,.1f} MiB"


@runs_app.command("du")
def du(
    ctx: typer.Context,
    reference: Annotated[
        str | None,
        typer.Argument(metavar="[NAME_OR_PATH]", help="One artifact; every indexed one if left out."),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Disk usage: each artifact's bytes as its files add up (logical) and on disk (stored).

    Weight files are stored once and hard-linked into every artifact that holds them, so
    stored counts each shared file once; exclusive is what `runs rm` then `runs gc` gives back.

    Example: tuneyard runs du --format json
    """
    from tuneyard.yard.objects import yard_usage

    found = yard_usage(yard_from(ctx), reference)
    columns = ["path", "files", "logical", "stored", "exclusive"]
    if fmt is OutputFormat.json:
        out.out(json.dumps(dataclasses.asdict(found), indent=2))
        return
    if fmt is OutputFormat.csv:
        rows = [
            [item.path, item.files, item.logical, item.stored, item.exclusive] for item in found.artifacts
        ]
        out.out(format_rows(fmt, columns, rows), end="")
        return
    rows = [
        [item.path, item.files, mib(item.logical), mib(item.stored), mib(item.exclusive)]
        for item in found.artifacts
    ]
    rows.append(
        ["total", sum(item.files for item in found.artifacts), mib(found.logical), mib(found.stored), "-"]
    )
    out.out(format_rows(fmt, columns, rows), end="")
    if found.logical:
        out.out(f"stored / logical: {found.stored / found.logical:.3f}")
    if found.unreferenced_objects:
        note(
            f"{found.unreferenced_objects} shared objects ({mib(found.unreferenced_bytes)}) are linked "
            "from no artifact: `tuneyard runs gc` removes them."
        )


@runs_app.command("gc")
def gc(
    ctx: typer.Context,
    older_than: Annotated[float, typer.Option("--older-than", min=0, help="Grace period in minutes.")] = 60.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Only list what would be removed.")
    ] = False,
) -> None:
    """Remove leftovers of interrupted writes (.tmp-* folders, empty claimed folders), stale index entries
    and shared weight objects that no artifact links to (see runs du).

    On an s3:// yard, also this machine's copies of artifacts removed or changed in the bucket.

    Example: tuneyard runs gc --dry-run --older-than 10
    """
    from tuneyard.yard.change_journal import JOURNAL
    from tuneyard.yard.gc import JOURNAL_AGE, JOURNAL_REASON, find_leftovers, remove_leftovers

    yard = yard_from(ctx)
    leftovers = find_leftovers(yard, older_than * 60)
    done = "would remove" if dry_run else "removed"
    records = sum(leftover.reason == JOURNAL_REASON for leftover in leftovers)  # a week: thousands
    for leftover in leftovers:
        if leftover.reason != JOURNAL_REASON:
            out.out(f"{done}  {leftover.path}  ({leftover.reason})")
    if records:
        out.out(f"{done}  {records:,} change record{'s' * (records != 1)} in {JOURNAL}/  ({JOURNAL_AGE})")
    if not dry_run:
        remove_leftovers(yard, leftovers)
    if not leftovers:
        note("nothing to remove.")
    freed = sum(leftover.size for leftover in leftovers)
    if freed:
        verb = "would free" if dry_run else "freed"
        note(f"{verb} {mib(freed)} ({freed:,} bytes) of this machine's cache.")
