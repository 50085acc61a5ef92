"""``POST {scope}/providers/Microsoft.CostManagement/query`` (2025-03-01, the api-version azure-mgmt-costmanagement
5.0.0 sends; contracts ``../shared/azure-api/next/examples/Microsoft.CostManagement/2025-03-01/``) over what the
emulated fleet costs (billing.py), Cost Management's own throttling, nextLink paging; and the Retail Prices API on
the emulator's host (retail.py). See emulator/README.md "Cost Management and Retail Prices"."""

from __future__ import annotations

import base64
import calendar
import json
import math
import urllib.parse
import uuid
from collections import OrderedDict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..core.errors import ArmError
from ..core.providers import AdminRoute, Setting
from ..core.routing import Request, Response, Router
from . import billing, retail

router = Router()
data_plane = Router()
VERSIONS = ("2025-03-01", "2024-08-01", "2023-11-01", "2023-03-01", "2022-10-01")
QUERY = "/{scope*}/providers/Microsoft.CostManagement/query"
SETTING_NAME = "cost_management"
DEFAULTS = {"queries_per_window": 4, "window_seconds": 60, "page_rows": 1000, "data_lag_hours": 0,
            "retail_page_size": 1000, "currency": "USD"}
TYPES = {"usage": "Usage", "actualcost": "ActualCost", "amortizedcost": "AmortizedCost"}
TIMEFRAMES = ("MonthToDate", "BillingMonthToDate", "TheLastMonth", "TheLastBillingMonth", "WeekToDate",
              "TheCurrentMonth", "Custom")
COST_COLUMNS = ("PreTaxCost", "Cost", "PreTaxCostUSD", "CostUSD")
DIMENSIONS = ("ResourceGroup", "ResourceGroupName", "ResourceType", "ResourceId", "ResourceLocation", "ServiceName",
              "Meter", "MeterCategory", "SubscriptionId")
RATE = "x-ms-ratelimit-microsoft.costmanagement"
CACHED = 32


def _merge(current: dict[str, Any], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError('settings.cost_management: an object such as {"queries_per_window": 4}')
    unknown = set(value) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"settings.cost_management: unknown field(s) {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    out = dict(current)
    for key, v in value.items():
        if key == "currency":  # the billing currency the query's rows are in (the amounts are the sheet's numbers)
            if not isinstance(v, str) or len(v) != 3 or not v.isalpha() or not v.isupper():
                raise ValueError("settings.cost_management.currency: an ISO 4217 code in capitals, such as \"EUR\"")
            out[key] = v
            continue
        if isinstance(v, bool) or not isinstance(v, int | float) or v < (0 if key == "data_lag_hours" else 1):
            raise ValueError(f"settings.cost_management.{key}: a number >= {0 if key == 'data_lag_hours' else 1}")
        out[key] = v
    return out


SETTINGS = [Setting(SETTING_NAME, dict(DEFAULTS), _merge)]


def _settings(req: Request) -> dict[str, Any]:
    return req.emulator.provider_settings[SETTING_NAME]


def _bad(message: str, target: str) -> ArmError:
    return ArmError(message, code="BadRequest", status=400, target=target)


# --- the request ----------------------------------------------------------------------------------------
def _instant(value: Any, target: str) -> datetime:
    try:
        out = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{target}: '{value}' is not an ISO 8601 date and time.", target) from None
    return out if out.tzinfo else out.replace(tzinfo=UTC)


def period(body: dict[str, Any], now: datetime) -> tuple[date, date]:
    """The first and last day (inclusive, UTC) the timeframe covers."""
    frame = body.get("timeframe")
    match = {t.lower(): t for t in TIMEFRAMES}.get(str(frame).lower())
    if match is None:
        raise _bad(f"timeframe: '{frame}' is not one of {', '.join(TIMEFRAMES)}.", "timeframe")
    today = now.date()
    if match in ("MonthToDate", "BillingMonthToDate"):
        return today.replace(day=1), today
    if match == "TheCurrentMonth":
        return today.replace(day=1), today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if match in ("TheLastMonth", "TheLastBillingMonth"):
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if match == "WeekToDate":
        return today - timedelta(days=today.weekday()), today
    tp = body.get("timePeriod")
    if not isinstance(tp, dict) or "from" not in tp or "to" not in tp:
        raise _bad("timePeriod: required with timeframe Custom, {from, to}.", "timePeriod")
    first, last = _instant(tp["from"], "timePeriod.from").date(), _instant(tp["to"], "timePeriod.to").date()
    if first > last:
        raise _bad("timePeriod: 'from' is after 'to'.", "timePeriod")
    if (last - first).days > 366:
        raise _bad("timePeriod: at most one year here.", "timePeriod")
    return first, last


def _names(values: Any, target: str) -> set[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _bad(f"{target}.values: a list of strings.", f"{target}.values")
    return {v.lower() for v in values}


def compile_filter(node: Any, target: str = "dataset.filter") -> Any:
    """``and``/``or`` of ``dimensions``/``tags`` with operator In (values compared without case)."""
    if not isinstance(node, dict):
        raise _bad(f"{target}: an object.", target)
    if "and" in node or "or" in node:
        key = "and" if "and" in node else "or"
        parts = node[key]
        if not isinstance(parts, list) or len(parts) < 2:
            raise _bad(f"{target}.{key}: at least two expressions.", f"{target}.{key}")
        terms = [compile_filter(p, f"{target}.{key}[{i}]") for i, p in enumerate(parts)]
        return (lambda r: all(t(r) for t in terms)) if key == "and" else (lambda r: any(t(r) for t in terms))
    if "not" in node:
        inner = compile_filter(node["not"], f"{target}.not")
        return lambda r: not inner(r)
    for key in ("dimensions", "tags"):
        if key in node:
            spec = node[key] if isinstance(node[key], dict) else {}
            name, op = spec.get("name"), str(spec.get("operator", ""))
            if op.lower() != "in":
                raise _bad(f"{target}.{key}.operator: '{op}' (In here).", f"{target}.{key}.operator")
            wanted = _names(spec.get("values"), f"{target}.{key}")
            if key == "dimensions":
                dim = _dimension(name, f"{target}.dimensions.name")
                return lambda r: str(r["dims"][dim]).lower() in wanted
            if not isinstance(name, str) or not name:
                raise _bad(f"{target}.tags.name: a tag name.", f"{target}.tags.name")
            return lambda r: (r["tags"].get(name.lower()) or "").lower() in wanted and name.lower() in r["tags"]
    raise _bad(f"{target}: and, or, not, dimensions or tags.", target)


def _dimension(name: Any, target: str) -> str:
    match = {d.lower(): d for d in DIMENSIONS}.get(str(name).lower())
    if match is None:
        raise _bad(f"{target}: '{name}' is not a dimension here ({', '.join(DIMENSIONS)}).", target)
    return match


def _dims(res: Any, meter: Any) -> dict[str, str]:
    return {"ResourceGroup": res.resource_group, "ResourceGroupName": res.resource_group,
            "ResourceType": res.type.lower(), "ResourceId": res.id.lower(),
            "ResourceLocation": (res.location or "").lower(), "ServiceName": meter.service_name,
            "Meter": meter.meter_name, "MeterCategory": meter.service_name, "SubscriptionId": res.subscription_id}


def run(req: Request, body: dict[str, Any], scope: str) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """Columns and rows of the query over the scope's usage."""
    kind = TYPES.get(str(body.get("type", "")).lower())
    if kind is None:
        raise _bad(f"type: '{body.get('type')}' is not Usage, ActualCost or AmortizedCost.", "type")
    emulator = req.emulator
    now_ts = emulator.clock.timestamp()
    first, last = period(body, datetime.fromtimestamp(now_ts, UTC))
    dataset = body.get("dataset") or {}
    if not isinstance(dataset, dict):
        raise _bad("dataset: an object.", "dataset")
    granularity = str(dataset.get("granularity") or "None")
    if granularity.lower() not in ("none", "daily"):
        raise _bad(f"dataset.granularity: '{granularity}' (None or Daily here).", "dataset.granularity")
    daily = granularity.lower() == "daily"
    aggregation = dataset.get("aggregation") or {}
    if not isinstance(aggregation, dict) or len(aggregation) > 2:
        raise _bad("dataset.aggregation: an object of at most two aggregations.", "dataset.aggregation")
    measures = []
    for alias, spec in aggregation.items():
        name = (spec or {}).get("name") if isinstance(spec, dict) else None
        if name not in COST_COLUMNS:
            raise _bad(f"dataset.aggregation.{alias}.name: '{name}' ({', '.join(COST_COLUMNS)}).",
                       f"dataset.aggregation.{alias}.name")
        if str(spec.get("function", "")).lower() != "sum":
            raise _bad(f"dataset.aggregation.{alias}.function: Sum.", f"dataset.aggregation.{alias}.function")
        measures.append(name)
    measures = measures or ["PreTaxCost" if kind == "Usage" else "Cost"]
    grouping = dataset.get("grouping") or []
    if not isinstance(grouping, list) or len(grouping) > 2:
        raise _bad("dataset.grouping: at most two groupings.", "dataset.grouping")
    groups: list[tuple[str, str]] = []
    for i, g in enumerate(grouping):
        gtype = str((g or {}).get("type", "")).lower() if isinstance(g, dict) else ""
        if gtype == "dimension":
            groups.append(("dim", _dimension(g.get("name"), f"dataset.grouping[{i}].name")))
        elif gtype == "tagkey":
            if not isinstance(g.get("name"), str) or not g["name"] or any(k == "tag" for k, _ in groups):
                raise _bad(f"dataset.grouping[{i}].name: one tag name (one TagKey grouping here).",
                           f"dataset.grouping[{i}].name")
            groups.append(("tag", g["name"]))
        else:
            raise _bad(f"dataset.grouping[{i}].type: Dimension or TagKey.", f"dataset.grouping[{i}].type")
    keep = compile_filter(dataset["filter"]) if dataset.get("filter") is not None else (lambda r: True)
    parts = [p for p in scope.split("/") if p]
    group = parts[3] if len(parts) >= 4 and parts[2].lower() == "resourcegroups" else None
    until = now_ts - float(_settings(req)["data_lag_hours"]) * 3600
    sums: dict[tuple, float] = {}
    with emulator.lock:
        found = billing.lines(emulator, parts[1], group)
    for line in found:
        tags = {k.lower(): v for k, v in (line.resource.tags or {}).items()}
        row = {"dims": _dims(line.resource, line.meter), "tags": tags}
        if not keep(row):
            continue
        key_parts: list[Any] = []
        for gkind, name in groups:
            if gkind == "dim":
                key_parts.append(row["dims"][name])
            else:
                present = name.lower() in tags
                key_parts += [name if present else "", tags.get(name.lower(), "") if present else ""]
        for day, cost in billing.daily(line, first, last, until).items():
            key = (*key_parts, int(day.strftime("%Y%m%d"))) if daily else tuple(key_parts)
            sums[key] = sums.get(key, 0.0) + cost
    columns = [{"name": m, "type": "Number"} for m in measures]
    for gkind, name in groups:
        columns += ([{"name": name, "type": "String"}] if gkind == "dim"
                    else [{"name": "TagKey", "type": "String"}, {"name": "TagValue", "type": "String"}])
    if daily:
        columns.append({"name": "UsageDate", "type": "Number"})
    columns.append({"name": "Currency", "type": "String"})
    currency = _settings(req)["currency"]
    rows = [[*([cost] * len(measures)), *key, currency] for key, cost in sorted(sums.items(), key=lambda kv: kv[0])]
    return columns, rows


# --- throttling -------------------------------------------------------------------------------------------
def _throttle(req: Request, scope: str) -> dict[str, str]:
    """Cost Management's own limit, per scope: ``queries_per_window`` new queries in ``window_seconds`` (emulated);
    over it a 429 with Retry-After and the x-ms-ratelimit-microsoft.costmanagement-* headers."""
    s = _settings(req)
    clock = req.emulator.clock
    now = clock.timestamp()
    window: dict[str, list[float]] = req.emulator.transient.setdefault("costmanagement-window", {})
    seen = [t for t in window.get(scope, []) if now - t < float(s["window_seconds"])]
    if len(seen) >= int(s["queries_per_window"]):
        wait = str(max(1, math.ceil(clock.real_seconds(seen[0] + float(s["window_seconds"]) - now))))
        window[scope] = seen
        raise ArmError("Too many requests. Please retry.", code="429", status=429,
                       headers={"Retry-After": wait, f"{RATE}-entity-retry-after": wait,
                                f"{RATE}-qpu-retry-after": wait, f"{RATE}-qpu-remaining": "0"})
    seen.append(now)
    window[scope] = seen
    return {f"{RATE}-qpu-consumed": "1", f"{RATE}-qpu-remaining": str(int(s["queries_per_window"]) - len(seen))}


# --- the route ----------------------------------------------------------------------------------------------
@router.route("POST", QUERY, operation="Microsoft.CostManagement/query/action", api_versions=VERSIONS)
def query(req: Request) -> Response:
    scope = "/" + req.params["scope"].strip("/")
    parts = [p for p in scope.split("/") if p]
    if not (len(parts) == 2 or (len(parts) == 4 and parts[2].lower() == "resourcegroups")):
        raise _bad(f"scope: '{scope}' (a subscription or a resource group here).", "scope")
    body = req.json()
    cache: OrderedDict = req.emulator.transient.setdefault("costmanagement", OrderedDict())
    token = req.query.get("$skiptoken")
    headers: dict[str, str] = {}
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            key, offset = state["q"], int(state["o"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise _bad("$skiptoken: the token is invalid.", "$skiptoken") from None
        if key not in cache:
            raise _bad("$skiptoken: the token has expired; run the query again.", "$skiptoken")
        columns, rows = cache[key]
    else:
        headers = _throttle(req, scope.lower())
        columns, rows = run(req, body, scope)
        key, offset = str(uuid.uuid4()), 0
        cache[key] = (columns, rows)
        while len(cache) > CACHED:
            cache.popitem(last=False)
    size = int(_settings(req)["page_rows"])
    next_link = None
    if offset + size < len(rows):
        token = base64.urlsafe_b64encode(json.dumps({"q": key, "o": offset + size}).encode()).decode()
        next_link = (f"{req.base_url()}{scope}/providers/Microsoft.CostManagement/query?"
                     + urllib.parse.urlencode({"api-version": req.api_version, "$skiptoken": token}))
    name = str(uuid.uuid4())
    return Response(200, {"id": f"{scope}/providers/Microsoft.CostManagement/query/{name}", "name": name,
                          "type": "Microsoft.CostManagement/query", "location": None, "sku": None, "eTag": None,
                          "tags": None, "properties": {"nextLink": next_link, "columns": columns,
                                                        "rows": rows[offset:offset + size]}}, headers)


@data_plane.route("GET", retail.PATH, operation="Microsoft.CostManagement/retailPrices/read", api_versions=None)
def retail_prices(req: Request) -> Response:
    """Public: no bearer is asked for."""
    return retail.serve(req, int(_settings(req)["retail_page_size"]))


# --- admin: a resource that has existed for a while, without moving the clock ------------------------------
def _age(emulator: Any, body: dict[str, Any]) -> tuple[int, Any]:
    """``{"ids": [...], "seconds": n}``: each resource and everything under it made ``n`` seconds earlier (its
    ``created`` and ``timeCreated``), so a test can price days of existence at once."""
    from ..core.clock import iso

    ids, seconds = body.get("ids"), body.get("seconds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("ids: a list of resource ids")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError("seconds: a number >= 0")
    aged = []
    prefixes = [i.lower().rstrip("/") for i in ids]
    for res in emulator.store.resources.values():
        if any(res.key == p or res.key.startswith(p + "/") for p in prefixes):
            res.created -= seconds
            if "timeCreated" in res.properties:
                res.properties["timeCreated"] = iso(res.created)
            aged.append(res.id)
    return 200, {"aged": sorted(aged)}


ADMIN = [AdminRoute("POST", r"costmanagement/age", _age)]
