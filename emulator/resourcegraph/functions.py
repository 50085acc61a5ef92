"""KQL's scalar functions in the subset: name -> builder(parser, token, args) -> compiled expression.
The builder type-checks its arguments (through the parser, for errors that point into the query)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .evaluator import _NUMERIC, BOOL, DYNAMIC, LONG, REAL, STRING, _Expr, _to_long, _to_str
from .lexer import _Token

if TYPE_CHECKING:
    from .parser import _Parser

SUPPORTED_FUNCTIONS = (
    "tostring, tolower, toupper, toint, tolong, isnull, isnotnull, isempty, isnotempty, "
    "array_length, strlen, iff, iif, not"
)


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
