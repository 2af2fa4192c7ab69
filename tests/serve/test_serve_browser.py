"""What a person sees in headless Chromium (Debian's ``chromium``, driven by Playwright).

Screenshots go to the test's folder, and also to ``$TUNEYARD_SCREENSHOTS`` when set
(how docs/serve_runs.png and docs/serve_artifact.png are made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from served_yard import RUNS, Served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise AssertionError("Debian's chromium is missing: apt-get install chromium (the README's command)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def screenshot(page: object, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)  # type: ignore[attr-defined]
    assert (tmp_path / name).stat().st_size > 1000
    if os.environ.get("TUNEYARD_SCREENSHOTS"):
        shutil.copy(tmp_path / name, Path(os.environ["TUNEYARD_SCREENSHOTS"]) / name)


def test_the_runs_table_filters_and_sorts(served: Served, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 600})  # type: ignore[attr-defined]
    page.goto(f"{served.url}/runs")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == len(RUNS) + 1
    assert page.locator("#runs thead").inner_text().count("sst2.accuracy") == 1
    screenshot(page, tmp_path, "serve_runs.png")

    page.fill("input[name=where]", "metrics.sst2.accuracy >= 0.8")
    page.click("button[type=submit] >> text=filter")
    page.wait_for_url("**/runs?where=*")
    assert sorted(rows.locator("td:nth-child(2)").all_inner_texts()) == ["bert_lora_a", "bert_lora_b"]

    # A click loads a new page: expect() waits for it (reading at once could read the page before).
    page.click("#runs thead a:text('sst2.accuracy')")  # descending first
    expect(rows.locator("td:nth-child(2)")).to_have_text(["bert_lora_a", "bert_lora_b"])
    page.click("#runs thead a:text('sst2.accuracy')")
    expect(rows.locator("td:nth-child(2)")).to_have_text(["bert_lora_b", "bert_lora_a"])

    page.fill("input[name=where]", "metrics.sst2.acuracy > 1")
    page.click("button[type=submit] >> text=filter")
    assert "did you mean metrics.sst2.accuracy" in page.locator(".note").inner_text()
    page.fill("input[name=where]", "rank >")
    page.click("button[type=submit] >> text=filter")
    assert "error: --where:" in page.locator("#error").inner_text()
    assert page.input_value("input[name=where]") == "rank >"  # kept, to correct


def test_an_artifact_page_shows_its_plot_and_lineage(served: Served, browser: object, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{served.url}/runs?sort=-metrics.sst2.accuracy")
    page.click("#runs a:text('bert_lora_a')")
    images = page.locator("#plots img")
    images.first.wait_for()
    page.wait_for_load_state("load")  # every image fetched (or failed)
    widths = images.evaluate_all("imgs => imgs.map(img => img.complete ? img.naturalWidth : 0)")
    assert len(widths) == 2 and min(widths) > 100, widths  # the confusion matrix and the curves
    assert "compressed" in page.locator("#lineage").inner_text()
    assert "0.91" in page.locator("#metrics").inner_text()
    assert "training_log.csv" in page.locator("#files").inner_text()
    screenshot(page, tmp_path, "serve_artifact.png")

    page.click("#lineage a:text('compressed')")
    expect(page.locator("#children a")).to_have_count(len({n for n, _, _ in RUNS}))
    assert {text.split("/")[-1] for text in page.locator("#children a").all_inner_texts()} == {
        n for n, _, _ in RUNS
    }


def test_compare_ticked_runs(served: Served, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{served.url}/runs?kind=finetuned&sort=-metrics.sst2.accuracy")
    page.check("input[aria-label='compare bert_lora_a']")
    page.check("input[aria-label='compare bert_full']")
    page.click("text=compare ticked runs")
    row = page.locator("#compare tr:has-text('metrics.sst2.accuracy')")
    expect(row.locator("td")).to_have_text(["0.91", "0.78", "-0.13"])
