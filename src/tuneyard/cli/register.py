"""The root app's verbs, each imported only when it runs or its help is shown.

A verb module builds its options from pydantic models (and may import more), so
importing every verb up front would make ``tuneyard runs ls`` pay for all of them.
The table below names each verb's module; :class:`LazyVerbGroup` imports a module
the first time one of its verbs is looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import click
import typer
import typer.main
from typer.core import TyperGroup

# Verb -> module under tuneyard.cli that defines ``register(app)`` for it, in help order.
VERBS: dict[str, str] = {
    "runs": "runs", "prepare": "prepare", "label": "label", "compress": "compress",
    "finetune": "finetune", "eval": "evaluate", "generate": "evaluate", "grade": "evaluate",
    "eval-grid": "evaluate", "win-rate": "evaluate", "merge": "export", "export": "export",
    "validate": "validate",
    "report": "report", "grid": "grid", "pipeline": "pipeline", "serve": "serve",
    "release": "release",
}  # fmt: skip

_built: dict[str, click.Group] = {}


def verb_commands(module_name: str) -> click.Group:
    """The click commands one verb module registers (built once per process)."""
    if module_name not in _built:
        module = importlib.import_module(f"tuneyard.cli.{module_name}")
        holder = typer.Typer(rich_markup_mode="rich", pretty_exceptions_enable=False)
        module.register(holder)
        _built[module_name] = typer.main.get_group(holder)
    return _built[module_name]


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's command table whose verbs are imported on first access.

    Listing the names (``list(commands)``) imports nothing; reading one imports its
    module. Commands added at run time (``app.command(...)``) are kept as given.
    """

    def __init__(self, eager: dict[str, click.Command]) -> None:
        self._eager = dict(eager)

    def __getitem__(self, name: str) -> click.Command:
        if name in self._eager:
            return self._eager[name]
        if name not in VERBS:
            raise KeyError(name)
        return verb_commands(VERBS[name]).commands[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._eager[name] = command

    def __delitem__(self, name: str) -> None:
        del self._eager[name]

    def __iter__(self) -> Iterator[str]:
        yield from self._eager
        yield from (name for name in VERBS if name not in self._eager)

    def __len__(self) -> int:
        return len(set(self._eager) | set(VERBS))


class LazyVerbGroup(TyperGroup):
    """The root group: its command table is a :class:`LazyCommands`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self.commands)  # type: ignore[assignment]
