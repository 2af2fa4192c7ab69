"""The --where / --sort language, run as SQL against a real index."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.errors import QueryError
from tuneyard.yard import Yard
from tuneyard.yard.query import compile_where

RUNS = [
    # name, arch, method, rank, task, metrics, config
    (
        "bert_fwsvd_r64",
        "bert",
        "fwsvd",
        64,
        "sst2",
        {"accuracy": 0.91, "sst2": {"f1": 0.90}},
        {"lora": {"r": 8}},
    ),
    (
        "bert_whiten_r32",
        "bert",
        "whiten",
        32,
        "sst2",
        {"accuracy": 0.85},
        {"lora": {"r": 16}, "lr-peak": 1e-4},
    ),
    ("roberta_fwsvd_r128", "roberta", "fwsvd", 128, "mnli", {"accuracy": 0.79}, {"lora": {"r": 8}}),
    ("modernbert_asvd_r16", "modernbert", "asvd", 16, "sst2", {"accuracy": 0.55}, {}),
    ("Bert_Frozen", "bert", None, None, "qnli", {}, {"note": "it's quoted"}),
]


@pytest.fixture
def query_yard(yard: Yard, make_artifact: Callable[..., Path]) -> Yard:
    for name, arch, method, rank, task, metrics, config in RUNS:
        make_artifact(
            "export",
            layout={"name": name},
            arch=arch,
            method=method,
            rank=rank,
            task=task,
            metrics=metrics,
            config=config,
        )
    return yard


def names(yard: Yard, where: str | None = None, **kwargs: object) -> list[str]:
    return [row["name"] for row in yard.query(where=where, sort=kwargs.pop("sort", "name"), **kwargs)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("rank <= 64", ["bert_fwsvd_r64", "bert_whiten_r32", "modernbert_asvd_r16"]),
        ("rank = 64", ["bert_fwsvd_r64"]),
        ("rank != 64", ["bert_whiten_r32", "modernbert_asvd_r16", "roberta_fwsvd_r128"]),
        ("arch = bert and rank > 16", ["bert_fwsvd_r64", "bert_whiten_r32"]),
        ("arch == 'roberta' or task = mnli", ["roberta_fwsvd_r128"]),
        ("metrics.accuracy >= 0.8", ["bert_fwsvd_r64", "bert_whiten_r32"]),
        ("metrics.accuracy < 0.8", ["modernbert_asvd_r16", "roberta_fwsvd_r128"]),
        ("metrics.sst2.f1 > 0.5", ["bert_fwsvd_r64"]),
        # and binds tighter than or; parentheses change that.
        ("task = qnli or arch = bert and rank >= 64", ["Bert_Frozen", "bert_fwsvd_r64"]),
        ("(task = qnli or arch = bert) and rank >= 64", ["bert_fwsvd_r64"]),
        ("not arch = bert", ["modernbert_asvd_r16", "roberta_fwsvd_r128"]),
        ("not (arch = bert or arch = roberta)", ["modernbert_asvd_r16"]),
        # A comparison on a missing field is false, so `not` of it is true.
        ("not metrics.accuracy >= 0.8", ["Bert_Frozen", "modernbert_asvd_r16", "roberta_fwsvd_r128"]),
        ("not rank > 20", ["Bert_Frozen", "modernbert_asvd_r16"]),
        ("metrics.accuracy is null", ["Bert_Frozen"]),
        (
            "method is not null and rank is not null and method != fwsvd",
            ["bert_whiten_r32", "modernbert_asvd_r16"],
        ),
        ("name ~ 'bert*'", ["Bert_Frozen", "bert_fwsvd_r64", "bert_whiten_r32"]),  # glob, any case
        ("name ~ '*bert_*r??'", ["bert_fwsvd_r64", "bert_whiten_r32", "modernbert_asvd_r16"]),
        ("name !~ '*bert_*'", ["roberta_fwsvd_r128"]),  # roberta holds 'bert', but not 'bert_'
        ("name like '%fwsvd%'", ["bert_fwsvd_r64", "roberta_fwsvd_r128"]),
        ("method in (whiten, asvd)", ["bert_whiten_r32", "modernbert_asvd_r16"]),
        ("config.lora.r = 8", ["bert_fwsvd_r64", "roberta_fwsvd_r128"]),
        ("config.`lr-peak` < 0.001", ["bert_whiten_r32"]),
        ("config.note = 'it''s quoted'", ["Bert_Frozen"]),
        (
            "kind = export and status = complete and created > '2000-01-01'",
            ["Bert_Frozen", "bert_fwsvd_r64", "bert_whiten_r32", "modernbert_asvd_r16", "roberta_fwsvd_r128"],
        ),
    ],
)
def test_where_selects_exactly_the_matching_runs(query_yard: Yard, where: str, expected: list[str]) -> None:
    assert sorted(names(query_yard, where)) == sorted(expected)


def test_plain_filters_combine_with_where(query_yard: Yard) -> None:
    assert names(query_yard, "rank < 100", arch="bert", task="sst2") == ["bert_fwsvd_r64", "bert_whiten_r32"]


def test_sort_by_metric_descending_puts_missing_values_last(query_yard: Yard) -> None:
    assert names(query_yard, sort="-metrics.accuracy") == [
        "bert_fwsvd_r64",
        "bert_whiten_r32",
        "roberta_fwsvd_r128",
        "modernbert_asvd_r16",
        "Bert_Frozen",
    ]
    assert names(query_yard, sort="arch,-rank", limit=3) == [
        "bert_fwsvd_r64",
        "bert_whiten_r32",
        "Bert_Frozen",
    ]


def test_user_text_never_becomes_sql(query_yard: Yard) -> None:
    assert names(query_yard, "name = 'x'' OR 1=1; DROP TABLE artifacts; --'") == []
    assert len(names(query_yard)) == len(RUNS)


@pytest.mark.parametrize(
    ("where", "message", "bad"),
    [
        ("acuracy > 0.8", "unknown field 'acuracy'", "acuracy"),
        ("rank <= 64 and metrics.accuracy >= high", "metrics.accuracy holds numbers, not text", "high"),
        ("arch = 5", "arch holds text, not a number", "5"),
        ("rank <= 64 and", "expected a field name, found the end of the expression", ""),
        ("(rank <= 64", "expected ')', found the end", ""),
        ("rank 64", "expected a comparison after the field", "64"),
        ("rank = 1 arch = bert", "unexpected 'arch'", "arch"),
        ("name = 'open", "unterminated string", "'"),
        ("rank >= 1 & arch = bert", "unexpected character '&'", "&"),
        ("rank ~ '1*'", "pattern matching needs a text field", "~"),
        ("metrics > 1", "metrics needs a key", "metrics"),
        ("rank = null", "compare with null using 'is null'", "null"),
        ("method in (fwsvd, null)", "null cannot be in a list", "null"),
        ("method in ()", "expected a value, found ')'", ")"),
        ("", "empty expression", ""),
    ],
)
def test_bad_expressions_point_at_the_offending_token(where: str, message: str, bad: str) -> None:
    with pytest.raises(QueryError) as caught:
        compile_where(where)
    column = where.rindex(bad)
    assert message in caught.value.message and f"(at column {column + 1})" in caught.value.message
    source_line, caret_line = caught.value.hint.splitlines()[:2]  # type: ignore[union-attr]
    assert source_line == f"  {where}"
    assert caret_line == "  " + " " * column + "^" * max(1, len(bad))


def test_bad_sort_key_names_the_allowed_fields(query_yard: Yard) -> None:
    with pytest.raises(QueryError, match="unknown field 'acc'") as caught:
        query_yard.query(sort="-acc")
    assert "metrics.<key>" in (caught.value.hint or "")


def random_expression(rng: random.Random, depth: int = 0) -> list[str]:
    """Tokens of a valid expression, built from the grammar."""
    roll = rng.random()
    if depth < 3 and roll < 0.3:
        return [
            *random_expression(rng, depth + 1),
            rng.choice(["and", "or"]),
            *random_expression(rng, depth + 1),
        ]
    if depth < 3 and roll < 0.4:
        return ["not", *random_expression(rng, depth + 1)]
    if depth < 3 and roll < 0.5:
        return ["(", *random_expression(rng, depth + 1), ")"]
    field, values = rng.choice(
        [
            ("rank", ["64", "-1", "8"]),
            ("metrics.accuracy", ["0.5", "1e-3"]),
            ("config.lora.r", ["8", "'x'"]),
            ("arch", ["bert", "'it''s'"]),
            ("config.`lr-peak`", ["0.1"]),
        ]
    )
    form = rng.randint(0, 4)
    if form == 0:
        return [field, rng.choice(["=", "!=", "<", "<=", ">", ">="]), rng.choice(values)]
    if form == 1:
        return [field, "is", *rng.choice([["null"], ["not", "null"]])]
    if form == 2:
        return [field, "in", "(", rng.choice(values), ",", rng.choice(values), ")"]
    if field in ("rank", "metrics.accuracy"):
        return [field, ">", rng.choice(values)]
    return [field, rng.choice(["~", "!~", "like"]), "'b*%'"]


def test_any_expression_either_runs_or_is_a_query_error(query_yard: Yard) -> None:
    """Valid expressions run; broken ones (one token dropped or added) run or raise QueryError only."""
    rng = random.Random(7)
    extra = ["(", ")", "and", "not", "=", ",", "null", "in", "'x'", "5"]
    for _ in range(300):
        tokens = random_expression(rng)
        query_yard.query(where=" ".join(tokens))
        broken = list(tokens)
        if rng.random() < 0.5:
            del broken[rng.randrange(len(broken))]
        else:
            broken.insert(rng.randrange(len(broken) + 1), rng.choice(extra))
        try:
            query_yard.query(where=" ".join(broken))
        except QueryError:
            pass
