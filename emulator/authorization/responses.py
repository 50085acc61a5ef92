"""Management locks: PUT/GET/DELETE at any scope, lists, and the guard every write goes through.

A lock applies to its scope and everything under it. CanNotDelete blocks deletes; ReadOnly blocks
deletes and writes (PUT/PATCH/POST), reads pass. Deleting a scope is also blocked by a lock on
anything under it (a resource group holding a locked snapshot can't be deleted).
"""

from __future__ import annotations

from ..core.arm import listing, no_event
from ..core.errors import ArmError, InvalidParameter, NotFound
from ..core.routing import Request, Response, Router
from ..core.state import Resource

router = Router()
LOCK_TYPE = "Microsoft.Authorization/locks"
VERSIONS = ("2020-05-01", "2017-04-01", "2016-09-01")
LEVELS = ("CanNotDelete", "ReadOnly")
SEGMENT = "/providers/microsoft.authorization/locks"


def _scope(req: Request) -> str:
    return "/" + req.params["scope"].strip("/")


def _check_scope(req: Request, scope: str) -> None:
    parts = [p for p in scope.split("/") if p]
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise InvalidParameter(f"The scope '{scope}' is not valid for a lock.", code="InvalidScope", target="scope")
    store = req.emulator.store
    store.subscription(parts[1])
    if len(parts) >= 4:
        store.resource_group(parts[1], parts[3])
    if len(parts) > 4 and store.get(scope) is None:
        from ..core.errors import ResourceNotFound

        raise ResourceNotFound("/".join(parts[5:-1:2]) or "resource", parts[-1], parts[3])


def lock_scope(lock: Resource) -> str:
    return lock.key.rsplit(SEGMENT + "/", 1)[0]


def _covers(scope: str, target: str) -> bool:
    return target == scope or target.startswith(scope + "/")


@router.route("PUT", "/{scope*}/providers/Microsoft.Authorization/locks/{lockName}",
              operation="Microsoft.Authorization/locks/write", api_versions=VERSIONS)
def put_lock(req: Request) -> Response:
    scope = _scope(req)
    _check_scope(req, scope)
    body = req.json()
    props = body.get("properties") or {}
    level = props.get("level")
    if level not in LEVELS:
        raise InvalidParameter(f"properties.level: must be CanNotDelete or ReadOnly (got {level!r}).",
                               code="LockLevelRequired", target="properties.level")
    lock_id = f"{scope}/providers/Microsoft.Authorization/locks/{req.params['lockName']}"
    existed = req.emulator.store.get(lock_id) is not None
    lock = Resource(lock_id, LOCK_TYPE, req.params["lockName"], None, None,
                    {"level": level, "notes": props.get("notes", ""), "owners": props.get("owners") or []}, {}, {},
                    req.emulator.clock.timestamp())
    req.emulator.store.put(lock)
    return Response(200 if existed else 201, _body(lock))


def _body(lock: Resource) -> dict:
    body = lock.to_arm()
    body.pop("location", None)
    return body


@router.route("GET", "/{scope*}/providers/Microsoft.Authorization/locks/{lockName}",
              operation="Microsoft.Authorization/locks/read", api_versions=VERSIONS)
def get_lock(req: Request) -> Response:
    lock = req.emulator.store.get(f"{_scope(req)}/providers/Microsoft.Authorization/locks/{req.params['lockName']}")
    if lock is None:
        raise NotFound(f"The lock '{req.params['lockName']}' could not be found.", code="LockNotFound")
    return Response(200, _body(lock))


@router.route("DELETE", "/{scope*}/providers/Microsoft.Authorization/locks/{lockName}",
              operation="Microsoft.Authorization/locks/delete", api_versions=VERSIONS)
def delete_lock(req: Request) -> Response:
    lock_id = f"{_scope(req)}/providers/Microsoft.Authorization/locks/{req.params['lockName']}"
    if req.emulator.store.delete(lock_id) is None:
        return no_event(Response(204))
    return Response(200)


@router.route("GET", "/{scope*}/providers/Microsoft.Authorization/locks",
              operation="Microsoft.Authorization/locks/read", api_versions=VERSIONS)
def list_locks(req: Request) -> Response:
    scope = _scope(req).lower()
    found = [lk for lk in req.emulator.store.of_type(LOCK_TYPE) if _covers(scope, lock_scope(lk))
             or _covers(lock_scope(lk), scope)]
    return listing(req, [_body(lk) for lk in found])


def guard(req: Request) -> None:
    """ARM's lock check, before any write or delete reaches a provider."""
    if req.method in ("GET", "HEAD") or req.route is None or req.route.operation.startswith("Microsoft.Authorization/locks"):
        return
    if req.route.kind == "reads":
        return
    locks = req.emulator.store.by_type.get(LOCK_TYPE.lower())
    if not locks:
        return
    target = req.path.rstrip("/").lower()
    if req.method == "POST":  # an action acts on the resource it is posted to
        target = target.rsplit("/", 1)[0]
    for lock in locks.values():
        scope = lock_scope(lock)
        level = lock.properties["level"]
        blocking = req.method == "DELETE" or level == "ReadOnly"
        if not blocking:
            continue
        if _covers(scope, target) or (req.method == "DELETE" and _covers(target, scope)):
            operation = "delete" if req.method == "DELETE" else "write"
            raise ArmError(
                f"The scope '{req.path}' cannot perform {operation} operation because following scope(s) are locked: "
                f"'{lock.id.rsplit('/providers/', 1)[0]}'. Please remove the lock and try again.",
                code="ScopeLocked", status=409,
            )
