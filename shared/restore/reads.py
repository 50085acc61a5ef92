"""What restores read from Azure: a VM's recovery points (the catalogue's raw material) and the
facts a plan is checked against. Reads only; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import tags as T
from ..azure.graph import query_all
from ..points import owned as O
from ..ports import Arm
from . import catalogue, plan
from .access import ParsedId, parse_id
from .catalogue import RecoveryPoint
from .request import FieldProblem, RestoreRequest

# The VM id is strictly parsed before it gets here (access.parse_id): no quote can reach the query.
SNAPSHOTS = ("Resources | where type =~ 'microsoft.compute/snapshots' and tags['" + T.VM + "'] =~ '{vm}' "
             "| project id, name, location, tags, state = tostring(properties.provisioningState), "
             "completion = properties.completionPercent, size = properties.diskSizeGB, "
             "osType = tostring(properties.osType), source = tostring(properties.creationData.sourceResourceId), "
             "option = tostring(properties.creationData.createOption)")
COLLECTIONS = ("Resources | where type =~ 'microsoft.compute/restorepointcollections' and tags['" + T.VM + "'] =~ '{vm}' "
               "| project id, name, location, resourceGroup, subscriptionId")


def _item_names(vm: ParsedId) -> tuple[str, str]:
    from ..autoprotect.steps import container_name, item_name

    return container_name(vm.group, vm.name), item_name(vm.group, vm.name)


def _missing(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


class Reader:
    def __init__(self, arm: Arm, vaults: Mapping[str, str]):
        self.arm = arm
        self.vaults = dict(vaults)

    def source_vm(self, vm: ParsedId) -> Any | None:
        try:
            return self.arm.compute(vm.subscription).virtual_machines.get(vm.group, vm.name)
        except Exception as exc:
            if _missing(exc):
                return None
            raise

    def catalogue(self, vm: ParsedId) -> list[RecoveryPoint]:
        key = vm.id.lower()
        graph = self.arm.resource_graph()
        rows = list(query_all(graph, [vm.subscription], SNAPSHOTS.format(vm=key)))
        owned = O.owned_snapshots(rows)  # by their names: tags copied onto a snapshot by hand make it no member
        sets = catalogue.snapshot_sets([r for r in rows if str(r.get("id", "")).lower() in owned])
        collections = []
        for row in query_all(graph, [vm.subscription], COLLECTIONS.format(vm=key)):
            compute = self.arm.compute(row["subscriptionId"])
            try:
                rpc = compute.restore_point_collections.get(row["resourceGroup"], row["name"], expand="restorePoints")
            except Exception as exc:
                if _missing(exc):
                    continue
                raise
            body = rpc.as_dict()
            points = [p for p in (body.get("properties") or {}).get("restorePoints") or []
                      if O.restore_point_is_vmkeepers(str(p.get("name") or ""), key)]  # one made by hand: not ours
            if "/restorepointcollections/" in str(((body.get("properties") or {}).get("source") or {}).get("id", "")).lower():
                # A copy: its points' replication shows only with the instance view.
                points = [compute.restore_points.get(row["resourceGroup"], row["name"], p["name"],
                                                     expand="instanceView").as_dict() for p in points]
            collections.append((body, points))
        return catalogue.merge(sets, catalogue.restore_points(collections), self.vault_points(vm))

    def vault_points(self, vm: ParsedId) -> list[RecoveryPoint]:
        container, item = _item_names(vm)
        out: list[RecoveryPoint] = []
        from azure.mgmt.core.tools import parse_resource_id

        for region, vault_id in sorted(self.vaults.items()):
            p = parse_resource_id(vault_id)
            backup = self.arm.backup(p["subscription"])
            try:
                protected = backup.protected_items.get(p["name"], p["resource_group"], "Azure", container, item)
            except Exception as exc:
                if _missing(exc):
                    continue
                raise
            source = str(getattr(protected.properties, "source_resource_id", "") or "").lower()
            if source and source != vm.id.lower():
                continue
            points = [rp.as_dict() for rp in backup.recovery_points.list(p["name"], p["resource_group"], "Azure",
                                                                           container, item)]
            out.extend(catalogue.vault_points(vault_id, region, points))
        return out

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
        facts = plan.Facts(groups, subnet_region, taken,
                           source.hardware_profile.vm_size if source is not None and source.hardware_profile else None,
                           target_vm)
        if point.kind == catalogue.VAULT and request.dry_run:
            from dataclasses import replace

            facts = replace(facts, vault_problems=tuple(self.validate_vault(request, point, facts)))
        return facts

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
