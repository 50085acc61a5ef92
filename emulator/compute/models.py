"""Compute's rules, on plain state: what a VM, disk, snapshot or restore point is, and the
constraints the docs name (attached disks, incremental snapshot rate limits, one restore point
creation at a time per VM, cross-region copies)."""

from __future__ import annotations

import uuid
from typing import Any

from ..core.arm import normalize_location, parse_rid, rid
from ..core.clock import iso
from ..core.errors import ArmError, Conflict, InvalidParameter, OperationNotAllowed
from ..core.resource import Deletion
from ..core.state import Resource, Store
from . import agent

PROVIDER = "Microsoft.Compute"
VM_TYPE = "Microsoft.Compute/virtualMachines"
DISK_TYPE = "Microsoft.Compute/disks"
SNAPSHOT_TYPE = "Microsoft.Compute/snapshots"
RPC_TYPE = "Microsoft.Compute/restorePointCollections"
RP_TYPE = "Microsoft.Compute/restorePointCollections/restorePoints"
DRP_TYPE = "Microsoft.Compute/restorePointCollections/restorePoints/diskRestorePoints"

SNAPSHOT_WINDOW_SECONDS = 300
SNAPSHOTS_PER_WINDOW = 7  # incremental snapshots per disk per 5 minutes
SNAPSHOTS_PER_DISK = 500  # incremental snapshots per disk in total
NAME_RULE = "Names are 1-80 characters: letters, digits, '_', '.', '-'; start with a letter or digit; end with a letter, digit or '_'."
NAME_RE = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?"
VM_NAME_RE = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?"


# --- disks ---------------------------------------------------------------------------------------
def new_disk(sub: str, rg: str, name: str, location: str, now: float, *, size_gb: int, sku: str = "Premium_LRS",
             creation: dict[str, Any] | None = None, tags: dict[str, str] | None = None, os_type: str | None = None,
             zones: list[str] | None = None) -> Resource:
    disk_id = rid(sub, rg, PROVIDER, "disks", name)
    props: dict[str, Any] = {
        "creationData": creation or {"createOption": "Empty"},
        "diskSizeGB": size_gb,
        "diskSizeBytes": size_gb * 1024**3,
        "uniqueId": str(uuid.uuid4()),
        "timeCreated": iso(now),
        "provisioningState": "Succeeded",
        "diskState": "Unattached",
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
    }
    if os_type:
        props["osType"] = os_type
    extra: dict[str, Any] = {"sku": {"name": sku, "tier": sku.split("_")[0]}}
    if zones:
        extra["zones"] = zones
    return Resource(disk_id, DISK_TYPE, name, location, tags, props, extra,
                    {"familyId": str(uuid.uuid4()), "snapshots": 0, "window": []}, now)


def vm_etag(vm: Resource) -> str:
    """The VM's ETag (REST reference, Compute 2023-09-01 on: ``etag``, "returned in Create/Update/Get response of the
    VM, so that customer can supply it in the header to ensure optimistic updates"): a quoted version number, as ARM
    words it in its 412 ("Etag provided in if-match header "2" does not match etag "3" of resource.")."""
    return vm.extra.setdefault("etag", '"1"')


def touch_vm(vm: Resource) -> None:
    """The VM's model changed (a PUT, a PATCH, disks detached when an update ends, disks replaced by a restore): a
    new ETag, so a write conditioned on the one read before is refused."""
    vm.extra["etag"] = f'"{int(vm_etag(vm).strip(chr(34)) or 0) + 1}"'


def check_if_match(vm: Resource | None, if_match: str | None, if_none_match: str | None, name: str) -> None:
    """ARM's conditional write on a VM (If-Match / If-None-Match on PUT and PATCH): 412 PreconditionFailed when the
    ETag given is not the VM's (``*``: any VM that exists), or when ``If-None-Match: *`` meets a VM that exists."""
    from ..core.errors import ArmError

    if if_match:
        current = vm_etag(vm) if vm is not None else None
        given = [t.strip() for t in if_match.split(",")]
        if current is None or ("*" not in given and current not in given):
            raise ArmError(f"Etag provided in if-match header {if_match} does not match etag {current or '(none)'} "
                           f"of resource.", code="PreconditionFailed", status=412)
    if if_none_match and if_none_match.strip() == "*" and vm is not None:
        raise ArmError(f"The VM '{name}' exists: If-None-Match '*' is not met.", code="PreconditionFailed", status=412)


def attach_disk(disk: Resource, vm_id: str) -> None:
    disk.extra["managedBy"] = vm_id
    disk.properties["diskState"] = "Attached"


def detach_disk(disk: Resource) -> None:
    disk.extra.pop("managedBy", None)
    disk.properties["diskState"] = "Unattached"


def check_disk_free(disk: Resource, vm_id: str) -> None:
    owner = disk.extra.get("managedBy")
    if owner and owner.lower() != vm_id.lower():
        raise OperationNotAllowed(
            f"Disk '{disk.name}' cannot be attached: it is already attached to VM '{owner}'. A disk can be attached to one VM only.",
            code="OperationNotAllowed", target="storageProfile",
        )


def check_data_disk_attachable(disk: Resource, vm_id: str, location: str, target: str, now: float) -> None:
    """A data disk attached to a VM (PUT or PATCH), with the codes and messages of Learn's "Understand common error
    messages when you manage virtual machines in Azure": a disk another VM owns (409 ConflictingUserInput), one
    still being detached from a VM (409 AttachDiskWhileBeingDetached); a disk in another region (400
    InvalidParameter: the emulator's wording) or with an active SAS (409 OperationNotAllowed: the emulator's)."""
    expire_access(disk, now)
    leaving = disk.internal.get("detachingFrom")
    if leaving and leaving.lower() != vm_id.lower():
        raise ArmError(f"Cannot attach data disk '{disk.name}' to VM '{vm_id.rsplit('/', 1)[-1]}' because the disk is "
                       "currently being detached. Please wait until the disk is completely detached and then try again.",
                       code="AttachDiskWhileBeingDetached", status=409, target=target)
    owner = disk.extra.get("managedBy")
    if owner and owner.lower() != vm_id.lower():
        raise ArmError(f"Disk '{disk.id}' cannot be attached as the disk is already owned by VM '{owner}'.",
                       code="ConflictingUserInput", status=409, target=target)
    if normalize_location(disk.location) != normalize_location(location):
        raise InvalidParameter(f"{target}: disk '{disk.name}' is in '{disk.location}', the VM in '{location}': a disk "
                               "is attached to a VM in its own region.", target=target)
    if disk.internal.get("access"):
        raise OperationNotAllowed(f"Disk '{disk.name}' cannot be attached while it has an active SAS (diskState "
                                  "ActiveSAS): revoke access (endGetAccess) first.", target=target)


# Max data disks per VM size (Learn's size pages); a size not listed: two per vCPU (its name's number), 2 to 64.
MAX_DATA_DISKS = {"Standard_B1s": 2, "Standard_B1ms": 2, "Standard_B2s": 4, "Standard_B2ms": 4, "Standard_B4ms": 8,
                  "Standard_D2s_v5": 4, "Standard_D4s_v5": 8, "Standard_D8s_v5": 16, "Standard_D16s_v5": 32,
                  "Standard_E2s_v5": 4, "Standard_E4s_v5": 8, "Standard_E8s_v5": 16, "Standard_D2s_v3": 4,
                  "Standard_D4s_v3": 8, "Standard_A1_v2": 2}
_MAX_BY_LOWER = {k.lower(): v for k, v in MAX_DATA_DISKS.items()}


def max_data_disks(size: str) -> int:
    known = _MAX_BY_LOWER.get((size or "").lower())
    if known is not None:
        return known
    import re

    found = re.match(r"^standard_[a-z]+(\d+)", (size or "").lower())
    return max(2, min(64, 2 * int(found.group(1)))) if found else 4


def vm_sizes() -> list[dict[str, Any]]:
    """The sizes the emulator knows, as Virtual Machine Sizes - List shows them."""
    import re

    out = []
    for name, most in MAX_DATA_DISKS.items():
        cores = int(re.match(r"^Standard_[A-Z]+(\d+)", name).group(1))
        out.append({"name": name, "numberOfCores": cores, "osDiskSizeInMB": 1047552, "resourceDiskSizeInMB": 0,
                    "memoryInMB": cores * 4096, "maxDataDiskCount": most})
    return out


def check_data_disk_count(vm_size: str, count: int) -> None:
    most = max_data_disks(vm_size)
    if count > most:
        raise OperationNotAllowed(f"The maximum number of data disks allowed to be attached to a VM of this size is "
                                  f"{most}.", target="dataDisks")


# --- access (a SAS on a disk or snapshot: beginGetAccess / endGetAccess) ---------------------------------
SAS_PATH = "/_sas/{grant}/abcd"  # the data plane the SAS URL names (Azure's: md-….blob.storage.azure.net/{c}/abcd)


def grant_access(resource: Resource, now: float, seconds: int, level: str, base_url: str) -> str:
    """A read (or write) SAS for ``seconds``: the disk shows diskState ActiveSAS until it is revoked or expires."""
    import secrets

    grant, sig = uuid.uuid4().hex, secrets.token_urlsafe(24)
    resource.internal["access"] = {"grant": grant, "sig": sig, "start": now, "expiry": now + seconds, "level": level,
                                   "before": resource.properties.get("diskState", "Unattached")}
    resource.properties["diskState"] = "ActiveSAS"
    sp = "r" if level == "Read" else "rw"
    return (f"{base_url}/_sas/{grant}/abcd?sv=2018-03-28&sr=b&si={grant}&st={iso(now)}&se={iso(now + seconds)}"
            f"&sp={sp}&sig={sig}")


def revoke_access(resource: Resource) -> bool:
    """Ends the SAS (a later GET on it is 403); False when there was none."""
    access = resource.internal.pop("access", None)
    if access is None:
        return False
    if resource.type == DISK_TYPE:
        resource.properties["diskState"] = "Attached" if resource.extra.get("managedBy") else "Unattached"
    else:
        resource.properties["diskState"] = access.get("before") or "Unattached"
    return True


def expire_access(resource: Resource, now: float) -> None:
    """A SAS past its duration ends by itself (as durationInSeconds says)."""
    access = resource.internal.get("access")
    if access and now >= access["expiry"]:
        revoke_access(resource)


def find_grant(store: Store, grant: str) -> Resource | None:
    for kind in (DISK_TYPE, SNAPSHOT_TYPE):
        for resource in store.of_type(kind, prefix=""):
            if (resource.internal.get("access") or {}).get("grant") == grant:
                return resource
    return None


def content(resource: Resource) -> bytes:
    """What a SAS reads: the first bytes of the disk (a header naming it; the emulator holds no data), 4 KiB."""
    head = (f"emulated disk {resource.name} {resource.properties.get('uniqueId')} from "
            f"{(resource.properties.get('creationData') or {}).get('sourceResourceId', '')}\n").encode()
    return (head + b"\0" * 4096)[:4096]


# --- snapshots -----------------------------------------------------------------------------------
def check_snapshot_limits(source_disk: Resource, now: float) -> None:
    """Azure's incremental snapshot limits per disk: 7 per 5 minutes, 500 in total."""
    window: list[float] = source_disk.internal.setdefault("window", [])
    window[:] = [t for t in window if t > now - SNAPSHOT_WINDOW_SECONDS]
    if source_disk.internal.get("snapshots", 0) >= SNAPSHOTS_PER_DISK:
        raise OperationNotAllowed(
            f"Disk '{source_disk.name}' already has {SNAPSHOTS_PER_DISK} incremental snapshots, the most a disk can have. "
            "Delete older incremental snapshots first.", target="creationData.sourceResourceId")
    if len(window) >= SNAPSHOTS_PER_WINDOW:
        raise ArmError(
            f"Only {SNAPSHOTS_PER_WINDOW} incremental snapshots of disk '{source_disk.name}' can be created every "
            f"{SNAPSHOT_WINDOW_SECONDS // 60} minutes. Retry later.",
            code="OperationNotAllowed", status=409, target="creationData.sourceResourceId",
        )  # no Retry-After: azure-core would sleep on any 4xx that carries one


def count_snapshot(source_disk: Resource, now: float) -> None:
    source_disk.internal.setdefault("window", []).append(now)
    source_disk.internal["snapshots"] = source_disk.internal.get("snapshots", 0) + 1


def uncount_snapshot(store: Store, snapshot: Resource) -> None:
    source = store.get(snapshot.internal.get("sourceDisk") or "")
    if source is not None and snapshot.properties.get("incremental"):
        source.internal["snapshots"] = max(0, source.internal.get("snapshots", 0) - 1)


# --- virtual machines ----------------------------------------------------------------------------
def vm_disk_ids(vm: Resource) -> list[str]:
    storage = vm.properties.get("storageProfile", {})
    ids = [storage.get("osDisk", {}).get("managedDisk", {}).get("id")]
    ids += [d.get("managedDisk", {}).get("id") for d in storage.get("dataDisks", [])]
    return [i for i in ids if i]


def power_state(vm: Resource) -> str:
    return vm.internal.get("power", "running")


def instance_view(vm: Resource, store: Store, now: float, agent_ready_after: float) -> dict[str, Any]:
    """What GET …/instanceView answers and ``$expand=instanceView`` embeds (the same body)."""
    state = vm.properties.get("provisioningState", "Succeeded")
    power = power_state(vm)
    disks = []
    for disk_id in vm_disk_ids(vm):
        disk = store.get(disk_id)
        disks.append({"name": disk.name if disk else disk_id.rsplit("/", 1)[-1], "statuses": [
            {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
             "time": iso(vm.created)}]})
    view: dict[str, Any] = {
        "computerName": vm.properties.get("osProfile", {}).get("computerName", vm.name),
        "osName": vm.properties.get("storageProfile", {}).get("osDisk", {}).get("osType", "Linux"),
    }
    guest = agent.vm_agent(vm, power, now, agent_ready_after)
    if guest is not None:
        view["vmAgent"] = guest
    view.update({
        "disks": disks,
        "hyperVGeneration": "V2",
        "statuses": [
            {"code": f"ProvisioningState/{state.lower()}", "level": "Info",
             "displayStatus": f"Provisioning {state.lower()}", "time": iso(vm.created)},
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"},
        ],
    })
    return view


def resolve_vm_disks(store: Store, sub: str, rg: str, vm_name: str, location: str, storage: dict[str, Any],
                     now: float, vm_id: str, existing: Resource | None,
                     vm_size: str = "") -> tuple[dict[str, Any], list[Resource], list[Resource]]:
    """Validate a VM's storageProfile as ARM does and work out its managed disks.

    Returns (storageProfile as stored, disks to create, existing disks to attach). Nothing is
    written: the caller commits only when the whole request is valid.
    """
    storage = dict(storage or {})
    os_disk = dict(storage.get("osDisk") or {})
    if not os_disk:
        raise InvalidParameter("Required parameter 'osDisk' is missing (null).", target="osDisk")
    to_create: list[Resource] = []
    to_attach: list[Resource] = []
    previous = {i.lower() for i in vm_disk_ids(existing)} if existing else set()

    def managed(spec: dict[str, Any], target: str, default_name: str, *, is_os: bool) -> dict[str, Any]:
        spec = dict(spec)
        option = str(spec.get("createOption", "")).lower()
        md = dict(spec.get("managedDisk") or {})
        sku = md.get("storageAccountType", "Premium_LRS")
        disk_id = md.get("id")
        if disk_id and disk_id.lower() in previous:
            spec["managedDisk"] = md
            return spec
        if option in ("fromimage", "empty", "copy", "restore"):
            name = spec.get("name") or default_name
            if option == "empty":
                if not spec.get("diskSizeGB"):
                    raise InvalidParameter(f"{target}.diskSizeGB: required for an empty disk.", target=f"{target}.diskSizeGB")
                creation: dict[str, Any] = {"createOption": "Empty"}
            elif option == "fromimage":
                creation = {"createOption": "FromImage", "imageReference": storage.get("imageReference") or {}}
            else:
                source_id = (spec.get("sourceResource") or {}).get("id")
                source = store.get(source_id or "")
                if source is None:
                    raise InvalidParameter(f"{target}.sourceResource.id: resource '{source_id}' was not found.",
                                           code="InvalidParameter", target=f"{target}.sourceResource.id")
                creation = {"createOption": "Copy" if option == "copy" else "Restore", "sourceResourceId": source.id}
                spec.setdefault("diskSizeGB", source.properties.get("diskSizeGB", 30))
            size = int(spec.get("diskSizeGB") or 30)
            disk = new_disk(sub, rg, name, location, now, size_gb=size, sku=sku, creation=creation,
                            os_type=spec.get("osType") if is_os else None)
            if store.get(disk.id) or any(d.key == disk.key for d in to_create):
                raise Conflict(f"{target}: a disk named '{name}' already exists in resource group '{rg}'.",
                               code="ConflictingUserInput", target=target)
            to_create.append(disk)
            md["id"] = disk.id
        elif option == "attach":
            disk = store.get(disk_id or "")
            if disk is None:
                raise InvalidParameter(f"{target}.managedDisk.id: disk '{disk_id}' was not found.",
                                       code="NotFound", target=f"{target}.managedDisk.id")
            if is_os:
                check_disk_free(disk, vm_id)
                if normalize_location(disk.location) != location:
                    raise InvalidParameter(f"{target}: disk '{disk.name}' is in '{disk.location}', the VM in "
                                           f"'{location}'.", target=target)
            else:
                check_data_disk_attachable(disk, vm_id, location, target, now)
            if any(d.key == disk.key for d in to_attach):
                raise InvalidParameter(f"{target}: disk '{disk.name}' is referenced twice.", code="ConflictingUserInput",
                                       target=target)
            to_attach.append(disk)
            md["id"] = disk.id
            if is_os and disk.properties.get("osType"):  # an attached OS disk brings its OS
                spec.setdefault("osType", disk.properties["osType"])
            spec.setdefault("name", disk.name)
            spec.setdefault("diskSizeGB", disk.properties.get("diskSizeGB"))
        else:
            raise InvalidParameter(
                f"{target}.createOption: '{spec.get('createOption')}' is not valid (FromImage, Empty, Attach, Copy, Restore).",
                target=f"{target}.createOption")
        md.setdefault("storageAccountType", sku)
        spec["managedDisk"] = md
        spec.setdefault("name", md["id"].rsplit("/", 1)[-1])
        spec.setdefault("caching", "ReadWrite" if is_os else "None")
        spec.setdefault("deleteOption", "Detach")
        return spec

    stored_os = managed(os_disk, "storageProfile.osDisk", f"{vm_name}_OsDisk_1_{uuid.uuid4().hex}", is_os=True)
    stored_os.setdefault("osType", "Linux")
    data = []
    luns: set[int] = set()
    for i, spec in enumerate(storage.get("dataDisks") or []):
        lun = spec.get("lun")
        if not isinstance(lun, int) or not 0 <= lun <= 63:
            raise InvalidParameter(f"storageProfile.dataDisks[{i}].lun: must be an integer 0-63.",
                                   target=f"storageProfile.dataDisks[{i}].lun")
        if lun in luns:
            raise InvalidParameter(f"storageProfile.dataDisks[{i}].lun: LUN {lun} is used twice.",
                                   code="InvalidParameter", target="dataDisks")
        luns.add(lun)
        data.append(managed(spec, f"storageProfile.dataDisks[{i}]", f"{vm_name}_disk{lun}_{uuid.uuid4().hex[:12]}",
                            is_os=False))
    had = len((existing.properties.get("storageProfile") or {}).get("dataDisks") or []) if existing else 0
    if vm_size and len(data) > had:  # a VM that grows past its size's limit (one already past it may stay so)
        check_data_disk_count(vm_size, len(data))
    storage["osDisk"] = stored_os
    storage["dataDisks"] = data
    return storage, to_create, to_attach


def resolve_nics(store: Store, network: dict[str, Any], vm_id: str, location: str) -> list[Resource]:
    nics = []
    refs = (network or {}).get("networkInterfaces") or []
    if not refs and not (network or {}).get("networkInterfaceConfigurations"):
        raise InvalidParameter("networkProfile.networkInterfaces: a VM needs at least one network interface.",
                               target="networkProfile")
    for i, ref in enumerate(refs):
        nic = store.get((ref or {}).get("id") or "")
        if nic is None:
            raise InvalidParameter(f"networkProfile.networkInterfaces[{i}].id: network interface '{(ref or {}).get('id')}' was not found.",
                                   code="NotFound", target=f"networkProfile.networkInterfaces[{i}].id")
        owner = (nic.properties.get("virtualMachine") or {}).get("id")
        if owner and owner.lower() != vm_id.lower():
            raise InvalidParameter(f"Network interface '{nic.id}' is used by existing resource '{owner}'.",
                                   code="NicInUse", target=f"networkProfile.networkInterfaces[{i}].id")
        if normalize_location(nic.location) != location:
            raise InvalidParameter(f"networkProfile.networkInterfaces[{i}]: NIC is in '{nic.location}', the VM in '{location}'.",
                                   code="InvalidResourceReference", target=f"networkProfile.networkInterfaces[{i}].id")
        nics.append(nic)
    return nics


def new_vm(sub: str, rg: str, name: str, location: str, now: float, *, size: str, storage: dict[str, Any],
           network: dict[str, Any], tags: dict[str, str] | None, os_profile: dict[str, Any] | None = None,
           zones: list[str] | None = None, state: str = "Creating") -> Resource:
    props: dict[str, Any] = {
        "vmId": str(uuid.uuid4()),
        "hardwareProfile": {"vmSize": size},
        "storageProfile": storage,
        "networkProfile": network,
        "provisioningState": state,
        "timeCreated": iso(now),
    }
    if os_profile:
        props["osProfile"] = {k: v for k, v in os_profile.items() if k != "adminPassword"}
    extra: dict[str, Any] = {"zones": zones} if zones else {}
    extra["etag"] = '"1"'
    return Resource(rid(sub, rg, PROVIDER, "virtualMachines", name), VM_TYPE, name, location, tags, props, extra,
                    {"power": "starting" if state == "Creating" else "running"}, now)


# --- restore points ------------------------------------------------------------------------------
def rpc_source_vm(store: Store, rpc: Resource) -> Resource | None:
    return store.get((rpc.properties.get("source") or {}).get("id") or "")


def restore_point_in_flight(store: Store, vm_id: str) -> Resource | None:
    for rp in store.of_type(RP_TYPE, prefix=""):
        if rp.internal.get("vmId", "").lower() == vm_id.lower() and rp.properties.get("provisioningState") == "Creating":
            return rp
    return None


def source_metadata(vm: Resource, rp_id: str, excluded: set[str], store: Store) -> tuple[dict[str, Any], list[tuple[str, Resource]]]:
    """The VM's profile as captured by a restore point, and the disks to capture (name, disk)."""
    storage = vm.properties.get("storageProfile", {})
    captured: list[tuple[str, Resource]] = []

    def capture(spec: dict[str, Any]) -> dict[str, Any] | None:
        disk_id = (spec.get("managedDisk") or {}).get("id", "")
        if disk_id.lower() in excluded:
            return None
        disk = store.get(disk_id)
        drp_name = f"{spec.get('name')}_{uuid.uuid4()}"
        out = {k: spec[k] for k in ("lun", "name", "caching", "osType", "diskSizeGB") if k in spec}
        out["managedDisk"] = {"id": disk_id, "storageAccountType": (spec.get("managedDisk") or {}).get("storageAccountType")}
        out["diskRestorePoint"] = {"id": f"{rp_id}/diskRestorePoints/{drp_name}"}
        if disk is not None:
            captured.append((drp_name, disk))
        return out

    os_disk = capture(storage.get("osDisk", {}))
    data = [d for d in (capture(s) for s in storage.get("dataDisks", [])) if d]
    meta: dict[str, Any] = {
        "vmId": vm.properties.get("vmId"),
        "hardwareProfile": dict(vm.properties.get("hardwareProfile", {})),
        "storageProfile": {"osDisk": os_disk, "dataDisks": data, "diskControllerType": "SCSI"},
        "location": vm.location,
    }
    if os_disk is None:
        meta["storageProfile"].pop("osDisk")
    if "osProfile" in vm.properties:
        meta["osProfile"] = vm.properties["osProfile"]
    return meta, captured


def new_disk_restore_point(rp: Resource, name: str, disk: Resource, now: float) -> Resource:
    return Resource(
        f"{rp.id}/diskRestorePoints/{name}", DRP_TYPE, name, None, None,
        {
            "timeCreated": iso(now),
            "sourceResourceId": disk.id,
            "osType": disk.properties.get("osType"),
            "familyId": disk.internal.get("familyId"),
            "sourceUniqueId": disk.properties.get("uniqueId"),
            "diskRestorePointId": name,
            "diskSizeGB": disk.properties.get("diskSizeGB"),
            "provisioningState": "Succeeded",
            "supportedCapabilities": {"acceleratedNetwork": True},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "replicationState": "Succeeded",
            "sourceResourceLocation": disk.location,
        },
        {}, {"copy": False}, now,
    )


def same_scope(a: str, b: str) -> bool:
    pa, pb = parse_rid(a), parse_rid(b)
    return bool(pa and pb and pa["subscription"].lower() == pb["subscription"].lower())


# --- deletes: each runs as a long-running operation (core.resource.add_long_running_delete) ---------
def begin_delete_vm(store: Store, vm: Resource) -> Deletion:
    """Deleting; when done, its disks and NICs follow their deleteOption (Delete, else Detach)."""
    vm.properties["provisioningState"] = "Deleting"

    def done() -> None:
        storage = vm.properties.get("storageProfile", {})
        for spec in [storage.get("osDisk", {})] + list(storage.get("dataDisks", [])):
            disk = store.get((spec.get("managedDisk") or {}).get("id") or "")
            if disk is None:
                continue
            if str(spec.get("deleteOption", "Detach")).lower() == "delete":
                store.delete(disk.id)
            else:
                detach_disk(disk)
        for ref in (vm.properties.get("networkProfile") or {}).get("networkInterfaces") or []:
            nic = store.get(ref.get("id") or "")
            if nic is None:
                continue
            if str((ref.get("properties") or {}).get("deleteOption", "Detach")).lower() == "delete":
                store.delete(nic.id)
            else:
                nic.properties.pop("virtualMachine", None)
        store.delete(vm.id)

    def failed() -> None:
        vm.properties["provisioningState"] = "Failed"

    return Deletion(vm.location or "", done, failed)


def begin_delete_disk(store: Store, disk: Resource, now: float | None = None) -> Deletion:
    """An attached disk can't be deleted (409), nor one with an active SAS (409: revoke access first)."""
    if now is not None:
        expire_access(disk, now)
    if disk.internal.get("access"):
        raise OperationNotAllowed(f"Operation 'Delete' is not allowed on disk '{disk.name}' since it has an active SAS "
                                  "(diskState ActiveSAS). Revoke access (endGetAccess) and then try again.")
    if disk.extra.get("managedBy"):
        raise OperationNotAllowed(f"Disk '{disk.name}' is attached to VM '{disk.extra['managedBy']}'. "
                                  "Detach it before deleting it.")
    return Deletion(disk.location or "", lambda: store.delete(disk.id))


# --- snapshot immutability (Compute 2026-03-02: updateImmutabilityPolicy / updateImmutabilityPolicyLock) ---------
# Learn (Set-AzSnapshotImmutabilityPolicy, ImmutabilityPolicyType): the duration counts from the policy's start,
# which an update of an active policy keeps (locking too); an expired policy replaced starts anew. Unlocked may be
# shortened, extended or removed (0 days: expired at once); Locked only extended, never removed or unlocked.
DAY_SECONDS = 86400


def _policy_days(body: dict[str, Any], *, least: int) -> int:
    days = body.get("immutabilityDurationDays")
    if isinstance(days, bool) or not isinstance(days, int) or days < least or days > 36500:
        raise InvalidParameter(f"immutabilityPolicyData.immutabilityDurationDays: required, a whole number of days "
                               f"from {least} to 36500 (got {days!r}).", target="immutabilityDurationDays")
    return days


def immutability_expiry(policy: dict[str, Any]) -> float:
    return policy["start"] + policy["days"] * DAY_SECONDS


def active_immutability(snapshot: Resource, now: float) -> dict[str, Any] | None:
    """The snapshot's policy while it holds (before policyExpirationTime), else None."""
    policy = snapshot.internal.get("immutability")
    if policy is None:
        return None
    if now >= immutability_expiry(policy):
        policy["expired"] = True  # seen expired: a later delete without a clock (a group's) may go
        return None
    return policy


def immutability_view(snapshot: Resource, now: float) -> dict[str, Any] | None:
    """``properties.immutabilityPolicy`` as SDK 39.0.0's ImmutabilityPolicy has it (read-only fields)."""
    policy = snapshot.internal.get("immutability")
    if policy is None:
        return None
    return {"immutabilityDurationDays": policy["days"], "type": policy["type"],
            "policyStartTime": iso(policy["start"]), "policyExpirationTime": iso(immutability_expiry(policy)),
            "isPolicyExpired": active_immutability(snapshot, now) is None}


def update_immutability(snapshot: Resource, body: dict[str, Any], now: float, *, lock: bool) -> dict[str, Any]:
    """Apply an updateImmutabilityPolicy (``lock`` False: Unlocked only) or updateImmutabilityPolicyLock (Locked
    only) body; refuse what Azure refuses (400 a bad body naming the field, 409 a Locked policy shortened, removed
    or unlocked). Returns the policy now held."""
    if not isinstance(body, dict):
        raise InvalidParameter("immutabilityPolicyData: an object {immutabilityDurationDays, type} is required.",
                               target="immutabilityPolicyData")
    wanted = "Locked" if lock else "Unlocked"
    kind = body.get("type")
    if kind not in ("Unlocked", "Locked"):
        raise InvalidParameter(f"immutabilityPolicyData.type: '{kind}' is not valid (Unlocked, Locked).", target="type")
    if kind != wanted:
        other = "updateImmutabilityPolicyLock" if lock is False else "updateImmutabilityPolicy"
        raise InvalidParameter(f"immutabilityPolicyData.type: this operation sets a {wanted} policy; use {other} "
                               f"for a {kind} one.", target="type")
    days = _policy_days(body, least=1 if lock else 0)
    if snapshot.properties.get("provisioningState") != "Succeeded":
        raise OperationNotAllowed(f"Snapshot '{snapshot.name}' is {snapshot.properties.get('provisioningState')}: "
                                  "an immutability policy is set on a provisioned snapshot.")
    current = active_immutability(snapshot, now)
    if current is not None and current["type"] == "Locked":
        if not lock:
            raise OperationNotAllowed(f"Snapshot '{snapshot.name}' has a Locked immutability policy until "
                                      f"{iso(immutability_expiry(current))}: it cannot be changed to Unlocked or "
                                      "removed; use updateImmutabilityPolicyLock to extend it.")
        if days < current["days"]:
            raise OperationNotAllowed(f"Snapshot '{snapshot.name}' has a Locked immutability policy of "
                                      f"{current['days']} days: it can only be extended, not shortened to {days}.")
    start = current["start"] if current is not None else now
    policy = {"start": start, "days": days, "type": kind}
    snapshot.internal["immutability"] = policy
    # Resource Graph reads properties as stored: the policy's fixed fields (isPolicyExpired is a read's, by the clock).
    snapshot.properties["immutabilityPolicy"] = {
        "immutabilityDurationDays": days, "type": kind, "policyStartTime": iso(start),
        "policyExpirationTime": iso(immutability_expiry(policy))}
    return policy


def begin_delete_snapshot(store: Store, snapshot: Resource, now: float | None = None) -> Deletion:
    """When done, the snapshot no longer counts against its disk's incremental snapshot limits. A snapshot under an
    unexpired immutability policy (either type) is refused (409 OperationNotAllowed: emulator/README.md says why
    that code); without a clock (a group's delete) a policy not yet seen expired counts as holding."""
    policy = snapshot.internal.get("immutability")
    holds = (active_immutability(snapshot, now) is not None if now is not None
             else policy is not None and not policy.get("expired"))
    if holds:
        raise OperationNotAllowed(f"Operation 'Delete' is not allowed on snapshot '{snapshot.name}' since it has an "
                                  f"active {policy['type']} immutability policy until "
                                  f"{iso(immutability_expiry(policy))}.")

    def done() -> None:
        if store.delete(snapshot.id) is not None:
            uncount_snapshot(store, snapshot)

    return Deletion(snapshot.location or "", done)


def begin_delete_with_children(store: Store, resource: Resource) -> Deletion:
    """A restore point collection with its restore points, or a restore point with its disk restore points."""
    def done() -> None:
        for child in store.children(resource.id):
            store.delete(child.id)
        store.delete(resource.id)

    return Deletion(resource.location or "", done)
