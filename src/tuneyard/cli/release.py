"""``tuneyard release``: publish a model artifact as a versioned release; aliases, ls, show.

``tuneyard release ARTIFACT --name NAME`` is the group's default command (``create``),
so releasing reads as one verb while ``alias``, ``ls`` and ``show`` sit beside it.
Parsing and printing only: every command is one call into :mod:`tuneyard.release`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

from tuneyard.cli.console import note, out
from tuneyard.cli.context import yard_from
from tuneyard.cli.output import OutputFormat, format_rows
from tuneyard.cli.runs import aligned, metrics_summary
from tuneyard.release.semver import Bump

if TYPE_CHECKING:
    from tuneyard.release.registry import Registry, Release

DEFAULT_COMMAND = "create"


class DefaultCommandGroup(TyperGroup):
    """A group whose arguments go to :data:`DEFAULT_COMMAND` unless they start with a command name."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)


release_app = typer.Typer(
    cls=DefaultCommandGroup,
    help="Release a model artifact: tuneyard release ARTIFACT --name NAME [--version X.Y.Z | --bump minor] "
    "--notes TEXT (its options: tuneyard release create --help); then alias, ls, show, pack.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``release`` group to the root app."""
    app.add_typer(release_app, name="release")


def registry_from(ctx: typer.Context) -> Registry:
    from tuneyard.release.registry import Registry

    return Registry(yard_from(ctx))


@release_app.command(DEFAULT_COMMAND, hidden=True)
def create(
    ctx: typer.Context,
    artifact: Annotated[str, typer.Argument(metavar="ARTIFACT", help="A model artifact: name, path or id.")],
    name: Annotated[str, typer.Option("--name", help="Release name (one per model line).")],
    notes: Annotated[str, typer.Option("--notes", help="What this version is, for the card and changelog.")],
    version: Annotated[
        str | None, typer.Option("--version", help="Exact new version, MAJOR.MINOR.PATCH.")
    ] = None,
    bump: Annotated[
        Bump | None,
        typer.Option("--bump", help="Increment the newest version (default minor; the first is 1.0.0)."),
    ] = None,
    license_id: Annotated[
        str, typer.Option("--license", help="License for the card's metadata, e.g. apache-2.0.")
    ] = "unknown",
) -> None:
    """Publish ARTIFACT as releases/NAME/VERSION with a model card, and add it to NAME's changelog.

    Example: tuneyard release outputs/demo/debian_topics/bert_lora --name topics --notes "First model"
    """
    registry = registry_from(ctx)
    release = registry.create(artifact, name, notes, version, bump, license_id)
    note(f"released {release.reference} of {release.artifact_link['path']}")
    out.out(str(release.folder))


@release_app.command("alias")
def alias(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME@VERSION", help="The release (or NAME@ALIAS).")],
    word: Annotated[str, typer.Argument(metavar="ALIAS", help="production, staging, archived or any word.")],
) -> None:
    """Point ALIAS of NAME at a version; every move is appended to releases/NAME/aliases.log.

    Example: tuneyard release alias topics@1.1.0 production
    """
    move = registry_from(ctx).move_alias(reference, word)
    name = reference.partition("@")[0]
    out.out(f"{name}@{move.alias}: {move.before or '(new)'} -> {move.after}")


@release_app.command("pack")
def pack(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="NAME@VERSION", help="The release (or NAME@ALIAS).")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="A folder (Hugging Face repository layout), or FILE.tar of one."),
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Pack a release for sharing: weights, config, tokenizer, card and GGUF exports, as a Hugging Face
    repository that `huggingface-cli upload` and another yard's `tuneyard runs import` take as they are.

    Example: tuneyard release pack topics@production -o topics.tar
    """
    from tuneyard.release.pack import pack_release

    out.out(str(pack_release(registry_from(ctx), reference, output, force)))


@release_app.command("ls")
def ls(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="[NAME]", help="Only this release name.")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table, json or csv.")] = (
        OutputFormat.table
    ),
) -> None:
    """List releases, one row per version, oldest first, with their aliases and artifacts.

    Example: tuneyard release ls topics
    """
    registry = registry_from(ctx)
    names = [name] if name else registry.names()
    releases = [release for each in names for release in registry.releases(each)]
    if not releases and fmt is OutputFormat.table:
        note("no releases yet: tuneyard release ARTIFACT --name NAME --notes TEXT makes one.")
    columns = ["name", "version", "aliases", "created", "metrics", "artifact"]
    rows = [
        [
            release.name,
            str(release.version),
            ",".join(release.aliases),
            release.manifest["created"][:16].replace("T", " "),
            metrics_summary(flat_metrics(release)),
            release.artifact_link["path"],
        ]
        for release in releases
    ]
    out.out(format_rows(fmt, columns, rows, [release_data(registry, r) for r in releases]), end="")


@release_app.command("show")
def show(
    ctx: typer.Context,
    reference: Annotated[
        str, typer.Argument(metavar="NAME[@VERSION|@ALIAS]", help="A release (NAME alone: the newest).")
    ],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="table (readable text) or json.")] = (
        OutputFormat.table
    ),
) -> None:
    """Show one release: version, aliases, artifact, notes, metrics, card, and its alias moves.

    Example: tuneyard release show topics@production
    """
    registry = registry_from(ctx)
    release = registry.resolve(reference)
    data = release_data(registry, release)
    if fmt is OutputFormat.json:
        out.out(json.dumps(data, indent=2))
        return
    out.out(show_text(data), end="")


def release_data(registry: Registry, release: Release) -> dict[str, Any]:
    """One release as JSON-ready data: what ``ls --format json`` and ``show`` print."""
    from tuneyard.release.registry import CARD_FILE

    moves = [move.__dict__ for move in registry.alias_log(release.name) if move.after == str(release.version)]
    return {
        "name": release.name,
        "version": str(release.version),
        "aliases": list(release.aliases),
        "path": registry.yard.relative(release.folder),
        "created": release.manifest["created"],
        "notes": release.notes,
        "artifact": release.artifact_link,
        "metrics": flat_metrics(release),
        "card": registry.yard.relative(release.folder / CARD_FILE),
        "alias_moves": moves,
    }


def flat_metrics(release: Release) -> dict[str, float]:
    """The release's metrics under dotted keys."""
    from tuneyard.yard.index import flatten_metrics

    return flatten_metrics(release.manifest.get("metrics") or {})


def show_text(data: dict[str, Any]) -> str:
    """``release show`` as readable lines."""
    artifact = data["artifact"]
    lines = [
        f"release   {data['name']}@{data['version']}",
        f"aliases   {', '.join(data['aliases']) or '-'}",
        f"path      {data['path']}",
        f"created   {data['created']}",
        f"artifact  {artifact['path']}  ({artifact.get('id') or 'no id'})",
        f"card      {data['card']}",
        f"notes     {data['notes'] or '-'}",
    ]
    if data["metrics"]:
        lines.append("metrics:")
        lines += aligned([(key, f"{value:.6g}") for key, value in data["metrics"].items()])
    if data["alias_moves"]:
        lines.append("alias moves to this version:")
        lines += [
            f"  {move['time'][:19]}  {move['alias']}  {move['before'] or '(new)'} -> {move['after']}"
            for move in data["alias_moves"]
        ]
    return "\n".join(lines) + "\n"
