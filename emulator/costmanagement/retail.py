"""The Azure Retail Prices API (``GET https://prices.azure.com/api/retail/prices``), served on the emulator's own
host at ``/api/retail/prices``: public (no bearer), its own envelope (``BillingCurrency``, ``CustomerEntityId``,
``CustomerEntityType``, ``Items``, ``NextPageLink``, ``Count``), ``$filter`` over the item fields with ``eq``,
``and``, ``or`` and parentheses, ``$skip`` paging. Learn's REST reference ("Azure Retail Prices REST API") gives
the fields and the filter; no official example or swagger exists (see emulator/README.md)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from ..core.errors import ArmError
from ..core.routing import Request, Response
from . import prices

PATH = "/api/retail/prices"
FIELDS = {f.lower(): f for f in ("armRegionName", "location", "meterId", "meterName", "productId", "skuId",
                                 "productName", "skuName", "serviceName", "serviceId", "serviceFamily", "priceType",
                                 "armSkuName", "currencyCode", "type", "unitOfMeasure")}
TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([A-Za-z_][A-Za-z0-9_]*))")


class FilterError(ArmError):
    status = 400
    code = "BadRequest"

    def body(self) -> dict[str, Any]:  # the service's own envelope, not ARM's
        return {"Error": {"Code": self.code, "Message": self.message}}


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"$filter: cannot read '{text[pos:pos + 20]}'.")
        pos = m.end()
        if m.group(1):
            out.append(("(", "("))
        elif m.group(2):
            out.append((")", ")"))
        elif m.group(3) is not None:
            out.append(("str", m.group(3).replace("''", "'")))
        else:
            out.append(("word", m.group(4)))
    return out


def parse_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """``field eq 'value'`` terms joined by ``and``/``or`` (``and`` binds tighter), with parentheses. Values compare
    without case (the API's 2021-10-01-preview and later); an unknown field or operator is a 400 naming it."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise FilterError("$filter: the filter ends too early.")
        pos += 1
        return tokens[pos - 1]

    def primary() -> Callable[[dict[str, Any]], bool]:
        kind, value = take()
        if kind == "(":
            inner = disjunction()
            if take()[0] != ")":
                raise FilterError("$filter: a parenthesis is not closed.")
            return inner
        if kind != "word" or value.lower() not in FIELDS:
            raise FilterError(f"$filter: unknown field '{value}' (known: {', '.join(sorted(FIELDS.values()))}).")
        field = FIELDS[value.lower()]
        op_kind, op = take()
        if op_kind != "word" or op.lower() != "eq":
            raise FilterError(f"$filter: operator '{op}' after {field} is not supported here (eq).")
        v_kind, wanted = take()
        if v_kind != "str":
            raise FilterError(f"$filter: {field} eq needs a quoted value.")
        key = "priceType" if field == "priceType" else field
        return lambda row: str(row.get("type" if key == "priceType" else key, "")).lower() == wanted.lower()

    def conjunction() -> Callable[[dict[str, Any]], bool]:
        terms = [primary()]
        while (t := peek()) and t[0] == "word" and t[1].lower() == "and":
            take()
            terms.append(primary())
        return lambda row: all(term(row) for term in terms)

    def disjunction() -> Callable[[dict[str, Any]], bool]:
        terms = [conjunction()]
        while (t := peek()) and t[0] == "word" and t[1].lower() == "or":
            take()
            terms.append(conjunction())
        return lambda row: any(term(row) for term in terms)

    if not tokens:
        return lambda row: True
    out = disjunction()
    if pos != len(tokens):
        raise FilterError(f"$filter: unexpected '{tokens[pos][1]}'.")
    return out


def serve(req: Request, page_size: int) -> Response:
    text = req.query.get("$filter", "")
    try:
        skip = int(req.query.get("$skip", "0") or 0)
    except ValueError:
        raise FilterError("$skip: must be a whole number.") from None
    currency = req.query.get("currencyCode", "").strip("'") or prices.CURRENCY
    if currency.upper() != prices.CURRENCY:
        raise FilterError(f"currencyCode: only '{prices.CURRENCY}' is served here.")
    keep = parse_filter(text)
    items = [i for i in prices.sheet(req.emulator.store) if keep(i)]
    page = items[skip:skip + page_size]
    next_link = None
    if skip + page_size < len(items):
        query = {k: v for k, v in req.query.items() if k != "$skip"}
        query["$skip"] = str(skip + page_size)
        next_link = f"{req.base_url()}{PATH}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
    return Response(200, {"BillingCurrency": prices.CURRENCY, "CustomerEntityId": "Default",
                          "CustomerEntityType": "Retail", "Items": page, "NextPageLink": next_link,
                          "Count": len(page)})
