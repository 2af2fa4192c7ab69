"""The ``tuneyard`` command line: parsing only; every verb calls the library.

Verb modules are imported only when their verb runs or its help is shown
(:mod:`tuneyard.cli.register`), and heavy libraries inside the verb functions, so
read-only commands (``runs ls``) start without pydantic, torch or transformers.
"""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from tuneyard import __version__
from tuneyard.cli.console import print_error
from tuneyard.cli.register import LazyVerbGroup
from tuneyard.errors import TuneyardError

app = typer.Typer(
    name="tuneyard",
    cls=LazyVerbGroup,
    help="Fine-tune, compress, evaluate and file every result in a yard.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tuneyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    yard: Annotated[
        str | None,
        typer.Option(
            "--yard",
            envvar="TUNEYARD_HOME",
            help="Yard root: a folder or s3://bucket/prefix (default: the working directory).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Fine-tune, compress, evaluate and file every result in a yard.

    Every artifact lands in an auto-organized folder with a manifest.json;
    nothing is overwritten; `tuneyard runs ls` finds anything again.
    """
    ctx.obj = {"yard": yard}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, print tuneyard errors without traceback, exit 2 (1 for bugs)."""
    try:
        app(args=argv, standalone_mode=False)
    except TuneyardError as exc:
        print_error(exc)
        sys.exit(exc.exit_code)
    except (typer.Exit, click.exceptions.Exit) as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, click.exceptions.Abort):
        print_error(TuneyardError("aborted."))
        sys.exit(130)
    except (typer.TyperException, click.ClickException) as exc:
        # typer 0.29 raises its vendored click's exceptions (usage errors, bad options).
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            print_error(TuneyardError(exc.format_message()))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error(TuneyardError("interrupted."))
        sys.exit(130)
