"""The reads that build the inventory of recovery points (shared/points/model.py), in few calls. Reads only.

- One VM's (the restore catalogue, drills): its snapshots and its restore point collections by its
  ``vmkeeper-vm`` tag (one Resource Graph query each), each collection's points (one GET; a copy's
  points one GET each, with their replication), and its item's recovery points in each vault.
- The fleet's (compliance): the VMs and vmkeeper's snapshots in one Resource Graph query each (paged),
  its restore point collections (one GET each, with their points; a copy's points' replication only for
  the newest until one is complete), and each vault's protected items (one paged list per vault: an
  item's ``lastRecoveryPoint`` is all compliance needs of it); and each vault's Site Recovery replicated
  items (one paged list per vault: health, RPO and initial replication are on the item;
  shared/points/replicas.py), kept beside the points, by the VM they replicate.

Only what vmkeeper named is in it (shared/points/owned.py): a snapshot with vmkeeper's tags copied onto it
by hand, or a restore point made by hand in vmkeeper's collection, is left out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from .. import resource_ids
from .. import tags as T
from ..azure.graph import query_all
from ..instants import parse_instant
from ..membership import split, test_failover_vms
from ..names import container_name, item_name
from ..ports import Arm
from . import model
from . import owned as O
from .model import FleetPoints, RecoveryPoint
from .replicas import replicated_item

log = logging.getLogger("vmkeeper.points")
_SNAPSHOT_COLUMNS = ("| project id, name, location, tags, state = tostring(properties.provisioningState), "
                     "completion = properties.completionPercent, size = properties.diskSizeGB, "
                     "osType = tostring(properties.osType), source = tostring(properties.creationData.sourceResourceId), "
                     "option = tostring(properties.creationData.createOption), "
                     "immutableType = tostring(properties.immutabilityPolicy.type), "
                     "immutableUntil = tostring(properties.immutabilityPolicy.policyExpirationTime)")
# One VM's: the VM id is checked before it gets here (``Inventory.of_vm``): no quote can reach the query.
VM_SNAPSHOTS = ("Resources | where type =~ 'microsoft.compute/snapshots' and tags['" + T.VM + "'] =~ '{vm}' "
                + _SNAPSHOT_COLUMNS)
VM_COLLECTIONS = ("Resources | where type =~ 'microsoft.compute/restorepointcollections' and tags['" + T.VM
                  + "'] =~ '{vm}' | project id, name, location, resourceGroup, subscriptionId")
# The fleet's.
VMS = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
       "| project id, name, subscriptionId, resourceGroup, location, tags, vmId = tostring(properties.vmId), "
       "osDisk = tostring(properties.storageProfile.osDisk.managedDisk.id)")  # osDisk: which instance a replica is of
SNAPSHOTS = ("Resources | where type =~ 'microsoft.compute/snapshots' and tags['" + T.MANAGED_BY + "'] =~ '"
             + T.MANAGED_BY_VALUE + "' and isnotempty(tags['" + T.VM + "']) " + _SNAPSHOT_COLUMNS)
COLLECTIONS = ("Resources | where type =~ 'microsoft.compute/restorepointcollections' and tags['" + T.MANAGED_BY
               + "'] =~ '" + T.MANAGED_BY_VALUE + "' and isnotempty(tags['" + T.VM + "']) "
               "| project id, name, location, resourceGroup, subscriptionId, tags")
VAULT_ITEMS = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"
# Uniform scale sets' instances: Resource Graph keeps them in ComputeResources, not Resources; no kind of point
# covers them (Azure Backup and VM restore points take no Uniform instance), so compliance says so of each. Their
# sets' tags are read too: an operator opts a set out on the set.
UNIFORM_INSTANCES = ("ComputeResources | where type =~ 'microsoft.compute/virtualmachinescalesets/virtualmachines' "
                     "| project id, name, subscriptionId, resourceGroup, location, tags")
SCALE_SETS = ("Resources | where type =~ 'microsoft.compute/virtualmachinescalesets' "
              "| project id, tags, orchestrationMode = tostring(properties.orchestrationMode)")


def _missing(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


def _tag_value(tags: Mapping[str, Any] | None, name: str) -> Any:
    return next((v for k, v in (tags or {}).items() if str(k).lower() == name), None)


def _snapshot_row(body: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot's REST body as a row of the Resource Graph queries above (its immutabilityPolicy included)."""
    props = body.get("properties") or {}
    creation = props.get("creationData") or {}
    policy = props.get("immutabilityPolicy") or {}
    return {"id": body.get("id"), "name": body.get("name"), "location": body.get("location"), "tags": body.get("tags") or {},
            "state": props.get("provisioningState"), "completion": props.get("completionPercent"),
            "size": props.get("diskSizeGB"), "osType": props.get("osType"), "source": creation.get("sourceResourceId"),
            "option": creation.get("createOption"), "immutableType": policy.get("type"),
            "immutableUntil": policy.get("policyExpirationTime")}


def _owned_rows(rows: Any) -> list[Mapping[str, Any]]:
    """The snapshot rows vmkeeper named (tags copied onto a snapshot by hand make it no member of a set)."""
    rows = list(rows)
    owned = O.owned_snapshots(rows)
    return [r for r in rows if str(r.get("id", "")).lower() in owned]


def _owned_points(body: Mapping[str, Any], vm_id: str) -> list[Mapping[str, Any]]:
    """A collection's restore points vmkeeper named (one made by hand in its collection is not vmkeeper's)."""
    return [p for p in (body.get("properties") or {}).get("restorePoints") or []
            if O.restore_point_is_vmkeepers(str(p.get("name") or ""), vm_id)]


class Inventory:
    """The recovery points Azure holds, read on the ports shared/wiring.py gives (``vaults``: region -> vault id;
    ``isolated``: the backup subscription and group of isolated copies, docs/isolated-copies.md, or None)."""

    def __init__(self, arm: Arm, vaults: Mapping[str, str], isolated: tuple[str, str] | None = None):
        self.arm = arm
        self.vaults = dict(vaults)
        self.isolated = isolated

    # --- one VM -----------------------------------------------------------------------------------
    def of_vm(self, vm_id: str) -> list[RecoveryPoint]:
        """Every point of one VM (it may no longer exist), newest first."""
        ref = resource_ids.vm(vm_id)
        if ref is None or "'" in vm_id or "\\" in vm_id:
            raise ValueError(f"not a virtual machine's id: {vm_id!r}")
        key = vm_id.lower()
        graph = self.arm.resource_graph()
        sets = model.snapshot_sets(_owned_rows(query_all(graph, [ref.subscription_id], VM_SNAPSHOTS.format(vm=key))))
        collections = []
        for row in query_all(graph, [ref.subscription_id], VM_COLLECTIONS.format(vm=key)):
            compute = self.arm.compute(row["subscriptionId"])
            try:
                rpc = compute.restore_point_collections.get(row["resourceGroup"], row["name"], expand="restorePoints")
            except Exception as exc:
                if _missing(exc):
                    continue
                raise
            body = rpc.as_dict()
            points = _owned_points(body, key)
            if "/restorepointcollections/" in str(((body.get("properties") or {}).get("source") or {}).get("id", "")).lower():
                # A copy: its points' replication shows only with the instance view.
                points = [compute.restore_points.get(row["resourceGroup"], row["name"], p["name"],
                                                     expand="instanceView").as_dict() for p in points]
            collections.append((body, points))
        return model.merge(sets, model.restore_points(collections), self.vault_points(vm_id),
                           self.isolated_points(vm_id))

    def isolated_fleet(self) -> dict[str, list[RecoveryPoint]]:
        """Every VM's isolated copies, by VM id (lower case): one paged list of the backup group."""
        sub, group = self.isolated
        by_vm: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in self.arm.compute(sub).snapshots.list_by_resource_group(group):
            row = _snapshot_row(s.as_dict())
            if T.is_managed(row["tags"]) and (vm := str(_tag_value(row["tags"], T.VM) or "").lower()):
                by_vm[vm].append(row)
        where = f"/subscriptions/{sub}/resourceGroups/{group}"
        return {vm: model.isolated_sets(_owned_rows(rows), where) for vm, rows in by_vm.items()}

    def isolated_points(self, vm_id: str) -> list[RecoveryPoint]:
        """One VM's isolated copies: one paged list of the backup group (Snapshots - List By Resource Group, with
        the app's own identity: infra grants it read there and nothing more, infra/vmkeeper-isolated-reader-role.json;
        a paged list, as the second identity's retention reads them). Not readable: none offered, said in
        the log, and the VM's other points still are (a restore from production must not wait on the backup side)."""
        if self.isolated is None:
            return []
        sub, group = self.isolated
        key = vm_id.lower()
        try:
            listed = [s.as_dict() for s in self.arm.compute(sub).snapshots.list_by_resource_group(group)]
        except Exception as exc:  # noqa: BLE001
            if not _missing(exc):
                log.warning("isolated copies of %s in %s/%s could not be read: %s", vm_id, sub, group, exc)
            return []
        rows = [_snapshot_row(b) for b in listed if str(_tag_value(b.get("tags"), T.VM) or "").lower() == key]
        return model.isolated_sets(_owned_rows(rows), f"/subscriptions/{sub}/resourceGroups/{group}")

    def vault_points(self, vm_id: str) -> list[RecoveryPoint]:
        """One VM's item's recovery points in each vault (an item of another VM by that name: none)."""
        from azure.mgmt.core.tools import parse_resource_id

        ref = resource_ids.vm(vm_id)
        if ref is None:
            raise ValueError(f"not a virtual machine's id: {vm_id!r}")
        container, item = container_name(ref.resource_group, ref.name), item_name(ref.resource_group, ref.name)
        out: list[RecoveryPoint] = []
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
            if source and source != vm_id.lower():
                continue
            points = [rp.as_dict() for rp in backup.recovery_points.list(p["name"], p["resource_group"], "Azure",
                                                                           container, item)]
            out.extend(model.vault_points(vault_id, region, points))
        return out

    # --- the fleet ----------------------------------------------------------------------------------
    def fleet(self, subscriptions: list[str], progress: Callable[[str], None] = lambda step: None) -> FleetPoints:
        """Every VM, and every VM's newest points of each kind (older ones where they are no more calls)."""
        arm, graph = self.arm, self.arm.resource_graph()
        out = FleetPoints()
        progress("virtual machines")
        vms = list(query_all(graph, subscriptions, VMS))  # members only: split once the replicated items are read
        out.unsupported = uniform_instances(graph, subscriptions)
        progress("snapshots")
        by_vm: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for row in _owned_rows(query_all(graph, subscriptions, SNAPSHOTS)):
            by_vm[str((row.get("tags") or {}).get(T.VM, "")).lower()].append(row)
        for vm, rows in by_vm.items():
            out.points[vm].extend(model.snapshot_sets(rows))
        if self.isolated is not None:
            progress("isolated copies")
            try:
                for vm, points in self.isolated_fleet().items():
                    out.points[vm].extend(points)
            except Exception as exc:  # noqa: BLE001 (said in the report; the isolated copies read as absent)
                out.problems.append(f"isolated copies in {'/'.join(self.isolated)}: {type(exc).__name__}: {exc}"[:500])
        progress("restore points")
        for row in query_all(graph, subscriptions, COLLECTIONS):
            vm = str((row.get("tags") or {}).get(T.VM, "")).lower()
            try:
                out.points[vm].extend(_collection_points(arm, row))
            except Exception as exc:  # noqa: BLE001 (one collection unread is said, not fatal)
                if not _missing(exc):
                    out.problems.append(f"restore point collection {row['id']}: {type(exc).__name__}: {exc}"[:500])
        progress("vault recovery points")
        for region, vault_id in sorted(self.vaults.items()):
            try:
                for vm, point in _vault_items(arm, region, vault_id):
                    out.points[vm].append(point)
            except Exception as exc:  # noqa: BLE001
                out.problems.append(f"vault {vault_id}: {type(exc).__name__}: {exc}"[:500])
        progress("replicated items")
        bodies: list[Mapping[str, Any]] = []
        for vault_id in sorted({v.lower(): v for v in self.vaults.values()}.values()):  # a vault named twice: once
            try:
                listed = _replicated_items(arm, vault_id)
            except Exception as exc:  # noqa: BLE001 (said in the report; the replicas of that vault read as absent)
                out.problems.append(f"replicated items of vault {vault_id}: {type(exc).__name__}: {exc}"[:500])
                continue
            for body in listed:
                bodies.append(body)
                if (item := replicated_item(body, vault_id)) is not None:  # judged on the VM it is about now
                    out.replicas[item.active_vm].append(item)
                    if item.standby_vm:
                        out.standby[item.standby_vm].append(item)
        # What restores, drills and test failovers made is no fleet VM: left out, each said with why.
        out.vms, out.excluded = split(vms, test_failover_vms(bodies))
        return out


def uniform_instances(graph: Any, subscriptions: list[str]) -> list[dict[str, Any]]:
    """Each Uniform scale set instance as a row like a VM's, its tags its set's with its own over them, and
    ``scaleSet`` its set's id (two queries for the fleet)."""
    instances = list(query_all(graph, subscriptions, UNIFORM_INSTANCES))
    if not instances:
        return []
    sets = {str(r["id"]).lower(): r for r in query_all(graph, subscriptions, SCALE_SETS)}
    out = []
    for row in instances:
        set_id = str(row["id"]).rsplit("/virtualMachines/", 1)[0]
        found = sets.get(set_id.lower()) or {}
        tags = {**(found.get("tags") or {}), **(row.get("tags") or {})}
        out.append({**row, "tags": tags, "scaleSet": found.get("id") or set_id,
                    "orchestrationMode": found.get("orchestrationMode") or "Uniform"})
    return out


def _collection_points(arm: Arm, row: Mapping[str, Any]) -> list[RecoveryPoint]:
    compute = arm.compute(row["subscriptionId"])
    body = compute.restore_point_collections.get(row["resourceGroup"], row["name"], expand="restorePoints").as_dict()
    points = _owned_points(body, str((row.get("tags") or {}).get(T.VM, "")))
    source = str(((body.get("properties") or {}).get("source") or {}).get("id") or "")
    if "/restorepointcollections/" not in source.lower():
        return model.restore_points([(body, points)])
    # A copy: only the instance view tells its replication; look newest first, stop at the first complete one.
    points = sorted(points, key=lambda p: str((p.get("properties") or {}).get("timeCreated") or ""), reverse=True)
    out: list[RecoveryPoint] = []
    for p in points:
        full = compute.restore_points.get(row["resourceGroup"], row["name"], p["name"], expand="instanceView").as_dict()
        out.extend(model.restore_points([(body, [full])]))
        if out and out[-1].complete:
            break
    return out


def _vault_items(arm: Arm, region: str, vault_id: str) -> list[tuple[str, RecoveryPoint]]:
    """Each protected item's newest recovery point, by its VM: one paged list per vault."""
    from azure.mgmt.core.tools import parse_resource_id

    p = parse_resource_id(vault_id)
    items = arm.backup(p["subscription"]).backup_protected_items.list(p["name"], p["resource_group"],
                                                                      filter=VAULT_ITEMS)
    out = []
    for item in items:
        props = item.properties
        vm = str(getattr(props, "source_resource_id", "") or getattr(props, "virtual_machine_id", "") or "").lower()
        last = getattr(props, "last_recovery_point", None)
        # The SDK gives a datetime; Backup writes UTC, so one without an offset is read as UTC.
        when = last.replace(tzinfo=last.tzinfo or UTC) if isinstance(last, datetime) else parse_instant(last)
        if not vm or when is None:
            continue
        out.append((vm, RecoveryPoint("", model.VAULT, when, region, "", True, extra={"vault_id": vault_id})))
    return out


def _replicated_items(arm: Arm, vault_id: str) -> list[dict[str, Any]]:
    """Every replicated item in a vault, in ARM's REST shape: one paged list (health and RPO are on each item, and
    the test failover VM it names)."""
    from azure.mgmt.core.tools import parse_resource_id

    p = parse_resource_id(vault_id)
    items = arm.site_recovery(p["subscription"]).replication_protected_items.list(p["resource_group"], p["name"])
    return [i.as_dict() for i in items]
