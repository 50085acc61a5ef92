"""Helpers every provider uses: resource ids, names, tags, lists with nextLink, and the
Azure-AsyncOperation/Location headers of an accepted long-running operation."""

from __future__ import annotations

import base64
import re
import urllib.parse
from typing import Any

from .errors import ArmError, InvalidParameter, InvalidResourceName, ResourceNotFound
from .lro import Operation
from .routing import Request, Response
from .state import Resource, Store

PAGE_SIZE = 100


def rid(sub: str, rg: str, provider: str, *type_name_pairs: str) -> str:
    """/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{type}/{name}[/{type}/{name}...]"""
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/" + "/".join(type_name_pairs)


def parse_rid(resource_id: str) -> dict[str, str] | None:
    """Split a resource id; None if it is not one (case-insensitive on the fixed segments)."""
    m = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/([^/]+)/(.+)$", resource_id or "", re.IGNORECASE)
    if not m:
        return None
    rest = m.group(4).split("/")
    if len(rest) % 2:
        return None
    return {"subscription": m.group(1), "resource_group": m.group(2), "provider": m.group(3),
            "type": m.group(3) + "/" + "/".join(rest[0::2]), "name": rest[-1]}


def normalize_location(location: Any) -> str:
    return str(location or "").replace(" ", "").lower()


def check_name(name: str, pattern: str, rule: str, target: str = "name") -> None:
    if not re.fullmatch(pattern, name):
        raise InvalidResourceName(f"The resource name '{name}' is invalid. {rule}", target=target)


def check_tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidParameter("tags: must be an object of string values.", code="InvalidTag", target="tags")
    if len(tags) > 50:
        raise InvalidParameter("tags: at most 50 tags per resource.", code="InvalidTag", target="tags")
    for name, value in tags.items():
        if len(name) > 512 or len(value) > 256 or not name or any(c in name for c in "<>%&\\?/"):
            raise InvalidParameter(
                f"tags: invalid tag name '{name[:40]}' or value (name 1-512 chars without <>%&\\?/, value <= 256).",
                code="InvalidTagNameCharacters", target="tags",
            )
    return dict(tags)


def require_location(body: dict[str, Any]) -> str:
    location = body.get("location")
    if not isinstance(location, str) or not location.strip():
        raise ArmError("The location property is required for this definition.", code="LocationRequired")
    return normalize_location(location)


def get_resource(store: Store, resource_id: str, label: str, name: str, rg: str | None) -> Resource:
    res = store.get(resource_id)
    if res is None:
        if rg is not None:
            sub = resource_id.split("/")[2]
            store.resource_group(sub, rg)  # a missing group is reported as such
        raise ResourceNotFound(label, name, rg)
    return res


def listing(req: Request, items: list[dict[str, Any]], page_size: int = PAGE_SIZE) -> Response:
    """A list response paged with nextLink and $skiptoken, as ARM lists are."""
    token = req.query.get("$skiptoken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise InvalidParameter("The $skiptoken is invalid.", target="$skiptoken") from None
    page = items[start:start + page_size]
    body: dict[str, Any] = {"value": page}
    if start + page_size < len(items):
        query = dict(req.query)
        query["$skiptoken"] = base64.urlsafe_b64encode(str(start + page_size).encode()).decode()
        body["nextLink"] = f"{req.base_url()}{req.path}?{urllib.parse.urlencode(query)}"
    return Response(200, body)


def in_scope(req: Request, resource_type: str, *, group: bool) -> list[Resource]:
    """The resources of a type in the request's resource group (which must exist) or subscription."""
    store, sub = req.emulator.store, req.params["subscriptionId"]
    if group:
        rg = store.resource_group(sub, req.params["resourceGroupName"])
        return store.of_type(resource_type, rg.id)
    return store.of_type(resource_type, f"/subscriptions/{sub}")


def operation_urls(req: Request, op: Operation, provider: str) -> dict[str, str]:
    """Azure-AsyncOperation (status body) and Location (monitor=true: 202 then the result)."""
    base = f"{req.base_url()}/subscriptions/{op.subscription_id}/providers/{provider}/locations/{op.location}/operations/{op.id}"
    version = urllib.parse.quote(req.api_version)
    return {
        "Azure-AsyncOperation": f"{base}?p=0&api-version={version}",
        "Location": f"{base}?p=0&monitor=true&api-version={version}",
        **req.emulator.operations.retry_headers(op),
    }


def accepted(req: Request, op: Operation, provider: str, status: int, body: Any = None) -> Response:
    return Response(status, body, operation_urls(req, op, provider))


def no_event(resp: Response) -> Response:
    """Mark a 2xx write/delete response as producing no Event Grid event (e.g. delete of nothing)."""
    resp.headers["x-emulator-event"] = "0"
    return resp


def linked_access_check(req: Any, action: str, resource_id: str) -> None:
    """One linked access check (see ``linked_access_checks``)."""
    linked_access_checks(req, [(action, resource_id)])


def linked_access_checks(req: Any, checks: list[tuple[str, str]]) -> None:
    """ARM's linked access checks: a request that references other resources (a NIC's subnet, a VM's NIC,
    an Azure Backup restore's staging storage account) also needs an action on each of them
    (``…/subnets/join/action``). Each is recorded in the call log (method ``LINKED``, the action, the
    linked resource as the path, the caller's user agent and 200 or 403), so the permissions a client
    needs can be measured; a caller whose role assignments (core/rbac.py) lack any of them gets 403
    ``LinkedAuthorizationFailed`` naming them all, and the request does nothing. A caller without
    assignments passes (the emulator is permissive by default)."""
    emulator, principal = req.emulator, req.bearer_token()
    refused = []
    for action, resource_id in checks:
        allowed = emulator.rbac.allows(principal, action, resource_id)
        emulator.calls.record("LINKED", resource_id, action, 200 if allowed else 403, emulator.clock.timestamp(),
                              req.headers.get("user-agent"))
        if not allowed:
            refused.append((action, resource_id))
    if refused:
        raise emulator.rbac.refused(principal, req.route.operation if req.route else "", req.path.rstrip("/"), refused)
