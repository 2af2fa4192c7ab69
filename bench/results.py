"""``bench/RESULTS.md``: one section per benchmark, each new result at the end of its own section."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
REPO = RESULTS.parent.parent


def command_line(script: str, args: argparse.Namespace, leave_out: tuple[str, ...] = ("no_append",)) -> str:
    """``python bench/<script> ...`` with every option's value, defaults included.

    Written into the record, so a later run repeats this one exactly even after a
    default changes. A false flag and an unset option are left out; paths inside the
    repository are written relative to it.
    """
    words = ["python", f"bench/{script}"]
    for name, value in vars(args).items():
        if name in leave_out or value is None or value is False:
            continue
        words.append("--" + name.replace("_", "-"))
        if value is True:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            path = Path(item) if isinstance(item, Path) else None
            words.append(str(path.relative_to(REPO) if path and path.is_relative_to(REPO) else item))
    return shlex.join(words)


def record(section: str, block: str) -> None:
    """Add ``block`` at the end of ``## {section}`` (the section is created at the end if missing).

    Other benchmarks keep their own sections in the same file, so a new result goes
    into its own section rather than after whatever section happens to be last.
    """
    heading = f"## {section}"
    lines = RESULTS.read_text().splitlines(keepends=True) if RESULTS.is_file() else ["# Benchmark results\n"]
    if heading not in (line.rstrip("\n") for line in lines):
        lines += ["\n" if lines and lines[-1].strip() else "", f"{heading}\n\n"]
        lines = [line for line in lines if line]
        at = len(lines)
    else:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == heading)
        at = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    before = "".join(lines[:at]).rstrip("\n") + "\n\n"  # one blank line before the new block
    after = ("\n" if at < len(lines) else "") + "".join(lines[at:])
    RESULTS.write_text(before + block.rstrip("\n") + "\n" + after)
