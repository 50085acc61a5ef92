"""What restores read from Azure: a VM's recovery points (the inventory's: shared/points/inventory.py)
and the facts a plan is checked against. Reads only; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..access import ParsedId, parse_id
from ..points.inventory import Inventory
from ..ports import Arm
from . import catalogue, plan
from .catalogue import RecoveryPoint
from .request import FieldProblem, RestoreRequest


def _missing(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


class Reader:
    def __init__(self, arm: Arm, vaults: Mapping[str, str], isolated: tuple[str, str] | None = None):
        self.arm = arm
        self.vaults = dict(vaults)
        self.isolated = isolated  # the backup subscription and group of isolated copies (docs/isolated-copies.md)

    def source_vm(self, vm: ParsedId) -> Any | None:
        try:
            return self.arm.compute(vm.subscription).virtual_machines.get(vm.group, vm.name)
        except Exception as exc:
            if _missing(exc):
                return None
            raise

    def scale_set(self, ref: ParsedId) -> dict[str, Any] | None:
        """A scale set a restored VM would join, as a plan checks it; None when there is none."""
        try:
            s = self.arm.compute(ref.subscription).virtual_machine_scale_sets.get(ref.group, ref.name)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return {"id": s.id, "region": catalogue.region_of(s.location),
                "orchestration_mode": s.orchestration_mode or "Uniform",
                "fault_domain_count": s.platform_fault_domain_count or 1}

    def catalogue(self, vm: ParsedId) -> list[RecoveryPoint]:
        """The VM's recovery points, as the inventory reads them (the VM may no longer exist), its isolated copies
        included."""
        return Inventory(self.arm, self.vaults, self.isolated).of_vm(vm.id)

    # --- facts a plan is checked against ---------------------------------------------------------
    def facts(self, request: RestoreRequest, point: RecoveryPoint) -> plan.Facts:
        t = request.target
        groups = {}
        if "resource_group" in t:
            g = t["resource_group"]
            try:
                self.arm.resources(g.subscription).resource_groups.get(g.group)
                groups[g.id.lower()] = True
            except Exception as exc:
                if not _missing(exc):
                    raise
                groups[g.id.lower()] = False
        subnet_region = None
        if "subnet" in t:
            s = t["subnet"]
            try:
                vnet = self.arm.network(s.subscription).virtual_networks.get(s.group, s.parts["vnet"])
                if any((sn.name or "").lower() == s.name.lower() for sn in vnet.subnets or []):
                    subnet_region = catalogue.region_of(vnet.location)
            except Exception as exc:
                if not _missing(exc):
                    raise
        taken = False
        if request.target_type == "vm":
            g = t["resource_group"]
            taken = self.source_vm(parse_id(f"{g.id}/providers/Microsoft.Compute/virtualMachines/{t['vm_name']}",
                                            "vm")) is not None
        source = self.source_vm(request.vm) if request.target_type == "vm" else None
        target_vm = None
        if request.target_type == "os_disk":
            vm = self.source_vm(t["vm"])
            if vm is not None:
                disk_id = vm.storage_profile.os_disk.managed_disk.id
                d = parse_id_disk(disk_id)
                size = self.arm.compute(d[0]).disks.get(d[1], d[2]).disk_size_gb if d else None
                target_vm = {"id": vm.id, "region": catalogue.region_of(vm.location), "os_disk_id": disk_id,
                             "os_disk_size": size}
        if request.target_type == "files" and point.kind == catalogue.VAULT:
            target_vm = self.script_target(t["vm"]) if "vm" in t else None
        elif request.target_type == "files":
            target_vm = self.attach_target(t["vm"])
        facts = plan.Facts(groups, subnet_region, taken,
                           source.hardware_profile.vm_size if source is not None and source.hardware_profile else None,
                           target_vm, self.scale_set(t["virtual_machine_scale_set"])
                           if "virtual_machine_scale_set" in t else None)
        if point.kind == catalogue.VAULT and request.dry_run and request.target_type in plan.RECOVERY_TYPES:
            from dataclasses import replace

            facts = replace(facts, vault_problems=tuple(self.validate_vault(request, point, facts)))
        return facts

    def attach_target(self, vm_id: ParsedId) -> dict[str, Any] | None:
        """The VM a file recovery attaches disks to: its region, size, the LUNs it uses and how many data disks its
        size takes (Virtual Machine Sizes - List, the region's maxDataDiskCount); None when it does not exist."""
        vm = self.source_vm(vm_id)
        if vm is None:
            return None
        region = catalogue.region_of(vm.location)
        size = vm.hardware_profile.vm_size if vm.hardware_profile else ""
        most = next((s.max_data_disk_count for s in self.arm.compute(vm_id.subscription).virtual_machine_sizes.list(region)
                     if (s.name or "").lower() == (size or "").lower()), None)
        return {"id": vm.id, "region": region, "size": size, "max_data_disks": most or 0,
                "luns_used": sorted(d.lun for d in vm.storage_profile.data_disks or [])}

    def script_target(self, vm_id: ParsedId) -> dict[str, Any] | None:
        """The VM an operator runs a vault file recovery's mount script on: its region and OS; None when it does not
        exist."""
        vm = self.source_vm(vm_id)
        if vm is None:
            return None
        os_disk = vm.storage_profile.os_disk if vm.storage_profile else None
        os_type = getattr(os_disk, "os_type", None) if os_disk is not None else None
        return {"id": vm.id, "region": catalogue.region_of(vm.location),
                "os_type": str(getattr(os_type, "value", os_type)) if os_type else None}

    def validate_vault(self, request: RestoreRequest, point: RecoveryPoint, facts: plan.Facts) -> list[FieldProblem]:
        """Azure Backup's own check of the restore it would be sent (ValidateOperation), as field problems;
        nothing to ask while our own checks already refuse it."""
        from azure.mgmt.core.tools import parse_resource_id

        from .request import BadRequest

        try:
            draft = plan.make("0" * 16, request, point, facts)
        except (BadRequest, plan.Conflict):
            return []
        body = _vault_body(draft)
        p = parse_resource_id(point.extra["vault_id"])
        result = self.arm.backup(p["subscription"]).operation.validate(
            p["name"], p["resource_group"], {"id": point.resource_id, "properties": {
                "objectType": "ValidateIaasVMRestoreOperationRequest", "restoreRequest": body}})
        out = []
        for r in ((result.as_dict().get("validateOperationResponse") or {}).get("validationResults") or []):
            if r.get("code") or r.get("errorCode"):
                out.append(FieldProblem(_field_of(r), f"{r.get('code') or r.get('errorCode')}: "
                                                      f"{r.get('message') or r.get('errorString') or ''}".strip()))
        return out


def parse_id_disk(disk_id: str | None) -> tuple[str, str, str] | None:
    from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id

    if not disk_id or not is_valid_resource_id(disk_id):
        return None
    p = parse_resource_id(disk_id)
    return p["subscription"], p["resource_group"], p["name"]


def _vault_body(draft: plan.Plan) -> dict[str, Any]:
    from .steps import vault_restore_body

    return vault_restore_body(draft)


def _field_of(result: Mapping[str, Any]) -> str:
    """Which field of ours a Backup validation result is about, by what it names."""
    text = f"{result.get('code', '')} {result.get('message', '')} {result.get('target', '')}".lower()
    for words, field in ((("subnet", "virtualnetwork"), "target.subnet"), (("storageaccount", "storage account"),
                         "target.staging_storage_account"), (("resourcegroup", "resource group"), "target.resource_group"),
                         (("vmname", "virtual machine", "targetvirtualmachine"), "target.vm_name")):
        if any(w in text for w in words):
            return field
    return "recovery_point"
