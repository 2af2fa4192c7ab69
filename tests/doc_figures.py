"""Which figures the docs quote that ``bench/RESULTS.md`` does not hold.

Two kinds of figure are checked, everywhere in a doc but inside a ``<!-- refresh -->``
block (those are rewritten from a recorded demo run by ``scripts/refresh_docs.py``):

* every ratio written ``N.NNx`` (``0.614x``): a speed or size ratio is a measurement;
* inside ``<!-- figures -->`` ... ``<!-- /figures -->`` (the docs' benchmark sections),
  also every decimal number (``1.115``, ``28.4 s``, ``(0.938..0.966)``) and every time
  in ``ms`` or ``s`` (``546 ms``).

A figure counts as recorded when its number, as written, is a number in RESULTS.md
(``0.61`` is not ``0.614``: a doc quotes the record, it does not round it).
"""

from __future__ import annotations

import re

# A number starts after no word character and no "digit." (not inside 2.13.0), and ends
# before no digit and no ".digit"; "0.938..0.966" is two numbers.
START, END = r"(?<!\w)(?<!\d\.)", r"(?!\d|\.\d)"
RATIO = re.compile(rf"{START}(\d+\.\d+)x\b")
DECIMAL = re.compile(rf"{START}(\d+\.\d+){END}")
TIME = re.compile(rf"{START}(\d+(?:\.\d+)?) ?(?:ms|s)\b")
FIGURES_START, FIGURES_END = "<!-- figures -->", "<!-- /figures -->"
REFRESH = "<!-- refresh"
FENCE = "```"


def is_recorded(number: str, results: str) -> bool:
    """Whether ``number`` appears in ``results`` as a number of its own (not inside a longer one)."""
    return re.search(rf"{START}{re.escape(number)}{END}", results) is not None


def quoted_figures(doc: str) -> list[tuple[int, str]]:
    """``(line number, figure)`` for every figure the doc quotes (see the module docstring)."""
    found: list[tuple[int, str]] = []
    in_figures = in_fence = in_refresh = False
    previous = ""
    for number, line in enumerate(doc.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            in_refresh = not in_fence and previous.startswith(REFRESH)
            in_fence = not in_fence
            in_refresh = in_refresh and in_fence
        elif stripped == FIGURES_START:
            in_figures = True
        elif stripped == FIGURES_END:
            in_figures = False
        elif not in_refresh:
            patterns = (RATIO, DECIMAL, TIME) if in_figures else (RATIO,)
            figures = {match.group(1) for pattern in patterns for match in pattern.finditer(line)}
            found += [(number, figure) for figure in sorted(figures)]
        previous = stripped
    return found


def unrecorded_figures(doc: str, results: str) -> list[tuple[int, str]]:
    """The doc's figures that ``results`` (RESULTS.md's text) does not contain."""
    return [(line, figure) for line, figure in quoted_figures(doc) if not is_recorded(figure, results)]


def unclosed_figures_block(doc: str) -> bool:
    """A ``<!-- figures -->`` without its end would check the rest of the doc as figures."""
    lines = [line.strip() for line in doc.splitlines()]
    return lines.count(FIGURES_START) != lines.count(FIGURES_END)
