"""Fixtures for report tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def run_cli() -> Callable[[list[str]], int]:
    """Run ``tuneyard ARGS`` in this process and return its exit code."""
    from tuneyard.cli import main

    def run(args: list[str]) -> int:
        try:
            main(args)
        except SystemExit as exit_info:
            return int(exit_info.code or 0)
        return 0

    return run
