"""Azure RBAC's resources over ARM (Microsoft.Authorization 2022-04-01): custom role definitions and role
assignments at any scope, PUT/GET/DELETE, and a scope's role assignments listed. They are resources a
client writes and deletes (a deployment's, a teardown's); whether a caller may do what it asks is not
decided from them (README, "Role assignments and linked access checks" where the emulator enforces).

REST reference "Role Definitions" and "Role Assignments" and Learn "Troubleshoot Azure RBAC" (the codes
``RoleDefinitionHasAssignments``, ``RoleAssignmentExists``, ``RoleAssignmentUpdateNotPermitted``,
``RoleDefinitionWithSameNameExists``); no official example is stored in ../shared/azure-api, and the
wording and the statuses of refusals are the emulator's.

Both are extension resources: stored under the nested types ``Microsoft.Authorization/scopes/…`` so that
ARM's resource lists and Resource Graph leave them out, as Azure does; on the wire their types are
``Microsoft.Authorization/roleDefinitions`` and ``…/roleAssignments``. A role assignment at a group or
below goes with the group's delete (it is under the group's id); one at a subscription stays.
"""

from __future__ import annotations

import re
from typing import Any

from ..core.arm import listing, no_event
from ..core.clock import iso
from ..core.errors import ArmError, InvalidParameter, NotFound
from ..core.routing import Request, Response, Router
from ..core.state import GUID, Resource, Store

router = Router()

PROVIDER = "Microsoft.Authorization"
DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"  # on the wire
ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
STORED_DEFINITION = "Microsoft.Authorization/scopes/roleDefinitions"  # in the store (see above)
STORED_ASSIGNMENT = "Microsoft.Authorization/scopes/roleAssignments"
DEFINITION_VERSIONS = ("2022-05-01-preview", "2022-04-01", "2018-01-01-preview", "2015-07-01")
ASSIGNMENT_VERSIONS = ("2022-04-01", "2020-10-01-preview", "2020-04-01-preview", "2018-09-01-preview", "2015-07-01")
DEFINITION = "/{scope*}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}"
ASSIGNMENTS = "/{scope*}/providers/Microsoft.Authorization/roleAssignments"
ASSIGNMENT = ASSIGNMENTS + "/{roleAssignmentName}"
ROLE_ID = re.compile(r"^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)$",
                     re.IGNORECASE)


# --- scopes ----------------------------------------------------------------------------------------------
def _scope(req: Request) -> str:
    return "/" + req.params["scope"].strip("/")


def _check_scope(store: Store, scope: str, target: str = "scope") -> None:
    """A subscription, a group or a resource in an existing group (the emulator does not serve every resource
    type a role may be assigned at, e.g. storage accounts: a resource scope's own existence is not checked)."""
    parts = [p for p in scope.split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions" or (len(parts) > 2 and parts[2].lower() != "resourcegroups"):
        raise InvalidParameter(f"The scope '{scope}' is not a subscription, resource group or resource id.",
                               code="InvalidScope", target=target)
    store.subscription(parts[1])
    if len(parts) >= 4:
        store.resource_group(parts[1], parts[3])


def _covers(scope: str, target: str) -> bool:
    scope, target = scope.lower().rstrip("/"), target.lower().rstrip("/")
    return target == scope or target.startswith(scope + "/")


# --- role definitions -------------------------------------------------------------------------------------
def definition_guid(role_definition_id: str) -> str | None:
    """The GUID a roleDefinitionId names (`/subscriptions/{s}/providers/…/roleDefinitions/{guid}` or the
    tenant form without the subscription), or None."""
    found = ROLE_ID.match(role_definition_id or "")
    return found.group(1).lower() if found and GUID.match(found.group(1)) else None


def _definition(store: Store, guid: str, scope: str | None = None) -> Resource | None:
    """The custom role with that GUID, seen from ``scope``: the scope it was made at, or one of its
    assignable scopes or below (ARM resolves a custom role by GUID wherever it may be assigned)."""
    for found in store.of_type(STORED_DEFINITION):
        if found.name.lower() != guid.lower():
            continue
        if scope is None or _covers(found.internal["scope"], scope) or any(
                _covers(s, scope) for s in found.properties["assignableScopes"]):
            return found
    return None


def _permissions(raw: Any) -> list[dict[str, list[str]]]:
    where = "properties.permissions"
    if not isinstance(raw, list) or not raw:
        raise InvalidParameter(f"{where}: required, a list of {{actions, notActions, dataActions, notDataActions}}.",
                               target=where)
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidParameter(f"{where}[{i}]: must be an object.", target=f"{where}[{i}]")
        entry = {}
        for key in ("actions", "notActions", "dataActions", "notDataActions"):
            value = item.get(key) or []
            if not isinstance(value, list) or not all(isinstance(a, str) and a for a in value):
                raise InvalidParameter(f"{where}[{i}].{key}: a list of operation names.", target=f"{where}[{i}].{key}")
            entry[key] = list(value)
        out.append(entry)
    return out


def _definition_body(found: Resource) -> dict[str, Any]:
    return {"id": found.id, "name": found.name, "type": DEFINITION_TYPE, "properties": dict(found.properties)}


@router.route("PUT", DEFINITION, operation="Microsoft.Authorization/roleDefinitions/write", api_versions=DEFINITION_VERSIONS)
def put_definition(req: Request) -> Response:
    """A custom role: 201 made, 200 updated. Its name is a GUID, its roleName unique among custom roles."""
    store, scope, guid = req.emulator.store, _scope(req), req.params["roleDefinitionId"]
    _check_scope(store, scope)
    if not GUID.match(guid):
        raise InvalidParameter(f"The role definition id '{guid}' is not a GUID.", target="roleDefinitionId")
    props = req.json().get("properties")
    if not isinstance(props, dict):
        raise InvalidParameter("properties: required, an object with roleName, permissions and assignableScopes.",
                               target="properties")
    name = props.get("roleName")
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameter("properties.roleName: required.", target="properties.roleName")
    if props.get("type", "CustomRole") != "CustomRole":
        raise InvalidParameter("properties.type: only a CustomRole can be written.", target="properties.type")
    scopes = props.get("assignableScopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise InvalidParameter("properties.assignableScopes: required, a list of scopes.",
                               target="properties.assignableScopes")
    for s in scopes:
        _check_scope(store, s, "properties.assignableScopes")
    existing = _definition(store, guid)
    for other in store.of_type(STORED_DEFINITION):
        if other is not existing and other.properties["roleName"].lower() == name.lower():
            raise ArmError(f"A custom role named '{name}' already exists ('{other.name}').",
                           code="RoleDefinitionWithSameNameExists", status=409, target="properties.roleName")
    now = iso(req.emulator.clock.timestamp())
    properties = {"roleName": name, "type": "CustomRole", "description": props.get("description") or "",
                  "assignableScopes": list(scopes), "permissions": _permissions(props.get("permissions")),
                  "createdOn": existing.properties["createdOn"] if existing else now, "updatedOn": now}
    if existing is not None:
        existing.properties = properties
        return Response(200, _definition_body(existing))
    found = store.put(Resource(f"{scope}/providers/{DEFINITION_TYPE}/{guid}", STORED_DEFINITION, guid, None, None,
                               properties, {}, {"scope": scope}, req.emulator.clock.timestamp()))
    return Response(201, _definition_body(found))


@router.route("GET", DEFINITION, operation="Microsoft.Authorization/roleDefinitions/read", api_versions=DEFINITION_VERSIONS)
def get_definition(req: Request) -> Response:
    found = _definition(req.emulator.store, req.params["roleDefinitionId"], _scope(req))
    if found is None:
        raise NotFound(f"The role definition '{req.params['roleDefinitionId']}' could not be found.",
                       code="RoleDefinitionDoesNotExist")
    return Response(200, _definition_body(found))


@router.route("DELETE", DEFINITION, operation="Microsoft.Authorization/roleDefinitions/delete",
              api_versions=DEFINITION_VERSIONS)
def delete_definition(req: Request) -> Response:
    """200 with the role; 204 if there is none; 409 while any assignment refers to it (Learn: remove them first)."""
    store = req.emulator.store
    found = _definition(store, req.params["roleDefinitionId"], _scope(req))
    if found is None:
        return no_event(Response(204))
    users = [a for a in store.of_type(STORED_ASSIGNMENT)
             if definition_guid(a.properties["roleDefinitionId"]) == found.name.lower()]
    if users:
        raise ArmError("There are existing role assignments referencing role (code: RoleDefinitionHasAssignments): "
                       + ", ".join(a.id for a in users[:5]), code="RoleDefinitionHasAssignments", status=409)
    store.delete(found.id)
    return Response(200, _definition_body(found))


# --- role assignments ------------------------------------------------------------------------------------
def _assignment_body(found: Resource) -> dict[str, Any]:
    return {"id": found.id, "name": found.name, "type": ASSIGNMENT_TYPE, "properties": dict(found.properties)}


def _assignment_id(req: Request) -> str:
    return f"{_scope(req)}/providers/{ASSIGNMENT_TYPE}/{req.params['roleAssignmentName']}"


@router.route("PUT", ASSIGNMENT, operation="Microsoft.Authorization/roleAssignments/write", api_versions=ASSIGNMENT_VERSIONS)
def put_assignment(req: Request) -> Response:
    """201 made (and for the same assignment sent again); an assignment can't be changed; the same principal,
    role and scope under another name is refused. The principal's existence is not checked (no directory)."""
    store, scope, name = req.emulator.store, _scope(req), req.params["roleAssignmentName"]
    _check_scope(store, scope)
    if not GUID.match(name):
        raise InvalidParameter(f"The role assignment name '{name}' is not a GUID.", target="roleAssignmentName")
    props = req.json().get("properties")
    if not isinstance(props, dict):
        raise InvalidParameter("properties: required, an object with roleDefinitionId and principalId.",
                               target="properties")
    role = props.get("roleDefinitionId")
    guid = definition_guid(role) if isinstance(role, str) else None
    if guid is None:
        raise InvalidParameter("properties.roleDefinitionId: required, /subscriptions/{id}/providers/"
                               "Microsoft.Authorization/roleDefinitions/{guid}.", target="properties.roleDefinitionId")
    principal = props.get("principalId")
    if not isinstance(principal, str) or not GUID.match(principal):
        raise InvalidParameter("properties.principalId: required, the principal's object id (a GUID).",
                               target="properties.principalId")
    properties = {"roleDefinitionId": role, "principalId": principal.lower(),
                  "principalType": props.get("principalType") or "User", "scope": scope,
                  "description": props.get("description"), "condition": props.get("condition"),
                  "conditionVersion": props.get("conditionVersion"),
                  "delegatedManagedIdentityResourceId": None}
    assignment_id = _assignment_id(req)
    existing = store.get(assignment_id)
    if existing is not None:
        same = (existing.properties["principalId"] == properties["principalId"]
                and definition_guid(existing.properties["roleDefinitionId"]) == guid)
        if not same:
            raise ArmError("Tenant ID, application ID, principal ID, and scope are not allowed to be updated "
                           "(code: RoleAssignmentUpdateNotPermitted).", code="RoleAssignmentUpdateNotPermitted",
                           status=400, target="properties")
        existing.properties.update(description=properties["description"])
        return Response(201, _assignment_body(existing))
    for other in store.of_type(STORED_ASSIGNMENT):
        if (other.properties["principalId"] == properties["principalId"] and other.properties["scope"].lower() == scope.lower()
                and definition_guid(other.properties["roleDefinitionId"]) == guid):
            raise ArmError(f"The role assignment already exists ('{other.name}').", code="RoleAssignmentExists",
                           status=409)
    found = store.put(Resource(assignment_id, STORED_ASSIGNMENT, name, None, None, properties, {}, {},
                               req.emulator.clock.timestamp()))
    return Response(201, _assignment_body(found))


@router.route("GET", ASSIGNMENT, operation="Microsoft.Authorization/roleAssignments/read", api_versions=ASSIGNMENT_VERSIONS)
def get_assignment(req: Request) -> Response:
    found = req.emulator.store.get(_assignment_id(req))
    if found is None:
        raise NotFound(f"The role assignment '{req.params['roleAssignmentName']}' is not found.",
                       code="RoleAssignmentNotFound")
    return Response(200, _assignment_body(found))


@router.route("DELETE", ASSIGNMENT, operation="Microsoft.Authorization/roleAssignments/delete",
              api_versions=ASSIGNMENT_VERSIONS)
def delete_assignment(req: Request) -> Response:
    """200 with the assignment; 204 if there is none."""
    found = req.emulator.store.delete(_assignment_id(req))
    if found is None:
        return no_event(Response(204))
    return Response(200, _assignment_body(found))


@router.route("GET", ASSIGNMENTS, operation="Microsoft.Authorization/roleAssignments/read", api_versions=ASSIGNMENT_VERSIONS)
def list_assignments(req: Request) -> Response:
    """The assignments at the scope, above it and below it, as ARM lists them; ``$filter=principalId eq '…'``
    narrows them to one principal (``atScope()``: at the scope and above only)."""
    scope = _scope(req)
    _check_scope(req.emulator.store, scope)
    expr = req.query.get("$filter", "")
    principal = re.search(r"principalId\s+eq\s+'([^']+)'", expr)
    at_scope = "atscope()" in expr.replace(" ", "").lower()
    found = []
    for a in req.emulator.store.of_type(STORED_ASSIGNMENT):
        where = a.properties["scope"]
        if not (_covers(where, scope) or (not at_scope and _covers(scope, where))):
            continue
        if principal and a.properties["principalId"] != principal.group(1).lower():
            continue
        found.append(_assignment_body(a))
    return listing(req, found)
