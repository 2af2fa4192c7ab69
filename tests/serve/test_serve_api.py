"""The JSON API answers the queries ``runs ls / show / compare`` answer, from the same library calls."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from served_yard import RUNS, Served


def get_json(served: Served, path: str, **params: Any) -> tuple[int, Any]:
    query = urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(f"{served.url}{path}?{query}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_runs_match_the_library_query(served: Served) -> None:
    where = "metrics.sst2.accuracy >= 0.8 and kind = finetuned"
    status, rows = get_json(served, "/api/runs", where=where, sort="-metrics.sst2.accuracy")
    assert status == 200
    assert [row["name"] for row in rows] == ["bert_lora_a", "bert_lora_b"]
    assert rows == served.yard.query(where=where, sort="-metrics.sst2.accuracy")
    _, everything = get_json(served, "/api/runs")
    assert len(everything) == len(RUNS) + 1
    _, lora = get_json(served, "/api/runs", strategy="lora", limit=1, sort="metrics.sst2.accuracy")
    assert [row["name"] for row in lora] == ["bert_lora_b"]


def test_a_bad_where_is_a_400_with_the_cli_message(served: Served) -> None:
    status, body = get_json(served, "/api/runs", where="metrics.sst2.accuracy >>= 1")
    assert status == 400
    assert body["error"].startswith("--where:") and "^" in body["hint"]
    status, body = get_json(served, "/api/runs", limit="lots")
    assert status == 400 and "limit" in body["error"]


def test_one_run_with_its_lineage(served: Served) -> None:
    ids = served.ids()
    status, record = get_json(served, f"/api/runs/{ids['bert_full'].lower()}")
    assert status == 200
    assert record["metrics"]["sst2"]["accuracy"] == 0.78
    assert [step["kind"] for step in record["lineage"]] == ["compressed", "finetuned"]
    _, base = get_json(served, f"/api/runs/{served.base_id()}")
    assert {child["path"] for child in base["children"]} == {f"outputs/{name}" for name, _, _ in RUNS}
    assert get_json(served, "/api/runs/01NOSUCHID")[0] == 404


def test_compare_gives_metric_deltas(served: Served) -> None:
    ids = served.ids()
    status, table = get_json(served, "/api/compare", id=[ids["bert_lora_a"], ids["bert_frozen"]])
    assert status == 200
    assert table["columns"] == [
        "field",
        "outputs/bert_lora_a",
        "outputs/bert_frozen",
        "Δ outputs/bert_frozen",
    ]
    rows = {row[0]: row[1:] for row in table["rows"]}
    assert rows["metrics.sst2.accuracy"] == [0.91, 0.64, -0.27]
    assert rows["config.lr"] == [1e-4, 1e-3, None]
    assert get_json(served, "/api/compare", id=[served.base_id()])[0] == 400
