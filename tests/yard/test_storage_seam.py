"""The storage seam has no silent local fallback: every manifest read or write in tuneyard names its storage.

``read_manifest(folder)`` alone reads the local disk: on a yard in object storage that is
the working copy, which may lack (or hold an old copy of) what the bucket holds. The
functions keep a local default for callers outside any yard (tests, foreign folders);
tuneyard's own code always says which storage it means.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tuneyard

# function -> the position of its storage argument
STORAGE_ARGUMENT = {"read_manifest": 1, "read_manifest_if_any": 1, "write_manifest": 2, "update_manifest": 2}


def calls_without_storage(source: Path) -> list[str]:
    """``file:line name`` of each call in ``source`` that leaves its storage to the default."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name not in STORAGE_ARGUMENT:
            continue
        if len(node.args) <= STORAGE_ARGUMENT[name] and not any(k.arg == "storage" for k in node.keywords):
            found.append(f"{source.name}:{node.lineno} {name}")
    return found


def test_every_manifest_read_and_write_in_tuneyard_names_its_storage() -> None:
    package = Path(tuneyard.__file__).parent
    found = [call for source in sorted(package.rglob("*.py")) for call in calls_without_storage(source)]
    assert found == []


def test_the_check_sees_a_call_that_leaves_out_its_storage(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    calls = ["read_manifest(folder)", "read_manifest(folder, yard.storage)", "update_manifest(f, change)"]
    source.write_text("\n".join(calls) + "\n")
    assert calls_without_storage(source) == ["sample.py:1 read_manifest", "sample.py:3 update_manifest"]
