"""``releases/{name}/CHANGELOG.md``: one entry per version, made from the releases' manifests.

The whole file is regenerated from the manifests at each release (under the name's
lock), so it cannot drift from them: each entry has the date, the notes, the artifact,
the metric deltas against the previous version and the config settings that changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuneyard.yard.index import flatten_metrics
from tuneyard.yard.summary import flatten_config


def render_changelog(name: str, releases: Sequence[dict[str, Any]]) -> str:
    """The changelog of ``name`` from its releases' manifests (oldest first), newest entry on top."""
    entries = [
        _entry(release, releases[number - 1] if number else None) for number, release in enumerate(releases)
    ]
    return f"# Changelog: {name}\n\n" + "\n\n".join(reversed(entries)) + "\n"


def _entry(release: dict[str, Any], previous: dict[str, Any] | None) -> str:
    info = release["release"]
    artifact = release["parents"][0]
    lines = [f"## {info['version']} - {release['created'][:10]}", ""]
    if info["notes"]:
        lines += [info["notes"], ""]
    lines.append(f"- artifact: `{artifact['path']}` ({artifact.get('id') or 'no id'})")
    if previous is None:
        lines.append("- first release")
    lines += metric_lines(release, previous)
    if previous is not None:
        lines += config_lines(release, previous)
    return "\n".join(lines)


def metric_lines(release: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """``- metric: 0.81 -> 0.86 (+0.05)`` per metric (its value alone without a previous version)."""
    now = flatten_metrics(release.get("metrics") or {})
    before = flatten_metrics(previous.get("metrics") or {}) if previous else {}
    lines = []
    for key in sorted(set(now) | set(before)):
        if previous is None:
            lines.append(f"- {key}: {now[key]:.4g}")
        elif key not in before:
            lines.append(f"- {key}: {now[key]:.4g} (new)")
        elif key not in now:
            lines.append(f"- {key}: {before[key]:.4g} -> none (dropped)")
        else:
            lines.append(f"- {key}: {before[key]:.4g} -> {now[key]:.4g} ({now[key] - before[key]:+.4g})")
    return lines


def config_lines(release: dict[str, Any], previous: dict[str, Any]) -> list[str]:
    """``- config learning_rate: 0.0001 -> 0.0003`` per training setting that changed."""
    now = flatten_config(release.get("config") or {})
    before = flatten_config(previous.get("config") or {})
    changed = [key for key in sorted(set(now) | set(before)) if now.get(key) != before.get(key)]
    if not changed:
        return ["- config: unchanged"]
    return [f"- config {key}: {before.get(key, 'unset')} -> {now.get(key, 'unset')}" for key in changed]
