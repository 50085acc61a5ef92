"""What Site Recovery makes in the target region, through Compute's and Network's own state so that
every client sees it: replica managed disks (``{disk}-ASRReplica``) while an item replicates, the test
VM with its NIC and disks (``{disk}-test``) of a test failover until its cleanup, and the failed-over VM
(on the replica disks) of a failover. Each resource is reported to Event Grid as ARM reports any write
or delete. Names are deterministic (A2AProtectedManagedDiskDetails ``failoverDiskName``/``tfoDiskName``,
A2AReplicationDetails ``recoveryAzureVMName``/``tfoAzureVMName``)."""

from __future__ import annotations

from typing import Any

from ..compute import agent
from ..compute import models as compute
from ..core.arm import normalize_location, parse_rid, rid
from ..core.events import build_event
from ..core.state import Resource, Store
from ..network.responses import find_subnet, new_nic
from .models import AsrError

NIC_TYPE = "Microsoft.Network/networkInterfaces"


def publish(emulator: Any, kind: str, resource: Resource) -> None:
    """Resources Site Recovery writes or deletes are reported by ARM like any other write or delete."""
    event = build_event(kind, resource.id, f"{resource.type}/{'write' if kind == 'write' else 'delete'}",
                        resource.subscription_id, emulator.clock.timestamp(), "PUT" if kind == "write" else "DELETE",
                        f"https://management.azure.com{resource.id}")
    emulator.events.publish(event, resource.subscription_id)


def group_of(resource_group_id: str) -> tuple[str, str]:
    parts = resource_group_id.strip("/").split("/")
    return parts[1], parts[3]


# --- disks ------------------------------------------------------------------------------------------------
def plan_disks(store: Store, vm: Resource, requested: list[dict[str, Any]] | None, target: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The disks an enable protects (``vmManagedDisks``; each with its staging account and target group) with
    their replica names, and the LUNs of the VM's data disks left out."""
    if not isinstance(requested, list) or not requested:
        raise AsrError("properties.providerSpecificDetails.vmManagedDisks: the VM's managed disks to replicate, each "
                       "with diskId, primaryStagingAzureStorageAccountId and recoveryResourceGroupId.",
                       code="InvalidEnableProtectionInput", target="properties.providerSpecificDetails.vmManagedDisks")
    storage = vm.properties.get("storageProfile", {})
    specs = [(None, storage.get("osDisk", {}))] + [(d.get("lun"), d) for d in storage.get("dataDisks", [])]
    by_id = {(s.get("managedDisk") or {}).get("id", "").lower(): (lun, s) for lun, s in specs}
    planned, seen = [], set()
    for n, spec in enumerate(requested):
        where = f"properties.providerSpecificDetails.vmManagedDisks[{n}]"
        disk_id = (spec or {}).get("diskId") or ""
        if disk_id.lower() not in by_id or disk_id.lower() in seen:
            raise AsrError(f"{where}.diskId: '{disk_id}' is not a managed disk of the virtual machine '{vm.name}' (or is "
                           "named twice).", code="InvalidEnableProtectionInput", target=f"{where}.diskId")
        seen.add(disk_id.lower())
        staging = spec.get("primaryStagingAzureStorageAccountId") or ""
        parsed = parse_rid(staging)
        if parsed is None or parsed["type"].lower() != "microsoft.storage/storageaccounts":
            raise AsrError(f"{where}.primaryStagingAzureStorageAccountId: '{staging}' is not a storage account id (the "
                           "cache storage account in the source region).", code="InvalidEnableProtectionInput",
                           target=f"{where}.primaryStagingAzureStorageAccountId")
        group = spec.get("recoveryResourceGroupId") or ""
        if not _group_exists(store, group):
            raise AsrError(f"{where}.recoveryResourceGroupId: resource group '{group}' was not found.",
                           code="InvalidEnableProtectionInput", target=f"{where}.recoveryResourceGroupId")
        disk = store.get(disk_id)
        lun, vm_spec = by_id[disk_id.lower()]
        sku = disk.extra.get("sku", {}).get("name", "Premium_LRS") if disk is not None else "Premium_LRS"
        name = vm_spec.get("name") or disk_id.rsplit("/", 1)[-1]
        sub, rg = group_of(group)
        replica_name = f"{name}-ASRReplica"
        planned.append({
            "diskId": disk.id if disk is not None else disk_id, "lun": lun, "os": lun is None, "name": name,
            "sizeGb": int((disk.properties.get("diskSizeGB") if disk is not None else None) or vm_spec.get("diskSizeGB") or 30),
            "sku": sku, "staging": staging, "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/{rg}",
            "replicaSku": spec.get("recoveryReplicaDiskAccountType") or sku,
            "targetSku": spec.get("recoveryTargetDiskAccountType") or sku,
            "replicaName": replica_name, "replicaId": rid(sub, rg, compute.PROVIDER, "disks", replica_name),
            "tfoName": f"{name}-test", "targetId": None,
        })
    if not any(d["os"] for d in planned):
        raise AsrError("properties.providerSpecificDetails.vmManagedDisks: the OS disk must be replicated.",
                       code="InvalidEnableProtectionInput", target="properties.providerSpecificDetails.vmManagedDisks")
    left_out = sorted(lun for lun, s in specs if lun is not None
                      and (s.get("managedDisk") or {}).get("id", "").lower() not in seen)
    _ = target
    return planned, left_out


def _group_exists(store: Store, group_id: str) -> bool:
    parts = (group_id or "").strip("/").split("/")
    if len(parts) != 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return False
    sub = store.subscriptions.get(parts[1].lower())
    return sub is not None and parts[3].lower() in sub.resource_groups


def check_replicas_free(store: Store, disks: list[dict[str, Any]], owned: list[str]) -> None:
    for d in disks:
        existing = store.get(d["replicaId"])
        if existing is not None and existing.key not in owned:
            raise AsrError(f"A disk '{d['replicaName']}' already exists in '{d['recoveryResourceGroupId']}': Site Recovery "
                           "names the replica disk so.", code="ReplicaDiskAlreadyExists",
                           recommended_action="Delete or rename that disk, or choose another target resource group.")


def create_replicas(emulator: Any, item: Resource, location: str, at: float) -> None:
    store = emulator.store
    owned = item.internal.setdefault("owned", [])
    for d in item.internal["disks"]:
        if store.get(d["replicaId"]) is not None:
            continue
        sub, rg = group_of(d["recoveryResourceGroupId"])
        disk = compute.new_disk(sub, rg, d["replicaName"], location, at, size_gb=d["sizeGb"], sku=d["replicaSku"],
                                creation={"createOption": "Empty"}, os_type=item.internal["osType"] if d["os"] else None)
        store.put(disk)
        owned.append(disk.key)
        publish(emulator, "write", disk)


def delete_replicas(emulator: Any, item: Resource) -> None:
    store = emulator.store
    for d in item.internal["disks"]:
        disk = store.get(d["replicaId"])
        if disk is not None and disk.key in item.internal.get("owned", []) and not disk.extra.get("managedBy"):
            store.delete(disk.id)
            publish(emulator, "delete", disk)


# --- networks ------------------------------------------------------------------------------------------------
def source_subnet(store: Store, vm: Resource | None) -> str | None:
    for ref in ((vm.properties.get("networkProfile") or {}).get("networkInterfaces") or []) if vm else []:
        nic = store.get(ref.get("id") or "")
        if nic is not None:
            return nic.properties["ipConfigurations"][0]["properties"]["subnet"]["id"]
    return None


def choose_subnet(store: Store, vnet_id: str, wanted: str | None, source: str | None) -> str | None:
    """The subnet of ``vnet_id`` a recovered NIC joins: the one named ``wanted`` (a name or an id), else the
    source NIC's subnet name, else the first."""
    vnet = store.get(vnet_id or "")
    if vnet is None or not vnet.properties.get("subnets"):
        return None
    names = [s["name"] for s in vnet.properties["subnets"]]
    for candidate in (wanted, source):
        name = (candidate or "").rstrip("/").rsplit("/", 1)[-1]
        match = next((n for n in names if n.lower() == name.lower()), None) if name else None
        if match:
            return f"{vnet.id}/subnets/{match}"
    return f"{vnet.id}/subnets/{names[0]}"


# --- recovered VMs --------------------------------------------------------------------------------------------
def plan_vm(store: Store, item: Resource, *, test: bool, network_id: str | None, location: str) -> dict[str, Any]:
    """Where a test failover's or a failover's VM goes: its id, NIC id and subnet, checked free and valid."""
    i = item.internal
    sub, rg = group_of(i["recoveryResourceGroupId"])
    name = i["tfoVmName"] if test else i["recoveryVmName"]
    vm_id = rid(sub, rg, compute.PROVIDER, "virtualMachines", name)
    field = "properties.networkId" if test else "properties.providerSpecificDetails.recoveryAzureNetworkId"
    vnet = store.get(network_id or "")
    if vnet is None:
        raise AsrError(f"{field}: virtual network '{network_id}' was not found" +
                       ("." if test else ": map the source network or give recoveryAzureNetworkId when enabling."),
                       code="InvalidNetworkInput", target=field)
    if normalize_location(vnet.location) != location:
        raise AsrError(f"{field}: the virtual network is in '{vnet.location}', the recovery region is '{location}'.",
                       code="InvalidNetworkInput", target=field)
    subnet_id = choose_subnet(store, vnet.id, i.get("recoverySubnet"), source_subnet(store, store.get(i["vmId"])))
    if subnet_id is None or find_subnet(store, subnet_id) is None:
        raise AsrError(f"{field}: virtual network '{vnet.name}' has no subnet.", code="InvalidNetworkInput", target=field)
    nic_base = (i["nics"][0].rsplit("/", 1)[-1] if i["nics"] else f"{name}-nic")
    nic_name = f"{nic_base}-test" if test else nic_base
    nic_id = rid(sub, rg, "Microsoft.Network", "networkInterfaces", nic_name)
    reuse = None
    existing = store.get(vm_id)
    if existing is not None:
        if not test and m_same(i["vms"].get(location), existing.id):
            reuse = existing.id  # failback onto the VM this item started from
        else:
            raise AsrError(f"A virtual machine '{name}' already exists in '{i['recoveryResourceGroupId']}'.",
                           code="RecoveryVmAlreadyExists",
                           recommended_action="Delete it, or choose another recovery VM name or resource group.")
    if reuse is None and store.get(nic_id) is not None:
        raise AsrError(f"A network interface '{nic_name}' already exists in '{i['recoveryResourceGroupId']}'.",
                       code="RecoveryNicAlreadyExists", recommended_action="Delete it, or choose another resource group.")
    disks = []
    if test:
        for d in i["disks"]:
            disk_id = rid(sub, group_of(d["recoveryResourceGroupId"])[1], compute.PROVIDER, "disks", d["tfoName"])
            if store.get(disk_id) is not None:
                raise AsrError(f"A disk '{d['tfoName']}' already exists in '{d['recoveryResourceGroupId']}'.",
                               code="TestFailoverDiskAlreadyExists", recommended_action="Delete it and retry.")
            disks.append(disk_id)
    return {"vm": vm_id, "nic": nic_id, "subnet": subnet_id, "network": vnet.id, "reuse": reuse, "disks": disks,
            "location": location}


def m_same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.lower() == b.lower()


def create_vm(emulator: Any, item: Resource, plan: dict[str, Any], at: float, *, test: bool, method: str,
              operation: str) -> list[str]:
    """The recovered VM (booted when the operation ends) with its NIC and disks; returns the ids created."""
    store = emulator.store
    i = item.internal
    if plan["reuse"]:
        vm = store.get(plan["reuse"])
        vm.internal["power"] = "running"
        agent.boot(emulator, vm, at, method, operation)
        return []
    sub, rg = group_of(i["recoveryResourceGroupId"])
    location = plan["location"]
    created: list[Resource] = []
    storage: dict[str, Any] = {"dataDisks": []}
    for n, d in enumerate(i["disks"]):
        d_sub, d_rg = group_of(d["recoveryResourceGroupId"])
        if test:
            disk = compute.new_disk(d_sub, d_rg, d["tfoName"], location, at, size_gb=d["sizeGb"], sku=d["targetSku"],
                                    creation={"createOption": "Copy", "sourceResourceId": d["replicaId"]},
                                    os_type=i["osType"] if d["os"] else None)
            store.put(disk)
            created.append(disk)
        else:
            disk = store.get(d["replicaId"])
            if disk is None:  # the replica went missing: recreate it as ASR would from the vault's data
                disk = compute.new_disk(d_sub, d_rg, d["replicaName"], location, at, size_gb=d["sizeGb"],
                                        sku=d["targetSku"], os_type=i["osType"] if d["os"] else None)
                store.put(disk)
                created.append(disk)
            d["targetId"] = disk.id
        spec = {"name": disk.name, "createOption": "Attach", "caching": "ReadWrite" if d["os"] else "None",
                "managedDisk": {"id": disk.id, "storageAccountType": disk.extra["sku"]["name"]},
                "diskSizeGB": d["sizeGb"], "deleteOption": "Detach"}
        if d["os"]:
            storage["osDisk"] = dict(spec, osType=i["osType"])
        else:
            storage["dataDisks"].append(dict(spec, lun=d["lun"] if d["lun"] is not None else n))
    nic = new_nic(sub, rg, plan["nic"].rsplit("/", 1)[-1], location, plan["subnet"], None, at)
    store.put(nic)
    created.append(nic)
    vm = compute.new_vm(sub, rg, plan["vm"].rsplit("/", 1)[-1], location, at, size=i["vmSize"], storage=storage,
                        network={"networkInterfaces": [{"id": nic.id, "properties": {"primary": True}}]}, tags=None,
                        state="Succeeded")
    for spec in [storage["osDisk"], *storage["dataDisks"]]:
        compute.attach_disk(store.get(spec["managedDisk"]["id"]), vm.id)
    nic.properties["virtualMachine"] = {"id": vm.id}
    store.put(vm)
    created.append(vm)
    agent.boot(emulator, vm, at, method, operation)
    for res in created:
        publish(emulator, "write", res)
    return [r.id for r in created]


def delete_test_vm(emulator: Any, ids: list[str]) -> None:
    """A test failover's cleanup: its VM, then its NIC and disks (everything it created)."""
    store = emulator.store
    order = sorted(ids, key=lambda x: 0 if "/virtualmachines/" in x.lower() else 1)
    for resource_id in order:
        res = store.get(resource_id)
        if res is None:
            continue
        if res.type.lower() == compute.VM_TYPE.lower():
            for disk_id in compute.vm_disk_ids(res):
                disk = store.get(disk_id)
                if disk is not None:
                    compute.detach_disk(disk)
            for ref in (res.properties.get("networkProfile") or {}).get("networkInterfaces") or []:
                nic = store.get(ref.get("id") or "")
                if nic is not None:
                    nic.properties.pop("virtualMachine", None)
        store.delete(res.id)
        publish(emulator, "delete", res)


def shut_down(store: Store, vm_id: str) -> None:
    vm = store.get(vm_id)
    if vm is not None:
        vm.internal["power"] = "deallocated"
