"""HTTP route templates as the Functions host reads them (ASP.NET Core route templates), for
``LocalFunctionsHost.http``: ``{name}``, optional ``{name?}``, a default ``{name=value}``, a
catch-all ``{*name}``, inline constraints (``{id:guid}``, ``{n:int:min(1)}``, ``{c:regex(^a.c$)}``),
literal segments compared case-insensitively; the routes tried in the host's order
(``WebJobsRouteBuilder.RouteComparison``). Complex segments (``{a}.{b}``) are refused, not guessed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote

_INT32, _INT64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")  # .NET int.TryParse(NumberStyles.Integer)
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_HEX = "[0-9a-fA-F]"
_GUID_D = f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"
_GUID = re.compile(rf"{_GUID_D}|{_HEX}{{32}}|\{{{_GUID_D}\}}|\({_GUID_D}\)")  # Guid.TryParse: D, N, B, P


def _int_in(bounds: tuple[int, int]) -> Callable[[str], bool]:
    return lambda v: bool(_INTEGER.fullmatch(v)) and bounds[0] <= int(v) <= bounds[1]


def _as_int(v: str) -> int | None:
    return int(v) if _INTEGER.fullmatch(v) else None


def _length(v: str, *args: str) -> bool:
    return len(v) == int(args[0]) if len(args) == 1 else int(args[0]) <= len(v) <= int(args[1])


# ASP.NET Core's inline constraints (the ones that don't depend on a culture), by name: (value, *args) -> ok
CONSTRAINTS: dict[str, Callable[..., bool]] = {
    "int": _int_in(_INT32),
    "long": _int_in(_INT64),
    "bool": lambda v: v.strip().lower() in ("true", "false"),
    "guid": lambda v: bool(_GUID.fullmatch(v)),
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]*", v)),
    "double": lambda v: bool(_NUMBER.fullmatch(v)),
    "float": lambda v: bool(_NUMBER.fullmatch(v)),
    "decimal": lambda v: bool(_NUMBER.fullmatch(v)),
    "min": lambda v, lo: (n := _as_int(v)) is not None and n >= int(lo),
    "max": lambda v, hi: (n := _as_int(v)) is not None and n <= int(hi),
    "range": lambda v, lo, hi: (n := _as_int(v)) is not None and int(lo) <= n <= int(hi),
    "length": _length,
    "minlength": lambda v, n: len(v) >= int(n),
    "maxlength": lambda v, n: len(v) <= int(n),
    # not anchored unless the pattern is, and case-insensitive, as RegexRouteConstraint
    "regex": lambda v, pattern: re.search(pattern, v, re.IGNORECASE) is not None,
}


@dataclass
class Segment:
    literal: str | None = None  # a literal segment, or a parameter:
    name: str = ""
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def accepts(self, value: str) -> bool:
        return all(CONSTRAINTS[c](value, *args) for c, args in self.constraints)


@dataclass
class Route:
    template: str  # with the prefix, as the host logs it: "api/items/{id}"
    function: str
    methods: frozenset[str] | None  # None: every method
    segments: list[Segment]

    def match(self, method: str, parts: list[str]) -> dict[str, str] | None:
        """Route values for a request path (split on "/", percent-decoded), or None."""
        if self.methods is not None and method.upper() not in self.methods:
            return None  # the host's HttpMethodRouteConstraint: no match, so 404 (not 405)
        values: dict[str, str] = {}
        for i, seg in enumerate(self.segments):
            if seg.catch_all:
                rest = "/".join(parts[i:])
                if rest or seg.default is not None:
                    values[seg.name] = rest or seg.default
                return values if not rest or seg.accepts(rest) else None
            if i >= len(parts):  # past the path: only optional or defaulted parameters may remain
                if seg.literal is not None or not (seg.optional or seg.default is not None):
                    return None
                if seg.default is not None:
                    values[seg.name] = seg.default
                continue
            if seg.literal is not None:
                if parts[i].lower() != seg.literal.lower():
                    return None
            elif not parts[i] or not seg.accepts(parts[i]):
                return None
            else:
                values[seg.name] = parts[i]
        return values if len(parts) <= len(self.segments) else None


def parse(template: str) -> list[Segment]:
    segments = []
    for text in template.strip("/").split("/"):
        bare = text.replace("{{", "").replace("}}", "")  # "{{" and "}}" are escaped braces
        if "{" not in bare and "}" not in bare:
            segments.append(Segment(literal=text.replace("{{", "{").replace("}}", "}")))
        elif text.startswith("{") and text.endswith("}") and bare.count("{") == bare.count("}") == 1:
            segments.append(_parameter(template, text[1:-1].replace("{{", "{").replace("}}", "}")))
        else:
            raise ValueError(f"route {template!r}: complex segment {text!r} is not supported here")
    for seg in segments[:-1]:
        if seg.catch_all or seg.optional:
            raise ValueError(f"route {template!r}: {{{seg.name}}} may only be the last segment")
    return segments


def _parameter(template: str, inner: str) -> Segment:
    m = re.match(r"(\*{1,2})?([^:?=*]+)", inner)
    if not m:
        raise ValueError(f"route {template!r}: bad parameter {{{inner}}}")
    seg = Segment(name=m.group(2), catch_all=bool(m.group(1)))
    rest = inner[m.end():]
    while rest.startswith(":"):  # constraints: name, then (args) up to the bracket closing them
        c = re.match(r":(\w+)", rest)
        if not c:
            raise ValueError(f"route {template!r}: bad constraint in {{{inner}}}")
        name, rest, args = c.group(1).lower(), rest[c.end():], ()
        if rest.startswith("("):
            depth = 0
            for j, ch in enumerate(rest):
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if depth == 0 and (j + 1 == len(rest) or rest[j + 1] in ":?="):
                    break
            raw, rest = rest[1:j], rest[j + 1:]
            args = (raw,) if name == "regex" else tuple(a.strip() for a in raw.split(","))
        if name not in CONSTRAINTS:  # the host refuses to start on an unknown constraint
            raise ValueError(f"route {template!r}: constraint {name!r} is not supported")
        seg.constraints.append((name, args))
    if rest == "?":
        seg.optional = True
    elif rest.startswith("="):
        seg.default = rest[1:]
    elif rest:
        raise ValueError(f"route {template!r}: bad parameter {{{inner}}}")
    return seg


def split_path(path: str) -> list[str]:
    """A request path as route segments: a trailing slash doesn't count, each segment percent-decoded."""
    path = path.split("?", 1)[0].strip("/")
    return [unquote(p) for p in path.split("/")] if path else []


def host_order(routes: list[Route]) -> list[Route]:
    """The order the host tries its routes in (WebJobsRouteBuilder.RouteComparison), segment by
    segment: a literal before a parameter, a parameter with more constraints before one with fewer,
    literals alphabetically (ignoring case), a longer route before its prefix. The first match wins."""

    def compare(x: Route, y: Route) -> int:
        for i, xs in enumerate(x.segments):
            if i >= len(y.segments):
                return -1
            ys = y.segments[i]
            if (xs.literal is None) != (ys.literal is None):
                return 1 if xs.literal is None else -1
            if xs.literal is None:
                if len(xs.constraints) != len(ys.constraints):
                    return -1 if len(xs.constraints) > len(ys.constraints) else 1
            elif xs.literal.upper() != ys.literal.upper():  # OrdinalIgnoreCase compares upper case
                return -1 if xs.literal.upper() < ys.literal.upper() else 1
        return 1 if len(y.segments) > len(x.segments) else 0

    return sorted(routes, key=functools.cmp_to_key(compare))
