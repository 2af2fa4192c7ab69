"""Re-run the terminal sessions shown in the docs and paste their real output back.

    bash scripts/demo.sh demo-yard/docs && .venv/bin/python scripts/refresh_docs.py demo-yard/docs

Every fenced block right under a ``<!-- refresh -->`` line in README.md and docs/*.md is
a terminal session: lines starting with ``$ `` are commands (a trailing backslash
continues one onto the next line), everything else is their output. The sessions run in
the yard one demo run left, one after the other in the order of ``FILES`` and of the
blocks in each file, so a later block sees what an earlier one made: every output in
the docs comes from that one recorded run. ``<!-- refresh: errors -->`` marks a session
whose commands are expected to fail (error messages shown on purpose); elsewhere a
failing command stops the script, leaving the files as they were.

The commands run with bash in the yard's folder, with ``data`` linked to the repository's
``data/`` folder, the repository's ``.venv/bin`` first on PATH and ``TUNEYARD_HOME`` and
``HF_HUB_OFFLINE=1`` set, as the demo runs them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = (
    "README.md",
    "docs/yard.md",
    "docs/finetune.md",
    "docs/compress.md",
    "docs/evaluate.md",
    "docs/export.md",
)
MARKER = re.compile(r"^<!-- refresh(?P<errors>: errors)? -->$")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Session:
    """One marked block: where it sits in its file, and its commands."""

    start: int  # index of the opening fence line
    end: int  # index of the closing fence line
    commands: list[str]  # each as written, continuation lines included
    errors_expected: bool


def sessions(lines: list[str]) -> list[Session]:
    """The marked blocks of a file, in order."""
    found = []
    for index, line in enumerate(lines):
        marker = MARKER.match(line)
        if not marker:
            continue
        start = index + 1
        if not lines[start].startswith("```"):
            raise SystemExit(f"a refresh marker must sit right above a code fence (line {index + 1})")
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        found.append(Session(start, end, commands(lines[start + 1 : end]), bool(marker.group("errors"))))
    return found


def commands(block: list[str]) -> list[str]:
    """The ``$ `` commands of a block, continuation lines joined with newlines as written."""
    found: list[str] = []
    continued = False
    for line in block:
        if continued:
            found[-1] += "\n" + line
        elif line.startswith("$ "):
            found.append(line[2:])
        else:
            continue
        continued = line.endswith("\\")
    return found


def environment(yard: Path) -> dict[str, str]:
    """What the demo runs its commands with; wide columns so tables print unwrapped."""
    return {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "TUNEYARD_HOME": str(yard),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "400",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }


def run(command: str, yard: Path, errors_expected: bool) -> list[str]:
    """The lines ``command`` prints (stdout and stderr, as a terminal shows them)."""
    print(f"$ {command}", flush=True)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=yard,
        env=environment(yard),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = [ANSI.sub("", line).rstrip() for line in done.stdout.rstrip("\n").splitlines()]
    if done.returncode != 0 and not errors_expected:
        print("\n".join(output[-30:]), file=sys.stderr)
        raise SystemExit(f"the command exited with {done.returncode}; no file was changed.")
    return output


def refresh(text: str, yard: Path) -> str:
    """``text`` with every marked session's output replaced by a fresh run's."""
    lines = text.split("\n")
    replaced = list(lines)
    offset = 0
    for session in sessions(lines):
        block: list[str] = []
        for number, command in enumerate(session.commands):
            if number:
                block.append("")
            block += [f"$ {line}" if i == 0 else line for i, line in enumerate(command.split("\n"))]
            block += run(command, yard, session.errors_expected)
        start, end = session.start + 1 + offset, session.end + offset
        replaced[start:end] = block
        offset += len(block) - (session.end - session.start - 1)
    return "\n".join(replaced)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("yard", type=Path, help="a yard made by scripts/demo.sh")
    args = parser.parse_args()
    yard = args.yard.resolve()
    if not (yard / ".tuneyard" / "index.db").is_file():
        raise SystemExit(f"{yard} is not a yard made by scripts/demo.sh (it has no .tuneyard/index.db).")
    if not (yard / "data").exists():
        (yard / "data").symlink_to(REPO / "data")
    updated = {name: refresh((REPO / name).read_text(), yard) for name in FILES}
    for name, text in updated.items():
        (REPO / name).write_text(text)
        print(f"refreshed {name}")


if __name__ == "__main__":
    main()
