"""What a restore will do, decided before anything is written: the steps, in order, and every
resource they create, each with a name derived from the restore id (a step that runs again PUTs the
same names and creates nothing twice). Pure: the facts it checks against are read beforehand
(shared/restore/service.py), and a dry run answers with this plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..instants import format_instant
from ..names import _name_part
from . import catalogue, lease
from .catalogue import RecoveryPoint
from .request import FieldProblem, RestoreRequest

# Steps, by what they do (shared/restore/steps.py runs them; each one is idempotent).
DISKS = "create_disks"  # managed disks from snapshots or disk restore points, all at once
NIC = "create_nic"
VM = "create_vm"  # OS disk Attach, data disks Attach, the NIC
DEALLOCATE = "deallocate_vm"
SWAP = "swap_os_disk"  # PATCH storageProfile.osDisk.managedDisk.id
TAG_OLD = "tag_old_os_disk"  # before the swap: whatever happens next, the old disk is never an untagged orphan
START = "start_vm"  # only if it was running
PUT_BACK = "put_back_os_disk"  # undo of a failed swap: the old OS disk attached again
TRIGGER = "trigger_vault_restore"
FOLLOW = "follow_backup_job"
RECOVERY_TYPES = {"disks": "RestoreDisks", "vm": "AlternateLocation", "original_location": "OriginalLocation"}


def undo_steps(target_type: str, failed_step: str | None, context: dict[str, Any]) -> tuple[str, ...]:
    """What a failed restore runs before it ends failed. An os_disk restore that may have changed the VM (it noted
    the VM's power state before deallocating it) puts the old OS disk back and starts the VM again if it was
    running. Nothing once the swap is done: a start that fails leaves the VM on its restored disk, as asked."""
    if target_type == "os_disk" and "was_running" in context and failed_step in (DEALLOCATE, TAG_OLD, SWAP):
        return (PUT_BACK, START)
    return ()


class Conflict(Exception):
    """The request is well formed but the world disagrees (HTTP 409)."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}")
        self.field, self.detail = field, detail


@dataclass(frozen=True)
class Facts:
    """What a plan is checked against, as read from Azure when the request came."""

    groups: dict[str, bool] = field(default_factory=dict)  # resource group id (lower) -> exists
    subnet_region: str | None = None  # None: the subnet was not found
    vm_name_taken: bool = False
    source_vm_size: str | None = None  # the source VM's size now, if it still exists
    target_vm: dict[str, Any] | None = None  # os_disk: {"id", "region", "os_disk_id", "os_disk_size", "power"};
    # files: {"id", "region", "size", "luns_used", "max_data_disks"} (a vault point's: {"id", "region", "os_type"})
    # vm into a scale set: {"id", "region", "orchestration_mode", "fault_domain_count"}; None: not found
    scale_set: dict[str, Any] | None = None
    vault_problems: tuple[FieldProblem, ...] = ()  # Azure Backup's ValidateOperation, as field problems


@dataclass(frozen=True)
class Plan:
    restore_id: str
    source_kind: str
    target_type: str
    region: str
    steps: tuple[str, ...]
    disks: tuple[dict[str, Any], ...] = ()  # {"name", "id", "lun", "source_id", "create_option", "size_gb", "os_type", "sku"}
    nic: dict[str, Any] | None = None  # {"name", "id", "subnet_id"}
    # {"name", "id", "size"} (created; joining a Flexible scale set: "scale_set" its id, "platform_fault_domain"
    # if asked), or the VM whose OS disk is swapped
    vm: dict[str, Any] | None = None
    vault: dict[str, Any] | None = None  # the Azure Backup restore request, in our words
    lease: dict[str, Any] | None = None  # files, export: {"hours", "expires_at", "end_steps"} (shared/restore/lease.py)

    @property
    def end_steps(self) -> tuple[str, ...]:
        return tuple((self.lease or {}).get("end_steps") or ())

    def carries(self) -> list[dict[str, Any]]:
        """What each disk made carries: the LUN it is attached at on the operator's VM (files), the source disk's
        name and LUN (None: the OS disk)."""
        return [{"lun": d.get("attach_lun"), "disk": d["name"], "disk_id": d["id"], "source_disk": d.get("source_name"),
                 "source_lun": d["lun"]} for d in self.disks]

    def creates(self) -> list[dict[str, str]]:
        """What the restore adds to Azure, by type and id (a vault restore: what Backup will make)."""
        out = [{"type": "Microsoft.Compute/disks", "id": d["id"]} for d in self.disks]
        if self.nic:
            out.append({"type": "Microsoft.Network/networkInterfaces", "id": self.nic["id"]})
        if self.vm and self.target_type == "vm":
            out.append({"type": "Microsoft.Compute/virtualMachines", "id": self.vm["id"]})
        return out

    def writes(self) -> list[tuple[str, str]]:
        """Every resource id the restore writes to, by the request field it comes from: what the allow-list
        must admit. An os_disk target writes to its VM and tags the VM's old OS disk, which may live in
        another resource group than the VM."""
        field = "target.vm" if self.target_type in ("os_disk", "files") else "target.resource_group"
        out = [(field, c["id"]) for c in self.creates()]
        if self.target_type == "vm" and self.vm and self.vm.get("scale_set"):
            out.append(("target.virtual_machine_scale_set", self.vm["scale_set"]))  # the VM joins it
        if self.target_type == "files" and self.vm:
            out.append((field, self.vm["id"]))
        if self.target_type == "os_disk" and self.vm:
            out.append((field, self.vm["id"]))
            if self.vm.get("old_os_disk_id"):
                out.append((field, self.vm["old_os_disk_id"]))
        return out

    def to_json(self) -> dict[str, Any]:
        out = {"restore_id": self.restore_id, "source_kind": self.source_kind, "target_type": self.target_type,
               "region": self.region, "steps": list(self.steps), "disks": [dict(d) for d in self.disks],
               "nic": self.nic, "vm": self.vm, "vault": self.vault, "creates": self.creates()}
        if self.lease is not None:
            out["lease"] = dict(self.lease)
            out["carries"] = self.carries()
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Plan:
        return cls(doc["restore_id"], doc["source_kind"], doc["target_type"], doc["region"], tuple(doc["steps"]),
                   tuple(doc.get("disks") or ()), doc.get("nic"), doc.get("vm"), doc.get("vault"), doc.get("lease"))


def _rid(group_id: str, namespace: str, kind: str, name: str) -> str:
    return f"{group_id}/providers/{namespace}/{kind}/{name}"


def disk_name(base: str, lun: int | None, restore_id: str) -> str:
    """``{base}-{os|lunN}-r{id}``: at most 80 characters, a valid disk name, the whole restore id in it (two
    restores never share a name)."""
    return f"{_name_part(base, 55)}-{'os' if lun is None else f'lun{lun}'}-r{restore_id}"


def scale_set_problems(target: dict[str, Any], found: dict[str, Any] | None, region: str) -> list[FieldProblem]:
    """A new VM joins a scale set only as Azure allows (REST reference, VirtualMachineProperties
    ``virtualMachineScaleSet`` and ``platformFaultDomain``): the set exists, is Flexible (a Uniform set's instances
    come from its model only) and in the point's region; a fault domain may be named only when the set has more than
    one, and must be one of them."""
    field, ref = "target.virtual_machine_scale_set", target["virtual_machine_scale_set"]
    if found is None:
        return [FieldProblem(field, f"scale set '{ref.id}' was not found")]
    out = []
    if found["orchestration_mode"] != "Flexible":
        out.append(FieldProblem(field, f"scale set '{ref.name}' has orchestration mode {found['orchestration_mode']}: "
                                       "a VM can join only a Flexible scale set"))
    if found["region"] != region:
        out.append(FieldProblem(field, f"the scale set is in {found['region']}, the recovery point in {region}"))
    fd, count = target.get("platform_fault_domain"), int(found.get("fault_domain_count") or 1)
    if fd is not None and count <= 1:
        out.append(FieldProblem("target.platform_fault_domain", f"scale set '{ref.name}' has one fault domain "
                                "(platformFaultDomainCount 1: the platform spreads its VMs): name none"))
    elif fd is not None and fd >= count:
        out.append(FieldProblem("target.platform_fault_domain", f"scale set '{ref.name}' has {count} fault domains: "
                                f"0 to {count - 1}"))
    return out


def make(restore_id: str, request: RestoreRequest, point: RecoveryPoint, facts: Facts,
         now: datetime | None = None) -> Plan:
    """The plan, or BadRequest / Conflict naming the field the world disagrees with. ``now``: when it is accepted
    (a leased restore's expiry counts from it)."""
    from .request import BadRequest

    problems: list[FieldProblem] = []
    t = request.target
    if not point.complete:
        raise Conflict("recovery_point", f"not complete ({point.note or 'still being made'}): nothing restores from it")
    if request.target_type in ("files", "export") and point.kind != catalogue.VAULT:
        return _leased(restore_id, request, point, facts, now or datetime.now(UTC))
    if request.target_type == "files" and point.kind == catalogue.VAULT:
        return _item_level(restore_id, request, point, facts, now or datetime.now(UTC))
    for name in ("resource_group",):
        if name in t and not facts.groups.get(t[name].id.lower(), False):
            problems.append(FieldProblem(f"target.{name}", f"resource group '{t[name].id}' was not found"))
    if request.target_type == "vm":
        if facts.subnet_region is None:
            problems.append(FieldProblem("target.subnet", f"subnet '{t['subnet'].id}' was not found"))
        elif facts.subnet_region != point.region:
            problems.append(FieldProblem("target.subnet", f"the virtual network is in {facts.subnet_region}, the "
                                                          f"recovery point in {point.region}"))
        if facts.vm_name_taken:
            raise Conflict("target.vm_name", f"a VM '{t['vm_name']}' already exists in {t['resource_group'].id}")
        if "virtual_machine_scale_set" in t:
            problems.extend(scale_set_problems(t, facts.scale_set, point.region))
    if point.kind == catalogue.VAULT:
        problems.extend(p for p in facts.vault_problems if p not in problems)
        if problems:
            raise BadRequest(problems)
        vault = {"vault_id": point.extra.get("vault_id"), "point_id": point.resource_id,
                 "recovery_type": RECOVERY_TYPES[request.target_type], "region": point.region,
                 "source_vm_id": request.vm.id, "staging_storage_account": t["staging_storage_account"].id,
                 "resource_group": t["resource_group"].id if "resource_group" in t else None,
                 "vm_name": t.get("vm_name"), "subnet_id": t["subnet"].id if "subnet" in t else None}
        vm = None
        if request.target_type == "vm":
            vm = {"name": t["vm_name"], "id": _rid(t["resource_group"].id, "Microsoft.Compute", "virtualMachines",
                                                   t["vm_name"]), "size": point.vm_size}
        return Plan(restore_id, point.kind, request.target_type, point.region, (TRIGGER, FOLLOW), vm=vm, vault=vault)

    option = "Copy" if point.kind == catalogue.SNAPSHOT_SET else "Restore"
    sources = list(point.disks)
    if request.target_type in ("vm", "os_disk") and point.os_disk is None:
        problems.append(FieldProblem("recovery_point", "has no OS disk: a VM needs one (take sets with include_os_disk)"))
    if request.target_type == "os_disk":
        sources = [d for d in sources if d.lun is None]
        vm_facts = facts.target_vm
        if vm_facts is None:
            problems.append(FieldProblem("target.vm", f"VM '{t['vm'].id}' was not found"))
        else:
            if vm_facts["region"] != point.region:
                problems.append(FieldProblem("target.vm", f"the VM is in {vm_facts['region']}, the recovery point in "
                                                          f"{point.region}: a disk is restored in the point's region"))
            os_disk = point.os_disk
            if os_disk is not None and os_disk.size_gb and vm_facts.get("os_disk_size") and \
                    int(os_disk.size_gb) != int(vm_facts["os_disk_size"]):
                problems.append(FieldProblem("target.vm", f"its OS disk is {vm_facts['os_disk_size']} GB, the "
                                                          f"recovery point's {os_disk.size_gb} GB: a swap needs the same size"))
    size = None
    if request.target_type == "vm":
        size = t.get("vm_size") or point.vm_size or facts.source_vm_size
        if not size:
            problems.append(FieldProblem("target.vm_size", "required: the source VM's size is not known any more"))
    if problems:
        raise BadRequest(problems)

    if request.target_type == "os_disk":
        group_id, base = t["vm"].group_id, t["vm"].name
    elif request.target_type == "vm":
        group_id, base = t["resource_group"].id, t["vm_name"]
    else:
        group_id, base = t["resource_group"].id, request.vm.name
    disks = tuple({"name": (n := disk_name(base, d.lun, restore_id)), "id": _rid(group_id, "Microsoft.Compute", "disks", n),
                   "lun": d.lun, "source_id": d.source_id, "create_option": option, "size_gb": d.size_gb,
                   "os_type": d.os_type, "sku": d.sku} for d in sources)
    if request.target_type == "disks":
        return Plan(restore_id, point.kind, "disks", point.region, (DISKS,), disks)
    if request.target_type == "vm":
        nic_name = f"{_name_part(base, 55)}-nic-r{restore_id}"
        nic = {"name": nic_name, "id": _rid(group_id, "Microsoft.Network", "networkInterfaces", nic_name),
               "subnet_id": t["subnet"].id}
        vm = {"name": base, "id": _rid(group_id, "Microsoft.Compute", "virtualMachines", base), "size": size}
        if "virtual_machine_scale_set" in t:
            vm["scale_set"] = t["virtual_machine_scale_set"].id
            if "platform_fault_domain" in t:
                vm["platform_fault_domain"] = t["platform_fault_domain"]
        return Plan(restore_id, point.kind, "vm", point.region, (DISKS, NIC, VM), disks, nic, vm)
    vm = {"name": base, "id": t["vm"].id, "old_os_disk_id": (facts.target_vm or {}).get("os_disk_id")}
    return Plan(restore_id, point.kind, "os_disk", point.region, (DISKS, DEALLOCATE, TAG_OLD, SWAP, START), disks, vm=vm)


def _leased(restore_id: str, request: RestoreRequest, point: RecoveryPoint, facts: Facts, now: datetime) -> Plan:
    """A file recovery (disks attached to the operator's VM) or an export (one disk, its SAS taken once), for a while:
    the disks asked for, made in the VM's group (files) or ``resource_group`` (export), each tagged with the
    restore and its expiry; on a VM in the point's region with free LUNs for them all."""
    from .request import BadRequest

    t = request.target
    kind = lease.kind_of("disk", request.target_type)
    assert kind is not None
    by_lun = {d.lun: d for d in point.disks}
    data_luns = sorted(lun for lun in by_lun if lun is not None)
    problems: list[FieldProblem] = []
    if request.target_type == "files":
        wanted = data_luns if t.get("luns", "all") is None else list(t.get("luns") or [])
        field_name = "target.luns"
    else:
        wanted = [] if t.get("os_disk") else [t["lun"]]
        field_name = "target.lun"
    missing = [lun for lun in wanted if lun not in by_lun]
    if missing:
        problems.append(FieldProblem(field_name, f"LUN {', '.join(map(str, missing))} is not in the recovery point "
                                                 f"(its data disks: {', '.join(map(str, data_luns)) or 'none'})"))
    sources = [by_lun[lun] for lun in wanted if lun in by_lun]
    if t.get("os_disk"):
        if point.os_disk is None:
            problems.append(FieldProblem("target.os_disk", "the recovery point has no OS disk"))
        else:
            sources.append(point.os_disk)
    if not sources and not problems:
        problems.append(FieldProblem(field_name, "nothing to recover: the point has no data disk (ask for os_disk)"))
    attach_luns: list[int] = []
    vm = None
    if request.target_type == "files":
        vm_facts = facts.target_vm
        if vm_facts is None:
            problems.append(FieldProblem("target.vm", f"VM '{t['vm'].id}' was not found"))
        elif vm_facts["region"] != point.region:
            problems.append(FieldProblem("target.vm", f"the VM is in {vm_facts['region']}, the recovery point in "
                                                      f"{point.region}: its disks are made, and attached, in the point's region"))
        if problems:
            raise BadRequest(problems)
        assert vm_facts is not None
        free = lease.free_luns(list(vm_facts["luns_used"]), int(vm_facts["max_data_disks"]), len(sources))
        if free is None:
            raise Conflict("target.vm", f"the VM ({vm_facts['size']}) takes {vm_facts['max_data_disks']} data disks and "
                                        f"has {len(vm_facts['luns_used'])}: no free LUN for {len(sources)} more")
        attach_luns = free
        group_id = t["vm"].group_id
        vm = {"id": t["vm"].id, "name": t["vm"].name, "size": vm_facts["size"]}
    else:
        if not facts.groups.get(t["resource_group"].id.lower(), False):
            problems.append(FieldProblem("target.resource_group", f"resource group '{t['resource_group'].id}' was not found"))
        if problems:
            raise BadRequest(problems)
        group_id = t["resource_group"].id
    hours = float(t.get("duration_hours") or kind.default_hours)
    option = "Copy" if point.kind == catalogue.SNAPSHOT_SET else "Restore"
    disks = []
    for i, d in enumerate(sources):
        name = disk_name(request.vm.name, d.lun, restore_id)
        disks.append({"name": name, "id": _rid(group_id, "Microsoft.Compute", "disks", name), "lun": d.lun,
                      "source_id": d.source_id, "source_name": d.name, "create_option": option, "size_gb": d.size_gb,
                      "os_type": None, "sku": d.sku, "attach_lun": attach_luns[i] if attach_luns else None})
    expires = lease.expires_at(now, hours)
    return Plan(restore_id, point.kind, request.target_type, point.region, kind.make_steps, tuple(disks), vm=vm,
                lease={"hours": hours, "expires_at": format_instant(expires), "end_steps": list(kind.end_steps)})


def script_link(restore_id: str) -> str:
    """Where a Restore.Operator takes a vault file recovery's mount script (fetched from Azure each time)."""
    return f"/api/restores/{restore_id}/script"


def _item_level(restore_id: str, request: RestoreRequest, point: RecoveryPoint, facts: Facts, now: datetime) -> Plan:
    """A vault point's files: Azure Backup's item-level recovery session on the point for a while (its mount script
    taken at ``script_link``), revoked at the end if this restore opened it. The VM the operator runs the script on,
    when named, must exist and run the point's OS (Learn: a Linux point's script needs a Linux machine, a Windows
    point's a Windows one); Azure is not told of it (its call takes the backed-up VM)."""
    from .request import BadRequest

    t = request.target
    kind = lease.kind_of("vault", "files")
    assert kind is not None
    os_type = point.os_disk.os_type if point.os_disk is not None else None
    vm = None
    if "vm" in t:
        found = facts.target_vm
        if found is None:
            raise BadRequest([FieldProblem("target.vm", f"VM '{t['vm'].id}' was not found")])
        if os_type and found.get("os_type") and found["os_type"].lower() != os_type.lower():
            raise BadRequest([FieldProblem("target.vm", f"the VM runs {found['os_type']}, the recovery point is of a "
                                                        f"{os_type} VM: its mount script runs on {os_type} only")])
        vm = {"id": t["vm"].id, "name": t["vm"].name, "os_type": found.get("os_type")}
    hours = float(t.get("duration_hours") or kind.default_hours)
    vault = {"vault_id": point.extra.get("vault_id"), "point_id": point.resource_id, "recovery_type": "ItemLevelRecovery",
             "region": point.region, "source_vm_id": request.vm.id, "os_type": os_type}
    return Plan(restore_id, point.kind, "files", point.region, kind.make_steps, vm=vm, vault=vault,
                lease={"hours": hours, "expires_at": format_instant(lease.expires_at(now, hours)),
                       "end_steps": list(kind.end_steps), "script": script_link(restore_id)})
