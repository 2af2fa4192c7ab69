"""The ``--where`` / ``--sort`` language: a small, safe filter over the yard index.

An expression is tokenized and parsed here (recursive descent, no ``eval``) and
compiled to a parameterized SQL condition over the ``artifacts`` table (alias ``a``):
user text only ever reaches SQLite as bound parameters. Grammar::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := field op value
                | field ("~" | "!~" | "like") pattern
                | field "in" "(" value ("," value)* ")"
                | field "is" ["not"] "null"
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
                | "descends_from" "=" value
    field      := column | "metrics." key | "config." key      (key: dotted names)
    value      := 'string' | "string" | number | bare-word | null

``~`` matches a glob pattern (``*``, ``?``, ``[...]``), case-insensitively; ``like``
is SQL ``LIKE`` (``%``, ``_``). A comparison on a field an artifact does not have is
false (so ``not`` of it is true). ``descends_from = X`` holds for every artifact made
from X (a name, path or id of an artifact, or a parent path such as a base model's), or
from what was made from X, and so on, along the index's lineage links (by id, so renamed
folders count). Errors point at the offending token.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from tuneyard.errors import QueryError
from tuneyard.yard.fields import BY_NAME, COLUMNS

PREFIXES = ("metrics", "config")
DESCENDS_FROM = "descends_from"

# Artifacts whose lineage reaches the artifact(s) named ? (name, path or id), or the parent
# path ?: the parents table walked down from them, by id or by path.
_DESCENDANTS_SQL = """a.id IN (
    WITH RECURSIVE below(id, path) AS (
        SELECT c.id, c.path FROM artifacts AS c JOIN parents AS p ON p.artifact_id = c.id
        WHERE p.parent_path = ?
           OR p.parent_id IN (SELECT id FROM artifacts WHERE name = ? OR path = ? OR id = ?)
        UNION
        SELECT c.id, c.path FROM below AS b JOIN parents AS p ON p.parent_id = b.id OR p.parent_path = b.path
        JOIN artifacts AS c ON c.id = p.artifact_id
    ) SELECT id FROM below)"""
COMPARISONS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
KEYWORDS = {"and", "or", "not", "like", "in", "is", "null"}

Value = str | float | int | None

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.-]))
  | (?P<op>==|!=|<>|<=|>=|!~|[=<>~(),])
  | (?P<word>(?:`[^`]+`|[\w.*?\[\]-])+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One lexeme of an expression, with where it starts (for error carets)."""

    kind: str  # string | number | op | word | end
    text: str
    position: int

    @property
    def keyword(self) -> str | None:
        """The lower-cased keyword this word is, if it is one."""
        lowered = self.text.lower()
        return lowered if self.kind == "word" and lowered in KEYWORDS else None


@dataclass
class Condition:
    """A compiled SQL condition over ``artifacts AS a``, with its bound parameters."""

    sql: str
    params: list[object] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)


def query_error(source: str, option: str, token: Token | None, message: str, hint: str = "") -> QueryError:
    """A :class:`QueryError` whose hint shows the expression with a caret under ``token``."""
    position = token.position if token is not None else len(source)
    width = max(1, len(token.text)) if token is not None and token.kind != "end" else 1
    caret = f"  {source}\n  {' ' * position}{'^' * width}"
    where = f"{option}: {message} (at column {position + 1})."
    return QueryError(where, caret + (f"\n{hint}" if hint else ""))


def tokenize(source: str, option: str = "--where") -> list[Token]:
    """Split ``source`` into tokens; an unexpected character is an error pointing at it."""
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            bad = Token("error", source[position], position)
            if source[position] in "'\"":
                raise query_error(source, option, bad, "unterminated string", "Close it with the same quote.")
            raise query_error(source, option, bad, f"unexpected character {source[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


def split_field(text: str) -> list[str]:
    """``metrics.`eval loss`.x`` -> ``["metrics", "eval loss", "x"]``."""
    return [part.strip("`") for part in re.findall(r"`[^`]+`|[^.`]+", text)]


def field_hint() -> str:
    """The list of fields the language knows, for error hints."""
    return (
        f"Fields: {', '.join(COLUMNS)}, metrics.<key> (e.g. metrics.accuracy), "
        f"config.<key> (e.g. config.lora.r), {DESCENDS_FROM} (e.g. {DESCENDS_FROM} = my-run)."
    )


@dataclass(frozen=True)
class FieldRef:
    """A resolved field: an index column, a flattened metric key, or a config JSON path."""

    source: str  # column | metrics | config
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        """The column name, or the dotted key under ``metrics.`` / ``config.``."""
        return ".".join(self.parts)

    @property
    def label(self) -> str:
        """How a user writes the field."""
        return self.name if self.source == "column" else f"{self.source}.{self.name}"

    @property
    def numeric(self) -> bool | None:
        """True for numbers, False for text, None when unknown until run time (config)."""
        if self.source == "column":
            return BY_NAME[self.name].numeric
        return True if self.source == "metrics" else None

    def value_sql(self) -> tuple[str, list[object]]:
        """An SQL expression for this field's value on row ``a`` (NULL when missing)."""
        if self.source == "column":
            return f"a.{self.name}", []
        if self.source == "metrics":
            return "(SELECT value FROM metrics WHERE artifact_id = a.id AND key = ?)", [self.name]
        return (
            "json_extract((SELECT json FROM manifests WHERE artifact_id = a.id), ?)",
            [json_path(["config", *self.parts])],
        )


def json_path(parts: list[str]) -> str:
    """A JSON path with every key quoted, so keys with ``-`` or spaces work."""
    return "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in parts)


def resolve_field(source: str, option: str, token: Token) -> FieldRef:
    """Turn a word token into a :class:`FieldRef`, or point at it with the allowed fields."""
    parts = split_field(token.text)
    head = parts[0].lower()
    if head in PREFIXES:
        if len(parts) < 2:
            raise query_error(source, option, token, f"{head} needs a key", f"Example: {head}.accuracy")
        return FieldRef(head, tuple(parts[1:]))
    if len(parts) == 1 and head in COLUMNS:
        return FieldRef("column", (head,))
    close = difflib.get_close_matches(head, [*COLUMNS, *PREFIXES], n=1)
    suggestion = f"Did you mean {close[0]!r}? " if close else ""
    raise query_error(source, option, token, f"unknown field {token.text!r}", suggestion + field_hint())


class Parser:
    """Recursive-descent parser that compiles straight to a :class:`Condition`."""

    def __init__(self, source: str, option: str = "--where") -> None:
        self.source = source
        self.option = option
        self.tokens = tokenize(source, option)
        self.index = 0
        self.metric_keys: list[str] = []

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, token: Token, message: str, hint: str = "") -> QueryError:
        return query_error(self.source, self.option, token, message, hint)

    def expect_op(self, text: str) -> Token:
        token = self.current
        if token.kind != "op" or token.text != text:
            shown = repr(token.text) if token.kind != "end" else "the end"
            raise self.error(token, f"expected {text!r}, found {shown}")
        return self.advance()

    def parse(self) -> Condition:
        if self.current.kind == "end":
            raise self.error(self.current, "empty expression", 'Example: --where "metrics.accuracy >= 0.8"')
        condition = self.parse_or()
        if self.current.kind != "end":
            raise self.error(
                self.current, f"unexpected {self.current.text!r}", "Join conditions with and / or."
            )
        condition.metric_keys = list(dict.fromkeys(self.metric_keys))
        return condition

    def parse_or(self) -> Condition:
        parts = [self.parse_and()]
        while self.current.keyword == "or":
            self.advance()
            parts.append(self.parse_and())
        return combine(parts, "OR")

    def parse_and(self) -> Condition:
        parts = [self.parse_not()]
        while self.current.keyword == "and":
            self.advance()
            parts.append(self.parse_not())
        return combine(parts, "AND")

    def parse_not(self) -> Condition:
        token = self.current
        if token.keyword == "not":
            self.advance()
            inner = self.parse_not()
            return Condition(f"NOT {inner.sql}", inner.params)
        if token.kind == "op" and token.text == "(":
            self.advance()
            inner = self.parse_or()
            self.expect_op(")")
            return Condition(f"({inner.sql})", inner.params)
        return self.parse_comparison()

    def parse_comparison(self) -> Condition:
        token = self.current
        if token.kind != "word" or token.keyword:
            found = "the end of the expression" if token.kind == "end" else repr(token.text)
            raise self.error(token, f"expected a field name, found {found}", field_hint())
        if token.text.lower() == DESCENDS_FROM:
            return self.parse_descends_from()
        ref = resolve_field(self.source, self.option, self.advance())
        if ref.source == "metrics":
            self.metric_keys.append(ref.name)
        operator = self.current
        if operator.keyword == "is":
            self.advance()
            negate = self.current.keyword == "not"
            if negate:
                self.advance()
            if self.current.keyword != "null":
                raise self.error(
                    self.current, "expected null after 'is'", "Example: metrics.accuracy is not null"
                )
            self.advance()
            return presence(ref, present=negate)
        if operator.keyword == "in":
            self.advance()
            return self.parse_in(ref)
        if operator.keyword == "like" or (operator.kind == "op" and operator.text in ("~", "!~")):
            self.advance()
            return self.parse_pattern(ref, operator)
        if operator.kind != "op" or operator.text not in COMPARISONS:
            raise self.error(
                operator,
                "expected a comparison after the field",
                "Use one of = != < <= > >= ~ !~ like in, or 'is [not] null'.",
            )
        self.advance()
        value_token = self.current
        value = self.parse_value(ref)
        if value is None:
            raise self.error(value_token, "compare with null using 'is null' or 'is not null'")
        return compare(ref, COMPARISONS[operator.text], value)

    def parse_descends_from(self) -> Condition:
        self.advance()
        self.expect_op("=")
        token = self.current
        if token.kind not in ("string", "word", "number"):
            raise self.error(
                token, f"{DESCENDS_FROM} needs an artifact", f"Example: {DESCENDS_FROM} = my-run"
            )
        self.advance()
        ancestor = unquote(token)
        return Condition(_DESCENDANTS_SQL, [ancestor, ancestor, ancestor.rstrip("/"), ancestor.upper()])

    def parse_in(self, ref: FieldRef) -> Condition:
        self.expect_op("(")
        parts = [self.parse_list_item(ref)]
        while self.current.kind == "op" and self.current.text == ",":
            self.advance()
            parts.append(self.parse_list_item(ref))
        self.expect_op(")")
        return Condition(
            f"({' OR '.join(part.sql for part in parts)})", [p for part in parts for p in part.params]
        )

    def parse_list_item(self, ref: FieldRef) -> Condition:
        token = self.current
        value = self.parse_value(ref)
        if value is None:
            raise self.error(token, "null cannot be in a list", f"Use: {ref.label} is null")
        return compare(ref, "=", value)

    def parse_pattern(self, ref: FieldRef, operator: Token) -> Condition:
        if ref.numeric:
            raise self.error(
                operator,
                f"pattern matching needs a text field; {operator.text!r} cannot apply here",
                "Compare numbers with = < <= > >=.",
            )
        token = self.current
        if token.kind not in ("string", "word") or token.keyword:
            raise self.error(token, "expected a pattern", "Example: name ~ 'bert*'  or  name like 'bert%'")
        pattern = unquote(self.advance())
        value_sql, params = ref.value_sql()
        if operator.keyword == "like":
            match_sql = f"{value_sql} LIKE ?"
        else:
            match_sql = f"lower({value_sql}) GLOB lower(?)"
        if operator.text == "!~":
            match_sql = f"NOT ({match_sql})"
        return Condition(f"COALESCE({match_sql}, 0)", [*params, pattern])

    def parse_value(self, ref: FieldRef) -> Value:
        token = self.current
        if token.keyword == "null":
            self.advance()
            return None
        if token.kind == "number":
            self.advance()
            number = float(token.text)
            if ref.numeric is False:
                raise self.error(token, f"{ref.label} holds text, not a number", f"Quote it: '{token.text}'.")
            return int(number) if number.is_integer() and re.fullmatch(r"[-+]?\d+", token.text) else number
        if token.kind in ("string", "word") and not token.keyword:
            self.advance()
            if ref.numeric:
                raise self.error(
                    token, f"{ref.label} holds numbers, not text", "Compare it with a number, e.g. >= 0.8."
                )
            return unquote(token)
        found = "the end of the expression" if token.kind == "end" else repr(token.text)
        raise self.error(token, f"expected a value, found {found}", "Strings go in quotes: name = 'my-run'.")


def unquote(token: Token) -> str:
    """The text of a string token without quotes (doubled quotes un-doubled), or the bare word."""
    if token.kind == "string":
        quote = token.text[0]
        return token.text[1:-1].replace(quote * 2, quote)
    return token.text


def combine(parts: list[Condition], joiner: str) -> Condition:
    if len(parts) == 1:
        return parts[0]
    return Condition(
        "(" + f" {joiner} ".join(part.sql for part in parts) + ")",
        [param for part in parts for param in part.params],
    )


def compare(ref: FieldRef, operator: str, value: object) -> Condition:
    """``field op value``, false when the artifact lacks the field."""
    if ref.source == "metrics":
        # Answered by the (key, value) index instead of one lookup per artifact.
        return Condition(
            f"a.id IN (SELECT artifact_id FROM metrics WHERE key = ? AND value {operator} ?)",
            [ref.name, value],
        )
    value_sql, params = ref.value_sql()
    if ref.source == "config":
        return Condition(f"COALESCE({value_sql} {operator} ?, 0)", [*params, value])
    # Spelled as an AND (not COALESCE) so SQLite can still use the column's index.
    return Condition(f"({value_sql} {operator} ? AND {value_sql} IS NOT NULL)", [value])


def presence(ref: FieldRef, present: bool) -> Condition:
    """``field is not null`` (``present``) or ``field is null``."""
    if ref.source == "metrics":
        negation = "" if present else "NOT "
        return Condition(f"{negation}a.id IN (SELECT artifact_id FROM metrics WHERE key = ?)", [ref.name])
    value_sql, params = ref.value_sql()
    return Condition(f"{value_sql} IS {'NOT ' if present else ''}NULL", params)


def compile_where(source: str) -> Condition:
    """Compile a ``--where`` expression to SQL (raises :class:`QueryError` on bad input)."""
    return Parser(source).parse()


def equals(field_name: str, value: str) -> Condition:
    """The condition of a plain filter flag such as ``--arch bert``."""
    return compare(FieldRef("column", (field_name,)), "=", value)


def all_of(conditions: list[Condition]) -> Condition:
    """Every condition at once (``TRUE`` when there are none)."""
    if not conditions:
        return Condition("1")
    joined = combine(conditions, "AND")
    joined.metric_keys = list(dict.fromkeys(key for part in conditions for key in part.metric_keys))
    return joined


@dataclass
class Ordering:
    """A compiled ``ORDER BY`` clause and the metric keys it sorts by."""

    sql: str
    params: list[object] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)


def compile_sort(source: str) -> Ordering:
    """``-metrics.accuracy,name`` -> ``ORDER BY`` (``-`` descending); missing values sort last."""
    terms: list[str] = []
    params: list[object] = []
    keys: list[str] = []
    offset = 0
    for piece in source.split(","):
        stripped = piece.strip()
        start = offset + len(piece) - len(piece.lstrip())
        offset += len(piece) + 1
        if not stripped:
            raise query_error(
                source,
                "--sort",
                Token("end", "", start),
                "empty sort key",
                "Example: --sort -metrics.accuracy,name",
            )
        descending = stripped.startswith("-")
        name = stripped.lstrip("+-").strip()
        token = Token("word", name, start + len(stripped) - len(stripped.lstrip("+-")))
        if not name:
            raise query_error(source, "--sort", token, "a sort key needs a field name", field_hint())
        ref = resolve_field(source, "--sort", token)
        if ref.source == "metrics":
            keys.append(ref.name)
        value_sql, value_params = ref.value_sql()
        terms.append(f"{value_sql} {'DESC' if descending else 'ASC'} NULLS LAST")
        params.extend(value_params)
    return Ordering(", ".join(terms), params, keys)


def mentioned_metric_keys(where: str | None, sort: str | None) -> list[str]:
    """Metric keys a ``--where`` / ``--sort`` mentions, once each: listings show them as columns."""
    keys = compile_where(where).metric_keys if where else []
    keys += compile_sort(sort).metric_keys if sort else []
    return list(dict.fromkeys(keys))
