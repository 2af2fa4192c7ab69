"""An artifact's lineage: the chain of models it descends from, oldest first.

A manifest names only its direct parents. To tell which run and which base model an
export came from, :func:`lineage` walks on through the parents' own manifests until it
reaches a model that is not an artifact of the yard (a hub id, a downloaded folder, a
``.gguf`` file).

Which parent continues the chain
--------------------------------
An artifact can have several parents: a merged LoRA model names the run whose adapter it
holds and the base model that adapter sits on; a run's ``best/`` names the run and the
run's own parents. At each step the walk follows one of them, chosen in this order:

1. a parent that is, or was, an artifact of this yard (its manifest is on disk, the
   index knows its id, or the link carries an id) over a hub id, a plain folder or a
   file, since only an artifact leads further back;
2. a parent whose role is not ``base``: the base is what the other parents were made
   on, so following the run leads to the base anyway, with the run in between;
3. the order in which the manifest lists them.

A parent that is gone is shown as missing. When the index still holds its manifest the
walk goes on through it; otherwise it goes on through the best of the other parents, so
an export whose run was deleted after the merge still leads back to the base model.

The walk ends at a parent that is not an artifact, and at a parent already in the chain
(a cycle, which only a hand-edited manifest can make).

Nothing here imports pydantic: ``runs show`` reads manifests as plain JSON.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

# tuneyard.yard.manifest's name for it; that module imports pydantic, which `runs show` avoids.
MANIFEST_FILE = "manifest.json"

# artifact: found in the yard; external: not an artifact (hub id, plain folder, file);
# missing: recorded as an artifact but gone; cycle: already listed further down the chain.
StepState = Literal["artifact", "external", "missing", "cycle"]


@dataclass(frozen=True)
class LineageStep:
    """One model of a chain.

    ``kind`` is the artifact's kind, or the role its child gave it when it is not an
    artifact the yard can read (``base``, ``init``, ``source``). ``role`` is how the next
    model of the chain used this one; None for the artifact the chain ends at.
    """

    kind: str
    path: str
    id: str | None
    role: str | None
    state: StepState

    def to_data(self) -> dict[str, Any]:
        """The step as JSON-ready data (``runs show --format json``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class _Resolved:
    """A parent link, looked up: its manifest when the yard has one, and where it is."""

    link: dict[str, Any]
    record: dict[str, Any] | None
    path: str
    state: StepState

    @property
    def role(self) -> str:
        """How the child used this parent; ``base`` when the link names none, as the index reads it."""
        return str(self.link.get("role") or "base")

    @property
    def id(self) -> str | None:
        """The artifact's id: its manifest's when found, else the one the link recorded."""
        return self.record.get("id") if self.record else self.link.get("id")

    def step(self, state: StepState | None = None) -> LineageStep:
        """This parent as a line of the chain (``state`` overrides, for a cycle)."""
        kind = str(self.record["kind"]) if self.record else self.role
        return LineageStep(kind, self.path, self.id, self.role, state or self.state)


def lineage(yard: Yard, record: dict[str, Any]) -> list[LineageStep]:
    """``record``'s ancestors, oldest first, then ``record`` itself.

    ``record`` is a manifest as data (what :meth:`Yard.find` returns). The module
    docstring says which parent the walk follows when there are several.
    """
    chain = [LineageStep(str(record["kind"]), str(record["path"]), record.get("id"), None, "artifact")]
    seen = _keys(chain[0].path, chain[0].id)
    current: dict[str, Any] | None = record
    while current is not None and (links := parent_links(current)):
        current = None
        for parent in follow(yard, links):
            if _keys(parent.path, parent.id) & seen:
                chain.append(parent.step("cycle"))
                return chain[::-1]
            chain.append(parent.step())
            seen |= _keys(parent.path, parent.id)
            current = parent.record
    return chain[::-1]


@dataclass(frozen=True)
class Family:
    """An artifact's relatives: the artifacts made from it, and the chain it descends from."""

    children: list[dict[str, Any]]
    chain: list[LineageStep]

    def to_data(self) -> dict[str, Any]:
        """The ``children`` and ``lineage`` entries of ``runs show --format json`` and the web view's API."""
        return {
            "children": [{"id": c["id"], "path": c["path"], "kind": c["kind"]} for c in self.children],
            "lineage": [step.to_data() for step in self.chain],
        }


def family(yard: Yard, record: dict[str, Any]) -> Family:
    """``record``'s children (from the index, when there is one) and its :func:`lineage`."""
    children = yard.index.children(record["id"], record["path"]) if yard.has_index else []
    return Family(children, lineage(yard, record))


def _keys(path: str, artifact_id: str | None) -> set[str]:
    """What identifies a model already in the chain: its path, and its id when it has one."""
    return {path, artifact_id} if artifact_id else {path}


def parent_links(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The well-formed entries of a manifest's ``parents`` (a hand-edited one may hold others)."""
    parents = record.get("parents")
    if not isinstance(parents, list):
        return []
    return [link for link in parents if isinstance(link, dict) and isinstance(link.get("path"), str)]


def follow(yard: Yard, links: list[dict[str, Any]]) -> list[_Resolved]:
    """The parents the chain goes through next, newest first (the module docstring gives the order).

    Usually one; two when the preferred parent is gone without a trace of its manifest:
    it, and the best of the others, through which the walk goes on.
    """
    ranked = sorted((resolve(yard, link) for link in links), key=_preference)  # stable: ties keep order
    if ranked[0].state == "missing" and ranked[0].record is None:
        return ranked[:1] + [parent for parent in ranked[1:] if parent.state != "missing"][:1]
    return ranked[:1]


def _preference(parent: _Resolved) -> tuple[bool, bool]:
    """Sort key: artifacts (present or gone) before anything else, then non-``base`` roles first."""
    return parent.state == "external", parent.role == "base"


def resolve(yard: Yard, link: dict[str, Any]) -> _Resolved:
    """Find the artifact a parent link names: at its recorded path, else by id in the index (it moved).

    A manifest at the path that carries another id is a different artifact made there
    after the recorded one was deleted, so it does not count.
    """
    recorded_id = link.get("id")
    folder = yard.absolute(link["path"])
    on_disk = read_record(yard, folder)
    if on_disk is not None and recorded_id in (None, on_disk.get("id")):
        return _Resolved(link, on_disk, yard.relative(folder), "artifact")
    row = yard.index.by_id(recorded_id) if recorded_id and yard.has_index else None
    if row is not None:
        present = yard.absolute(row["path"]).is_dir()
        return _Resolved(link, row["manifest"], row["path"], "artifact" if present else "missing")
    # A path without an id may be a hub id ("org/model"); only an absolute one is surely a path.
    gone = recorded_id is not None or (Path(link["path"]).is_absolute() and not folder.exists())
    return _Resolved(link, None, link["path"], "missing" if gone else "external")


def read_record(yard: Yard, folder: Path) -> dict[str, Any] | None:
    """``folder``'s manifest as data, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads(yard.storage.read_bytes(folder / MANIFEST_FILE))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


@dataclass(frozen=True)
class Descendant:
    """An artifact made from another (``runs lineage --down``), with those made from it."""

    kind: str
    path: str
    id: str
    children: tuple[Descendant, ...]

    def to_data(self) -> dict[str, Any]:
        """The subtree as JSON-ready data (``runs lineage --format json``)."""
        return {
            "kind": self.kind,
            "path": self.path,
            "id": self.id,
            "children": [c.to_data() for c in self.children],
        }


def descendants(yard: Yard, record: dict[str, Any]) -> list[Descendant]:
    """The artifacts made from ``record`` (merges, exports, releases, runs started from it), as a tree.

    Children are found in the index by the parent's id or path, so a parent moved or
    renamed since keeps its children. Each artifact appears once, under the first parent
    the walk reaches it from (a merge made of a run and its base sits under the run's branch
    or the base's, not both).
    """
    if not yard.has_index:
        return []
    seen = {str(record["id"])}

    def below(artifact_id: str, path: str) -> tuple[Descendant, ...]:
        found = []
        for row in yard.index.children(artifact_id, path):
            if row["id"] in seen:
                continue
            seen.add(row["id"])
            found.append(row)
        return tuple(Descendant(r["kind"], r["path"], r["id"], below(r["id"], r["path"])) for r in found)

    return list(below(str(record["id"]), str(record["path"])))


def lineage_dot(chain: list[LineageStep], tree: list[Descendant]) -> str:
    """Graphviz DOT of the ancestors (edges labelled with how each was used) and the descendants."""
    nodes: dict[str, str] = {}
    edges: list[str] = []

    def node(kind: str, path: str) -> str:
        label = json.dumps(f"{kind}\n{path}")
        nodes.setdefault(path, f"  {json.dumps(path)} [label={label}];")
        return json.dumps(path)

    def down(parent: str, children: tuple[Descendant, ...]) -> None:
        for child in children:
            edges.append(f"  {parent} -> {node(child.kind, child.path)};")
            down(json.dumps(child.path), child.children)

    for older, newer in zip(chain, chain[1:]):
        source, target = node(older.kind, older.path), node(newer.kind, newer.path)
        edges.append(f"  {source} -> {target} [label={json.dumps(older.role)}];")
    down(node(chain[-1].kind, chain[-1].path), tuple(tree))
    return "digraph lineage {\n  rankdir=LR;\n" + "\n".join([*nodes.values(), *edges]) + "\n}\n"
