"""KQL's tokens: words (``project-away`` and the other hyphenated operators joined), strings
(with escapes, verbatim ``@'…'``), numbers (timespans kept as such, for the parser to refuse), and
punctuation. A character outside KQL is an ``InvalidQuery``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import _invalid

# Tabular operators of the subset (the parser dispatches on them).
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
# Words that the lexer joins across a '-' (elsewhere '-' is subtraction).
_HYPHENATED = frozenset(w for w in _SUPPORTED_TABULAR | _OTHER_TABULAR if "-" in w)

_TIMESPAN_UNITS = frozenset(
    "d day days h hr hrs hour hours m min minute minutes s sec second seconds ms milli millis "
    "millisecond milliseconds microsecond microseconds tick ticks".split()
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t"}
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
# Punctuation, two-character operators first so that '==' is not read as '=' '='.
_OPERATOR_CHARS = tuple("== != <> <= >= =~ !~ => | ( ) [ ] { } , . = < > + - * / % ; : ? !".split())


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
