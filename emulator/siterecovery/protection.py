"""Replicated items over HTTP: enable replication (A2AEnableProtectionInput), read, list, recovery points,
test failover and its cleanup, planned and unplanned failover, commit, reprotect, disable (``…/remove``)
and purge (DELETE). Each action is refused at once (400 ``OperationNotAllowedInCurrentState``) unless the
item's ``allowedOperations`` has it; accepted, it runs as a job and its effects happen when it ends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..compute import models as compute
from ..core.arm import check_name, linked_access_check, listing, no_event, normalize_location
from ..core.lro import Operation, OperationFailed
from ..core.routing import Request, Response
from ..core.state import Resource, Store
from . import eligibility, items, replicas
from . import models as m
from .http import (
    CONTAINER,
    ITEM,
    ITEM_OPS,
    OPS,
    VAULT,
    VERSIONS,
    container,
    monitors,
    now,
    router,
    run,
    store,
    vault,
)

SPECIFIC = "properties.providerSpecificDetails"


def _item(req: Request, v: Resource | None = None) -> Resource:
    v = v or vault(req)
    found = store(req).get(f"{container(req, v).id}/replicationProtectedItems/{req.params['replicatedProtectedItemName']}")
    if found is None:
        raise m.not_found("replication protected item", req.params["replicatedProtectedItemName"], v)
    return found


def _render(req: Request, item: Resource) -> dict[str, Any]:
    return items.render(store(req), item, now(req))


def _result(req: Request, item: Resource) -> Callable[[], Response]:
    s, clock = store(req), req.emulator.clock

    def answer() -> Response:
        if s.get(item.id) is not item:
            return Response(204)
        return Response(200, items.render(s, item, clock.timestamp()))
    return answer


def not_allowed(item: Resource, operation: str, store_: Store, at: float) -> m.AsrError:
    protection, description, allowed = items.state(store_, item, at)
    i = item.internal
    if i["tfo"]["state"] in ("done", "failed") and operation != "TestFailoverCleanup":
        why = "a test failover is awaiting its cleanup"
        action = "Clean up the test failover first (testFailoverCleanup)."
    elif i.get("opKind") or i["tfo"]["state"] in ("running", "cleaning") or i["phase"] in ("enabling", "disabling", "reprotecting"):
        why = f"another operation is in progress ({description})"
        action = "Retry when the running job has completed."
    elif operation == "Commit":
        why = "the item has not failed over"
        action = "Fail over first; commit completes a failover."
    elif operation == "TestFailoverCleanup":
        why = "no test failover is pending"
        action = "Run a test failover first."
    else:
        why = f"its protection state is '{protection}' ({description})"
        action = f"Allowed operations now: {', '.join(allowed) or 'none'}."
    return m.AsrError(f"The operation '{operation}' is not allowed on the replicated item '{i['friendlyName']}': {why}.",
                      code="OperationNotAllowedInCurrentState", possible_causes=why, recommended_action=action)


def _require(req: Request, item: Resource, operation: str) -> None:
    items.observe(store(req), item, now(req))
    if operation not in items.state(store(req), item, now(req))[2]:
        raise not_allowed(item, operation, store(req), now(req))


def _props(req: Request, required: bool = True) -> dict[str, Any]:
    body = req.json(required=required)
    props = body.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise m.AsrError("properties: must be an object.", code="InvalidInput", target="properties")
    return props


def _specific(props: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    specific = props.get("providerSpecificDetails")
    if specific is None and not required:
        return {}
    if not isinstance(specific, dict) or specific.get("instanceType") != m.A2A:
        kind = specific.get("instanceType") if isinstance(specific, dict) else specific
        raise m.AsrError(f"{SPECIFIC}.instanceType: '{kind}' is not served here: Azure-to-Azure replication is 'A2A'.",
                         code="InvalidProviderInput", target=f"{SPECIFIC}.instanceType")
    return specific


def _direction(props: dict[str, Any], item: Resource, want: str) -> None:
    given = props.get("failoverDirection")
    if given is not None and str(given).lower() != want.lower():
        raise m.AsrError(f"properties.failoverDirection: '{given}' is not possible now: the item replicates "
                         f"{item.internal['direction']}, so the direction is '{want}'.", code="InvalidFailoverDirection",
                         target="properties.failoverDirection")


def begin_operation(req: Request, v: Resource, item: Resource, *, scenario: str, kind: str, tasks: list[str],
                    done: Callable[[Operation], None], failed: Callable[[Operation], None] | None = None,
                    duration: float | None = None, plan_job: bool = True) -> tuple[Response, Operation]:
    """Run an action on ``item``: its current scenario names the job until it ends."""
    i = item.internal

    def on_done(op: Operation) -> None:
        try:
            done(op)
        finally:
            i["opKind"], i["scenario"], i["op"] = None, None, None

    def on_failed(op: Operation) -> None:
        i["opKind"], i["scenario"], i["op"] = None, None, None
        if failed is not None:
            failed(op)

    resp, op, job = run(req, v, item, scenario=scenario, kind="ProtectionEntity", tasks=tasks, done=on_done,
                        failed=on_failed, result=_result(req, item), duration=duration)
    i["opKind"], i["op"] = kind, op.id
    i["scenario"] = {"name": scenario, "jobId": job.id, "start": op.start}
    return resp, op


# --- enable ---------------------------------------------------------------------------------------------
def _enable_spec(req: Request, v: Resource, source_container: Resource, props: dict[str, Any]) -> tuple[dict[str, Any], Resource]:
    """Everything an enable needs, checked: the VM, its mapping, target group, network and disks."""
    s = store(req)
    specific = _specific(props, required=True)
    vm_id = specific.get("fabricObjectId") or ""
    vm = s.get(vm_id)
    if vm is None or vm.type.lower() != compute.VM_TYPE.lower():
        raise m.AsrError(f"{SPECIFIC}.fabricObjectId: virtual machine '{vm_id}' was not found.",
                         code="InvalidEnableProtectionInput", target=f"{SPECIFIC}.fabricObjectId")
    other = items.item_for_vm(s, vm.id)
    if other is not None:
        raise m.AsrError(f"The virtual machine '{vm.name}' is already replicated by the item '{other.name}' of vault "
                         f"'{other.id.split('/')[8]}'.", code="VmAlreadyProtected", target=f"{SPECIFIC}.fabricObjectId",
                         recommended_action="Disable its replication there first.")
    source_fabric = m.fabric_of(s, source_container)
    location = normalize_location(vm.location)
    if location != m.fabric_location(source_fabric):
        raise m.AsrError(f"{SPECIFIC}.fabricObjectId: the VM is in '{vm.location}', the container's fabric "
                         f"'{source_fabric.name}' in '{m.fabric_location(source_fabric)}'.",
                         code="InvalidEnableProtectionInput", target=f"{SPECIFIC}.fabricObjectId")
    if normalize_location(v.location) == location:
        raise m.AsrError(f"The vault '{v.name}' is in the VM's own region '{location}': Azure-to-Azure replication needs "
                         "a vault in another region (the target region).", code="VaultInSourceRegion",
                         recommended_action="Use a vault in the target region.")
    problems = eligibility.problems(s, vm)
    if problems:
        p = problems[0]
        raise m.AsrError(p["message"], code=p["code"], possible_causes=p["possibleCauses"],
                         recommended_action=p["recommendedAction"], target=f"{SPECIFIC}.fabricObjectId")
    policy = m.policy_in(s, v, props.get("policyId"))
    if policy is None:
        raise m.AsrError(f"properties.policyId: '{props.get('policyId')}' is not a replication policy of vault '{v.name}'.",
                         code="InvalidEnableProtectionInput", target="properties.policyId")
    mapping = m.mapping_for(s, v, source_container, policy.id, specific.get("recoveryContainerId"))
    if mapping is None:
        raise m.AsrError(f"{SPECIFIC}.recoveryContainerId: no container mapping of '{source_container.name}' with policy "
                         f"'{policy.name}' to '{specific.get('recoveryContainerId') or 'any container'}'.",
                         code="ContainerMappingNotFound", target=f"{SPECIFIC}.recoveryContainerId",
                         recommended_action="Create the container mapping (policy association) first.")
    recovery_container = s.get(mapping.internal["target"])
    recovery_location = m.fabric_location(m.fabric_of(s, recovery_container))
    group = specific.get("recoveryResourceGroupId") or ""
    if not replicas._group_exists(s, group):
        raise m.AsrError(f"{SPECIFIC}.recoveryResourceGroupId: resource group '{group}' was not found.",
                         code="InvalidEnableProtectionInput", target=f"{SPECIFIC}.recoveryResourceGroupId")
    sub, rg = replicas.group_of(group)
    disks, left_out = replicas.plan_disks(s, vm, specific.get("vmManagedDisks"), recovery_location)
    replicas.check_replicas_free(s, disks, [])
    source_subnet = replicas.source_subnet(s, vm)
    source_vnet = source_subnet.rsplit("/subnets/", 1)[0] if source_subnet else None
    network = specific.get("recoveryAzureNetworkId") or (
        m.recovery_network_for(s, v, source_vnet, m.fabric_of(s, recovery_container)) if source_vnet else None)
    if specific.get("recoveryAzureNetworkId") and s.get(network) is None:
        raise m.AsrError(f"{SPECIFIC}.recoveryAzureNetworkId: virtual network '{network}' was not found.",
                         code="InvalidEnableProtectionInput", target=f"{SPECIFIC}.recoveryAzureNetworkId")
    nics = [ref.get("id") for ref in (vm.properties.get("networkProfile") or {}).get("networkInterfaces") or []]
    spec = {
        "vmId": vm.id, "vms": {location: vm.id}, "friendlyName": vm.name, "policy": policy.id, "mapping": mapping.id,
        "primaryLocation": location, "recoveryLocation": recovery_location,
        "initialPrimary": location, "initialRecovery": recovery_location,
        "recoveryContainer": recovery_container.id, "sourceContainer": source_container.id,
        "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/{rg}",
        "groups": {location: f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}",
                   recovery_location: f"/subscriptions/{sub}/resourceGroups/{rg}"},
        "networks": {location: source_vnet, recovery_location: network},
        "recoveryNetwork": network, "recoverySubnet": specific.get("recoverySubnetName"),
        "disks": disks, "unprotected": left_out, "nics": [n for n in nics if n],
        "osType": vm.properties.get("storageProfile", {}).get("osDisk", {}).get("osType", "Linux"),
        "vmSize": vm.properties.get("hardwareProfile", {}).get("vmSize", "Standard_D2s_v5"),
        "recoveryVmName": vm.name, "tfoVmName": f"{vm.name}-test",
        "multiVmGroupName": specific.get("multiVmGroupName"),
        "multiVmGroupId": specific.get("multiVmGroupId") or specific.get("multiVmGroupName"),
        "irSeconds": float(req.emulator.provider_settings[SETTING]["initial_replication_seconds"]),
    }
    return spec, vm


SETTING = "siterecovery"


@router.route("PUT", ITEM, operation=ITEM_OPS + "/write", api_versions=VERSIONS)
def enable(req: Request) -> Response:
    v = vault(req)
    source_container = container(req, v)
    name = req.params["replicatedProtectedItemName"]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    s = store(req)
    props = _props(req)
    specific = _specific(props, required=True)  # bad input is refused whatever exists
    existing = s.get(f"{source_container.id}/replicationProtectedItems/{name}")
    if existing is not None:
        same = m.same_id(specific.get("fabricObjectId"), existing.internal["vms"].get(existing.internal["initialPrimary"])) \
            and m.same_id(props.get("policyId"), existing.internal["policy"])
        running = req.emulator.operations.get(existing.internal.get("op") or "")
        if same and existing.internal["phase"] == "enabling" and running is not None:
            return Response(202, None, monitors(req, v, existing.id, running))
        if same:
            return no_event(Response(200, _render(req, existing)))
        raise m.AsrError(f"The replicated item '{name}' already exists for the virtual machine "
                         f"'{existing.internal['friendlyName']}' with other settings.", code="ResourceAlreadyExists",
                         status=409, recommended_action="Use the existing item, or disable its replication first.")
    spec, vm = _enable_spec(req, v, source_container, props)
    for d in spec["disks"]:
        linked_access_check(req, "Microsoft.Storage/storageAccounts/read", d["staging"])
        linked_access_check(req, "Microsoft.Compute/disks/write", d["replicaId"])
    item = s.put(items.new_item(source_container, name, spec, now(req)))

    def done(op: Operation) -> None:
        i = item.internal
        i["phase"], i["replStart"] = "replicating", op.end
        replicas.create_replicas(req.emulator, item, i["recoveryLocation"], op.end)

    def failed(op: Operation) -> None:
        if s.get(item.id) is item:
            s.delete(item.id)

    resp, _ = begin_operation(req, v, item, scenario="EnableDr", kind="EnableProtection", tasks=[
        "Prerequisites check for enabling protection", "Identifying the replication target", "Enable replication",
        "Starting initial replication", "Updating the provider states"], done=done, failed=failed)
    return resp


@router.route("GET", ITEM, operation=ITEM_OPS + "/read", api_versions=VERSIONS)
def get_item(req: Request) -> Response:
    return Response(200, _render(req, _item(req)))


@router.route("GET", CONTAINER + "/replicationProtectedItems", operation=ITEM_OPS + "/read", api_versions=VERSIONS)
def list_container_items(req: Request) -> Response:
    return listing(req, [_render(req, i) for i in store(req).of_type(m.ITEM_TYPE, container(req).id)])


@router.route("GET", VAULT + "/replicationProtectedItems", operation=OPS + "/replicationProtectedItems/read",
              api_versions=VERSIONS)
def list_items(req: Request) -> Response:
    return listing(req, [_render(req, i) for i in items.items_of(store(req), vault(req))])


@router.route("GET", ITEM + "/recoveryPoints", operation=ITEM_OPS + "/recoveryPoints/read", api_versions=VERSIONS)
def list_points(req: Request) -> Response:
    item = _item(req)
    items.observe(store(req), item, now(req))
    found = items.points(store(req), item, now(req))
    return listing(req, [items.render_point(item, p) for p in reversed(found)])


@router.route("GET", ITEM + "/recoveryPoints/{recoveryPointName}", operation=ITEM_OPS + "/recoveryPoints/read",
              api_versions=VERSIONS)
def get_point(req: Request) -> Response:
    item = _item(req)
    point = items.find_point(store(req), item, req.params["recoveryPointName"], "Latest", now(req))
    if point is None:
        raise m.not_found("recovery point", req.params["recoveryPointName"], vault(req))
    return Response(200, items.render_point(item, point))


# --- disable and purge ------------------------------------------------------------------------------------------------
def _forget(s: Store, item: Resource) -> None:
    """The item leaves the recovery plans that named it, then the vault."""
    vault_id = item.id.split("/replicationFabrics/")[0]
    for plan in s.of_type(m.PLAN_TYPE, vault_id):
        for group in plan.internal["groups"]:
            group["replicationProtectedItems"] = [x for x in group["replicationProtectedItems"]
                                                  if not m.same_id(x.get("id"), item.id)]
    s.delete(item.id)


@router.route("POST", ITEM + "/remove", operation=ITEM_OPS + "/remove/action", api_versions=VERSIONS)
def disable(req: Request) -> Response:
    """Disable replication: the extension is removed from the source VM, which must be running; otherwise the job
    fails with ASR's 150144 and the item stays (purge is the way out)."""
    v = vault(req)
    item = _item(req, v)
    props = _props(req, required=False)
    reason = props.get("disableProtectionReason", "NotSpecified")
    if reason not in ("NotSpecified", "MigrationComplete"):
        raise m.AsrError(f"properties.disableProtectionReason: '{reason}' (NotSpecified or MigrationComplete).",
                         code="InvalidInput", target="properties.disableProtectionReason")
    _require(req, item, "DisableProtection")
    s, emulator = store(req), req.emulator
    before = item.internal["phase"]
    item.internal["phase"] = "disabling"

    def done(op: Operation) -> None:
        vm = s.get(item.internal["vmId"])
        if before in ("replicating",) and (vm is None or compute.power_state(vm) != "running"):
            state = "deleted" if vm is None else compute.power_state(vm)
            raise OperationFailed({
                "code": "150144",
                "message": f"Disabling replication of '{item.internal['friendlyName']}' failed: the Site Recovery extension "
                           f"could not be removed from the virtual machine, which is {state}. Possible causes: the "
                           "source virtual machine is not running or no longer exists. Recommended action: start the "
                           "virtual machine and retry, or purge the replicated item (it leaves the extension on the VM).",
            })
        replicas.delete_replicas(emulator, item)
        _forget(s, item)

    def failed(op: Operation) -> None:
        item.internal["phase"] = before

    resp, _ = begin_operation(req, v, item, scenario="DisableDr", kind="DisableProtection", tasks=[
        "Disable replication", "Removing the Site Recovery extension", "Deleting the replica disks",
        "Updating the provider states"], done=done, failed=failed)
    return resp


@router.route("DELETE", ITEM, operation=ITEM_OPS + "/delete", api_versions=VERSIONS)
def purge(req: Request) -> Response:
    """Purge: the item leaves the vault whatever its VM's state (replica disks deleted too); nothing is done on
    the source VM."""
    v = vault(req)
    s = store(req)
    found = s.get(f"{container(req, v).id}/replicationProtectedItems/{req.params['replicatedProtectedItemName']}")
    if found is None:
        return no_event(Response(204))
    running = req.emulator.operations.get(found.internal.get("op") or "")
    if running is not None and running.status == "InProgress":
        raise not_allowed(found, "Purge", s, now(req))
    emulator = req.emulator

    def done(op: Operation) -> None:
        replicas.delete_replicas(emulator, found)
        _forget(s, found)

    resp, _ = begin_operation(req, v, found, scenario="PurgeDr", kind="Purge", tasks=["Purge replication"], done=done)
    return resp


# --- test failover ----------------------------------------------------------------------------------------------------
def _linked_vm_checks(req: Request, plan: dict[str, Any]) -> None:
    """Site Recovery creates the recovered VM on the caller's behalf: ARM checks the caller may."""
    linked_access_check(req, "Microsoft.Compute/virtualMachines/write", plan["vm"])
    if not plan["reuse"]:
        linked_access_check(req, "Microsoft.Network/networkInterfaces/write", plan["nic"])
        linked_access_check(req, "Microsoft.Network/virtualNetworks/subnets/join/action", plan["subnet"])
        for disk_id in plan["disks"]:
            linked_access_check(req, "Microsoft.Compute/disks/write", disk_id)


def test_failover_target(req: Request, item: Resource, network_id: str | None, point: dict[str, Any] | None):
    """Checks a test failover of ``item`` (also one VM of a recovery plan's): where its test VM goes."""
    s = store(req)
    i = item.internal
    _require(req, item, "TestFailover")
    target = replicas.plan_vm(s, item, test=True, network_id=network_id, location=i["recoveryLocation"])
    _linked_vm_checks(req, target)
    if point is None:
        raise m.AsrError(f"The replicated item '{i['friendlyName']}' has no recovery point yet.", code="NoRecoveryPoint",
                         recommended_action="Wait for the first recovery point, then retry.")
    return target


def _tfo_effects(req: Request, item: Resource, target: dict[str, Any], point: dict[str, Any]):
    emulator, method, operation = req.emulator, req.method, req.route.operation if req.route else ""
    i = item.internal
    i["tfo"] = {"state": "running", "network": target["network"]}

    def done(op: Operation) -> None:
        created = replicas.create_vm(emulator, item, target, op.end, test=True, method=method, operation=operation)
        i["tfo"] = {"state": "done", "network": target["network"], "vm": target["vm"], "ids": created,
                    "point": items.point_id(item, point)}

    def failed(op: Operation) -> None:
        i["tfo"] = {"state": "failed", "network": target["network"], "ids": []}

    return done, failed


@router.route("POST", ITEM + "/testFailover", operation=ITEM_OPS + "/testFailover/action", api_versions=VERSIONS)
def test_failover(req: Request) -> Response:
    v = vault(req)
    item = _item(req, v)
    props = _props(req)
    specific = _specific(props)
    _direction(props, item, item.internal["direction"])
    network_type = props.get("networkType", "VmNetworkAsInput")
    if network_type not in ("VmNetworkAsInput", "ExistingVmNetwork"):
        raise m.AsrError(f"properties.networkType: '{network_type}' (VmNetworkAsInput with networkId).",
                         code="InvalidInput", target="properties.networkType")
    if not props.get("networkId"):
        raise m.AsrError("properties.networkId: the virtual network the test VM joins (an isolated one).",
                         code="InvalidInput", target="properties.networkId")
    s = store(req)
    point = items.find_point(s, item, specific.get("recoveryPointId"), "Latest", now(req))
    if specific.get("recoveryPointId") and point is None:
        raise m.AsrError(f"{SPECIFIC}.recoveryPointId: '{specific['recoveryPointId']}' is not a recovery point of the item.",
                         code="RecoveryPointNotFound", target=f"{SPECIFIC}.recoveryPointId")
    target = test_failover_target(req, item, props["networkId"], point)
    done, failed = _tfo_effects(req, item, target, point)
    resp, _ = begin_operation(req, v, item, scenario="TestFailover", kind="TestFailover", tasks=[
        "Prerequisites check for test failover", "Creating the test virtual machine", "Preparing the virtual machine",
        "Starting the virtual machine"], done=done, failed=failed)
    return resp


def cleanup_effects(req: Request, item: Resource):
    emulator = req.emulator
    i = item.internal
    previous = dict(i["tfo"])
    i["tfo"] = dict(previous, state="cleaning")

    def done(op: Operation) -> None:
        replicas.delete_test_vm(emulator, previous.get("ids") or [])
        i["tfo"] = {"state": None}
        if previous["state"] == "done":
            i["lastTestFailover"] = op.end

    def failed(op: Operation) -> None:
        i["tfo"] = previous

    return done, failed


@router.route("POST", ITEM + "/testFailoverCleanup", operation=ITEM_OPS + "/testFailoverCleanup/action",
              api_versions=VERSIONS)
def test_failover_cleanup(req: Request) -> Response:
    v = vault(req)
    item = _item(req, v)
    props = _props(req)
    comments = props.get("comments")
    if comments is not None and (not isinstance(comments, str) or len(comments) > 1024):
        raise m.AsrError("properties.comments: a string of at most 1024 characters.", code="InvalidInput",
                         target="properties.comments")
    _require(req, item, "TestFailoverCleanup")
    done, failed = cleanup_effects(req, item)
    resp, _ = begin_operation(req, v, item, scenario="TestFailoverCleanup", kind="TestFailoverCleanup", tasks=[
        "Deleting the test virtual machine", "Updating the provider states"], done=done, failed=failed)
    return resp


# --- failover, commit, reprotect ---------------------------------------------------------------------------------------------
def failover_target(req: Request, item: Resource) -> dict[str, Any]:
    i = item.internal
    s = store(req)
    if not i.get("recoveryNetwork"):  # a network mapping made after the enable counts too
        source = replicas.source_subnet(s, s.get(i["vmId"]))
        recovery_container = s.get(i["recoveryContainer"])
        if source and recovery_container is not None:
            i["recoveryNetwork"] = m.recovery_network_for(s, m.vault_of(s, item.id), source.rsplit("/subnets/", 1)[0],
                                                          m.fabric_of(s, recovery_container))
    target = replicas.plan_vm(s, item, test=False, network_id=i.get("recoveryNetwork"), location=i["recoveryLocation"])
    _linked_vm_checks(req, target)
    return target


def failover_effects(req: Request, item: Resource, target: dict[str, Any], point: dict[str, Any] | None, kind: str,
                     shut_source: bool):
    emulator, method, operation = req.emulator, req.method, req.route.operation if req.route else ""
    s = store(req)
    i = item.internal
    if shut_source:
        replicas.shut_down(s, i["vmId"])

    def done(op: Operation) -> None:
        replicas.create_vm(emulator, item, target, op.end, test=False, method=method, operation=operation)
        i["vms"][i["recoveryLocation"]] = target["vm"]
        point_ref = items.point_id(item, point) if point else f"{item.id}/recoveryPoints/{m.new_id()}"
        i["failover"] = {"kind": kind, "point": point_ref, "time": op.end}
        i["phase"], i["replUntil"] = "failedOver", op.start
        i["active"] = "Recovery" if i["active"] == "Primary" else "Primary"
        i["lastFailover"] = op.end

    return done, None


def _failover(req: Request, kind: str) -> Response:
    v = vault(req)
    item = _item(req, v)
    props = _props(req)
    specific = _specific(props)
    _direction(props, item, item.internal["direction"])
    sources = props.get("sourceSiteOperations")
    if sources is not None and sources not in ("Required", "NotRequired"):
        raise m.AsrError(f"properties.sourceSiteOperations: '{sources}' (Required or NotRequired).", code="InvalidInput",
                         target="properties.sourceSiteOperations")
    _require(req, item, kind)
    s = store(req)
    point = None
    if kind == "UnplannedFailover":
        point = items.find_point(s, item, specific.get("recoveryPointId"), "Latest", now(req))
        if specific.get("recoveryPointId") and point is None:
            raise m.AsrError(f"{SPECIFIC}.recoveryPointId: '{specific['recoveryPointId']}' is not a recovery point of the "
                             "item.", code="RecoveryPointNotFound", target=f"{SPECIFIC}.recoveryPointId")
    target = failover_target(req, item)
    done, _ = failover_effects(req, item, target, point, kind,
                               shut_source=kind == "PlannedFailover" or sources == "Required")
    scenario = "PlannedFailover" if kind == "PlannedFailover" else "UnplannedFailover"
    resp, _ = begin_operation(req, v, item, scenario=scenario, kind=kind, tasks=[
        "Prerequisites check for failover", "Shutting down the source virtual machine", "Creating the virtual machine",
        "Starting the virtual machine"], done=done)
    return resp


@router.route("POST", ITEM + "/plannedFailover", operation=ITEM_OPS + "/plannedFailover/action", api_versions=VERSIONS)
def planned_failover(req: Request) -> Response:
    return _failover(req, "PlannedFailover")


@router.route("POST", ITEM + "/unplannedFailover", operation=ITEM_OPS + "/unplannedFailover/action", api_versions=VERSIONS)
def unplanned_failover(req: Request) -> Response:
    return _failover(req, "UnplannedFailover")


def commit_effects(item: Resource):
    def done(op: Operation) -> None:
        item.internal["phase"] = "committed"
    return done


@router.route("POST", ITEM + "/failoverCommit", operation=ITEM_OPS + "/failoverCommit/action", api_versions=VERSIONS)
def failover_commit(req: Request) -> Response:
    v = vault(req)
    item = _item(req, v)
    _require(req, item, "Commit")
    resp, _ = begin_operation(req, v, item, scenario="Commit", kind="Commit", tasks=[
        "Prerequisites check for commit", "Commit"], done=commit_effects(item))
    return resp


def reprotect_plan(req: Request, v: Resource, item: Resource, specific: dict[str, Any]) -> dict[str, Any]:
    """The reverse replication a reprotect starts: from the failed-over VM back to the region it left."""
    s = store(req)
    i = item.internal
    new_primary, new_recovery = i["recoveryLocation"], i["primaryLocation"]
    vm = s.get(i["vms"].get(new_primary) or "")
    if vm is None:
        raise m.AsrError(f"The failed-over virtual machine of '{i['friendlyName']}' was not found.", code="VmNotFound",
                         recommended_action="Disable replication and enable it again.")
    policy = m.policy_in(s, v, specific.get("policyId") or i["policy"])
    if policy is None:
        raise m.AsrError(f"{SPECIFIC}.policyId: '{specific.get('policyId')}' is not a replication policy of vault "
                         f"'{v.name}'.", code="InvalidReprotectInput", target=f"{SPECIFIC}.policyId")
    source_container = s.get(i["recoveryContainer"])
    target_container_id = specific.get("recoveryContainerId") or i["sourceContainer"]
    mapping = m.mapping_for(s, v, source_container, policy.id, target_container_id) if source_container else None
    if mapping is None:
        raise m.AsrError(f"{SPECIFIC}.recoveryContainerId: no container mapping from '{source_container.name if source_container else '?'}' "
                         f"back to '{target_container_id}' with policy '{policy.name}'.", code="ContainerMappingNotFound",
                         target=f"{SPECIFIC}.recoveryContainerId",
                         recommended_action="Create the reverse container mapping first.")
    group = specific.get("recoveryResourceGroupId") or i["groups"][new_recovery]
    if not replicas._group_exists(s, group):
        raise m.AsrError(f"{SPECIFIC}.recoveryResourceGroupId: resource group '{group}' was not found.",
                         code="InvalidReprotectInput", target=f"{SPECIFIC}.recoveryResourceGroupId")
    staging = i["disks"][0]["staging"]
    requested = [{"diskId": d_id, "primaryStagingAzureStorageAccountId": staging, "recoveryResourceGroupId": group}
                 for d_id in compute.vm_disk_ids(vm)]
    disks, left_out = replicas.plan_disks(s, vm, requested, new_recovery)
    owned = i.get("owned", [])
    replicas.check_replicas_free(s, disks, owned)
    back = i["vms"].get(new_recovery)
    return {"vm": vm, "policy": policy, "mapping": mapping, "container": s.get(mapping.internal["target"]),
            "group": group, "disks": disks, "unprotected": left_out,
            "recoveryVmName": back.rsplit("/", 1)[-1] if back else vm.name}


def reprotect_effects(req: Request, item: Resource, plan: dict[str, Any]):
    emulator = req.emulator
    i = item.internal
    i["phase"] = "reprotecting"

    def done(op: Operation) -> None:
        vm = plan["vm"]
        new_primary, new_recovery = i["recoveryLocation"], i["primaryLocation"]
        i.update(vmId=vm.id, primaryLocation=new_primary, recoveryLocation=new_recovery,
                 direction=items.REVERSE[i["direction"]], policy=plan["policy"].id, mapping=plan["mapping"].id,
                 sourceContainer=i["recoveryContainer"], recoveryContainer=plan["container"].id,
                 recoveryResourceGroupId=plan["group"], disks=plan["disks"], unprotected=plan["unprotected"],
                 recoveryNetwork=i["networks"].get(new_recovery), recoveryVmName=plan["recoveryVmName"],
                 tfoVmName=f"{vm.name}-test", friendlyName=vm.name, failover=None, replStart=op.end, replUntil=None,
                 phase="replicating",
                 nics=[r.get("id") for r in (vm.properties.get("networkProfile") or {}).get("networkInterfaces") or []])
        i["groups"][new_recovery] = plan["group"]
        replicas.create_replicas(emulator, item, new_recovery, op.end)

    def failed(op: Operation) -> None:
        i["phase"] = "committed"

    return done, failed


@router.route("POST", ITEM + "/reProtect", operation=ITEM_OPS + "/reProtect/action", api_versions=VERSIONS)
def reprotect(req: Request) -> Response:
    v = vault(req)
    item = _item(req, v)
    props = _props(req)
    specific = _specific(props)
    _require(req, item, "ReverseReplicate")
    _direction(props, item, items.REVERSE[item.internal["direction"]])
    plan = reprotect_plan(req, v, item, specific)
    for d in plan["disks"]:
        linked_access_check(req, "Microsoft.Compute/disks/write", d["replicaId"])
    done, failed = reprotect_effects(req, item, plan)
    resp, _ = begin_operation(req, v, item, scenario="ReverseReplication", kind="Reprotect", tasks=[
        "Prerequisites check for reprotect", "Identifying the replication target", "Starting replication",
        "Updating the provider states"], done=done, failed=failed)
    return resp
