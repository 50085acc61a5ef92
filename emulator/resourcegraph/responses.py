"""POST /providers/Microsoft.ResourceGraph/resources: the documented KQL subset (kql.py) over the
``Resources`` table, paged with $skipToken. A query outside the subset is a 400 naming the
operator, never a wrong answer."""

from __future__ import annotations

import base64
import json
import uuid
from collections import OrderedDict
from typing import Any

from ..core.errors import ArmError
from ..core.routing import Request, Response, Router

router = Router()
VERSIONS = ("2024-04-01", "2022-10-01", "2021-06-01-preview", "2021-03-01", "2020-04-01-preview", "2019-04-01")
MAX_PAGE = 1000
CACHED_QUERIES = 64


# ComputeResources: Resource Graph's table of scale sets' parts (Learn "Resource Graph tables"); here a Uniform
# scale set's instances, whose type is a child's.
COMPUTE_RESOURCES = ("microsoft.compute/virtualmachinescalesets/virtualmachines",)


def resource_rows(store: Any, subscriptions: list[str] | None, table: str = "resources") -> list[dict[str, Any]]:
    """Rows of the Resources table (top-level resources) or of ComputeResources, type and group lower-cased as ARG
    has them."""
    wanted = {s.lower() for s in subscriptions} if subscriptions else None
    rows = []
    for res in store.resources.values():
        if table == "computeresources":
            if res.type.lower() not in COMPUTE_RESOURCES:
                continue
        elif res.type.count("/") != 1:
            continue
        sub = res.subscription_id
        if wanted is not None and sub.lower() not in wanted:
            continue
        rows.append({
            "id": res.id, "name": res.name, "type": res.type.lower(), "tenantId": store.tenant_id,
            "kind": res.extra.get("kind", ""), "location": res.location, "resourceGroup": res.resource_group.lower(),
            "subscriptionId": sub, "managedBy": res.extra.get("managedBy", ""), "sku": res.extra.get("sku"),
            "plan": None, "properties": res.properties, "tags": res.tags or {}, "identity": res.extra.get("identity"),
            "zones": res.extra.get("zones"), "extendedLocation": None,
        })
    rows.sort(key=lambda r: r["id"].lower())
    return rows


def _bad_request(message: str, code: str = "InvalidQuery") -> ArmError:
    return ArmError(f"Please provide below info when asking for support: timestamp, request id. {message}",
                    code="BadRequest", status=400, details=[{"code": code, "message": message}])


def _column_type(values: list[Any]) -> str:
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            return "boolean"
        if isinstance(v, int):
            return "integer"
        if isinstance(v, float):
            return "real"
        if isinstance(v, (dict, list)):
            return "object"
        return "string"
    return "string"


@router.route("POST", "/providers/Microsoft.ResourceGraph/resources", operation="Microsoft.ResourceGraph/resources/read",
              api_versions=VERSIONS, kind="reads")
def query_resources(req: Request) -> Response:
    from .kql import KqlError, parse

    body = req.json()
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _bad_request("query: required, a KQL query string.", code="MissingQuery")
    subscriptions = body.get("subscriptions")
    if subscriptions is not None and (not isinstance(subscriptions, list) or not all(isinstance(s, str) for s in subscriptions)):
        raise _bad_request("subscriptions: must be a list of subscription ids.", code="InvalidScope")
    options = body.get("options") or {}
    top = options.get("$top", MAX_PAGE)
    skip = options.get("$skip", 0) or 0
    if not isinstance(top, int) or not 1 <= top <= MAX_PAGE:
        raise _bad_request(f"options.$top: must be an integer from 1 to {MAX_PAGE}.", code="InvalidOptions")
    if not isinstance(skip, int) or skip < 0:
        raise _bad_request("options.$skip: must be a non-negative integer.", code="InvalidOptions")
    result_format = options.get("resultFormat", "objectArray")
    if result_format not in ("objectArray", "table"):
        raise _bad_request("options.resultFormat: must be objectArray or table.", code="InvalidOptions")
    cache: OrderedDict = req.emulator.transient.setdefault("resourcegraph", OrderedDict())
    token = options.get("$skipToken")
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            key, offset = state["q"], int(state["o"])
            if "$top" not in options:  # the next page keeps the first page's size
                top = int(state.get("t", MAX_PAGE))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise _bad_request("options.$skipToken: the token is invalid.", code="InvalidSkipToken") from None
        if key not in cache:
            raise _bad_request("options.$skipToken: the token has expired; run the query again.", code="InvalidSkipToken")
        rows, columns = cache[key]
    else:
        try:
            compiled = parse(query)
            rows = compiled.run(resource_rows(req.emulator.store, subscriptions, compiled.table))
        except KqlError as exc:
            raise _bad_request(exc.message, code=exc.code) from None
        columns = compiled.columns
        key = str(uuid.uuid4())
        cache[key] = (rows, columns)
        while len(cache) > CACHED_QUERIES:
            cache.popitem(last=False)
        offset = skip
    page = rows[offset:offset + top]
    out: dict[str, Any] = {"totalRecords": len(rows), "count": len(page), "resultTruncated": "false", "facets": []}
    if offset + top < len(rows):
        out["$skipToken"] = base64.urlsafe_b64encode(json.dumps({"q": key, "o": offset + top, "t": top}).encode()).decode()
    if result_format == "table":
        names = columns or (list(page[0].keys()) if page else [])
        out["data"] = {"columns": [{"name": n, "type": _column_type([r.get(n) for r in page])} for n in names],
                       "rows": [[r.get(n) for n in names] for r in page]}
    else:
        out["data"] = page
    return Response(200, out)
