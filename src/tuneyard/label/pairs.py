"""Preference pairs from a labelling job: the teacher writes the chosen answer, or ranks two.

Two ways a teacher makes pairs out of rows that hold a prompt (``--prompt-column``):

* ``--rejected-column COLUMN``: the teacher's answer (the target) is the chosen one, the
  row's ``COLUMN`` (typically the student's own answer, from ``generate``) the rejected one;
* ``--candidates FIRST,SECOND``: the teacher sees both answers and says which is better,
  ``A`` (the first) or ``B`` (the second); that one is chosen, the other rejected.

The filed rows have the ``preference`` task type's columns (``prompt``, ``chosen``,
``rejected``; see :mod:`tuneyard.task_types.preference.data`), so ``finetune --objective
dpo`` reads them as they are. A pair whose two answers are the same teaches nothing and
is left out, counted in the manifest (``pairs_left_out``): with ``--candidates`` before
the teacher is asked (:func:`without_equal_candidates`; a request paid for nothing), with
``--rejected-column`` once the teacher's answer turns out to be the rejected one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneyard.errors import DataError
from tuneyard.label.options import RANKS, PairOptions

if TYPE_CHECKING:
    from datasets import Dataset

PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def as_pairs(rows: Dataset, pairs: PairOptions, target_column: str) -> tuple[Dataset, int]:
    """``rows`` (labelled, the teacher's target in ``target_column``) as preference pairs, and how many
    pairs were left out because their two answers are the same."""
    chosen, rejected = [], []
    for row in rows:
        if pairs.candidates is not None:
            first, second = (row[column] for column in pairs.candidates)
            better_first = row[target_column] == RANKS[0]
            chosen.append(first if better_first else second)
            rejected.append(second if better_first else first)
        else:
            chosen.append(row[target_column])
            rejected.append(row[pairs.rejected_column])
    kept = [index for index, (good, bad) in enumerate(zip(chosen, rejected, strict=True)) if good != bad]
    paired = rows.remove_columns(target_column)
    for name in PAIR_COLUMNS:  # a source's own column of that name is kept, renamed
        if name in paired.column_names and name != pairs.prompt_column:
            paired = paired.rename_column(name, f"original_{name}")
    if pairs.prompt_column != "prompt":
        paired = paired.rename_column(pairs.prompt_column, "prompt")
    paired = paired.add_column("chosen", chosen).add_column("rejected", rejected)
    return paired.select(kept), len(rows) - len(kept)


def without_equal_candidates(rows: Dataset, pairs: PairOptions) -> tuple[Dataset, int]:
    """``rows`` less those whose two ``--candidates`` are the same answer, and how many those were.

    Ranking two equal answers cannot make a pair, so such rows are never sent to the
    teacher. Without ``--candidates`` the rows come back as they are.
    """
    if pairs.candidates is None:
        return rows, 0
    first, second = pairs.candidates
    kept = [index for index, (a, b) in enumerate(zip(rows[first], rows[second], strict=True)) if a != b]
    return (rows if len(kept) == len(rows) else rows.select(kept)), len(rows) - len(kept)


def check_columns(columns: list[str], pairs: PairOptions, split: str) -> None:
    """Refuse, before any request, pair columns the split lacks."""
    named = [pairs.prompt_column, pairs.rejected_column, *(pairs.candidates or [])]
    missing = [column for column in named if column is not None and column not in columns]
    if missing:
        raise DataError(
            f"the {split} split has no column {missing[0]!r} for the preference pairs.",
            f"Its columns: {', '.join(columns)}.",
        )
