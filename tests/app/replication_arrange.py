"""Site Recovery replication of a world's VM, arranged with the real SDK client straight against the emulator (plain
client, no vmkeeper user agent: arrangement, not the app), as tests/emulator/test_siterecovery.py drives it: a vault
in the target region, fabrics, containers, an A2A replication policy, the container mapping, then the replicated
item. The app's own enable path (shared/replication/, issue 21) will replace ``replicate`` here; what the read side
is tested on (the item's health and RPO) does not change with it."""

from __future__ import annotations

import json
from typing import Any

SOURCE, TARGET = "westeurope", "northeurope"
RG, VAULT, TARGET_RG = "rg-dr", "vault-dr", "rg-dr-target"
SRC_FABRIC, TGT_FABRIC = f"asr-a2a-default-{SOURCE}", f"asr-a2a-default-{TARGET}"
SRC_CONTAINER, TGT_CONTAINER = f"{SRC_FABRIC}-container", f"{TGT_FABRIC}-container"
POLICY, MAPPING = "24-hour-retention-policy", f"{SOURCE}-{TARGET}-24-hour"
IR_SECONDS = 60  # the emulated initial replication


def dr_vault(az: Any, emu: Any, world: dict[str, Any], monkeypatch: Any) -> str:
    """The target-region vault, made known to the app as VMKEEPER_VAULTS names it (read on the compliance
    settings' first use, so before the first evaluation), with the target group."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    from emulator.recoveryservices.models import seed_vault

    vault_id = seed_vault(emu, world["sub"], RG, VAULT, TARGET)
    az.client(ResourceManagementClient, world["sub"]).resource_groups.create_or_update(TARGET_RG, {"location": TARGET})
    az.settings(siterecovery={"initial_replication_seconds": IR_SECONDS})
    vaults = json.dumps({TARGET: vault_id})
    monkeypatch.setenv("VMKEEPER_VAULTS", vaults)
    world["settings"]["VMKEEPER_VAULTS"] = vaults
    world["dr_vault"] = vault_id
    return vault_id


def site_recovery(az: Any, world: dict[str, Any]) -> Any:
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    return az.client(SiteRecoveryManagementClient, world["sub"], polling_interval=0)


def tag_critical(az: Any, world: dict[str, Any]) -> None:
    """``vmkeeper-dr: critical`` merged into the VM's tags (the others kept)."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    az.client(ResourceManagementClient, world["sub"]).tags.begin_update_at_scope(
        world["vm_id"], {"operation": "Merge", "properties": {"tags": {"vmkeeper-dr": "critical"}}}).result()


def replicate(az: Any, world: dict[str, Any], *, wait: bool = True) -> str:
    """The world's VM replicated to the target region; with ``wait``, through its initial replication to
    Protected. Returns the replicated item's id."""
    from azure.mgmt.compute import ComputeManagementClient

    asr, vault = site_recovery(az, world), world["dr_vault"]
    for fabric, region in ((SRC_FABRIC, SOURCE), (TGT_FABRIC, TARGET)):
        asr.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {
            "instanceType": "Azure", "location": region}}}).result()
    for fabric, container in ((SRC_FABRIC, SRC_CONTAINER), (TGT_FABRIC, TGT_CONTAINER)):
        asr.replication_protection_containers.begin_create(RG, VAULT, fabric, container, {"properties": {
            "providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    asr.replication_policies.begin_create(RG, VAULT, POLICY, {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 60,
        "multiVmSyncStatus": "Disable"}}}).result()
    target = f"{vault}/replicationFabrics/{TGT_FABRIC}/replicationProtectionContainers/{TGT_CONTAINER}"
    asr.replication_protection_container_mappings.begin_create(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, MAPPING, {
        "properties": {"targetProtectionContainerId": target, "policyId": f"{vault}/replicationPolicies/{POLICY}",
                       "providerSpecificInput": {"instanceType": "A2A", "agentAutoUpdateStatus": "Disabled"}}}).result()
    sub, group, name = world["sub"], world["vm_id"].split("/")[4], world["vm_id"].rsplit("/", 1)[-1]
    vm = az.client(ComputeManagementClient, sub).virtual_machines.get(group, name)
    disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    cache = f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/cache{SOURCE}"
    target_rg = f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"
    item = asr.replication_protected_items.begin_create(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, name, {"properties": {
        "policyId": f"{vault}/replicationPolicies/{POLICY}",
        "providerSpecificDetails": {
            "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": target,
            "recoveryResourceGroupId": target_rg,
            "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache,
                                "recoveryResourceGroupId": target_rg} for d in disks]}}}).result()
    if wait:
        az.advance(IR_SECONDS + 1)
        assert replicated_item(az, world).properties.protection_state == "Protected"
    world["replicated_item"] = item.id
    return item.id


def replicated_item(az: Any, world: dict[str, Any]) -> Any:
    name = world["vm_id"].rsplit("/", 1)[-1]
    return site_recovery(az, world).replication_protected_items.get(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, name)


def stall(az: Any, world: dict[str, Any], stalled: bool = True) -> None:
    """The emulator's admin switch: the item's replication stops (or resumes) making recovery points."""
    az.admin("POST", "siterecovery/stall", {"protectedItemId": world["replicated_item"], "stalled": stalled})
