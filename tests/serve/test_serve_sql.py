"""The runs table's filter and order run as one SQL statement on the index, with a LIMIT."""

from __future__ import annotations

from pathlib import Path

from tuneyard.serve.listing import RunsQuery, listing
from tuneyard.serve.read_only import ReadOnlyYard
from tuneyard.yard import Manifest, Yard


def test_the_page_query_is_sql_on_the_index(tmp_path: Path) -> None:
    records = [
        Manifest(kind="run", name=f"run{n}", arch="bert" if n % 2 else "gpt2", rank=8 * (n % 4 + 1),
                 metrics={"sst2": {"accuracy": n / 100}}, path=f"outputs/run{n}").to_data()
        for n in range(60)
    ]  # fmt: skip
    Yard.open(tmp_path).index.rebuild(records)
    yard = ReadOnlyYard(tmp_path)
    statements: list[str] = []
    yard.index.connection.set_trace_callback(statements.append)
    query = RunsQuery(where="metrics.sst2.accuracy >= 0.3", sort="-metrics.sst2.accuracy", limit=5,
                      filters={"arch": "bert"})  # fmt: skip
    shown = listing(yard, query)
    assert [row["name"] for row in shown.rows] == ["run59", "run57", "run55", "run53", "run51"]
    assert shown.more and shown.metric_columns == ["sst2.accuracy"]
    selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT A.NAME")]
    assert len(selects) == 1
    assert "WHERE" in selects[0] and "'sst2.accuracy'" in selects[0] and "'bert'" in selects[0]
    assert selects[0].rstrip().endswith("LIMIT 6")
    yard.close()


def test_a_yard_without_an_index_lists_nothing_and_says_why(tmp_path: Path) -> None:
    yard = ReadOnlyYard(tmp_path)
    shown = listing(yard, RunsQuery(where="metrics.sst2.accuracy > 0.5"))
    assert shown.rows == [] and "no index in" in shown.notes[0] and "runs reindex" in shown.notes[0]
    assert not (tmp_path / ".tuneyard").exists()  # read-only: not even an empty index is created
