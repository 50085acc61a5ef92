"""Recovery plans: replicated items in ordered groups (Shutdown, Failover, then Boot groups in boot order),
failed over together. An action on a plan (test failover and its cleanup, planned and unplanned failover,
commit, reprotect) checks every item first, then runs one job whose tasks are the groups in order: the
items of a group reach their new state (their VMs made and booted) when that group's part of the
operation ends, the next group's later. Recovery-plan inputs carry ``providerSpecificDetails`` as an array
(RecoveryPlanA2AFailoverInput: ``recoveryPointType``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.arm import check_name, listing, no_event
from ..core.clock import iso
from ..core.lro import Operation
from ..core.routing import Request, Response
from ..core.state import Resource
from . import items
from . import models as m
from . import protection as p
from .http import PLAN, PLAN_OPS, VAULT, VERSIONS, monitors, now, rendered, router, run, store, vault

GROUP_TYPES = ("Shutdown", "Failover", "Boot")
POINT_TYPES = ("Latest", "LatestProcessed", "LatestCrashConsistent", "LatestApplicationConsistent")
PLAN_OPERATIONS = ("PlannedFailover", "UnplannedFailover", "TestFailover", "TestFailoverCleanup", "Commit",
                   "ReverseReplicate")


def _groups(req: Request, v: Resource, groups: Any, primary: Resource | None) -> list[dict[str, Any]]:
    """The groups as stored: Shutdown and Failover first (added if missing), then the Boot groups in order."""
    if not isinstance(groups, list) or not groups:
        raise m.AsrError("properties.groups: a list of groups ({groupType, replicationProtectedItems}).",
                         code="InvalidRecoveryPlanInput", target="properties.groups")
    s = store(req)
    seen: set[str] = set()
    out = []
    for n, group in enumerate(groups):
        where = f"properties.groups[{n}]"
        kind = (group or {}).get("groupType") if isinstance(group, dict) else None
        if kind not in GROUP_TYPES:
            raise m.AsrError(f"{where}.groupType: '{kind}' (Shutdown, Failover or Boot).", code="InvalidRecoveryPlanInput",
                             target=f"{where}.groupType")
        members = []
        for k, ref in enumerate(group.get("replicationProtectedItems") or []):
            item_id = (ref or {}).get("id") or ""
            item = s.get(item_id) if item_id.lower().startswith(v.key + "/") else None
            if item is None or item.type.lower() != m.ITEM_TYPE.lower():
                raise m.AsrError(f"{where}.replicationProtectedItems[{k}].id: '{item_id}' is not a replicated item of vault "
                                 f"'{v.name}'.", code="InvalidRecoveryPlanInput",
                                 target=f"{where}.replicationProtectedItems[{k}].id")
            if primary is not None and not item.key.startswith(primary.key + "/"):
                raise m.AsrError(f"{where}.replicationProtectedItems[{k}].id: the item '{item.name}' does not replicate "
                                 f"from the plan's primary fabric '{primary.name}'.", code="InvalidRecoveryPlanInput",
                                 target=f"{where}.replicationProtectedItems[{k}].id")
            if item.key in seen:
                raise m.AsrError(f"{where}.replicationProtectedItems[{k}].id: the item '{item.name}' is in the plan twice.",
                                 code="InvalidRecoveryPlanInput", target=f"{where}.replicationProtectedItems[{k}].id")
            seen.add(item.key)
            members.append({"id": item.id, "virtualMachineId": ref.get("virtualMachineId") or item.internal["vmId"]})
        out.append({"groupType": kind, "replicationProtectedItems": members,
                    "startGroupActions": list(group.get("startGroupActions") or []),
                    "endGroupActions": list(group.get("endGroupActions") or [])})
    for kind in ("Failover", "Shutdown"):
        if not any(g["groupType"] == kind for g in out):
            out.insert(0, {"groupType": kind, "replicationProtectedItems": [], "startGroupActions": [], "endGroupActions": []})
    return sorted(out, key=lambda g: GROUP_TYPES.index(g["groupType"]) if g["groupType"] != "Boot" else 2)


def _fabric(req: Request, v: Resource, value: Any, field: str) -> Resource:
    found = store(req).get(value or "") if isinstance(value, str) and value.lower().startswith(v.key + "/") else None
    if found is None or found.type.lower() != m.FABRIC_TYPE.lower():
        raise m.AsrError(f"properties.{field}: '{value}' is not a fabric of vault '{v.name}'.", code="InvalidRecoveryPlanInput",
                         target=f"properties.{field}")
    return found


def _members(req: Request, plan: Resource) -> list[list[Resource]]:
    """The plan's items group by group, in boot order (Shutdown and Failover groups first)."""
    s = store(req)
    return [[s.get(x["id"]) for x in g["replicationProtectedItems"] if s.get(x["id"]) is not None]
            for g in plan.internal["groups"]]


def render(req: Request, plan: Resource) -> dict[str, Any]:
    s, t = store(req), now(req)
    i = plan.internal
    primary, recovery = s.get(i["primaryFabric"]), s.get(i["recoveryFabric"])
    members = [item for group in _members(req, plan) for item in group]
    allowed = [op for op in PLAN_OPERATIONS if all(op in items.state(s, it, t)[2] for it in members)] if members else \
        ["PlannedFailover", "UnplannedFailover", "TestFailover"]
    if i.get("opKind"):
        allowed = []
    scenario = i.get("scenario")
    props: dict[str, Any] = {
        "friendlyName": plan.name,
        "primaryFabricId": m.wire_id(i["primaryFabric"]),
        "primaryFabricFriendlyName": primary.name if primary is not None else "",
        "recoveryFabricId": m.wire_id(i["recoveryFabric"]),
        "recoveryFabricFriendlyName": recovery.name if recovery is not None else "",
        "failoverDeploymentModel": i["model"],
        "replicationProviders": [m.A2A],
        "allowedOperations": allowed,
        "lastPlannedFailoverTime": iso(i["lastPlanned"]) if i.get("lastPlanned") else None,
        "lastUnplannedFailoverTime": iso(i["lastUnplanned"]) if i.get("lastUnplanned") else None,
        "lastTestFailoverTime": iso(i["lastTest"]) if i.get("lastTest") else None,
        "groups": [{**g, "replicationProtectedItems": [{"id": m.wire_id(x["id"]), "virtualMachineId": x["virtualMachineId"]}
                                                        for x in g["replicationProtectedItems"]]}
                   for g in i["groups"]],
        "providerSpecificDetails": [{"instanceType": m.A2A}],
    }
    if scenario:
        props["currentScenario"] = {"scenarioName": scenario["name"], "jobId": m.wire_id(scenario["jobId"]),
                                    "startTime": iso(scenario["start"])}
        props["currentScenarioStatus"] = scenario["status"]
        props["currentScenarioStatusDescription"] = scenario["description"]
    return m.body_of(plan, props)


# --- CRUD -------------------------------------------------------------------------------------------------
@router.route("PUT", PLAN, operation=PLAN_OPS + "/write", api_versions=VERSIONS)
def put_plan(req: Request) -> Response:
    v = vault(req)
    name = req.params["recoveryPlanName"]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    props = (req.json().get("properties") or {})
    primary = _fabric(req, v, props.get("primaryFabricId"), "primaryFabricId")
    recovery = _fabric(req, v, props.get("recoveryFabricId"), "recoveryFabricId")
    groups = _groups(req, v, props.get("groups"), primary)
    model = props.get("failoverDeploymentModel") or "ResourceManager"
    if model not in ("NotApplicable", "Classic", "ResourceManager"):
        raise m.AsrError(f"properties.failoverDeploymentModel: '{model}' (ResourceManager).", code="InvalidRecoveryPlanInput",
                         target="properties.failoverDeploymentModel")
    for n, specific in enumerate(props.get("providerSpecificInput") or []):
        if not isinstance(specific, dict) or specific.get("instanceType") != m.A2A:
            raise m.AsrError(f"properties.providerSpecificInput[{n}].instanceType: 'A2A' for Azure-to-Azure plans.",
                             code="InvalidRecoveryPlanInput", target=f"properties.providerSpecificInput[{n}].instanceType")
    s = store(req)
    existing = s.get(f"{v.id}/replicationRecoveryPlans/{name}")
    if existing is not None:
        same = existing.internal["groups"] == groups and m.same_id(existing.internal["primaryFabric"], primary.id) \
            and m.same_id(existing.internal["recoveryFabric"], recovery.id)
        running = req.emulator.operations.get(existing.internal.get("op") or "")
        if same and existing.internal["state"] == "creating" and running is not None and running.status == "InProgress":
            return Response(202, None, monitors(req, v, existing.id, running))
        if same:
            return no_event(Response(200, render(req, existing)))
        raise m.AsrError(f"The recovery plan '{name}' already exists with other settings.", code="ResourceAlreadyExists",
                         status=409, recommended_action="Update it (PATCH) or delete it first.")
    plan = s.put(Resource(f"{v.id}/replicationRecoveryPlans/{name}", m.PLAN_TYPE, name, None, None, {}, {}, {
        "primaryFabric": primary.id, "recoveryFabric": recovery.id, "model": model, "groups": groups,
        "state": "creating", "scenario": None, "opKind": None}, now(req)))

    def done(op: Operation) -> None:
        plan.internal["state"] = "ready"

    def failed(op: Operation) -> None:
        if s.get(plan.id) is plan:
            s.delete(plan.id)

    resp, op, _ = run(req, v, plan, scenario="CreateRecoveryPlan", kind="RecoveryPlan", tasks=["Create a recovery plan"],
                      done=done, failed=failed, result=rendered(render, req, plan))
    plan.internal["op"] = op.id
    return resp


def _plan(req: Request, v: Resource) -> Resource:
    found = store(req).get(f"{v.id}/replicationRecoveryPlans/{req.params['recoveryPlanName']}")
    if found is None:
        raise m.not_found("recovery plan", req.params["recoveryPlanName"], v)
    return found


def _busy(plan: Resource) -> None:
    if plan.internal.get("opKind") or plan.internal["state"] != "ready":
        raise m.AsrError(f"Another operation is in progress on the recovery plan '{plan.name}'.",
                         code="OperationNotAllowedInCurrentState", recommended_action="Retry when its job has completed.")


@router.route("PATCH", PLAN, operation=PLAN_OPS + "/write", api_versions=VERSIONS)
def update_plan(req: Request) -> Response:
    v = vault(req)
    plan = _plan(req, v)
    _busy(plan)
    groups = _groups(req, v, (req.json().get("properties") or {}).get("groups"), store(req).get(plan.internal["primaryFabric"]))

    def done(op: Operation) -> None:
        plan.internal["groups"] = groups

    resp, _, _ = run(req, v, plan, scenario="UpdateRecoveryPlan", kind="RecoveryPlan", tasks=["Update a recovery plan"],
                     done=done, result=rendered(render, req, plan))
    return resp


@router.route("GET", PLAN, operation=PLAN_OPS + "/read", api_versions=VERSIONS)
def get_plan(req: Request) -> Response:
    return Response(200, render(req, _plan(req, vault(req))))


@router.route("GET", VAULT + "/replicationRecoveryPlans", operation=PLAN_OPS + "/read", api_versions=VERSIONS)
def list_plans(req: Request) -> Response:
    return listing(req, [render(req, x) for x in store(req).of_type(m.PLAN_TYPE, vault(req).id)])


@router.route("DELETE", PLAN, operation=PLAN_OPS + "/delete", api_versions=VERSIONS)
def delete_plan(req: Request) -> Response:
    v = vault(req)
    s = store(req)
    plan = s.get(f"{v.id}/replicationRecoveryPlans/{req.params['recoveryPlanName']}")
    if plan is None:
        return no_event(Response(204))
    _busy(plan)
    resp, _, _ = run(req, v, plan, scenario="DeleteRecoveryPlan", kind="RecoveryPlan", tasks=["Delete a recovery plan"],
                     done=lambda op: s.delete(plan.id))
    return resp


# --- actions --------------------------------------------------------------------------------------------------
def _specific(props: dict[str, Any]) -> dict[str, Any]:
    details = props.get("providerSpecificDetails")
    if details is None:
        return {"recoveryPointType": "Latest"}
    if not isinstance(details, list) or any(not isinstance(d, dict) or d.get("instanceType") != m.A2A for d in details):
        raise m.AsrError("properties.providerSpecificDetails: an array of {\"instanceType\": \"A2A\", \"recoveryPointType\": …} "
                         "for Azure-to-Azure plans.", code="InvalidProviderInput", target="properties.providerSpecificDetails")
    specific = details[0] if details else {"recoveryPointType": "Latest"}
    kind = specific.get("recoveryPointType", "Latest")
    if kind not in POINT_TYPES:
        raise m.AsrError(f"properties.providerSpecificDetails[0].recoveryPointType: '{kind}' ({', '.join(POINT_TYPES)}).",
                         code="InvalidProviderInput", target="properties.providerSpecificDetails[0].recoveryPointType")
    return specific


Effects = tuple[Callable[[Operation], None], Callable[[Operation], None] | None]
# An item's checks (raising), returning what starts it: the item's state set, (done, undo) returned.
Prepare = Callable[[Resource], Callable[[], Effects]]


def _act(req: Request, *, operation: str, scenario: str, verb: str, prepare: Prepare,
         suspended: tuple[str, str] | None = None, stamp: str | None = None) -> Response:
    """Check every item allows ``operation``, prepare each (sync checks, raising), then run the groups in order."""
    v = vault(req)
    plan = _plan(req, v)
    _busy(plan)
    s, t = store(req), now(req)
    groups = [g for g in _members(req, plan)]
    for item in (it for g in groups for it in g):
        items.observe(s, item, t)
        if operation not in items.state(s, item, t)[2]:
            raise p.not_allowed(item, operation, s, t)
    starters = [[(item, prepare(item)) for item in g] for g in groups]  # every check before any change
    effects = [[(item, *start()) for item, start in g] for g in starters]
    occupied = [k for k, g in enumerate(effects) if g] or [0]
    slice_ = req.emulator.lro_seconds(req.route.resource_type if req.route else "")
    tasks = [f"Group {n + 1}: {verb} " + ", ".join(it.internal["friendlyName"] for it, _, _ in effects[k])
             for n, k in enumerate(occupied)]
    emulator = req.emulator
    plan.internal["opKind"] = operation

    def finish(op: Operation) -> None:
        plan.internal["opKind"] = None
        if suspended is not None and op.status == "Succeeded":
            plan.internal["scenario"] = dict(plan.internal["scenario"], status=suspended[0], description=suspended[1])
        else:
            plan.internal["scenario"] = None
        if stamp and op.status == "Succeeded":
            plan.internal[stamp] = op.end

    def failed(op: Operation) -> None:
        finish(op)
        for group in effects:
            for item, _, undo in group:
                if item.internal.get("opKind") == operation:
                    item.internal["opKind"], item.internal["scenario"] = None, None
                    if undo is not None:
                        undo(op)

    resp, op, job = run(req, v, plan, scenario=scenario, kind="RecoveryPlan", tasks=tasks, done=finish, failed=failed,
                        result=rendered(render, req, plan), duration=slice_ * len(occupied))
    plan.internal["op"] = op.id
    plan.internal["scenario"] = {"name": scenario.removeprefix("RecoveryPlan"), "jobId": job.id, "start": op.start,
                                 "status": "InProgress", "description": "InProgress"}
    for n, k in enumerate(occupied):
        for item, _done, _ in effects[k]:
            item.internal["opKind"], item.internal["op"] = operation, op.id
            item.internal["scenario"] = {"name": scenario, "jobId": job.id, "start": op.start}

        def group_done(o: Operation, members=effects[k]) -> None:
            if op.status == "Failed" or op.outcome == "Failed":
                return
            for item, done, _ in members:
                item.internal["opKind"], item.internal["scenario"], item.internal["op"] = None, None, None
                done(o)

        emulator.operations.start(op.subscription_id, op.location, slice_ * (n + 1), on_success=group_done)
    return resp


def _props(req: Request) -> dict[str, Any]:
    return (req.json(required=False).get("properties") or {})


def _plan_direction(props: dict[str, Any], plan: Resource, req: Request) -> None:
    given = props.get("failoverDirection")
    if given is None:
        return
    for group in _members(req, plan):
        for item in group:
            want = item.internal["direction"]
            if str(given).lower() != want.lower():
                raise m.AsrError(f"properties.failoverDirection: '{given}' is not possible: '{item.internal['friendlyName']}' "
                                 f"replicates {want}.", code="InvalidFailoverDirection", target="properties.failoverDirection")


def _point(req: Request, item: Resource, kind: str) -> dict[str, Any]:
    point = items.find_point(store(req), item, None, kind, now(req))
    if point is None:
        raise m.AsrError(f"The replicated item '{item.internal['friendlyName']}' has no recovery point of type '{kind}'.",
                         code="NoRecoveryPoint", recommended_action="Wait for a recovery point, or choose another type.")
    return point


@router.route("POST", PLAN + "/testFailover", operation=PLAN_OPS + "/testFailover/action", api_versions=VERSIONS)
def test_failover(req: Request) -> Response:
    props = _props(req)
    kind = _specific(props)["recoveryPointType"]
    if not props.get("networkId"):
        raise m.AsrError("properties.networkId: the virtual network the test VMs join (an isolated one).", code="InvalidInput",
                         target="properties.networkId")
    _plan_direction(props, _plan(req, vault(req)), req)

    def prepare(item: Resource):
        point = _point(req, item, kind)
        target = p.test_failover_target(req, item, props["networkId"], point)
        return lambda: p._tfo_effects(req, item, target, point)

    return _act(req, operation="TestFailover", scenario="RecoveryPlanTestFailover", verb="Test failover of",
                prepare=prepare, suspended=("Suspended", "WaitingForStopTestFailover"), stamp="lastTest")


@router.route("POST", PLAN + "/testFailoverCleanup", operation=PLAN_OPS + "/testFailoverCleanup/action",
              api_versions=VERSIONS)
def test_failover_cleanup(req: Request) -> Response:
    _props(req)
    return _act(req, operation="TestFailoverCleanup", scenario="RecoveryPlanTestFailoverCleanup", verb="Clean up",
                prepare=lambda item: lambda: p.cleanup_effects(req, item))


def _failover(req: Request, operation: str) -> Response:
    props = _props(req)
    kind = _specific(props)["recoveryPointType"]
    _plan_direction(props, _plan(req, vault(req)), req)
    sources = props.get("sourceSiteOperations")

    def prepare(item: Resource):
        point = _point(req, item, kind) if operation == "UnplannedFailover" else None
        target = p.failover_target(req, item)
        return lambda: p.failover_effects(req, item, target, point, operation,
                                          shut_source=operation == "PlannedFailover" or sources == "Required")

    return _act(req, operation=operation, scenario=f"RecoveryPlan{operation}", verb="Fail over",
                prepare=prepare, stamp="lastPlanned" if operation == "PlannedFailover" else "lastUnplanned")


@router.route("POST", PLAN + "/plannedFailover", operation=PLAN_OPS + "/plannedFailover/action", api_versions=VERSIONS)
def planned_failover(req: Request) -> Response:
    return _failover(req, "PlannedFailover")


@router.route("POST", PLAN + "/unplannedFailover", operation=PLAN_OPS + "/unplannedFailover/action", api_versions=VERSIONS)
def unplanned_failover(req: Request) -> Response:
    return _failover(req, "UnplannedFailover")


@router.route("POST", PLAN + "/failoverCommit", operation=PLAN_OPS + "/failoverCommit/action", api_versions=VERSIONS)
def failover_commit(req: Request) -> Response:
    return _act(req, operation="Commit", scenario="RecoveryPlanCommit", verb="Commit",
                prepare=lambda item: lambda: (p.commit_effects(item), None))


@router.route("POST", PLAN + "/reProtect", operation=PLAN_OPS + "/reProtect/action", api_versions=VERSIONS)
def reprotect(req: Request) -> Response:
    v = vault(req)

    def prepare(item: Resource):
        plan = p.reprotect_plan(req, v, item, {})
        return lambda: p.reprotect_effects(req, item, plan)

    return _act(req, operation="ReverseReplicate", scenario="RecoveryPlanReverseReplication", verb="Reprotect",
                prepare=prepare)
