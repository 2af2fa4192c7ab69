"""Every ratio and marked figure in README.md, CHANGELOG.md and docs/ is one bench/RESULTS.md records."""

from __future__ import annotations

from pathlib import Path

from doc_figures import quoted_figures, unclosed_figures_block, unrecorded_figures

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
RESULTS = (REPO / "bench" / "RESULTS.md").read_text()


def test_every_quoted_figure_is_in_bench_results() -> None:
    missing = [
        f"{doc.relative_to(REPO)}:{line}: {figure}"
        for doc in DOCS
        for line, figure in unrecorded_figures(doc.read_text(), RESULTS)
    ]
    assert not missing, "figures that bench/RESULTS.md does not record:\n" + "\n".join(missing)
    assert not [doc.name for doc in DOCS if unclosed_figures_block(doc.read_text())]


def test_the_benchmark_sections_are_marked_so_their_times_are_checked() -> None:
    marked = [doc.name for doc in DOCS if "<!-- figures -->" in doc.read_text()]
    assert {"compress.md", "evaluate.md", "experiments.md", "finetune.md", "label.md"} <= set(marked)


PLANTED = """\
# A doc

Compressing makes the forward pass 0.614x the dense time; the earlier claim was 0.453x.

<!-- figures -->
| model | forward |
|---|---:|
| dense MiniLM | 543.6 ms (a record) and 546 ms (not one) |
| whole process, fwsvd | 28.4 s, compiled 0.593x; ratio 1.115 (1.098..1.136) and 1.1154 |
<!-- /figures -->

Outside the marked block a time is not checked: 999 ms. A version is not a figure: torch 2.13.0.

<!-- refresh -->
```
a recorded demo run's output, rewritten by scripts/refresh_docs.py: 0.123x
```
"""


def test_the_check_finds_planted_unrecorded_figures_and_passes_recorded_ones() -> None:
    assert unrecorded_figures(PLANTED, RESULTS) == [(3, "0.453"), (8, "546"), (9, "1.1154")]
    checked = {figure for _, figure in quoted_figures(PLANTED)}
    assert {"0.614", "543.6", "28.4", "0.593", "1.115", "1.098", "1.136"} <= checked
    assert not {"999", "2.13", "13.0", "0.123"} & checked
    assert unclosed_figures_block("<!-- figures -->\n1.0\n") and not unclosed_figures_block(PLANTED)
