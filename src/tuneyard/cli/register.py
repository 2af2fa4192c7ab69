"""Attach each verb's sub-app or command to the root app (one module per verb group)."""

from __future__ import annotations

import importlib

import typer

# Modules under tuneyard.cli that define ``register(app)``; each owns its verbs.
VERB_MODULES = (
    "runs", "prepare", "label", "compress", "finetune", "evaluate", "export", "validate", "report",
    "grid", "pipeline",
)  # fmt: skip


def add_all(app: typer.Typer) -> None:
    """Let every verb module add its commands to ``app``."""
    for name in VERB_MODULES:
        module = importlib.import_module(f"tuneyard.cli.{name}")
        module.register(app)
