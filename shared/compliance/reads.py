"""What compliance reads, fleet-wide, in few calls: the VMs and vmkeeper's snapshots in one Resource
Graph query each (paged), its restore point collections (one GET each, with their points; a copy's
points' replication only for the newest until one is complete), and each vault's protected items
(one paged list per vault: an item's ``lastRecoveryPoint`` is all compliance needs of it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .. import tags as T
from ..azure.graph import query_all
from ..instants import parse_instant
from ..points import owned as O
from ..ports import Arm
from ..restore import catalogue
from ..restore.catalogue import RecoveryPoint

VMS = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
       "| project id, name, subscriptionId, resourceGroup, location, tags")
SNAPSHOTS = ("Resources | where type =~ 'microsoft.compute/snapshots' and tags['" + T.MANAGED_BY + "'] =~ '"
             + T.MANAGED_BY_VALUE + "' and isnotempty(tags['" + T.VM + "']) "
             "| project id, name, location, tags, state = tostring(properties.provisioningState), "
             "completion = properties.completionPercent, size = properties.diskSizeGB, "
             "osType = tostring(properties.osType), source = tostring(properties.creationData.sourceResourceId), "
             "option = tostring(properties.creationData.createOption)")
COLLECTIONS = ("Resources | where type =~ 'microsoft.compute/restorepointcollections' and tags['" + T.MANAGED_BY
               + "'] =~ '" + T.MANAGED_BY_VALUE + "' and isnotempty(tags['" + T.VM + "']) "
               "| project id, name, location, resourceGroup, subscriptionId, tags")
VAULT_ITEMS = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"


@dataclass
class FleetPoints:
    vms: list[dict[str, Any]] = field(default_factory=list)  # Resource Graph rows
    points: dict[str, list[RecoveryPoint]] = field(default_factory=lambda: defaultdict(list))  # by VM id, lower case
    problems: list[str] = field(default_factory=list)  # what could not be read (said in the report)


def _missing(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


def read_fleet(arm: Arm, subscriptions: list[str], vaults: Mapping[str, str],
               progress: Callable[[str], None] = lambda step: None) -> FleetPoints:
    graph = arm.resource_graph()
    out = FleetPoints()
    progress("virtual machines")
    out.vms = list(query_all(graph, subscriptions, VMS))
    progress("snapshots")
    by_vm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = list(query_all(graph, subscriptions, SNAPSHOTS))
    owned = O.owned_snapshots(rows)  # by their names: tags copied onto a snapshot by hand count for nothing
    for row in (r for r in rows if str(r.get("id", "")).lower() in owned):
        by_vm[str((row.get("tags") or {}).get(T.VM, "")).lower()].append(row)
    for vm, rows in by_vm.items():
        out.points[vm].extend(catalogue.snapshot_sets(rows))
    progress("restore points")
    for row in query_all(graph, subscriptions, COLLECTIONS):
        vm = str((row.get("tags") or {}).get(T.VM, "")).lower()
        try:
            out.points[vm].extend(_collection_points(arm, row))
        except Exception as exc:  # noqa: BLE001 (one collection unread is said, not fatal)
            if not _missing(exc):
                out.problems.append(f"restore point collection {row['id']}: {type(exc).__name__}: {exc}"[:500])
    progress("vault recovery points")
    for region, vault_id in sorted(vaults.items()):
        try:
            for vm, point in _vault_points(arm, region, vault_id):
                out.points[vm].append(point)
        except Exception as exc:  # noqa: BLE001
            out.problems.append(f"vault {vault_id}: {type(exc).__name__}: {exc}"[:500])
    return out


def _collection_points(arm: Arm, row: Mapping[str, Any]) -> list[RecoveryPoint]:
    compute = arm.compute(row["subscriptionId"])
    body = compute.restore_point_collections.get(row["resourceGroup"], row["name"], expand="restorePoints").as_dict()
    vm = str((row.get("tags") or {}).get(T.VM, ""))
    points = [p for p in (body.get("properties") or {}).get("restorePoints") or []
              if O.restore_point_is_vmkeepers(str(p.get("name") or ""), vm)]  # one made by hand counts for nothing
    source = str(((body.get("properties") or {}).get("source") or {}).get("id") or "")
    if "/restorepointcollections/" not in source.lower():
        return catalogue.restore_points([(body, points)])
    # A copy: only the instance view tells its replication; look newest first, stop at the first complete one.
    points = sorted(points, key=lambda p: str((p.get("properties") or {}).get("timeCreated") or ""), reverse=True)
    out: list[RecoveryPoint] = []
    for p in points:
        full = compute.restore_points.get(row["resourceGroup"], row["name"], p["name"], expand="instanceView").as_dict()
        out.extend(catalogue.restore_points([(body, [full])]))
        if out and out[-1].complete:
            break
    return out


def _vault_points(arm: Arm, region: str, vault_id: str) -> list[tuple[str, RecoveryPoint]]:
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
        out.append((vm, RecoveryPoint("", catalogue.VAULT, when, region, "", True, extra={"vault_id": vault_id})))
    return out
