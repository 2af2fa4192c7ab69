"""Semantic version numbers of releases: ``MAJOR.MINOR.PATCH``, compared as numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from tuneyard.errors import ConfigError

# No leading zeros (semver.org), so "1.02.0" and "1.2.0" cannot both name one release.
_VERSION = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")

FIRST = "1.0.0"


class Bump(StrEnum):
    """Which part of the previous version a new release increments."""

    major = "major"
    minor = "minor"
    patch = "patch"


@dataclass(frozen=True, order=True)
class Version:
    """A release version; orders as numbers (``1.10.0`` after ``1.9.0``)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Self:
        """``"1.2.0"`` -> ``Version(1, 2, 0)``; anything else is a :class:`ConfigError`."""
        match = _VERSION.fullmatch(text.strip())
        if match is None:
            raise ConfigError(
                f"version {text!r} is not MAJOR.MINOR.PATCH.",
                "Give three numbers without leading zeros, e.g. --version 1.2.0, or use --bump minor.",
            )
        return cls(*(int(part) for part in match.groups()))

    @classmethod
    def is_version(cls, text: str) -> bool:
        """Whether ``text`` is a well-formed version (an alias name never is)."""
        return _VERSION.fullmatch(text) is not None

    def bumped(self, part: Bump) -> Version:
        """The next version: ``1.2.3`` bumped ``minor`` is ``1.3.0``."""
        if part is Bump.major:
            return Version(self.major + 1, 0, 0)
        if part is Bump.minor:
            return Version(self.major, self.minor + 1, 0)
        return Version(self.major, self.minor, self.patch + 1)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def next_version(released: list[Version], bump: Bump) -> Version:
    """The version ``bump`` gives after the highest of ``released``; ``1.0.0`` for a first release."""
    return max(released).bumped(bump) if released else Version.parse(FIRST)
