"""Microsoft.Compute over HTTP: parse the request, apply models.py's rules, answer with the
status codes the SDK expects (VM PUT 201/200, snapshot PUT 202/200, restore point PUT 201...)."""

from __future__ import annotations

import uuid
from typing import Any

from ..core import arm
from ..core.arm import (
    accepted,
    check_name,
    check_tags,
    get_resource,
    linked_access_check,
    listing,
    no_event,
    normalize_location,
    require_location,
)
from ..core.clock import iso
from ..core.errors import (
    ArmError,
    Conflict,
    InvalidParameter,
    NotFound,
    OperationNotAllowed,
    ResourceNotFound,
)
from ..core.providers import AdminRoute
from ..core.resource import Monitor, add_lists, add_long_running_delete, add_operation_monitors
from ..core.routing import Request, Response, Router
from ..core.state import Resource
from . import agent, usage
from . import models as m
from . import scalesets as vmss

router = Router()


def _seed(emulator, body: dict[str, Any]) -> tuple[int, Any]:
    from .fleet import seed_fleet

    return 201, seed_fleet(emulator, body)


# POST /_emulator/seed: a fleet of VMs with their disks, NICs, networks and groups.
ADMIN = [AdminRoute("POST", r"seed", _seed), AdminRoute("POST", r"compute/interleave", lambda e, b: _arm_interleave(e, b))]
# settings.vm_agent and the fault kind vm_agent_not_ready (agent.py).
SETTINGS = [agent.SETTING, usage.SETTING]
FAULT_KINDS = (agent.FAULT_KIND,)

VM_VERSIONS = ("2026-04-01", "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-09-01", "2023-03-01")
DISK_VERSIONS = ("2026-03-02", "2025-01-02", "2024-03-02", "2023-10-02", "2023-04-02")
OP_VERSIONS = VM_VERSIONS + DISK_VERSIONS

RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute"
SUB = "/subscriptions/{subscriptionId}/providers/Microsoft.Compute"


def _store(req: Request):
    return req.emulator.store


def _now(req: Request) -> float:
    return req.emulator.clock.timestamp()


def _ids(req: Request, *pairs: str) -> str:
    return arm.rid(req.params["subscriptionId"], req.params["resourceGroupName"], m.PROVIDER, *pairs)


def _rg(req: Request):
    return _store(req).resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])


def _existing(req: Request, collection: str, name_param: str) -> Resource | None:
    """The resource a DELETE names, or None if it is gone (its resource group must exist)."""
    resource = _store(req).get(_ids(req, collection, req.params[name_param]))
    if resource is None:
        _rg(req)
    return resource


def _finish(resource: Resource, state: str = "Succeeded"):
    def done(op) -> None:
        resource.properties["provisioningState"] = state
    return done


def _result(resource: Resource):
    return lambda: Response(200, resource.to_arm())


# --- operation status ------------------------------------------------------------------------------
add_operation_monitors(
    router,
    Monitor(status_id=lambda req, op: f"/subscriptions/{op.subscription_id}/providers/{m.PROVIDER}/locations/"
                                      f"{op.location}/operations/{op.id}"),
    status=(SUB + "/locations/{location}/operations/{operationId}", "Microsoft.Compute/locations/operations/read"),
    result_by_query=True, api_versions=OP_VERSIONS)


# --- VM sizes of a region (REST reference "Virtual Machine Sizes - List"): maxDataDiskCount is what attaches check
@router.route("GET", SUB + "/locations/{location}/vmSizes", operation="Microsoft.Compute/locations/vmSizes/read",
              api_versions=VM_VERSIONS)
def list_vm_sizes(req: Request) -> Response:
    return Response(200, {"value": m.vm_sizes()})


# --- virtual machines ------------------------------------------------------------------------------
VM = RG + "/virtualMachines/{vmName}"


def _vm(req: Request) -> Resource:
    vm = get_resource(_store(req), _ids(req, "virtualMachines", req.params["vmName"]), m.VM_TYPE,
                      req.params["vmName"], req.params["resourceGroupName"])
    m.vm_etag(vm)  # a VM from a state saved before VMs had one gets its first
    return vm


# --- another client's write landing between a caller's read and its write (a test's race, on demand) ----------
INTERLEAVE = "compute.interleave"


def _arm_interleave(emulator, body: dict[str, Any]) -> tuple[int, Any]:
    """POST /_emulator/compute/interleave {"vm": id, "attach": {"disk": id, "lun": n}}: the next PUT or PATCH of the
    VM finds the disk attached at that LUN first — as another client's update would have, landing after the caller
    read the VM and before its write: the VM's ETag moves. ``{}`` clears what is armed."""
    hooks = emulator.transient.setdefault(INTERLEAVE, {})
    if not body:
        hooks.clear()
        return 200, {"armed": []}
    vm_id, attach = body.get("vm"), body.get("attach")
    if not isinstance(vm_id, str) or not isinstance(attach, dict) or not isinstance(attach.get("disk"), str) \
            or not isinstance(attach.get("lun"), int):
        raise ValueError('body: {"vm": "<VM id>", "attach": {"disk": "<disk id>", "lun": <n>}}')
    if emulator.store.get(vm_id) is None or emulator.store.get(attach["disk"]) is None:
        raise ValueError("vm / attach.disk: no such resource")
    hooks[vm_id.lower()] = {"disk": attach["disk"], "lun": attach["lun"]}
    return 201, {"armed": sorted(hooks)}


def _interleave(req: Request, vm: Resource | None) -> None:
    hooks = req.emulator.transient.get(INTERLEAVE) or {}
    armed = hooks.pop(vm.key, None) if vm is not None else None
    if armed is None:
        return
    disk = _store(req).get(armed["disk"])
    if disk is None:
        return
    m.attach_disk(disk, vm.id)
    vm.properties["storageProfile"].setdefault("dataDisks", []).append(
        {"lun": armed["lun"], "name": disk.name, "createOption": "Attach", "caching": "None",
         "managedDisk": {"id": disk.id}, "diskSizeGB": disk.properties.get("diskSizeGB")})
    m.touch_vm(vm)


def _instance_view(req: Request, vm: Resource) -> dict[str, Any]:
    return m.instance_view(vm, _store(req), _now(req), agent.ready_after(req.emulator))


def _vm_body(req: Request, vm: Resource) -> dict[str, Any]:
    body = vm.to_arm()
    expand = req.query.get("$expand", "").lower()
    if expand == "instanceview":
        body["properties"] = dict(body["properties"], instanceView=_instance_view(req, vm))
    return body


def _boot(req: Request, vm: Resource):
    """The guest boots when the operation that runs the VM ends (agent.py)."""
    operation = req.route.operation if req.route else ""
    return lambda op: agent.boot(req.emulator, vm, op.end, req.method, operation)


@router.route("PUT", VM, operation="Microsoft.Compute/virtualMachines/write", api_versions=VM_VERSIONS)
def put_vm(req: Request) -> Response:
    body = req.json()
    name = req.params["vmName"]
    check_name(name, m.VM_NAME_RE, "VM names are 1-64 characters: letters, digits, '_', '.', '-'.")
    rg = _rg(req)
    store, now = _store(req), _now(req)
    location = require_location(body)
    tags = check_tags(body)
    props = body.get("properties") or {}
    vm_id = _ids(req, "virtualMachines", name)
    existing = store.get(vm_id)
    _interleave(req, existing)
    m.check_if_match(existing, req.headers.get("if-match"), req.headers.get("if-none-match"), name)
    if existing is not None:
        if normalize_location(existing.location) != location:
            raise ArmError("Changing property 'location' is not allowed.", code="PropertyChangeNotAllowed",
                           status=409, target="location")
        if existing.properties.get("provisioningState") == "Deleting":
            raise Conflict(f"VM '{name}' is being deleted.", code="OperationNotAllowed")
    size = (props.get("hardwareProfile") or {}).get("vmSize") or (
        existing.properties["hardwareProfile"]["vmSize"] if existing else None)
    if not size:
        raise InvalidParameter("properties.hardwareProfile.vmSize: required.", target="hardwareProfile.vmSize")
    storage_in = props.get("storageProfile") or (existing.properties["storageProfile"] if existing else None)
    if not storage_in:
        raise InvalidParameter("Required parameter 'storageProfile' is missing (null).", target="storageProfile")
    attach_os = str((storage_in.get("osDisk") or {}).get("createOption") or "").lower() == "attach"
    if existing is None and attach_os and props.get("osProfile"):
        # REST reference (Virtual Machines - Create Or Update, OSDisk.createOption "Attach: used when a specialized
        # disk is used to create the VM"): an attached OS disk brings its OS, so no osProfile (no official example).
        raise InvalidParameter("Parameter 'osProfile' is not allowed.", target="osProfile")
    storage, to_create, to_attach = m.resolve_vm_disks(store, req.params["subscriptionId"], rg.name, name, location,
                                                       storage_in, now, vm_id, existing, size)
    network = props.get("networkProfile") or (existing.properties.get("networkProfile") if existing else {})
    nics = m.resolve_nics(store, network, vm_id, location)
    scale_set, fault_domain = vmss.check_join(store, props, location, existing)
    for nic in nics:
        linked_access_check(req, "Microsoft.Network/networkInterfaces/join/action", nic.id)
    # Valid: commit disks, NICs and the VM together.
    previous = set(i.lower() for i in m.vm_disk_ids(existing)) if existing else set()
    for disk in to_create:
        store.put(disk)
    current = set()
    for disk_id in m.vm_disk_ids(Resource(vm_id, m.VM_TYPE, name, properties={"storageProfile": storage})):
        disk = store.get(disk_id)
        if disk is not None:
            m.attach_disk(disk, vm_id)
            current.add(disk.key)
    for gone in previous - current:  # detached by this update
        disk = store.get(gone)
        if disk is not None:
            m.detach_disk(disk)
    for nic in nics:
        nic.properties["virtualMachine"] = {"id": vm_id}
    if existing is None:
        vm = m.new_vm(req.params["subscriptionId"], rg.name, name, location, now, size=size, storage=storage,
                      network=network, tags=tags, os_profile=props.get("osProfile"), zones=body.get("zones"))
        vmss.join(vm, scale_set, fault_domain)
        store.put(vm)
        status = 201
    else:
        vm = existing
        vm.properties.update({"hardwareProfile": {"vmSize": size}, "storageProfile": storage, "networkProfile": network,
                              "provisioningState": "Updating"})
        if tags is not None:
            vm.tags = tags
        m.touch_vm(vm)
        status = 200

    boot = _boot(req, vm)

    def created(op) -> None:
        vm.properties["provisioningState"] = "Succeeded"
        if vm.internal.get("power") == "starting":
            vm.internal["power"] = "running"
            boot(op)

    def failed(op) -> None:
        vm.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, location, on_success=created, on_failure=failed, result=_result(vm))
    return accepted(req, op, m.PROVIDER, status, vm.to_arm())


@router.route("GET", VM, operation="Microsoft.Compute/virtualMachines/read", api_versions=VM_VERSIONS)
def get_vm(req: Request) -> Response:
    return Response(200, _vm_body(req, _vm(req)))


@router.route("PATCH", VM, operation="Microsoft.Compute/virtualMachines/write", api_versions=VM_VERSIONS)
def patch_vm(req: Request) -> Response:
    vm = _vm(req)
    _interleave(req, vm)
    m.check_if_match(vm, req.headers.get("if-match"), req.headers.get("if-none-match"), vm.name)
    body = req.json()
    tags = check_tags(body)
    props = body.get("properties") or {}
    hw = props.get("hardwareProfile")
    new_os = (((props.get("storageProfile") or {}).get("osDisk") or {}).get("managedDisk") or {}).get("id")
    swap = _os_disk_swap(req, vm, new_os) if new_os else None
    size = (hw or {}).get("vmSize") or vm.properties["hardwareProfile"]["vmSize"]
    update = _data_disks_update(req, vm, (props.get("storageProfile") or {}).get("dataDisks"), size)
    # Valid: nothing above wrote. Now the changes, together.
    if tags is not None:
        vm.tags = tags
    if hw and hw.get("vmSize"):
        vm.properties["hardwareProfile"]["vmSize"] = hw["vmSize"]
    if swap is not None:  # valid: the new disk in, the old one detached and kept
        old, new = swap
        vm.properties["storageProfile"]["osDisk"] = dict(vm.properties["storageProfile"]["osDisk"], name=new.name,
                                                         managedDisk={"id": new.id}, diskSizeGB=new.properties.get("diskSizeGB"))
        m.attach_disk(new, vm.id)
        if old is not None:
            m.detach_disk(old)
    detaching: list[tuple[dict[str, Any], str | None]] = []
    leaving: list[str] = []  # disks whose entries the PATCH left out: detached when the update ends
    if update is not None:
        data, attach, detaching, leaving = update
        vm.properties["storageProfile"]["dataDisks"] = data
        for disk in attach:
            m.attach_disk(disk, vm.id)
        for stored, option in detaching:  # shown as detaching in the answer, gone when the operation ends
            stored["toBeDetached"] = True
            if option:
                stored["detachOption"] = option
    store = _store(req)
    gone = {(stored.get("managedDisk") or {}).get("id", "").lower() for stored, _ in detaching} | set(leaving)
    for disk_id in gone:
        disk = store.get(disk_id)
        if disk is not None:
            disk.internal["detachingFrom"] = vm.id
    vm.properties["provisioningState"] = "Updating"
    m.touch_vm(vm)

    def settle_detaches() -> None:
        for disk_id in gone:
            disk = store.get(disk_id)
            if disk is not None:
                disk.internal.pop("detachingFrom", None)
                if (disk.extra.get("managedBy") or "").lower() == vm.id.lower():
                    m.detach_disk(disk)

    def done(op) -> None:
        _finish(vm)(op)
        settle_detaches()
        if gone:
            vm.properties["storageProfile"]["dataDisks"] = [
                d for d in vm.properties["storageProfile"].get("dataDisks", [])
                if (d.get("managedDisk") or {}).get("id", "").lower() not in gone]
            m.touch_vm(vm)

    def failed(op) -> None:
        _finish(vm, "Failed")(op)
        for stored, _ in detaching:
            stored["toBeDetached"] = False
            stored.pop("detachOption", None)
        for disk_id in gone:
            disk = store.get(disk_id)
            if disk is not None:
                disk.internal.pop("detachingFrom", None)

    op = req.emulator.start_operation(req, vm.location, on_success=done, on_failure=failed, result=_result(vm))
    return accepted(req, op, m.PROVIDER, 200, vm.to_arm())


def _data_disks_update(req: Request, vm: Resource, requested: list[dict[str, Any]] | None, size: str
                       ) -> tuple[list[dict[str, Any]], list[Resource], list[tuple[dict[str, Any], str | None]], list[str]] | None:
    """PATCH storageProfile.dataDisks: the list given is the VM's new list (a list property replaces the old one).
    An entry for a disk the VM has (its managedDisk.id, else its LUN) keeps it — ``toBeDetached: true`` (and
    optionally ``detachOption: ForceDetach``) detaches it, as in the examples
    VirtualMachine_Update_DetachDataDiskUsingToBeDetachedProperty and VirtualMachine_Update_ForceDetachDataDisk —;
    an entry ``createOption: Attach`` with another managed disk attaches it; a disk of the VM left out is detached
    (and kept, Unattached) when the update ends. Refused as Azure does (Learn, "Understand common error messages
    when you manage virtual machines in Azure"): a LUN that holds another disk (400 InvalidParameter "A disk at
    LUN n already exists."), more data disks than the size takes (409 OperationNotAllowed), a disk another VM owns
    (409 ConflictingUserInput), one being detached (409 AttachDiskWhileBeingDetached), in another region (400
    InvalidParameter). The emulator makes no new disk through PATCH (Empty/Copy/FromImage at a new LUN: 400).
    Returns (new list, disks to attach, entries detaching, ids left out), or None when the PATCH has no list."""
    if requested is None:
        return None
    if not isinstance(requested, list):
        raise InvalidParameter("storageProfile.dataDisks: must be a list.", target="dataDisks")
    store, now = _store(req), _now(req)
    current = vm.properties.get("storageProfile", {}).get("dataDisks", [])
    by_id = {(d.get("managedDisk") or {}).get("id", "").lower(): d for d in current}
    by_lun = {d.get("lun"): d for d in current}
    out: list[dict[str, Any]] = []
    attach: list[Resource] = []
    detaching: list[tuple[dict[str, Any], str | None]] = []
    kept: set[str] = set()
    luns: set[int] = set()
    for i, spec in enumerate(requested):
        target = f"storageProfile.dataDisks[{i}]"
        spec = spec if isinstance(spec, dict) else {}
        lun = spec.get("lun")
        if isinstance(lun, bool) or not isinstance(lun, int) or not 0 <= lun <= 63:
            raise InvalidParameter(f"{target}.lun: must be an integer 0-63.", target=f"{target}.lun")
        if lun in luns:
            raise InvalidParameter(f"A disk at LUN {lun} already exists.", target="dataDisks")
        luns.add(lun)
        disk_id = ((spec.get("managedDisk") or {}).get("id") or "").lower()
        match = by_id.get(disk_id) if disk_id else by_lun.get(lun)
        option = spec.get("detachOption")
        if option is not None and option != "ForceDetach":
            raise InvalidParameter(f"{target}.detachOption: '{option}' is not valid (ForceDetach).",
                                   target=f"{target}.detachOption")
        if option and spec.get("toBeDetached") is not True:
            raise InvalidParameter(f"{target}.detachOption: ForceDetach needs toBeDetached set to true.",
                                   target=f"{target}.detachOption")
        if match is not None:
            if match.get("lun") != lun:
                raise InvalidParameter(f"{target}.lun: the disk is at LUN {match.get('lun')}; a disk's LUN does not "
                                       "change while it is attached.", target=f"{target}.lun")
            kept.add((match.get("managedDisk") or {}).get("id", "").lower())
            out.append(match)
            if spec.get("toBeDetached") is True:
                detaching.append((match, option))
            continue
        if lun in by_lun:  # the LUN holds another disk of this VM
            raise InvalidParameter(f"A disk at LUN {lun} already exists.", target="dataDisks")
        if str(spec.get("createOption", "")).lower() != "attach" or not disk_id:
            raise InvalidParameter(f"{target}: LUN {lun} is not a data disk of VM '{vm.name}'; the emulator's PATCH "
                                   "attaches existing managed disks (createOption Attach, managedDisk.id) and makes "
                                   "none (use a PUT).", target=target)
        if spec.get("toBeDetached") is True:
            raise InvalidParameter(f"{target}.toBeDetached: a disk being attached cannot be detached.", target=target)
        disk = store.get(disk_id)
        if disk is None or disk.type != m.DISK_TYPE:
            raise InvalidParameter(f"{target}.managedDisk.id: disk '{spec['managedDisk']['id']}' was not found.",
                                   code="NotFound", target=f"{target}.managedDisk.id")
        m.check_data_disk_attachable(disk, vm.id, vm.location or "", target, now)
        attach.append(disk)
        sku = (spec.get("managedDisk") or {}).get("storageAccountType") or (disk.extra.get("sku") or {}).get("name")
        out.append({"lun": lun, "name": disk.name, "createOption": "Attach", "caching": spec.get("caching", "None"),
                    "managedDisk": {"id": disk.id, "storageAccountType": sku},
                    "diskSizeGB": disk.properties.get("diskSizeGB"), "deleteOption": spec.get("deleteOption", "Detach"),
                    "toBeDetached": False})
    staying = [d for d in out if not any(d is s for s, _ in detaching)]
    m.check_data_disk_count(size, len(staying))
    leaving = [i for i in by_id if i and i not in kept]
    return out, attach, detaching, leaving


def _os_disk_swap(req: Request, vm: Resource, disk_id: str) -> tuple[Resource | None, Resource] | None:
    """PATCH storageProfile.osDisk.managedDisk.id, as the REST reference and Learn ("Change the OS disk used
    by an Azure VM") describe it (no official example swaps one): the VM deallocated, the new disk free, in
    the VM's region, an OS disk of the same OS type and size. None when it is the disk the VM has."""
    store = _store(req)
    target = "storageProfile.osDisk.managedDisk.id"
    current_id = ((vm.properties.get("storageProfile") or {}).get("osDisk") or {}).get("managedDisk", {}).get("id", "")
    if current_id.lower() == disk_id.lower():
        return None
    new = store.get(disk_id)
    if new is None or new.type != m.DISK_TYPE:
        raise InvalidParameter(f"{target}: managed disk '{disk_id}' was not found.", code="NotFound", target=target)
    if m.power_state(vm) != "deallocated":
        raise OperationNotAllowed(f"The OS disk of VM '{vm.name}' can only be changed while the VM is deallocated "
                                  f"(it is {m.power_state(vm)}).", target=target)
    owner = new.extra.get("managedBy")
    if owner and owner.lower() != vm.id.lower():  # as any attach of a disk another VM holds (a disk serves one VM)
        raise OperationNotAllowed(f"Disk '{new.name}' cannot be attached: it is already attached to VM '{owner}'. A disk "
                                  "can be attached to one VM only.", target=target)
    if normalize_location(new.location) != normalize_location(vm.location):
        raise InvalidParameter(f"{target}: disk '{new.name}' is in {new.location}, the VM in {vm.location}.", target=target)
    old = store.get(current_id)
    if not new.properties.get("osType"):
        raise InvalidParameter(f"{target}: disk '{new.name}' has no osType: it is not an OS disk.", target=target)
    if old is not None and int(new.properties.get("diskSizeGB") or 0) != int(old.properties.get("diskSizeGB") or 0):
        raise InvalidParameter(f"{target}: disk '{new.name}' is {new.properties.get('diskSizeGB')} GB, the VM's OS disk "
                               f"{old.properties.get('diskSizeGB')} GB; a swapped OS disk must be the same size.",
                               target=target)
    return old, new


add_long_running_delete(router, VM, operation="Microsoft.Compute/virtualMachines/delete", api_versions=VM_VERSIONS,
                        provider=m.PROVIDER, find=lambda req: _existing(req, "virtualMachines", "vmName"),
                        begin=m.begin_delete_vm)


@router.route("GET", VM + "/instanceView", operation="Microsoft.Compute/virtualMachines/instanceView/read",
              api_versions=VM_VERSIONS)
def get_vm_instance_view(req: Request) -> Response:
    return Response(200, _instance_view(req, _vm(req)))


def _power_action(target: str, transient: str):
    def action(req: Request) -> Response:
        vm = _vm(req)
        if vm.properties.get("provisioningState") in ("Creating", "Deleting"):
            raise Conflict(f"Operation is not allowed while VM '{vm.name}' is {vm.properties['provisioningState']}.",
                           code="OperationNotAllowed")
        vm.internal["power"] = transient
        boot = _boot(req, vm)

        def done(op) -> None:
            vm.internal["power"] = target
            if transient == "starting":  # start and restart boot the guest again
                boot(op)

        op = req.emulator.start_operation(req, vm.location, on_success=done)
        return accepted(req, op, m.PROVIDER, 202)
    return action


for _verb, _target, _transient in (("deallocate", "deallocated", "deallocating"), ("start", "running", "starting"),
                                   ("powerOff", "stopped", "stopping"), ("restart", "running", "starting")):
    router.add("POST", VM + f"/{_verb}", _power_action(_target, _transient),
               operation=f"Microsoft.Compute/virtualMachines/{_verb.lower() if _verb != 'powerOff' else 'powerOff'}/action",
               api_versions=VM_VERSIONS)


def _in_location(req: Request, vms: list[Resource]) -> list[Resource]:
    location = req.query.get("$filter", "")
    if location.lower().startswith("location eq"):
        wanted = normalize_location(location.split("'")[1] if "'" in location else "")
        vms = [v for v in vms if normalize_location(v.location) == wanted]
    return vms


add_lists(router, m.VM_TYPE, api_versions=VM_VERSIONS, render=_vm_body, subscription_filter=_in_location)


# --- disks -----------------------------------------------------------------------------------------
DISK = RG + "/disks/{diskName}"


@router.route("PUT", DISK, operation="Microsoft.Compute/disks/write", api_versions=DISK_VERSIONS)
def put_disk(req: Request) -> Response:
    body = req.json()
    name = req.params["diskName"]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    rg = _rg(req)
    store, now = _store(req), _now(req)
    location = require_location(body)
    tags = check_tags(body)
    props = body.get("properties") or {}
    disk_id = _ids(req, "disks", name)
    existing = store.get(disk_id)
    if existing is not None:
        if tags is not None:
            existing.tags = tags
        if props.get("diskSizeGB"):
            if int(props["diskSizeGB"]) < existing.properties["diskSizeGB"]:
                raise InvalidParameter("Disk size can only be increased.", code="BadRequest", target="diskSizeGB")
            existing.properties["diskSizeGB"] = int(props["diskSizeGB"])
        existing.properties["provisioningState"] = "Updating"
        op = req.emulator.start_operation(req, location, on_success=_finish(existing), result=_result(existing))
        return accepted(req, op, m.PROVIDER, 202, existing.to_arm())
    creation = dict(props.get("creationData") or {})
    option = str(creation.get("createOption", "")).lower()
    size = props.get("diskSizeGB")
    if option == "empty":
        if not size:
            raise InvalidParameter("diskSizeGB: required when createOption is Empty.", target="diskSizeGB")
    elif option in ("copy", "restore"):
        source = store.get(creation.get("sourceResourceId") or "")
        if source is None:
            raise InvalidParameter(f"creationData.sourceResourceId: '{creation.get('sourceResourceId')}' was not found.",
                                   code="NotFound", target="creationData.sourceResourceId")
        expected = (m.SNAPSHOT_TYPE, m.DISK_TYPE) if option == "copy" else (m.DRP_TYPE,)
        if source.type not in expected:
            raise InvalidParameter(f"creationData.sourceResourceId: a {creation['createOption']} needs a "
                                   f"{' or '.join(expected)}, not {source.type}.", target="creationData.sourceResourceId")
        size = size or source.properties.get("diskSizeGB", 30)
        creation["sourceResourceId"] = source.id
        creation["sourceUniqueId"] = source.properties.get("uniqueId")
    elif option in ("fromimage", "import"):
        size = size or 30
    else:
        raise InvalidParameter(f"creationData.createOption: '{creation.get('createOption')}' is not supported "
                               "(Empty, Copy, Restore, FromImage, Import).", target="creationData.createOption")
    sku = (body.get("sku") or {}).get("name", "Premium_LRS")
    disk = m.new_disk(req.params["subscriptionId"], rg.name, name, location, now, size_gb=int(size), sku=sku,
                      creation=creation, tags=tags, os_type=props.get("osType"), zones=body.get("zones"))
    disk.properties["provisioningState"] = "Updating"
    store.put(disk)
    op = req.emulator.start_operation(req, location, on_success=_finish(disk),
                                      on_failure=lambda op: store.delete(disk.id), result=_result(disk))
    return accepted(req, op, m.PROVIDER, 202, disk.to_arm())


def _fresh(req: Request, resource: Resource | None) -> Resource | None:
    """The resource with a SAS past its duration ended (durationInSeconds)."""
    if resource is not None:
        m.expire_access(resource, _now(req))
    return resource


@router.route("GET", DISK, operation="Microsoft.Compute/disks/read", api_versions=DISK_VERSIONS)
def get_disk(req: Request) -> Response:
    return Response(200, _fresh(req, get_resource(_store(req), _ids(req, "disks", req.params["diskName"]), m.DISK_TYPE,
                                                  req.params["diskName"], req.params["resourceGroupName"])).to_arm())


add_long_running_delete(router, DISK, operation="Microsoft.Compute/disks/delete", api_versions=DISK_VERSIONS,
                        provider=m.PROVIDER, find=lambda req: _fresh(req, _existing(req, "disks", "diskName")),
                        begin=m.begin_delete_disk)
add_lists(router, m.DISK_TYPE, api_versions=DISK_VERSIONS, render=lambda req, d: _fresh(req, d).to_arm())


# --- access: a SAS on a disk or snapshot (next/ contracts: Disks_GrantAccess, Disks_RevokeAccess,
# Snapshots_GrantAccess, Snapshots_RevokeAccess; DiskRP.access-immutability.excerpt.json) -----------------------
def _grant(collection: str, param: str, kind: str):
    def grant(req: Request) -> Response:
        body = req.json()
        resource = _fresh(req, get_resource(_store(req), _ids(req, collection, req.params[param]), kind,
                                             req.params[param], req.params["resourceGroupName"]))
        level, seconds = body.get("access"), body.get("durationInSeconds")
        if level not in ("Read", "Write"):
            raise InvalidParameter(f"grantAccessData.access: '{level}' is not valid (Read, Write).", target="access")
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise InvalidParameter("grantAccessData.durationInSeconds: required, a whole number of seconds above 0.",
                                   target="durationInSeconds")
        if body.get("fileFormat") not in (None, "VHD", "VHDX"):
            raise InvalidParameter(f"grantAccessData.fileFormat: '{body['fileFormat']}' is not valid (VHD, VHDX).",
                                   target="fileFormat")
        if resource.internal.get("access"):
            raise OperationNotAllowed(f"'{resource.name}' already has an active SAS (diskState ActiveSAS): revoke "
                                      "access (endGetAccess) before granting it again.")
        owner = resource.extra.get("managedBy")
        if owner:
            vm = _store(req).get(owner)
            if vm is not None and m.power_state(vm) != "deallocated":
                raise OperationNotAllowed(f"Operation 'beginGetAccess' is not allowed on disk '{resource.name}' since "
                                          f"it is attached to VM '{owner}', which is not deallocated.")
        if resource.properties.get("provisioningState") not in (None, "Succeeded"):
            raise OperationNotAllowed(f"'{resource.name}' is {resource.properties['provisioningState']}: access is "
                                      "granted on a provisioned resource.")
        sas = m.grant_access(resource, _now(req), seconds, level, req.base_url())
        op = req.emulator.start_operation(req, resource.location or "", result=lambda: Response(200, {"accessSAS": sas}))
        return accepted(req, op, m.PROVIDER, 202)
    return grant


def _revoke(collection: str, param: str, kind: str):
    def revoke(req: Request) -> Response:
        resource = get_resource(_store(req), _ids(req, collection, req.params[param]), kind, req.params[param],
                                req.params["resourceGroupName"])
        m.revoke_access(resource)  # at once: the SAS is refused from now on
        op = req.emulator.start_operation(req, resource.location or "")
        return accepted(req, op, m.PROVIDER, 202)
    return revoke


for _template, _collection, _param, _kind, _type in ((DISK, "disks", "diskName", m.DISK_TYPE, "disks"),
                                                      (RG + "/snapshots/{snapshotName}", "snapshots", "snapshotName",
                                                       m.SNAPSHOT_TYPE, "snapshots")):
    router.add("POST", _template + "/beginGetAccess", _grant(_collection, _param, _kind),
               operation=f"Microsoft.Compute/{_type}/beginGetAccess/action", api_versions=DISK_VERSIONS)
    router.add("POST", _template + "/endGetAccess", _revoke(_collection, _param, _kind),
               operation=f"Microsoft.Compute/{_type}/endGetAccess/action", api_versions=DISK_VERSIONS)


# The SAS URL's own host (a page blob in Azure): GET while granted — the disk's first bytes, a Range honoured
# (206) —, 403 AuthenticationFailed (Storage's XML error) once revoked, expired, or with another signature.
data_plane = Router()


def _storage_error(message: str) -> Response:
    xml = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code><Message>{message}'
           "</Message></Error>")
    return Response(403, xml.encode(), {"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"})


@data_plane.route("GET", m.SAS_PATH, operation="Microsoft.Compute/disks/sas/read", api_versions=None)
def read_sas(req: Request) -> Response:
    resource = m.find_grant(_store(req), req.params["grant"])
    if resource is not None:
        m.expire_access(resource, _now(req))
        resource = m.find_grant(_store(req), req.params["grant"])
    access = (resource.internal.get("access") or {}) if resource is not None else {}
    if not access or req.query.get("sig") != access["sig"]:
        return _storage_error("Server failed to authenticate the request. The SAS was revoked, has expired, or its "
                              "signature does not match.")
    data = m.content(resource)
    headers = {"Content-Type": "application/octet-stream", "x-ms-blob-type": "PageBlob",
               "x-ms-blob-content-length": str(resource.properties.get("diskSizeBytes") or len(data))}
    wanted = req.headers.get("range") or req.headers.get("x-ms-range") or ""
    if wanted.startswith("bytes="):
        first, _, last = wanted[6:].partition("-")
        start = int(first or 0)
        end = min(len(data) - 1, int(last) if last else len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(206, data[start:end + 1], headers)
    return Response(200, data, headers)


# --- snapshots -------------------------------------------------------------------------------------
SNAPSHOT = RG + "/snapshots/{snapshotName}"
COPY_TYPE = "Microsoft.Compute/snapshots/copy"
# The linked action a snapshot's source needs (Azure/OpenShift#186, MicrosoftDocs/azure-docs#11362: a copy's
# LinkedAuthorizationFailed names beginGetAccess on the source disk; a snapshot source, by the same rule, its own).
SOURCE_ACCESS = {m.DISK_TYPE: "Microsoft.Compute/disks/beginGetAccess/action",
                 m.SNAPSHOT_TYPE: "Microsoft.Compute/snapshots/beginGetAccess/action"}


def _snapshot_body(snapshot: Resource, now: float) -> dict[str, Any]:
    body = snapshot.to_arm()
    policy = m.immutability_view(snapshot, now)
    if policy is not None:
        body["properties"] = dict(body["properties"], immutabilityPolicy=policy)
    copy = snapshot.internal.get("copy")
    if copy and snapshot.properties.get("completionPercent", 100) < 100:
        span = max(copy["end"] - copy["start"], 1e-9)
        body["properties"] = dict(body["properties"],
                                  completionPercent=round(min(99.0, max(0.0, (now - copy["start"]) / span * 100)), 1))
    return body


@router.route("PUT", SNAPSHOT, operation="Microsoft.Compute/snapshots/write", api_versions=DISK_VERSIONS)
def put_snapshot(req: Request) -> Response:
    body = req.json()
    name = req.params["snapshotName"]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    _rg(req)
    store, now = _store(req), _now(req)
    location = require_location(body)
    tags = check_tags(body)
    props = body.get("properties") or {}
    creation = dict(props.get("creationData") or {})
    snap_id = _ids(req, "snapshots", name)
    existing = store.get(snap_id)
    if existing is not None:
        # Idempotent re-PUT: same source → an update (tags only); another source → refused.
        old = existing.properties["creationData"]
        if creation.get("sourceResourceId") and creation["sourceResourceId"].lower() != old.get("sourceResourceId", "").lower():
            raise ArmError("Changing property 'creationData.sourceResourceId' is not allowed.",
                           code="PropertyChangeNotAllowed", status=409, target="creationData.sourceResourceId")
        if tags is not None:
            existing.tags = tags
        return Response(200, _snapshot_body(existing, now))
    option = str(creation.get("createOption", "")).lower()
    source = store.get(creation.get("sourceResourceId") or "")
    if option not in ("copy", "copystart"):
        raise InvalidParameter(f"creationData.createOption: '{creation.get('createOption')}' is not supported for "
                               "snapshots here (Copy, CopyStart).", target="creationData.createOption")
    if source is None or source.type not in (m.DISK_TYPE, m.SNAPSHOT_TYPE):
        raise InvalidParameter(f"creationData.sourceResourceId: disk or snapshot '{creation.get('sourceResourceId')}' "
                               "was not found.", code="NotFound", target="creationData.sourceResourceId")
    incremental = bool(props.get("incremental", False))
    source_disk = source if source.type == m.DISK_TYPE else store.get(source.internal.get("sourceDisk") or "")
    copy_span = 0.0
    if option == "copystart":
        if source.type != m.SNAPSHOT_TYPE or not source.properties.get("incremental"):
            raise InvalidParameter("CopyStart copies an incremental snapshot to another region: the source must be an "
                                   "incremental snapshot.", target="creationData.sourceResourceId")
        if normalize_location(source.location) == location:
            raise InvalidParameter("CopyStart is for a copy in another region; use Copy in the same region.",
                                   target="location")
        incremental = True  # a CopyStart copy of an incremental snapshot is incremental (the examples omit the flag)
        copy_span = req.emulator.lro_seconds("Microsoft.Compute/snapshots/copy") * 10
    else:
        if normalize_location(source.location) != location:
            raise InvalidParameter(f"The snapshot must be in the source's region '{source.location}' (use CopyStart "
                                   "for another region).", target="location")
        if incremental and source.type == m.DISK_TYPE:
            m.check_snapshot_limits(source, now)
    # ARM's linked access check on the source: a snapshot is read from it (emulator/README.md, "Role assignments").
    linked_access_check(req, SOURCE_ACCESS[source.type], source.id)
    creation["sourceResourceId"] = source.id
    creation["sourceUniqueId"] = source.properties.get("uniqueId")
    snapshot = Resource(
        snap_id, m.SNAPSHOT_TYPE, name, location, tags,
        {
            "creationData": creation,
            "diskSizeGB": source.properties.get("diskSizeGB"),
            "diskSizeBytes": source.properties.get("diskSizeBytes"),
            "osType": source.properties.get("osType"),
            "incremental": incremental,
            "uniqueId": str(uuid.uuid4()),
            "timeCreated": iso(now),
            "provisioningState": "Creating",
            "diskState": "Unattached",
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "snapshotAccessState": "Pending",
        },
        {"sku": {"name": "Standard_LRS", "tier": "Standard"}},
        {"sourceDisk": source_disk.id if source_disk else None},
        now,
    )
    if incremental:
        family = (source_disk.internal.get("familyId") if source_disk else None) or source.properties.get("incrementalSnapshotFamilyId")
        snapshot.properties["incrementalSnapshotFamilyId"] = family
        if source_disk is not None and option == "copy":
            m.count_snapshot(source_disk, now)
    if option == "copystart":
        snapshot.properties["completionPercent"] = 0.0
        snapshot.internal["copy"] = {"start": now, "end": now + copy_span, "source": source.id}
    # Billed on used size (compute/usage.py): a copy holds what its source holds, a point of a disk what changed.
    snapshot.internal["usedBytes"] = (int(source.internal.get("usedBytes", 0)) if source.type == m.SNAPSHOT_TYPE
                                      else usage.new_point(req.emulator, source, now, incremental=incremental))
    store.put(snapshot)

    def created(op) -> None:
        if option == "copy" and source.type == m.SNAPSHOT_TYPE and store.get(source.id) is None:
            snapshot.properties["provisioningState"] = "Failed"  # its source was deleted while it was copied
            return
        snapshot.properties["provisioningState"] = "Succeeded"
        if option == "copystart":
            req.emulator.operations.start(req.params["subscriptionId"], location, copy_span,
                                          on_success=lambda _op: _copy_done(store, snapshot))
        else:
            snapshot.properties["snapshotAccessState"] = "Available"

    def failed(op) -> None:
        snapshot.properties["provisioningState"] = "Failed"

    # A Copy of a snapshot reads the whole source: as long as a copy's ``Microsoft.Compute/snapshots/copy`` setting.
    duration = req.emulator.lro_seconds(COPY_TYPE) if option == "copy" and source.type == m.SNAPSHOT_TYPE else None
    op = req.emulator.start_operation(req, location, duration, on_success=created, on_failure=failed,
                                      result=lambda: Response(200, _snapshot_body(snapshot, _now(req))))
    return accepted(req, op, m.PROVIDER, 202, _snapshot_body(snapshot, now))


def _copy_done(store, snapshot: Resource) -> None:
    if store.get(snapshot.id) is None:
        return
    source_id = snapshot.internal["copy"]["source"]
    if store.get(source_id) is None:
        snapshot.properties["copyCompletionError"] = {
            "errorCode": "CopySourceNotFound",
            "errorMessage": "The source snapshot was deleted before the copy completed.",
        }
        return
    snapshot.properties["completionPercent"] = 100.0
    snapshot.properties["snapshotAccessState"] = "Available"


@router.route("PATCH", SNAPSHOT, operation="Microsoft.Compute/snapshots/write", api_versions=DISK_VERSIONS)
def patch_snapshot(req: Request) -> Response:
    snapshot = get_resource(_store(req), _ids(req, "snapshots", req.params["snapshotName"]), m.SNAPSHOT_TYPE,
                            req.params["snapshotName"], req.params["resourceGroupName"])
    tags = check_tags(req.json())
    if tags is not None:
        snapshot.tags = tags
    return Response(200, _snapshot_body(snapshot, _now(req)))


@router.route("GET", SNAPSHOT, operation="Microsoft.Compute/snapshots/read", api_versions=DISK_VERSIONS)
def get_snapshot(req: Request) -> Response:
    snapshot = get_resource(_store(req), _ids(req, "snapshots", req.params["snapshotName"]), m.SNAPSHOT_TYPE,
                            req.params["snapshotName"], req.params["resourceGroupName"])
    return Response(200, _snapshot_body(snapshot, _now(req)))


def _snapshot_to_delete(req: Request) -> Resource | None:
    """The snapshot a DELETE names, its immutability policy seen on the emulator's clock (expired or holding)."""
    snapshot = _existing(req, "snapshots", "snapshotName")
    if snapshot is not None:
        m.active_immutability(snapshot, _now(req))
    return snapshot


add_long_running_delete(router, SNAPSHOT, operation="Microsoft.Compute/snapshots/delete", api_versions=DISK_VERSIONS,
                        provider=m.PROVIDER, find=_snapshot_to_delete, begin=m.begin_delete_snapshot)


# --- immutability (next/ contracts Snapshots_UpdateImmutabilityPolicy(Lock); DiskRP.access-immutability.excerpt.json).
# Applied at once; 202 + monitors, and the final answer is the Snapshot (SDK 39.0.0 deserializes a Snapshot with
# properties.immutabilityPolicy, not the swagger's ImmutabilityPolicyData: emulator/README.md).
def _immutability(lock: bool):
    def update(req: Request) -> Response:
        name = req.params["snapshotName"]
        snapshot = get_resource(_store(req), _ids(req, "snapshots", name), m.SNAPSHOT_TYPE, name,
                                req.params["resourceGroupName"])
        m.update_immutability(snapshot, req.json(), _now(req), lock=lock)
        op = req.emulator.start_operation(req, snapshot.location or "",
                                          result=lambda: Response(200, _snapshot_body(snapshot, _now(req))))
        return accepted(req, op, m.PROVIDER, 202)
    return update


for _action, _lock in (("updateImmutabilityPolicy", False), ("updateImmutabilityPolicyLock", True)):
    router.add("POST", SNAPSHOT + "/" + _action, _immutability(_lock),
               operation=f"Microsoft.Compute/snapshots/{_action}/action", api_versions=DISK_VERSIONS)
add_lists(router, m.SNAPSHOT_TYPE, api_versions=DISK_VERSIONS, render=lambda req, s: _snapshot_body(s, _now(req)))


# --- restore point collections ---------------------------------------------------------------------
RPC = RG + "/restorePointCollections/{restorePointCollectionName}"


def _rpc(req: Request) -> Resource:
    name = req.params["restorePointCollectionName"]
    return get_resource(_store(req), _ids(req, "restorePointCollections", name), m.RPC_TYPE, name,
                        req.params["resourceGroupName"])


def _rpc_body(req: Request, rpc: Resource) -> dict[str, Any]:
    """A collection as ARM shows it, with ``systemData.createdAt`` (ARM's common types: the SDK's
    RestorePointCollection is a TrackedResource with system_data; the Compute excerpt in ../shared
    has no definitions and no example shows it)."""
    body = rpc.to_arm()
    body["systemData"] = {"createdAt": iso(rpc.created)}
    if req.query.get("$expand", "").lower() == "restorepoints":
        points = [_rp_body(req, rp, expand=False) for rp in _store(req).of_type(m.RP_TYPE, rpc.id)]
        body["properties"] = dict(body["properties"], restorePoints=points)
    return body


@router.route("PUT", RPC, operation="Microsoft.Compute/restorePointCollections/write", api_versions=VM_VERSIONS)
def put_rpc(req: Request) -> Response:
    body = req.json()
    name = req.params["restorePointCollectionName"]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    _rg(req)
    store = _store(req)
    location = require_location(body)
    tags = check_tags(body)
    source_id = ((body.get("properties") or {}).get("source") or {}).get("id")
    rpc_id = _ids(req, "restorePointCollections", name)
    existing = store.get(rpc_id)
    if existing is not None:
        old = (existing.properties.get("source") or {}).get("id", "")
        if source_id and source_id.lower() != old.lower():
            raise ArmError("Changing property 'source.id' is not allowed: only tags of a restore point collection can change.",
                           code="PropertyChangeNotAllowed", status=409, target="properties.source.id")
        if tags is not None:
            existing.tags = tags
        return Response(200, _rpc_body(req, existing))
    source = store.get(source_id or "")
    if source is None or source.type not in (m.VM_TYPE, m.RPC_TYPE):
        raise InvalidParameter(f"properties.source.id: VM or restore point collection '{source_id}' was not found.",
                               code="NotFound", target="properties.source.id")
    if source.type == m.VM_TYPE and normalize_location(source.location) != location:
        raise InvalidParameter(f"A restore point collection must be in its VM's region '{source.location}'.",
                               target="location")
    if source.type == m.RPC_TYPE and normalize_location(source.location) == location:
        raise InvalidParameter("A cross-region copy's collection must be in another region than its source.",
                               target="location")
    rpc = Resource(rpc_id, m.RPC_TYPE, name, location, tags,
                   {"source": {"id": source.id, "location": source.location}, "restorePointCollectionId": str(uuid.uuid4()),
                    "provisioningState": "Succeeded"}, {}, {}, _now(req))
    store.put(rpc)
    return Response(201, _rpc_body(req, rpc))


@router.route("PATCH", RPC, operation="Microsoft.Compute/restorePointCollections/write", api_versions=VM_VERSIONS)
def patch_rpc(req: Request) -> Response:
    rpc = _rpc(req)
    tags = check_tags(req.json())
    if tags is not None:
        rpc.tags = tags
    return Response(200, _rpc_body(req, rpc))


@router.route("GET", RPC, operation="Microsoft.Compute/restorePointCollections/read", api_versions=VM_VERSIONS)
def get_rpc(req: Request) -> Response:
    return Response(200, _rpc_body(req, _rpc(req)))


add_long_running_delete(router, RPC, operation="Microsoft.Compute/restorePointCollections/delete",
                        api_versions=VM_VERSIONS, provider=m.PROVIDER,
                        find=lambda req: _existing(req, "restorePointCollections", "restorePointCollectionName"),
                        begin=m.begin_delete_with_children)
add_lists(router, m.RPC_TYPE, api_versions=VM_VERSIONS, render=_rpc_body)


# --- restore points --------------------------------------------------------------------------------
RP = RPC + "/restorePoints/{restorePointName}"


def _rp_body(req: Request, rp: Resource, expand: bool | None = None) -> dict[str, Any]:
    body = rp.to_arm()
    body.pop("location", None)
    if expand is None:
        expand = req.query.get("$expand", "").lower() == "instanceview"
    if expand:
        now = _now(req)
        copy = rp.internal.get("copy")
        drps = []
        for drp in _store(req).of_type(m.DRP_TYPE, rp.id):
            status, percent = "Succeeded", 100
            if copy and rp.properties.get("provisioningState") == "Creating":
                span = max(copy["end"] - copy["start"], 1e-9)
                status, percent = "InProgress", int(min(99, max(0, (now - copy["start"]) / span * 100)))
            state = {"code": f"ReplicationState/{status.lower()}", "level": "Info",
                     "displayStatus": "Replication succeeded" if status == "Succeeded" else "Replication in progress"}
            entry: dict[str, Any] = {"id": drp.id, "snapshotAccessState": "Available",
                                     "replicationStatus": {"status": state, "completionPercent": percent}}
            drps.append(entry)
        state = rp.properties.get("provisioningState", "Succeeded")
        body["properties"] = dict(body["properties"], instanceView={
            "diskRestorePoints": drps,
            "statuses": [{"code": f"ProvisioningState/{state.lower()}", "level": "Info",
                          "displayStatus": f"Provisioning {state.lower()}", "time": body["properties"].get("timeCreated")}],
        })
    return body


@router.route("PUT", RP, operation="Microsoft.Compute/restorePointCollections/restorePoints/write",
              api_versions=VM_VERSIONS)
def put_restore_point(req: Request) -> Response:
    body = req.json(required=False)
    name = req.params["restorePointName"]
    check_name(name, m.NAME_RE, m.NAME_RULE)
    rpc = _rpc(req)
    store, now = _store(req), _now(req)
    rp_id = f"{rpc.id}/restorePoints/{name}"
    if store.get(rp_id) is not None:
        raise OperationNotAllowed(f"Restore point '{name}' already exists. Restore points cannot be updated.",
                                  code="OperationNotAllowed")
    props = body.get("properties") or {}
    source_rp_id = (props.get("sourceRestorePoint") or {}).get("id")
    consistency = props.get("consistencyMode") or "ApplicationConsistent"
    if consistency not in ("CrashConsistent", "ApplicationConsistent", "FileSystemConsistent"):
        raise InvalidParameter(f"properties.consistencyMode: '{consistency}' is not valid (CrashConsistent, "
                               "ApplicationConsistent).", target="consistencyMode")
    rp = Resource(rp_id, m.RP_TYPE, name, rpc.location, None, {}, {}, {}, now)
    if source_rp_id:  # cross-region copy of a restore point
        source_rp = store.get(source_rp_id)
        if source_rp is None or source_rp.type != m.RP_TYPE:
            raise InvalidParameter(f"properties.sourceRestorePoint.id: restore point '{source_rp_id}' was not found.",
                                   code="NotFound", target="sourceRestorePoint.id")
        src_rpc_id = source_rp.id.rsplit("/restorePoints/", 1)[0]
        if (rpc.properties.get("source") or {}).get("id", "").lower() != src_rpc_id.lower():
            raise InvalidParameter("The collection's source must be the source restore point's collection.",
                                   target="sourceRestorePoint.id")
        if source_rp.properties.get("provisioningState") != "Succeeded":
            raise Conflict("The source restore point is not complete yet.", code="OperationNotAllowed")
        rp.properties = {
            "sourceRestorePoint": {"id": source_rp.id},
            "sourceMetadata": dict(source_rp.properties.get("sourceMetadata") or {}, location=rpc.location),
            "consistencyMode": source_rp.properties.get("consistencyMode"),
            "excludeDisks": source_rp.properties.get("excludeDisks", []),
            "provisioningState": "Creating",
            "timeCreated": iso(now),
        }
        span = req.emulator.lro_seconds("Microsoft.Compute/restorePoints/copy") * 10
        rp.internal = {"vmId": source_rp.internal.get("vmId", ""), "copy": {"start": now, "end": now + span}}
        captured = [(d.name, d) for d in store.of_type(m.DRP_TYPE, source_rp.id)]
        duration = span
    else:
        vm = m.rpc_source_vm(store, rpc)
        if vm is None:
            raise InvalidParameter("The collection's source VM no longer exists.", code="NotFound", target="source.id")
        if vm.properties.get("provisioningState") in ("Creating", "Deleting"):
            raise Conflict(f"VM '{vm.name}' is {vm.properties['provisioningState']}: restore points can be created "
                           "only for a provisioned VM.", code="OperationNotAllowed")
        busy = m.restore_point_in_flight(store, vm.id)
        if busy is not None:
            raise Conflict(f"Restore point '{busy.name}' of VM '{vm.name}' is still being created: one restore point "
                           "creation at a time per VM.", code="OperationNotAllowed")
        vm_disks = {i.lower() for i in m.vm_disk_ids(vm)}
        excluded = set()
        for i, ref in enumerate(props.get("excludeDisks") or []):
            disk_id = (ref or {}).get("id", "")
            if disk_id.lower() not in vm_disks:
                raise InvalidParameter(f"properties.excludeDisks[{i}].id: '{disk_id}' is not a disk of VM '{vm.name}'.",
                                       target=f"excludeDisks[{i}].id")
            excluded.add(disk_id.lower())
        if m.power_state(vm) in ("deallocated", "stopped") and consistency == "ApplicationConsistent":
            consistency = "CrashConsistent"  # no guest to quiesce: the platform falls back
        meta, captured = m.source_metadata(vm, rp_id, excluded, store)
        rp.properties = {
            "excludeDisks": [{"id": d["id"]} for d in props.get("excludeDisks") or []],
            "sourceMetadata": meta,
            "consistencyMode": consistency,
            "provisioningState": "Creating",
            "timeCreated": iso(now),
        }
        if "instantAccessDurationMinutes" in props:
            rp.properties["instantAccessDurationMinutes"] = props["instantAccessDurationMinutes"]
        rp.internal = {"vmId": vm.id}
        duration = None
    store.put(rp)
    for drp_name, disk in captured:
        if source_rp_id:
            src = disk  # a disk restore point of the source
            copy = Resource(f"{rp.id}/diskRestorePoints/{drp_name}", m.DRP_TYPE, drp_name, None, None,
                            dict(src.properties, sourceResourceLocation=src.properties.get("sourceResourceLocation")),
                            {}, {"copy": True, "usedBytes": int(src.internal.get("usedBytes", 0))}, now)
            store.put(copy)
        else:
            drp = m.new_disk_restore_point(rp, drp_name, disk, now)
            drp.internal["usedBytes"] = usage.new_point(req.emulator, disk, now, incremental=True)
            store.put(drp)

    def done(op) -> None:
        rp.properties["provisioningState"] = "Succeeded"

    def failed(op) -> None:
        rp.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, rpc.location, duration, on_success=done, on_failure=failed,
                                      result=lambda: Response(200, _rp_body(req, rp, expand=False)))
    return accepted(req, op, m.PROVIDER, 201, _rp_body(req, rp, expand=False))


@router.route("GET", RP, operation="Microsoft.Compute/restorePointCollections/restorePoints/read",
              api_versions=VM_VERSIONS)
def get_restore_point(req: Request) -> Response:
    rpc = _rpc(req)
    rp = _store(req).get(f"{rpc.id}/restorePoints/{req.params['restorePointName']}")
    if rp is None:
        raise ResourceNotFound(m.RP_TYPE, f"{rpc.name}/{req.params['restorePointName']}", req.params["resourceGroupName"])
    return Response(200, _rp_body(req, rp))


def _existing_restore_point(req: Request) -> Resource | None:
    rpc = _rpc(req)  # a missing collection is a 404
    return _store(req).get(f"{rpc.id}/restorePoints/{req.params['restorePointName']}")


add_long_running_delete(router, RP, operation="Microsoft.Compute/restorePointCollections/restorePoints/delete",
                        api_versions=VM_VERSIONS, provider=m.PROVIDER, find=_existing_restore_point,
                        begin=m.begin_delete_with_children)


# --- disk restore points (DiskRP api-versions) -----------------------------------------------------
DRP = RP + "/diskRestorePoints"


@router.route("GET", DRP + "/{diskRestorePointName}", operation="Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/read",
              api_versions=DISK_VERSIONS)
def get_disk_restore_point(req: Request) -> Response:
    rpc = _rpc(req)
    drp_id = f"{rpc.id}/restorePoints/{req.params['restorePointName']}/diskRestorePoints/{req.params['diskRestorePointName']}"
    drp = _store(req).get(drp_id)
    if drp is None:
        raise NotFound(f"Disk restore point '{req.params['diskRestorePointName']}' was not found.")
    return Response(200, drp.to_arm())


@router.route("GET", DRP, operation="Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints/read",
              api_versions=DISK_VERSIONS)
def list_disk_restore_points(req: Request) -> Response:
    rpc = _rpc(req)
    rp_id = f"{rpc.id}/restorePoints/{req.params['restorePointName']}"
    if _store(req).get(rp_id) is None:
        raise ResourceNotFound(m.RP_TYPE, f"{rpc.name}/{req.params['restorePointName']}", req.params["resourceGroupName"])
    return listing(req, [d.to_arm() for d in _store(req).of_type(m.DRP_TYPE, rp_id)])


# --- virtual machine scale sets (scalesets.py) -------------------------------------------------------------
VMSS = RG + "/virtualMachineScaleSets/{vmScaleSetName}"


def _vmss(req: Request) -> Resource:
    name = req.params["vmScaleSetName"]
    return get_resource(_store(req), _ids(req, "virtualMachineScaleSets", name), vmss.VMSS_TYPE, name,
                        req.params["resourceGroupName"])


def _publish_instance(req: Request, kind: str, instance: Resource) -> None:
    """A Flexible set's VMs are ARM's VMs: their creation and deletion are reported as any VM's."""
    if instance.type != m.VM_TYPE:
        return
    from ..core.events import build_event

    verb = "write" if kind == "write" else "delete"
    event = build_event(kind, instance.id, f"{m.VM_TYPE}/{verb}", instance.subscription_id, _now(req),
                        "PUT" if kind == "write" else "DELETE", f"https://management.azure.com{instance.id}")
    req.emulator.events.publish(event, instance.subscription_id)


@router.route("PUT", VMSS, operation="Microsoft.Compute/virtualMachineScaleSets/write", api_versions=VM_VERSIONS)
def put_vmss(req: Request) -> Response:
    body = req.json()
    name = req.params["vmScaleSetName"]
    check_name(name, r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?",
               "Scale set names are 1-64 characters: letters, digits, '_', '.', '-'.")
    rg = _rg(req)
    store, now = _store(req), _now(req)
    location = require_location(body)
    tags = check_tags(body)
    existing = store.get(_ids(req, "virtualMachineScaleSets", name))
    if existing is not None and normalize_location(existing.location) != location:
        raise ArmError("Changing property 'location' is not allowed.", code="PropertyChangeNotAllowed", status=409,
                       target="location")
    mode, fault_domains, capacity = vmss.check_set(body, existing)
    profile = (body.get("properties") or {}).get("virtualMachineProfile")
    vmss.check_profile(store, profile, location)
    if existing is None:
        scale_set = vmss.new_set(req.params["subscriptionId"], rg.name, name, location, now, mode=mode,
                                 fault_domains=fault_domains, sku=dict(body.get("sku") or {}, capacity=0), profile=profile,
                                 tags=tags, zones=body.get("zones"))
        store.put(scale_set)
        status = 201
    else:
        scale_set, status = existing, 200
        if tags is not None:
            scale_set.tags = tags
        if profile:
            scale_set.properties["virtualMachineProfile"] = vmss._stored_profile(profile)
    scale_set.properties["provisioningState"] = "Updating" if existing is not None else "Creating"
    made, gone = vmss.scale(store, scale_set, capacity, now)
    for instance in made:
        _publish_instance(req, "write", instance)
    for instance in gone:
        instance.properties["provisioningState"] = "Deleting"
    boots = [_boot(req, vm) for vm in made if vm.type == m.VM_TYPE]

    def done(op) -> None:
        scale_set.properties["provisioningState"] = "Succeeded"
        for vm in made:
            if store.get(vm.id) is not None:
                vm.properties["provisioningState"] = "Succeeded"
                if vm.internal.get("power") == "starting":
                    vm.internal["power"] = "running"
        for boot in boots:
            boot(op)
        for instance in gone:
            if store.get(instance.id) is not None:
                vmss.remove_instance(store, instance)
                _publish_instance(req, "delete", instance)

    def failed(op) -> None:
        scale_set.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, location, on_success=done, on_failure=failed,
                                      result=lambda: Response(200, scale_set.to_arm()))
    return accepted(req, op, m.PROVIDER, status, scale_set.to_arm())


@router.route("GET", VMSS, operation="Microsoft.Compute/virtualMachineScaleSets/read", api_versions=VM_VERSIONS)
def get_vmss(req: Request) -> Response:
    return Response(200, _vmss(req).to_arm())


@router.route("DELETE", VMSS, operation="Microsoft.Compute/virtualMachineScaleSets/delete", api_versions=VM_VERSIONS)
def delete_vmss(req: Request) -> Response:
    """As core.resource.add_long_running_delete, and each Flexible VM the delete takes reported as a VM's delete."""
    scale_set = _existing(req, "virtualMachineScaleSets", "vmScaleSetName")
    if scale_set is None:
        return no_event(Response(204))
    deletion = vmss.begin_delete_set(_store(req), scale_set, lambda instance: _publish_instance(req, "delete", instance))
    op = req.emulator.start_operation(req, deletion.location, on_success=lambda op: deletion.done(),
                                      on_failure=lambda op: deletion.failed())
    return accepted(req, op, m.PROVIDER, 202)


router.deletions[vmss.VMSS_TYPE.lower()] = vmss.begin_delete_set  # a group's delete takes its scale sets
add_lists(router, vmss.VMSS_TYPE, api_versions=VM_VERSIONS)


def _uniform(req: Request) -> Resource:
    scale_set = _vmss(req)
    if vmss.mode_of(scale_set) != vmss.UNIFORM:
        raise OperationNotAllowed(f"Scale set '{scale_set.name}' has orchestration mode Flexible: its instances are "
                                  "VMs (Virtual Machines - List, Get).", target="virtualMachineScaleSetVMs")
    return scale_set


def _instance_body(instance: Resource) -> dict[str, Any]:
    body = instance.to_arm()
    body["properties"] = dict(body["properties"])
    return body


@router.route("GET", VMSS + "/virtualMachines", operation="Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
              api_versions=VM_VERSIONS)
def list_vmss_vms(req: Request) -> Response:
    scale_set = _uniform(req)
    return listing(req, [_instance_body(i) for i in vmss.members(_store(req), scale_set)])


@router.route("GET", VMSS + "/virtualMachines/{instanceId}",
              operation="Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read", api_versions=VM_VERSIONS)
def get_vmss_vm(req: Request) -> Response:
    scale_set = _uniform(req)
    instance = _store(req).get(f"{scale_set.id}/virtualMachines/{req.params['instanceId']}")
    if instance is None:
        raise ResourceNotFound(vmss.VMSS_VM_TYPE, f"{scale_set.name}/{req.params['instanceId']}",
                               req.params["resourceGroupName"])
    return Response(200, _instance_body(instance))
