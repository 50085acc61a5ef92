"""What a compiled query is made of and how it runs: KQL's scalar types and value semantics (null,
tostring, three-valued logic, string operators), compiled expressions (row -> value closures), the
pipeline stages (where, project, extend, order by, limit, summarize) and ``Query``, which runs them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

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

    def __init__(self, text: str, stages: list[Any], schema: dict[str, str], materialize: bool,
                 table: str = "resources"):
        self.text = text
        self.table = table  # lower case: resources | computeresources
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
