"""The subset of the Kusto Query Language (KQL) that Azure Resource Graph accepts over ``Resources``.

Pure: no I/O. ``parse()`` tokenizes the query, parses it by recursive descent and type-checks it
against the table's schema, compiling every expression to a Python closure once; ``Query.run()``
then only calls closures, so 40,000 rows filter in milliseconds.

The contract is "the right answer or an error", never a wrong answer: valid KQL outside the subset
raises ``KqlError`` with code ``UnsupportedOperator`` naming the construct, and a malformed query,
an unknown column or a type error raises ``InvalidQuery``; both give the line and column.

Semantics follow the KQL documentation:

* ``string`` values are never null (a missing string column reads as ``""``); ``dynamic`` values
  (``properties``, ``tags``, ...) can be, and member or index access into null or a missing key
  is null.
* ``==`` with exactly one null side is false, ``!=`` is true, both null is null; ``<`` and the
  others are null with a null side; ``where`` keeps only rows whose predicate is true.
* ``==``, ``!=`` and ``in`` are case-sensitive; ``=~``, ``has``, ``contains``, ``startswith`` and
  ``endswith`` are case-insensitive and read a dynamic value through ``tostring()`` (null -> "").
* ``order by``/``sort by`` default to ``desc``; nulls come first for ``asc``, last for ``desc``; the
  sort is stable. Sorting or grouping by a ``dynamic`` value is an error, as in KQL: wrap it in
  ``tostring()``.
* A column computed without a name is named as KQL names it: ``properties.a.b`` becomes
  ``properties_a_b``, ``tags['env']`` becomes ``tags_env``, ``tostring(x)`` takes ``x``'s name,
  anything else is ``Column1``, ``Column2``, ...
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

__all__ = ["KqlError", "Query", "parse", "run_query", "RESOURCES_SCHEMA"]

# KQL scalar types. Only these five occur in the Resources table and the supported functions.
STRING, LONG, REAL, BOOL, DYNAMIC = "string", "long", "real", "bool", "dynamic"
_NUMERIC = (LONG, REAL)

RESOURCES_SCHEMA: dict[str, str] = {
    "id": STRING,
    "name": STRING,
    "type": STRING,
    "tenantId": STRING,
    "kind": STRING,
    "location": STRING,
    "resourceGroup": STRING,
    "subscriptionId": STRING,
    "managedBy": STRING,
    "sku": DYNAMIC,
    "plan": DYNAMIC,
    "properties": DYNAMIC,
    "tags": DYNAMIC,
    "identity": DYNAMIC,
    "zones": DYNAMIC,
    "extendedLocation": DYNAMIC,
}

SUPPORTED_OPERATORS = (
    "where, project, project-away, extend, order by, sort by, limit, take, summarize count() [by ...], summarize by ..."
)
SUPPORTED_FUNCTIONS = (
    "tostring, tolower, toupper, toint, tolong, isnull, isnotnull, isempty, isnotempty, "
    "array_length, strlen, iff, iif, not"
)
SUPPORTED_SCALAR_OPERATORS = (
    "== != < <= > >= =~ !~ in !in in~ !in~ has !has contains !contains startswith !startswith "
    "endswith !endswith and or"
)

# Other real Resource Graph tables: valid KQL, just not emulated (unknown names are InvalidQuery).
_ARG_TABLES = frozenset(
    "resourcecontainers resourcecontainerchanges resourcechanges advisorresources "
    "alertsmanagementresources appserviceresources authorizationresources chaosresources "
    "communitygalleryresources computeresources desktopvirtualizationresources dnsresources "
    "edgeorderresources extendedlocationresources featureresources guestconfigurationresources "
    "healthresourcechanges healthresources insightsresources iotsecurityresources "
    "kubernetesconfigurationresources maintenanceresources managedservicesresources migrateresources "
    "networkresources patchassessmentresources patchinstallationresources policyresources "
    "recoveryservicesresources securityresources servicehealthresources spotresources "
    "supportresources".split()
)

_SUPPORTED_TABULAR = frozenset(
    {"where", "project", "project-away", "extend", "order", "sort", "limit", "take", "summarize"}
)
# Tabular operators of KQL that the emulator does not implement: named in UnsupportedOperator.
_OTHER_TABULAR = frozenset(
    "as consume count datatable distinct evaluate externaldata facet filter find fork getschema "
    "graph-match invoke join lookup macro-expand make-graph make-series mv-apply mv-expand parse "
    "parse-kv parse-where partition print project-keep project-rename project-reorder range reduce "
    "render sample sample-distinct scan search serialize top top-hitters top-nested union".split()
)
_STATEMENTS = frozenset({"let", "set", "declare", "alias", "pattern", "restrict"})
# Words that the lexer joins across a '-' (elsewhere '-' is subtraction).
_HYPHENATED = frozenset(w for w in _SUPPORTED_TABULAR | _OTHER_TABULAR if "-" in w)

_STRING_OPS = {  # operator -> (test, negated)
    "=~": ("eq", False),
    "!~": ("eq", True),
    "has": ("has", False),
    "!has": ("has", True),
    "contains": ("contains", False),
    "!contains": ("contains", True),
    "startswith": ("startswith", False),
    "!startswith": ("startswith", True),
    "endswith": ("endswith", False),
    "!endswith": ("endswith", True),
}
_IN_OPS = {"in": (False, False), "!in": (True, False), "in~": (False, True), "!in~": (True, True)}
_ORDER_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_EQ_OPS = ("==", "!=", "<>")
# Scalar operators of KQL outside the subset (their '!' forms too): named in UnsupportedOperator.
_OTHER_WORD_OPS = frozenset(
    "has_cs contains_cs startswith_cs endswith_cs hasprefix hasprefix_cs hassuffix hassuffix_cs "
    "has_any has_all matches between like notlike containscs notcontains notcontainscs notbetween".split()
)

_TIMESPAN_UNITS = frozenset(
    "d day days h hr hrs hour hours m min minute minutes s sec second seconds ms milli millis "
    "millisecond milliseconds microsecond microseconds tick ticks".split()
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# Punctuation, two-character operators first so that '==' is not read as '=' '='.
_OPERATOR_CHARS = tuple("== != <> <= >= =~ !~ => | ( ) [ ] { } , . = < > + - * / % ; : ? !".split())


class KqlError(Exception):
    """A query the emulator refuses: ``code`` is ``UnsupportedOperator`` (valid KQL outside the subset)
    or ``InvalidQuery``; ``message`` names the offending token and where it is."""

    def __init__(self, code: str, message: str, position: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position  # 0-based offset into the query, when known


def _location(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    column = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {column}"


def _invalid(src: str, pos: int, message: str) -> KqlError:
    return KqlError("InvalidQuery", f"{message} (at {_location(src, pos)})", pos)


def _unsupported(src: str, pos: int, what: str, supported: str) -> KqlError:
    return KqlError(
        "UnsupportedOperator",
        f"{what} is not supported by the emulator's Resource Graph subset (supported: {supported}) "
        f"(at {_location(src, pos)})",
        pos,
    )


# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "ident", "string", "number", "op" (punctuation and '!word' operators), "eof"
    value: Any
    pos: int


def _tokenize(src: str) -> list[_Token]:
    toks: list[_Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif src.startswith("//", i):
            end = src.find("\n", i)
            i = n if end < 0 else end
        elif c in "'\"":
            value, end = _read_string(src, i)
            toks.append(_Token("string", value, i))
            i = end
        elif c in "@hH" and i + 1 < n and src[i + 1] in "'\"":
            # @'...' is verbatim (no escapes); h'...' only hides the literal from logs.
            value, end = _read_verbatim(src, i + 1) if c == "@" else _read_string(src, i + 1)
            toks.append(_Token("string", value, i))
            i = end
        elif c.isdigit():
            kind, value, end = _read_number(src, i)
            toks.append(_Token(kind, value, i))
            i = end
        elif c.isalpha() or c == "_":
            word, end = _read_word(src, i)
            toks.append(_Token("ident", word, i))
            i = end
        elif c == "!" and i + 1 < n and (src[i + 1].isalpha() or src[i + 1] == "_"):
            word, end = _read_word(src, i + 1)  # '!has', '!in~', ...: one operator token
            toks.append(_Token("op", "!" + word, i))
            i = end
        else:
            for op in _OPERATOR_CHARS:
                if src.startswith(op, i):
                    toks.append(_Token("op", op, i))
                    i += len(op)
                    break
            else:
                raise _invalid(src, i, f"Unexpected character {c!r}")
    toks.append(_Token("eof", None, n))
    return toks


def _read_word(src: str, i: int) -> tuple[str, int]:
    n = len(src)
    j = i
    while j < n and (src[j].isalnum() or src[j] == "_"):
        j += 1
    word = src[i:j]
    if word == "in" and j < n and src[j] == "~":
        return "in~", j + 1
    if j < n and src[j] == "-":  # project-away, mv-expand, ...; otherwise '-' is subtraction
        k = j + 1
        while k < n and (src[k].isalnum() or src[k] == "_"):
            k += 1
        if src[i:k] in _HYPHENATED:
            return src[i:k], k
    return word, j


def _read_string(src: str, i: int) -> tuple[str, int]:
    quote, out, j, n = src[i], [], i + 1, len(src)
    while j < n:
        ch = src[j]
        if ch == quote:
            return "".join(out), j + 1
        if ch == "\n":
            break
        if ch == "\\":
            esc = src[j + 1 : j + 2]
            if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", src[j + 2 : j + 6]):
                out.append(chr(int(src[j + 2 : j + 6], 16)))
                j += 6
                continue
            if esc not in _ESCAPES or not esc:
                raise _invalid(src, j, f"Unknown escape sequence '\\{esc}' in string literal")
            out.append(_ESCAPES[esc])
            j += 2
            continue
        out.append(ch)
        j += 1
    raise _invalid(src, i, "Unterminated string literal")


def _read_verbatim(src: str, i: int) -> tuple[str, int]:
    quote, out, j, n = src[i], [], i + 1, len(src)
    while j < n:
        ch = src[j]
        if ch == quote:
            if src[j + 1 : j + 2] == quote:  # a doubled quote stands for itself
                out.append(quote)
                j += 2
                continue
            return "".join(out), j + 1
        if ch == "\n":
            break
        out.append(ch)
        j += 1
    raise _invalid(src, i, "Unterminated string literal")


def _read_number(src: str, i: int) -> tuple[str, Any, int]:
    m = _NUMBER_RE.match(src, i)
    assert m is not None
    text, j = m.group(), m.end()
    k = j
    while k < len(src) and (src[k].isalnum() or src[k] == "_"):
        k += 1
    if k > j:  # 1d, 30m: a timespan; the parser rejects it, after naming any enclosing function
        if src[j:k].lower() in _TIMESPAN_UNITS:
            return "timespan", src[i:k], k
        raise _invalid(src, i, f"Malformed number '{src[i:k]}'")
    if text[:2] in ("0x", "0X"):
        return "number", int(text, 16), j
    if any(ch in text for ch in ".eE"):
        return "number", float(text), j
    return "number", int(text), j


# ---------------------------------------------------------------------------------------------
# Runtime helpers: the value semantics that the compiled closures share


def _to_str(v: Any) -> str:
    """KQL tostring(): null is "", bool is true/false, dynamic bags and arrays are compact JSON."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _to_long(v: Any) -> int | None:
    """KQL toint()/tolong(): null when the value does not convert."""
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if math.isfinite(v) else None
    try:
        return int(str(v).strip(), 10)
    except ValueError:
        return None


def _is_number(v: Any) -> bool:
    return type(v) is int or type(v) is float  # not bool: True is no number in KQL


def _same(a: Any, b: Any) -> bool:
    """Equality of two non-null values: values of different kinds are never equal."""
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is not type(b):
        return False
    return a == b


def _eq3(a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None if a is None and b is None else False
    return _same(a, b)


def _ne3(a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None if a is None and b is None else True
    return not _same(a, b)


def _column_getter(name: str, typ: str) -> Callable[[dict], Any]:
    if typ == STRING:

        def get_string(row: dict) -> Any:
            v = row.get(name)
            return "" if v is None else v  # KQL strings have no null

        return get_string
    return lambda row: row.get(name)


def _has_regex(term: str) -> re.Pattern[str]:
    # `has` matches a whole term: the match must not continue into letters or digits on either side.
    left = r"(?<![^\W_])" if term[:1].isalnum() else ""
    right = r"(?![^\W_])" if term[-1:].isalnum() else ""
    return re.compile(left + re.escape(term) + right, re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Compiled expressions

_NO_CONST = object()


@dataclass(slots=True)
class _Expr:
    fn: Callable[[dict], Any]  # row -> value
    type: str
    pos: int
    name: str | None = None  # the column name KQL derives when the expression is not named
    const: Any = _NO_CONST  # the value, for a literal


def _literal(value: Any, typ: str, pos: int) -> _Expr:
    return _Expr(lambda row: value, typ, pos, const=value)


# ---------------------------------------------------------------------------------------------
# Pipeline stages: each turns an iterator of row dicts into another


class _Where:
    def __init__(self, predicate: Callable[[dict], Any]):
        self.predicate = predicate

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        return filter(self.predicate, rows)  # a null (None) predicate drops the row, as in KQL


class _Project:
    def __init__(self, items: list[tuple[str, Callable[[dict], Any]]]):
        self.items = tuple(items)

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        items = self.items
        return ({name: fn(row) for name, fn in items} for row in rows)


class _ProjectAway:
    """Only the schema changes: the final materialization copies just the remaining columns."""

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        return rows


class _Extend:
    def __init__(self, items: list[tuple[str, Callable[[dict], Any]]]):
        self.items = tuple(items)

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        for row in rows:
            out = dict(row)
            for name, fn in self.items:  # in order: a later column may use an earlier one
                out[name] = fn(out)
            yield out


class _OrderBy:
    def __init__(self, keys: list[tuple[Callable[[dict], Any], bool, bool]]):
        self.keys = keys  # (value, descending, nulls_first)

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        ordered = list(rows)
        # One stable sort per key, least significant first, gives the multi-key order.
        for fn, descending, nulls_first in reversed(self.keys):
            # Nulls (and NaN, grouped with null in KQL) sort on the "low" side when they must come
            # first ascending or last descending (reverse=True flips the low side to the end).
            null_key = (0, 0) if nulls_first != descending else (2, 0)

            def key(row: dict, fn: Callable[[dict], Any] = fn, null_key: tuple = null_key) -> tuple:
                v = fn(row)
                return null_key if v is None or v != v else (1, v)

            ordered.sort(key=key, reverse=descending)  # reverse keeps the sort stable
        return iter(ordered)


class _Limit:
    def __init__(self, count: int):
        self.count = count

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        return islice(rows, self.count)


class _Summarize:
    def __init__(self, keys: list[tuple[str, Callable[[dict], Any]]], count_name: str | None):
        self.names = [name for name, _ in keys]
        self.fns = tuple(fn for _, fn in keys)
        self.count_name = count_name

    def apply(self, rows: Iterator[dict]) -> Iterator[dict]:
        if not self.fns:  # without `by`, one row even over no input
            return iter([{self.count_name: sum(1 for _ in rows)}])
        counts: dict[tuple, int] = {}  # insertion-ordered: groups come out in first-seen order
        fns = self.fns
        for row in rows:
            key = tuple(fn(row) for fn in fns)
            counts[key] = counts.get(key, 0) + 1
        if self.count_name is None:  # `summarize by`: one row per distinct group
            return (dict(zip(self.names, key, strict=True)) for key in counts)
        return ({**dict(zip(self.names, key, strict=True)), self.count_name: n} for key, n in counts.items())


# ---------------------------------------------------------------------------------------------
# The compiled query


class Query:
    """A parsed, type-checked query over the Resources table; ``run()`` may be called many times.

    ``columns`` (names, in output order) and ``column_types`` (name -> KQL type) are known from
    parsing, before any ``run()``."""

    def __init__(self, text: str, stages: list[Any], schema: dict[str, str], materialize: bool):
        self.text = text
        self.columns: list[str] | None = list(schema)
        self.column_types: dict[str, str] = dict(schema)
        self._stages = stages
        # Rows straight from project/summarize already hold exactly the output columns.
        self._getters = [(c, _column_getter(c, t)) for c, t in schema.items()] if materialize else None

    def run(self, rows: Iterable[dict]) -> list[dict]:
        it: Iterator[dict] = iter(rows)
        for stage in self._stages:
            it = stage.apply(it)
        getters = self._getters
        if getters is None:
            return list(it)
        return [{name: get(row) for name, get in getters} for row in it]

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


def parse(query: str) -> Query:
    """Parse and compile ``query``; raises ``KqlError``."""
    if not isinstance(query, str):
        raise KqlError("InvalidQuery", "The query must be a string")
    return _Parser(query).parse_query()


def run_query(query: str, rows: Iterable[dict]) -> list[dict]:
    return parse(query).run(rows)


# ---------------------------------------------------------------------------------------------
# The parser: recursive descent, compiling as it goes against the schema of the current stage


class _Parser:
    def __init__(self, src: str):
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0

    # -- token helpers

    def peek(self, ahead: int = 0) -> _Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def advance(self) -> _Token:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def at_op(self, value: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "op" and tok.value == value

    def at_ident(self, value: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == "ident" and (value is None or tok.value == value)

    def accept_op(self, value: str) -> bool:
        if self.at_op(value):
            self.advance()
            return True
        return False

    def accept_ident(self, value: str) -> bool:
        if self.at_ident(value):
            self.advance()
            return True
        return False

    def expect_op(self, value: str, context: str) -> _Token:
        if not self.at_op(value):
            raise self.unexpected(f"expected '{value}' {context}")
        return self.advance()

    def describe(self, tok: _Token) -> str:
        if tok.kind == "eof":
            return "end of query"
        if tok.kind == "string":
            return f"string {tok.value!r}"
        return f"'{tok.value}'"

    def unexpected(self, hint: str, tok: _Token | None = None) -> KqlError:
        tok = tok or self.peek()
        return _invalid(self.src, tok.pos, f"Syntax error: unexpected {self.describe(tok)}, {hint}")

    def invalid(self, pos: int, message: str) -> KqlError:
        return _invalid(self.src, pos, message)

    # -- the query and its tabular operators

    def parse_query(self) -> Query:
        schema = dict(RESOURCES_SCHEMA)
        stages: list[Any] = []
        materialize = True
        first = self.peek()
        if first.kind == "eof":
            raise self.invalid(0, "The query is empty")
        if first.kind == "ident" and first.value in _STATEMENTS:
            raise _unsupported(
                self.src, first.pos, f"Statement '{first.value}'", "a single tabular expression"
            )
        if first.kind == "ident" and first.value not in _SUPPORTED_TABULAR | _OTHER_TABULAR:
            self.advance()
            self.check_table(first)
            if self.peek().kind == "eof":
                return Query(self.src, stages, schema, materialize)
            self.expect_op("|", "after the table name")
        else:  # ARG accepts a query without a table: it means Resources
            self.accept_op("|")
        while True:
            stage = self.parse_stage(schema)
            stages.append(stage)
            if isinstance(stage, (_Project, _Summarize)):
                materialize = False
            elif isinstance(stage, (_Extend, _ProjectAway)):
                materialize = True
            if self.peek().kind == "eof":
                return Query(self.src, stages, schema, materialize)
            if not self.at_op("|"):
                raise self.unexpected("expected '|' or the end of the query")
            self.advance()

    def check_table(self, tok: _Token) -> None:
        name = tok.value
        if name.lower() == "resources":
            return
        if name.lower() in _ARG_TABLES or name.lower().endswith(("resources", "changes")):
            raise _unsupported(self.src, tok.pos, f"Table '{name}'", "the Resources table")
        raise self.invalid(
            tok.pos, f"Unknown table or tabular operator '{name}' (the emulator has only 'Resources')"
        )

    def parse_stage(self, schema: dict[str, str]) -> Any:
        tok = self.peek()
        if tok.kind != "ident":
            raise self.unexpected("expected a tabular operator such as 'where' or 'project'")
        name = tok.value
        if name in _OTHER_TABULAR:
            raise _unsupported(self.src, tok.pos, f"Operator '{name}'", SUPPORTED_OPERATORS)
        if name not in _SUPPORTED_TABULAR:
            raise self.invalid(tok.pos, f"Unknown tabular operator '{name}'")
        self.advance()
        if name == "where":
            return self.parse_where(schema)
        if name == "project":
            return self.parse_project(schema)
        if name == "project-away":
            return self.parse_project_away(schema)
        if name == "extend":
            return self.parse_extend(schema)
        if name in ("order", "sort"):
            return self.parse_order_by(schema, name)
        if name in ("limit", "take"):
            return self.parse_limit(name)
        return self.parse_summarize(schema)

    def parse_where(self, schema: dict[str, str]) -> _Where:
        pred = self.parse_expr(schema)
        if self.at_op("="):
            raise self.unexpected("use '==' to compare")
        self.require_bool(pred, "The 'where' predicate")
        return _Where(pred.fn)

    def parse_project(self, schema: dict[str, str]) -> _Project:
        items, out = [], {}
        while True:
            alias_tok = self.peek()
            alias = self.parse_alias()
            expr = self.parse_expr(schema)
            name = alias or expr.name or _fresh_name(out)
            if name in out:
                raise self.invalid(alias_tok.pos, f"project: duplicate column name '{name}'")
            out[name] = expr.type
            items.append((name, expr.fn))
            if not self.accept_op(","):
                break
        schema.clear()
        schema.update(out)
        return _Project(items)

    def parse_project_away(self, schema: dict[str, str]) -> _ProjectAway:
        while True:
            tok = self.peek()
            if self.at_op("*"):
                raise _unsupported(self.src, tok.pos, "Wildcard in project-away", "plain column names")
            name = self.parse_column_name("project-away")
            if self.at_op("*"):
                raise _unsupported(self.src, tok.pos, "Wildcard in project-away", "plain column names")
            if name not in schema:
                raise self.invalid(tok.pos, _unknown_column(name, schema))
            del schema[name]
            if not self.accept_op(","):
                return _ProjectAway()

    def parse_extend(self, schema: dict[str, str]) -> _Extend:
        items = []
        while True:
            alias = self.parse_alias()
            expr = self.parse_expr(schema)
            name = alias or expr.name or _fresh_name(schema)
            schema[name] = expr.type  # replacing a column keeps its position, as in KQL
            items.append((name, expr.fn))
            if not self.accept_op(","):
                return _Extend(items)

    def parse_order_by(self, schema: dict[str, str], word: str) -> _OrderBy:
        if not self.accept_ident("by"):
            raise self.unexpected(f"expected 'by' after '{word}'")
        keys = []
        while True:
            expr = self.parse_expr(schema)
            if expr.type == DYNAMIC:
                raise self.invalid(
                    expr.pos,
                    f"{word} by: the sort key must be numeric, bool or string, not dynamic; "
                    "convert it, e.g. with tostring()",
                )
            descending = True  # KQL's default
            if self.accept_ident("asc"):
                descending = False
            else:
                self.accept_ident("desc")
            nulls_first = not descending
            if self.accept_ident("nulls"):
                if self.accept_ident("first"):
                    nulls_first = True
                elif self.accept_ident("last"):
                    nulls_first = False
                else:
                    raise self.unexpected("expected 'first' or 'last' after 'nulls'")
            keys.append((expr.fn, descending, nulls_first))
            if not self.accept_op(","):
                return _OrderBy(keys)

    def parse_limit(self, word: str) -> _Limit:
        tok = self.peek()
        if tok.kind != "number" or not isinstance(tok.value, int):
            raise self.unexpected(f"expected a non-negative whole number after '{word}'")
        self.advance()
        return _Limit(tok.value)

    def parse_summarize(self, schema: dict[str, str]) -> _Summarize:
        start = self.peek()
        if start.kind == "eof" or self.at_op("|"):
            raise self.unexpected("expected count() or 'by' after summarize")
        count_name: str | None = None  # `summarize by k`: the distinct groups, no aggregation
        if not self.at_ident("by"):
            count_name = self.parse_alias() or "count_"
            fn_tok = self.peek()
            if fn_tok.kind != "ident" or not self.at_op("(", 1):
                raise self.unexpected("expected an aggregation such as count()")
            if fn_tok.value != "count":
                raise _unsupported(self.src, fn_tok.pos, f"Aggregation function '{fn_tok.value}'", "count()")
            self.advance()
            self.advance()
            self.expect_op(")", "count() takes no arguments")
            if self.at_op(","):
                raise _unsupported(self.src, self.peek().pos, "More than one aggregation in summarize", "count()")
        keys: list[tuple[str, Callable[[dict], Any]]] = []
        out: dict[str, str] = {}
        if self.accept_ident("by"):
            while True:
                alias_tok = self.peek()
                alias = self.parse_alias()
                expr = self.parse_expr(schema)
                if expr.type == DYNAMIC:
                    raise self.invalid(
                        expr.pos,
                        "summarize by: a group key can't be dynamic; convert it, e.g. with tostring()",
                    )
                name = alias or expr.name or _fresh_name(out)
                if name in out:
                    raise self.invalid(alias_tok.pos, f"summarize: duplicate column name '{name}'")
                out[name] = expr.type
                keys.append((name, expr.fn))
                if not self.accept_op(","):
                    break
        if count_name is None and not keys:
            raise self.unexpected("expected at least one column after 'summarize by'")
        if count_name in out:
            raise self.invalid(start.pos, f"summarize: duplicate column name '{count_name}'")
        if count_name is not None:
            out[count_name] = LONG
        schema.clear()
        schema.update(out)
        return _Summarize(keys, count_name)

    def parse_alias(self) -> str | None:
        """Consume `name =` or `['name'] =` when present and return the name."""
        if self.peek().kind == "ident" and self.at_op("=", 1):
            name = self.advance().value
            self.advance()
            return name
        if self.at_op("[") and self.peek(1).kind == "string" and self.at_op("]", 2) and self.at_op("=", 3):
            self.advance()
            name = self.advance().value
            self.advance()
            self.advance()
            return name
        return None

    def parse_column_name(self, context: str) -> str:
        tok = self.peek()
        if tok.kind == "ident":
            return self.advance().value
        if self.at_op("[") and self.peek(1).kind == "string" and self.at_op("]", 2):
            self.advance()
            name = self.advance().value
            self.advance()
            return name
        raise self.unexpected(f"expected a column name in {context}")

    def require_bool(self, expr: _Expr, what: str) -> None:
        if expr.type != BOOL:
            raise self.invalid(expr.pos, f"{what} must be a bool expression, not {expr.type}")

    # -- scalar expressions, loosest binding first: or, and, comparison, postfix access, primary

    def parse_expr(self, schema: dict[str, str]) -> _Expr:
        return self.parse_or(schema)

    def parse_or(self, schema: dict[str, str]) -> _Expr:
        left = self.parse_and(schema)
        while self.at_ident("or"):
            self.advance()
            right = self.parse_and(schema)
            self.require_bool(left, "The left operand of 'or'")
            self.require_bool(right, "The right operand of 'or'")
            left = _Expr(_or3(left.fn, right.fn), BOOL, left.pos)
        return left

    def parse_and(self, schema: dict[str, str]) -> _Expr:
        left = self.parse_comparison(schema)
        while self.at_ident("and"):
            self.advance()
            right = self.parse_comparison(schema)
            self.require_bool(left, "The left operand of 'and'")
            self.require_bool(right, "The right operand of 'and'")
            left = _Expr(_and3(left.fn, right.fn), BOOL, left.pos)
        return left

    def comparison_operator(self) -> tuple[str, _Token] | None:
        tok = self.peek()
        if tok.kind == "op" and (
            tok.value in _EQ_OPS
            or tok.value in _ORDER_OPS
            or tok.value in ("=~", "!~")
            or tok.value[:1] == "!"
        ):
            return tok.value, tok
        if tok.kind == "ident" and (
            tok.value in _STRING_OPS or tok.value in _IN_OPS or tok.value in _OTHER_WORD_OPS
        ):
            return tok.value, tok
        return None

    def parse_comparison(self, schema: dict[str, str]) -> _Expr:
        left = self.parse_arith(schema)
        found = self.comparison_operator()
        if found is None:
            return left
        op, tok = found
        if op in _OTHER_WORD_OPS or op.lstrip("!") in _OTHER_WORD_OPS:
            raise _unsupported(self.src, tok.pos, f"Operator '{op}'", SUPPORTED_SCALAR_OPERATORS)
        if op not in _EQ_OPS and op not in _ORDER_OPS and op not in _STRING_OPS and op not in _IN_OPS:
            raise self.invalid(tok.pos, f"Unknown operator '{op}'")
        self.advance()
        if op in _IN_OPS:
            result = self.parse_in(op, tok, left, schema)
        else:
            right = self.parse_arith(schema)
            if op in _STRING_OPS:
                result = self.string_op(op, tok, left, right)
            elif op in _EQ_OPS:
                result = self.equality(op, tok, left, right)
            else:
                result = self.ordering(op, tok, left, right)
        if self.comparison_operator() is not None:
            raise self.unexpected("comparisons can't be chained; combine them with 'and'")
        return result

    def parse_arith(self, schema: dict[str, str]) -> _Expr:
        expr = self.parse_postfix(schema)
        tok = self.peek()
        if tok.kind == "op" and tok.value in ("+", "-", "*", "/", "%"):
            raise _unsupported(
                self.src, tok.pos, f"Arithmetic operator '{tok.value}'", SUPPORTED_SCALAR_OPERATORS
            )
        return expr

    def parse_postfix(self, schema: dict[str, str]) -> _Expr:
        expr = self.parse_primary(schema)
        while True:
            tok = self.peek()
            if self.accept_op("."):
                member = self.peek()
                if member.kind != "ident":
                    raise self.unexpected("expected a property name after '.'")
                self.advance()
                expr = self.access(expr, _literal(member.value, STRING, member.pos), tok)
            elif self.accept_op("["):
                index = self.parse_expr(schema)
                self.expect_op("]", "to close the index")
                expr = self.access(expr, index, tok)
            else:
                return expr

    def parse_primary(self, schema: dict[str, str]) -> _Expr:
        tok = self.peek()
        if tok.kind == "string":
            self.advance()
            value = tok.value
            while self.peek().kind == "string":  # 'a' 'b' is one literal, as in KQL
                value += self.advance().value
            return _literal(value, STRING, tok.pos)
        if tok.kind == "number":
            self.advance()
            return _literal(tok.value, LONG if isinstance(tok.value, int) else REAL, tok.pos)
        if tok.kind == "op" and tok.value == "-":
            if self.peek(1).kind == "number":  # a negative literal, not arithmetic
                self.advance()
                num = self.advance().value
                return _literal(-num, LONG if isinstance(num, int) else REAL, tok.pos)
            raise _unsupported(self.src, tok.pos, "Arithmetic operator '-'", SUPPORTED_SCALAR_OPERATORS)
        if tok.kind == "timespan":
            raise _unsupported(
                self.src, tok.pos, f"Timespan literal '{tok.value}'", "string, number and bool literals"
            )
        if tok.kind == "op" and tok.value == "(":
            self.advance()
            expr = self.parse_expr(schema)
            self.expect_op(")", "to close '('")
            return _Expr(expr.fn, expr.type, tok.pos, expr.name, expr.const)
        if tok.kind == "op" and tok.value == "[":  # ['column name']
            name = self.parse_column_name("an expression")
            return self.column(name, tok, schema)
        if tok.kind == "ident":
            if self.at_op("(", 1):
                return self.call(tok, schema)
            self.advance()
            if tok.value in ("true", "false"):
                return _literal(tok.value == "true", BOOL, tok.pos)
            return self.column(tok.value, tok, schema)
        raise self.unexpected("expected an expression")

    def column(self, name: str, tok: _Token, schema: dict[str, str]) -> _Expr:
        if name not in schema:
            raise self.invalid(tok.pos, _unknown_column(name, schema))
        return _Expr(_column_getter(name, schema[name]), schema[name], tok.pos, name)

    def access(self, base: _Expr, key: _Expr, tok: _Token) -> _Expr:
        """`base.key` or `base[key]` into a dynamic value; null whenever it does not apply."""
        if base.type != DYNAMIC:
            raise self.invalid(tok.pos, f"Can't access a property or element of a {base.type} value")
        if key.type not in (STRING, LONG, DYNAMIC):
            raise self.invalid(key.pos, f"An index must be a string or a whole number, not {key.type}")
        get = base.fn
        name = None
        if key.const is not _NO_CONST:
            k = key.const
            if base.name is not None:
                name = base.name + "_" + re.sub(r"[^0-9A-Za-z_]", "_", str(k))
            if isinstance(k, str):

                def member(row: dict) -> Any:
                    v = get(row)
                    return v.get(k) if type(v) is dict else None

                return _Expr(member, DYNAMIC, base.pos, name)

            def element(row: dict) -> Any:
                v = get(row)
                if type(v) is list and -len(v) <= k < len(v):
                    return v[k]
                return None

            return _Expr(element, DYNAMIC, base.pos, name)
        key_fn = key.fn

        def lookup(row: dict) -> Any:
            v, k = get(row), key_fn(row)
            if type(v) is dict and type(k) is str:
                return v.get(k)
            if type(v) is list and type(k) is int and -len(v) <= k < len(v):
                return v[k]
            return None

        return _Expr(lookup, DYNAMIC, base.pos)

    def call(self, tok: _Token, schema: dict[str, str]) -> _Expr:
        name = tok.value
        builder = _FUNCTIONS.get(name)
        if builder is None:  # checked before the arguments, which may be syntax we don't parse
            raise _unsupported(self.src, tok.pos, f"Function '{name}'", SUPPORTED_FUNCTIONS)
        self.advance()
        self.advance()
        args: list[_Expr] = []
        if not self.at_op(")"):
            args.append(self.parse_expr(schema))
            while self.accept_op(","):
                args.append(self.parse_expr(schema))
        self.expect_op(")", f"to close the arguments of {name}()")
        arity = 3 if name in ("iff", "iif") else 1
        if len(args) != arity:
            raise self.invalid(tok.pos, f"Function '{name}' expects {arity} argument(s), got {len(args)}")
        return builder(self, tok, args)

    # -- operators

    def text_of(self, expr: _Expr, op: str) -> Callable[[dict], str]:
        """The operand of a string operator as text: a dynamic goes through tostring()."""
        if expr.type == STRING:
            return expr.fn
        if expr.type == DYNAMIC:
            fn = expr.fn
            return lambda row: _to_str(fn(row))
        raise self.invalid(expr.pos, f"Operator '{op}' needs string operands, not {expr.type}")

    def string_op(self, op: str, tok: _Token, left: _Expr, right: _Expr) -> _Expr:
        test, negated = _STRING_OPS[op]
        lhs = self.text_of(left, op)
        rhs = self.text_of(right, op)
        if right.const is not _NO_CONST:
            fn = _string_test_const(test, right.const, lhs)
        else:
            fn = _string_test(test, lhs, rhs)
        if negated:
            positive = fn
            fn = lambda row: not positive(row)  # noqa: E731
        return _Expr(fn, BOOL, left.pos)

    def equality(self, op: str, tok: _Token, left: _Expr, right: _Expr) -> _Expr:
        self.check_comparable(op, tok, left, right)
        lf, rf = left.fn, right.fn
        if left.type == STRING and right.type == STRING:  # no nulls: plain Python comparison
            if right.const is not _NO_CONST:
                c = right.const
                fn = (lambda row: lf(row) == c) if op == "==" else (lambda row: lf(row) != c)
            else:
                fn = (lambda row: lf(row) == rf(row)) if op == "==" else (lambda row: lf(row) != rf(row))
        else:
            test = _eq3 if op == "==" else _ne3
            if right.const is not _NO_CONST:
                c = right.const
                fn = lambda row: test(lf(row), c)  # noqa: E731
            else:
                fn = lambda row: test(lf(row), rf(row))  # noqa: E731
        return _Expr(fn, BOOL, left.pos)

    def check_comparable(self, op: str, tok: _Token, left: _Expr, right: _Expr) -> None:
        if DYNAMIC in (left.type, right.type) or left.type == right.type:
            return
        if left.type in _NUMERIC and right.type in _NUMERIC:
            return
        raise self.invalid(tok.pos, f"Operator '{op}' can't compare {left.type} with {right.type}")

    def ordering(self, op: str, tok: _Token, left: _Expr, right: _Expr) -> _Expr:
        if STRING in (left.type, right.type):
            raise _unsupported(
                self.src, tok.pos, f"Operator '{op}' on strings", "'<', '<=', '>', '>=' on numbers"
            )
        if BOOL in (left.type, right.type):
            raise self.invalid(tok.pos, f"Operator '{op}' can't compare {left.type} with {right.type}")
        compare, lf, rf = _ORDER_OPS[op], left.fn, right.fn

        def ordered(row: dict) -> bool | None:
            a, b = lf(row), rf(row)
            if _is_number(a) and _is_number(b):
                return compare(a, b)
            return None  # null, or a dynamic value that is not a number

        return _Expr(ordered, BOOL, left.pos)

    def parse_in(self, op: str, tok: _Token, left: _Expr, schema: dict[str, str]) -> _Expr:
        negated, caseless = _IN_OPS[op]
        self.expect_op("(", f"after '{op}'")
        items: list[_Expr] = []
        if not self.at_op(")"):
            items.append(self.parse_expr(schema))
            while self.accept_op(","):
                items.append(self.parse_expr(schema))
        self.expect_op(")", f"to close the list of '{op}'")
        if not items:
            raise self.invalid(tok.pos, f"Operator '{op}' needs at least one value")
        for item in items:
            if item.const is _NO_CONST:
                raise _unsupported(
                    self.src, item.pos, f"A non-literal value in '{op}' (...)", "literal values"
                )
        values = [item.const for item in items]
        if caseless:
            if not all(isinstance(v, str) for v in values):
                raise self.invalid(tok.pos, f"Operator '{op}' needs string values")
            text = self.text_of(left, op)
            folded = frozenset(v.lower() for v in values)
            fn = lambda row: text(row).lower() in folded  # noqa: E731
        elif left.type == DYNAMIC:
            lf = left.fn

            def fn(row: dict) -> bool:
                v = lf(row)
                if v is None:
                    return negated  # as with ==/!=: null is unequal to every value
                return any(_same(v, c) for c in values) != negated

            return _Expr(fn, BOOL, left.pos)
        else:
            kinds = {STRING: (str,), LONG: (int, float), REAL: (int, float), BOOL: (bool,)}[left.type]
            if not all(
                isinstance(v, kinds) and (left.type == BOOL or not isinstance(v, bool)) for v in values
            ):
                raise self.invalid(tok.pos, f"Operator '{op}': the values must all be of type {left.type}")
            lf, members = left.fn, frozenset(values)

            def fn(row: dict) -> bool:
                v = lf(row)
                if v is None:
                    return negated
                return (v in members) != negated

            return _Expr(fn, BOOL, left.pos)
        if negated:
            positive = fn
            fn = lambda row: not positive(row)  # noqa: E731
        return _Expr(fn, BOOL, left.pos)


def _fresh_name(taken: dict[str, str]) -> str:
    n = 1
    while f"Column{n}" in taken:
        n += 1
    return f"Column{n}"


def _unknown_column(name: str, schema: dict[str, str]) -> str:
    message = f"Failed to resolve column or scalar expression named '{name}'"
    near = [c for c in schema if c.lower() == name.lower()]
    if near:
        message += f" (column names are case-sensitive: did you mean '{near[0]}'?)"
    return message


def _and3(lf: Callable[[dict], Any], rf: Callable[[dict], Any]) -> Callable[[dict], bool | None]:
    def both(row: dict) -> bool | None:
        a = lf(row)
        if a is False:
            return False
        b = rf(row)
        if b is False:
            return False
        return None if a is None or b is None else True

    return both


def _or3(lf: Callable[[dict], Any], rf: Callable[[dict], Any]) -> Callable[[dict], bool | None]:
    def either(row: dict) -> bool | None:
        a = lf(row)
        if a is True:
            return True
        b = rf(row)
        if b is True:
            return True
        return None if a is None or b is None else False

    return either


def _string_test_const(test: str, value: str, lhs: Callable[[dict], str]) -> Callable[[dict], bool]:
    """A string operator against a literal: the literal is folded (or compiled) once."""
    c = value.lower()
    if test == "eq":
        return lambda row: lhs(row).lower() == c
    if test == "contains":
        return lambda row: c in lhs(row).lower()
    if test == "startswith":
        return lambda row: lhs(row).lower().startswith(c)
    if test == "endswith":
        return lambda row: lhs(row).lower().endswith(c)
    search = _has_regex(value).search
    return lambda row: search(lhs(row)) is not None


def _string_test(test: str, lhs: Callable[[dict], str], rhs: Callable[[dict], str]) -> Callable[[dict], bool]:
    if test == "eq":
        return lambda row: lhs(row).lower() == rhs(row).lower()
    if test == "contains":
        return lambda row: rhs(row).lower() in lhs(row).lower()
    if test == "startswith":
        return lambda row: lhs(row).lower().startswith(rhs(row).lower())
    if test == "endswith":
        return lambda row: lhs(row).lower().endswith(rhs(row).lower())
    return lambda row: _has_regex(rhs(row)).search(lhs(row)) is not None


# ---------------------------------------------------------------------------------------------
# Scalar functions: name -> builder(parser, token, args) -> _Expr


def _fn_tostring(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
    (x,) = args
    if x.type == STRING:
        return _Expr(x.fn, STRING, tok.pos, x.name)
    f = x.fn
    return _Expr(lambda row: _to_str(f(row)), STRING, tok.pos, x.name)


def _fn_case(convert: Callable[[str], str]) -> Callable[[_Parser, _Token, list[_Expr]], _Expr]:
    def build(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
        text = p.text_of(args[0], tok.value)
        return _Expr(lambda row: convert(text(row)), STRING, tok.pos)

    return build


def _fn_tolong(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
    (x,) = args
    f = x.fn
    return _Expr(lambda row: _to_long(f(row)), LONG, tok.pos, x.name)


def _fn_isnull(negated: bool) -> Callable[[_Parser, _Token, list[_Expr]], _Expr]:
    def build(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
        (x,) = args
        if x.type == STRING:  # a string is never null
            return _Expr(lambda row: negated, BOOL, tok.pos)
        f = x.fn
        if negated:
            return _Expr(lambda row: f(row) is not None, BOOL, tok.pos)
        return _Expr(lambda row: f(row) is None, BOOL, tok.pos)

    return build


def _fn_isempty(negated: bool) -> Callable[[_Parser, _Token, list[_Expr]], _Expr]:
    def build(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
        f = args[0].fn

        def empty(row: dict) -> bool:
            v = f(row)
            return (v is None or v == "") != negated  # an empty array or bag is not empty, as in KQL

        return _Expr(empty, BOOL, tok.pos)

    return build


def _fn_array_length(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
    (x,) = args
    if x.type != DYNAMIC:
        raise p.invalid(x.pos, f"array_length() needs a dynamic array, not {x.type}")
    f = x.fn

    def length(row: dict) -> int | None:
        v = f(row)
        return len(v) if type(v) is list else None

    return _Expr(length, LONG, tok.pos)


def _fn_strlen(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
    text = p.text_of(args[0], "strlen")
    return _Expr(lambda row: len(text(row)), LONG, tok.pos)


def _fn_iff(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
    cond, then, other = args
    p.require_bool(cond, f"The condition of {tok.value}()")
    if then.type == other.type:
        typ = then.type
    elif then.type in _NUMERIC and other.type in _NUMERIC:
        typ = REAL
    else:
        raise p.invalid(
            tok.pos,
            f"{tok.value}(): the two results must have the same type, not {then.type} and {other.type}; "
            "convert one, e.g. with tostring()",
        )
    c, a, b = cond.fn, then.fn, other.fn
    return _Expr(lambda row: a(row) if c(row) is True else b(row), typ, tok.pos)


def _fn_not(p: _Parser, tok: _Token, args: list[_Expr]) -> _Expr:
    (x,) = args
    p.require_bool(x, "The argument of not()")
    f = x.fn

    def negate(row: dict) -> bool | None:
        v = f(row)
        return None if v is None else not v

    return _Expr(negate, BOOL, tok.pos)


_FUNCTIONS: dict[str, Callable[[_Parser, _Token, list[_Expr]], _Expr]] = {
    "tostring": _fn_tostring,
    "tolower": _fn_case(str.lower),
    "toupper": _fn_case(str.upper),
    "toint": _fn_tolong,
    "tolong": _fn_tolong,
    "isnull": _fn_isnull(False),
    "isnotnull": _fn_isnull(True),
    "isempty": _fn_isempty(False),
    "isnotempty": _fn_isempty(True),
    "array_length": _fn_array_length,
    "strlen": _fn_strlen,
    "iff": _fn_iff,
    "iif": _fn_iff,
    "not": _fn_not,
}
