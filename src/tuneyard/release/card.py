"""A release's model card: the artifact's card (:mod:`tuneyard.task_types.model_card`)
titled with the release's name, version and notes, loading through its ``release:`` reference.

The loading snippet runs as written in the yard's folder, or with ``TUNEYARD_HOME`` set to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneyard.task_types.model_card import render_card
from tuneyard.yard.lineage import LineageStep


def render_release_card(release: dict[str, Any], chain: Sequence[LineageStep], license_id: str) -> str:
    """The card of ``release`` (its manifest as data), whose artifact descends through ``chain``."""
    return render_card(
        release,
        chain,
        title=release_title(release),
        loading=loading_snippet(release["name"]),
        library_name="peft" if release.get("strategy") in ("lora", "qlora") else "transformers",
        license_id=license_id,
    )


def release_title(release: dict[str, Any]) -> str:
    """The card's heading, ``NAME@VERSION``, and the release notes."""
    return f"# {release['name']}\n\n{release['release']['notes']}"


def loading_snippet(reference: str) -> str:
    """A Python block that loads the release (run where the yard is, or with TUNEYARD_HOME)."""
    return (
        "Run in the yard's folder, or set `TUNEYARD_HOME` to it:\n\n"
        "```python\n"
        "import tuneyard\n\n"
        f'model = tuneyard.load("release:{reference}")\n'
        "print(type(model).__name__)\n"
        "```"
    )
