"""The tuneyard error hierarchy.

Every error a user can cause is a :class:`TuneyardError`: its message names the bad
value and what was expected, and ``hint`` says how to fix it. The CLI prints these
without a traceback and exits with ``exit_code`` (2 for user errors).
"""

from __future__ import annotations


class TuneyardError(Exception):
    """A problem the user can fix; printed as ``error: ...`` and exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class ConfigError(TuneyardError):
    """A config field, flag or ``--set`` override has a bad name or value."""


class LayoutError(TuneyardError):
    """A layout template or one of its field values cannot make a safe path."""


class ManifestError(TuneyardError):
    """A ``manifest.json`` is missing, unreadable or does not match the schema."""


class ArtifactNotFoundError(TuneyardError):
    """No artifact in the yard matches the given name or path."""


class ArtifactExistsError(TuneyardError):
    """The target artifact exists and the call may not continue or rename it."""


class QueryError(TuneyardError):
    """A ``--where`` / ``--sort`` expression cannot be parsed or names no field."""


class DataError(TuneyardError):
    """A dataset is missing, lacks a column or split, or has unusable labels."""


class ModelError(TuneyardError):
    """A model folder is not loadable, of an unknown family, or corrupt."""


class CompressionError(TuneyardError):
    """A compression request is impossible: bad rank, ratio or method."""


class TrainingError(TuneyardError):
    """A fine-tuning request is impossible: bad strategy, layers or resume target."""


class EvaluationError(TuneyardError):
    """An evaluation or grading request is impossible: bad grader, fields or split."""


class ExportError(TuneyardError):
    """A merge or export request is impossible: nothing to merge, a quantized base, a mismatch."""


class ValidationFailedError(TuneyardError):
    """An export validated below its ``--min-accuracy`` gate; it stays filed, marked ``failed``. Exit 1."""

    exit_code = 1


class UnsafeCheckpointError(TuneyardError):
    """A pickle checkpoint would need arbitrary code to load; needs ``--trust``."""


class InternalError(TuneyardError):
    """A bug in tuneyard, not the user's doing; exit code 1."""

    exit_code = 1
