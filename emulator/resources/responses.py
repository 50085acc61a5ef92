"""Subscriptions, resource groups (PUT/GET/HEAD/PATCH/DELETE, list), tags at any scope, and the
generic resource listings of a group or subscription."""

from __future__ import annotations

import re
from typing import Any

from ..core.arm import check_tags, listing, no_event, normalize_location, require_location
from ..core.errors import ArmError, InvalidParameter, ResourceGroupNotFound
from ..core.lro import OperationFailed
from ..core.resource import Monitor, add_operation_monitors
from ..core.routing import Request, Response, Router
from . import models

router = Router()

RG_VERSIONS = ("2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-09-01",
               "2021-04-01", "2021-01-01")
SUB_VERSIONS = ("2024-11-01", "2022-12-01", "2021-01-01", "2020-01-01", "2016-06-01")
TOP_LEVEL = 1  # a top-level resource type has one '/' (namespace/type)


def _body(res: Any) -> dict[str, Any]:
    return res.to_arm()


@router.route("GET", "/subscriptions", operation="Microsoft.Resources/subscriptions/read", api_versions=SUB_VERSIONS)
def list_subscriptions(req: Request) -> Response:
    return listing(req, [s.to_arm() for s in req.emulator.store.subscriptions.values()])


@router.route("GET", "/subscriptions/{subscriptionId}", operation="Microsoft.Resources/subscriptions/read",
              api_versions=SUB_VERSIONS)
def get_subscription(req: Request) -> Response:
    return Response(200, req.emulator.store.subscription(req.params["subscriptionId"]).to_arm())


RG = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"
IN_GROUP = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)", re.IGNORECASE)


def guard(req: Request) -> None:
    """ARM refuses writes and actions in a group whose delete is running (409 ResourceGroupBeingDeleted)."""
    if req.method not in ("PUT", "PATCH", "POST"):
        return
    found = IN_GROUP.match(req.path)  # a scope (tags, locks) starts with its group too
    if found is None:
        return
    sub = req.emulator.store.subscriptions.get(found.group(1).lower())
    rg = sub.resource_groups.get(found.group(2).lower()) if sub else None
    if rg is not None and rg.provisioning_state == "Deleting":
        raise ArmError(f"The resource group '{rg.name}' is in deprovisioning state and cannot perform this operation.",
                       code="ResourceGroupBeingDeleted", status=409)


@router.route("PUT", RG, operation="Microsoft.Resources/subscriptions/resourceGroups/write", api_versions=RG_VERSIONS)
def put_group(req: Request) -> Response:
    body = req.json()
    rg, created = req.emulator.store.put_resource_group(req.params["subscriptionId"], req.params["resourceGroupName"],
                                                        require_location(body), check_tags(body))
    return Response(201 if created else 200, rg.to_arm())


@router.route("GET", RG, operation="Microsoft.Resources/subscriptions/resourceGroups/read", api_versions=RG_VERSIONS)
def get_group(req: Request) -> Response:
    return Response(200, req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"]).to_arm())


@router.route("HEAD", RG, operation="Microsoft.Resources/subscriptions/resourceGroups/read", api_versions=RG_VERSIONS)
def head_group(req: Request) -> Response:
    sub = req.emulator.store.subscription(req.params["subscriptionId"])
    return Response(204 if req.params["resourceGroupName"].lower() in sub.resource_groups else 404)


@router.route("PATCH", RG, operation="Microsoft.Resources/subscriptions/resourceGroups/write", api_versions=RG_VERSIONS)
def patch_group(req: Request) -> Response:
    rg = req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    tags = check_tags(req.json())
    if tags is not None:
        rg.tags = tags
    return Response(200, rg.to_arm())


@router.route("DELETE", RG, operation="Microsoft.Resources/subscriptions/resourceGroups/delete", api_versions=RG_VERSIONS)
def delete_group(req: Request) -> Response:
    store = req.emulator.store
    sub = store.subscription(req.params["subscriptionId"])
    rg = sub.resource_groups.get(req.params["resourceGroupName"].lower())
    if rg is None:
        raise ResourceGroupNotFound(req.params["resourceGroupName"])

    deletions = req.emulator.router.deletions

    def gone(op) -> None:  # everything in it, each as its provider deletes it; no call of the client's own
        refused = models.delete_contents(store, rg, deletions)
        if refused:
            raise OperationFailed(models.blocked_error(rg, refused))
        sub.resource_groups.pop(rg.name.lower(), None)

    def kept(op) -> None:
        rg.provisioning_state = "Succeeded"

    rg.provisioning_state = "Deleting"
    op = req.emulator.start_operation(req, rg.location, on_success=gone, on_failure=kept)
    # ARM answers a group delete with a Location-only monitor: /subscriptions/{id}/operationresults/{token}
    location = f"{req.base_url()}/subscriptions/{sub.id}/operationresults/{op.id}?api-version={req.api_version}"
    return Response(202, None, {"Location": location, **req.emulator.operations.retry_headers(op)})


# A group delete's Location monitor: 202 while running, then 200 (ARM's answer, not 204).
add_operation_monitors(router, Monitor(done_status=200), api_versions=RG_VERSIONS,
                       result=("/subscriptions/{subscriptionId}/operationresults/{operationId}",
                               "Microsoft.Resources/subscriptions/operationresults/read"))


@router.route("GET", "/subscriptions/{subscriptionId}/resourcegroups",
              operation="Microsoft.Resources/subscriptions/resourceGroups/read", api_versions=RG_VERSIONS)
def list_groups(req: Request) -> Response:
    sub = req.emulator.store.subscription(req.params["subscriptionId"])
    return listing(req, [g.to_arm() for g in sorted(sub.resource_groups.values(), key=lambda g: g.name.lower())])


def _generic(res: Any) -> dict[str, Any]:
    body = {"id": res.id, "name": res.name, "type": res.type, "location": res.location}
    if res.tags is not None:
        body["tags"] = res.tags
    return body


def _top_level(resources: list[Any]) -> list[Any]:
    return [r for r in resources if r.type.count("/") == TOP_LEVEL]


def _filter(req: Request, items: list[Any]) -> list[Any]:
    expr = req.query.get("$filter", "")
    if not expr:
        return items
    # ARM's documented filters: resourceType eq '...', tagName eq '...' [and tagValue eq '...'], location eq '...'
    clauses = dict((k.lower(), v) for k, v in re.findall(r"(\w+)\s+eq\s+'([^']*)'", expr))
    if not clauses:
        raise InvalidParameter(f"$filter: '{expr}' is not supported (resourceType, tagName/tagValue, location eq '...').",
                               target="$filter")
    out = []
    for r in items:
        if "resourcetype" in clauses and r.type.lower() != clauses["resourcetype"].lower():
            continue
        if "location" in clauses and normalize_location(r.location) != normalize_location(clauses["location"]):
            continue
        if "tagname" in clauses:
            tags = {k.lower(): v for k, v in (r.tags or {}).items()}
            if clauses["tagname"].lower() not in tags:
                continue
            if "tagvalue" in clauses and tags[clauses["tagname"].lower()] != clauses["tagvalue"]:
                continue
        out.append(r)
    return out


@router.route("GET", RG + "/resources", operation="Microsoft.Resources/subscriptions/resourceGroups/resources/read",
              api_versions=RG_VERSIONS)
def list_group_resources(req: Request) -> Response:
    rg = req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    items = _top_level(sorted(req.emulator.store.children(rg.id), key=lambda r: r.key))
    return listing(req, [_generic(r) for r in _filter(req, items)])


@router.route("GET", "/subscriptions/{subscriptionId}/resources", operation="Microsoft.Resources/subscriptions/resources/read",
              api_versions=RG_VERSIONS)
def list_subscription_resources(req: Request) -> Response:
    sub = req.emulator.store.subscription(req.params["subscriptionId"])
    items = _top_level(sorted(req.emulator.store.children(f"/subscriptions/{sub.id}"), key=lambda r: r.key))
    return listing(req, [_generic(r) for r in _filter(req, items)])


# --- tags at scope ----------------------------------------------------------------------------------
TAGS = "/{scope*}/providers/Microsoft.Resources/tags/default"


def _tag_target(req: Request) -> tuple[str, Any]:
    """The object whose tags are addressed: a resource, a resource group or a subscription."""
    scope = "/" + req.params["scope"].strip("/")
    store = req.emulator.store
    parts = [p for p in scope.split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise InvalidParameter(f"The scope '{scope}' is not a valid resource id.", code="InvalidScope", target="scope")
    sub = store.subscription(parts[1])
    if len(parts) == 2:
        return scope, sub
    if len(parts) == 4 and parts[2].lower() == "resourcegroups":
        return scope, store.resource_group(sub.id, parts[3])
    store.resource_group(sub.id, parts[3])
    res = store.get(scope)
    if res is None:
        from ..core.errors import ResourceNotFound

        raise ResourceNotFound("/".join(parts[5:-1:2]) or "resource", parts[-1], parts[3])
    return scope, res


def _tags_body(scope: str, tags: dict[str, str] | None) -> dict[str, Any]:
    return {"id": f"{scope}/providers/Microsoft.Resources/tags/default", "name": "default",
            "type": "Microsoft.Resources/tags", "properties": {"tags": dict(tags or {})}}


@router.route("GET", TAGS, operation="Microsoft.Resources/tags/read", api_versions=RG_VERSIONS)
def get_tags(req: Request) -> Response:
    scope, target = _tag_target(req)
    return Response(200, _tags_body(scope, target.tags))


@router.route("PUT", TAGS, operation="Microsoft.Resources/tags/write", api_versions=RG_VERSIONS)
def put_tags(req: Request) -> Response:
    scope, target = _tag_target(req)
    target.tags = _patch_tags(req.json())
    return Response(200, _tags_body(scope, target.tags))


def _patch_tags(body: dict[str, Any]) -> dict[str, str]:
    """properties.tags of a tags-at-scope PUT or PATCH body (REST reference; no official example in ../shared)."""
    props = body.get("properties")
    if props is not None and not isinstance(props, dict):
        raise InvalidParameter("properties: must be an object with a 'tags' object.", target="properties")
    try:
        return check_tags({"tags": (props or {}).get("tags") or {}}) or {}
    except InvalidParameter as exc:  # name the field as the body has it
        raise InvalidParameter(f"properties.{exc.message}", code=exc.code, target="properties.tags") from None


@router.route("PATCH", TAGS, operation="Microsoft.Resources/tags/write", api_versions=RG_VERSIONS)
def patch_tags(req: Request) -> Response:
    """Merge adds or overwrites the named tags, Replace sets the whole set, Delete removes the named
    tags (where a value is given it must match). Tag names are case-insensitive, as in ARM."""
    scope, target = _tag_target(req)
    body = req.json()
    operation = str(body.get("operation", "")).lower()
    if operation not in ("merge", "replace", "delete"):
        raise InvalidParameter(f"operation: '{body.get('operation')}' is not one of Merge, Replace, Delete.",
                               target="operation")
    tags = _patch_tags(body)
    current = dict(target.tags or {})
    named = {name.lower(): name for name in current}
    if operation == "merge":
        for name, value in tags.items():
            current.pop(named.get(name.lower(), name), None)
            current[name] = value
    elif operation == "replace":
        current = tags
    else:
        for name, value in tags.items():
            existing = named.get(name.lower())
            if existing is not None and (not value or current[existing] == value):
                current.pop(existing)
    target.tags = current
    return Response(200, _tags_body(scope, target.tags))


@router.route("DELETE", TAGS, operation="Microsoft.Resources/tags/delete", api_versions=RG_VERSIONS)
def delete_tags(req: Request) -> Response:
    _, target = _tag_target(req)
    if not target.tags:
        return no_event(Response(200))
    target.tags = {}
    return Response(200)
