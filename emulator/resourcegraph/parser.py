"""The parser: recursive descent over the tokens, type-checking against the schema of the current
stage and compiling every expression to a closure as it goes. ``parse()`` is the entry point."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from typing import Any

from .errors import KqlError, _invalid, _unsupported
from .evaluator import (
    _NO_CONST,
    _NUMERIC,
    BOOL,
    DYNAMIC,
    LONG,
    REAL,
    RESOURCES_SCHEMA,
    STRING,
    Query,
    _and3,
    _column_getter,
    _eq3,
    _Expr,
    _Extend,
    _is_number,
    _Limit,
    _literal,
    _ne3,
    _or3,
    _OrderBy,
    _Project,
    _ProjectAway,
    _same,
    _string_test,
    _string_test_const,
    _Summarize,
    _to_str,
    _Where,
)
from .functions import _FUNCTIONS, SUPPORTED_FUNCTIONS
from .lexer import _OTHER_TABULAR, _SUPPORTED_TABULAR, _Token, _tokenize

SUPPORTED_OPERATORS = (
    "where, project, project-away, extend, order by, sort by, limit, take, summarize count() [by ...], summarize by ..."
)
SUPPORTED_SCALAR_OPERATORS = (
    "== != < <= > >= =~ !~ in !in in~ !in~ has !has contains !contains startswith !startswith "
    "endswith !endswith and or"
)

# The tables the emulator has (lower case).
TABLES = ("resources", "computeresources")
# Other real Resource Graph tables: valid KQL, just not emulated (unknown names are InvalidQuery).
_ARG_TABLES = frozenset(
    "resourcecontainers resourcecontainerchanges resourcechanges advisorresources "
    "alertsmanagementresources appserviceresources authorizationresources chaosresources "
    "communitygalleryresources desktopvirtualizationresources dnsresources "
    "edgeorderresources extendedlocationresources featureresources guestconfigurationresources "
    "healthresourcechanges healthresources insightsresources iotsecurityresources "
    "kubernetesconfigurationresources maintenanceresources managedservicesresources migrateresources "
    "networkresources patchassessmentresources patchinstallationresources policyresources "
    "recoveryservicesresources securityresources servicehealthresources spotresources "
    "supportresources".split()
)

_STATEMENTS = frozenset({"let", "set", "declare", "alias", "pattern", "restrict"})

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
        table = "resources"
        if first.kind == "ident" and first.value not in _SUPPORTED_TABULAR | _OTHER_TABULAR:
            self.advance()
            table = self.check_table(first)
            if self.peek().kind == "eof":
                return Query(self.src, stages, schema, materialize, table)
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
                return Query(self.src, stages, schema, materialize, table)
            if not self.at_op("|"):
                raise self.unexpected("expected '|' or the end of the query")
            self.advance()

    def check_table(self, tok: _Token) -> str:
        """The table queried, lower case: ``resources``, or ``computeresources`` (a Uniform scale set's
        instances, ``microsoft.compute/virtualmachinescalesets/virtualmachines``, with the same columns)."""
        name = tok.value
        if name.lower() in TABLES:
            return name.lower()
        if name.lower() in _ARG_TABLES or name.lower().endswith(("resources", "changes")):
            raise _unsupported(self.src, tok.pos, f"Table '{name}'", "the Resources and ComputeResources tables")
        raise self.invalid(
            tok.pos, f"Unknown table or tabular operator '{name}' (the emulator has 'Resources' and 'ComputeResources')"
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
