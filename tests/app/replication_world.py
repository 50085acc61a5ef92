"""Site Recovery arranged with the real SDK client straight against the emulator, as an operator (or the portal)
would: a vault in the second region, the target group there, the Azure-to-Azure infrastructure (fabrics,
containers, a replication policy, a container mapping) and the world's VM replicated to Protected, with a
recovery point. A stand-in until the app's own enable path arranges it (issue 21)."""

from __future__ import annotations

import json
from typing import Any

from tests.app.restore_world import REGION, SECOND

VAULT_RG, VAULT, TARGET_RG = "rg-dr", "vault-dr", "rg-dr-target"
SRC_FABRIC, TGT_FABRIC = f"asr-a2a-default-{REGION}", f"asr-a2a-default-{SECOND}"
SRC_CONTAINER, TGT_CONTAINER = f"{SRC_FABRIC}-container", f"{TGT_FABRIC}-container"
POLICY, MAPPING = "24-hour-retention-policy", f"{REGION}-{SECOND}-24-hour"
IR_SECONDS = 1  # emulated initial replication


def asr_client(az: Any, sub: str) -> Any:
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    return az.client(SiteRecoveryManagementClient, sub, polling_interval=0)


def replicate(world: dict[str, Any], az: Any, emu: Any, monkeypatch: Any) -> dict[str, Any]:
    """The world's VM replicated to ``SECOND`` and Protected; ``VMKEEPER_VAULTS`` names the vault (set before the
    app first reads its drill settings). Returns the vault, the item's id and the target group's name."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    from emulator.recoveryservices.models import seed_vault

    sub = world["sub"]
    vault = seed_vault(emu, sub, VAULT_RG, VAULT, SECOND)
    az.client(ResourceManagementClient, sub).resource_groups.create_or_update(TARGET_RG, {"location": SECOND})
    az.settings(siterecovery={"initial_replication_seconds": IR_SECONDS}, vm_agent={"ready_after_seconds": 1})
    asr = asr_client(az, sub)
    for fabric, region in ((SRC_FABRIC, REGION), (TGT_FABRIC, SECOND)):
        asr.replication_fabrics.begin_create(VAULT_RG, VAULT, fabric, {"properties": {"customDetails": {
            "instanceType": "Azure", "location": region}}}).result()
    for fabric, container in ((SRC_FABRIC, SRC_CONTAINER), (TGT_FABRIC, TGT_CONTAINER)):
        asr.replication_protection_containers.begin_create(VAULT_RG, VAULT, fabric, container, {"properties": {
            "providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    asr.replication_policies.begin_create(VAULT_RG, VAULT, POLICY, {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 60,
        "multiVmSyncStatus": "Disable"}}}).result()
    asr.replication_protection_container_mappings.begin_create(VAULT_RG, VAULT, SRC_FABRIC, SRC_CONTAINER, MAPPING, {
        "properties": {"targetProtectionContainerId": f"{vault}/replicationFabrics/{TGT_FABRIC}/"
                                                      f"replicationProtectionContainers/{TGT_CONTAINER}",
                       "policyId": f"{vault}/replicationPolicies/{POLICY}",
                       "providerSpecificInput": {"instanceType": "A2A", "agentAutoUpdateStatus": "Disabled"}}}).result()

    vm = az.client(ComputeManagementClient, sub).virtual_machines.get("rg-vm-00", "vm-00000")
    target_rg = f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}"
    cache = f"/subscriptions/{sub}/resourceGroups/{VAULT_RG}/providers/Microsoft.Storage/storageAccounts/cache{REGION}"
    disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
    asr.replication_protected_items.begin_create(VAULT_RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name, {"properties": {
        "policyId": f"{vault}/replicationPolicies/{POLICY}",
        "providerSpecificDetails": {
            "instanceType": "A2A", "fabricObjectId": vm.id,
            "recoveryContainerId": f"{vault}/replicationFabrics/{TGT_FABRIC}/replicationProtectionContainers/{TGT_CONTAINER}",
            "recoveryResourceGroupId": target_rg,
            "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache,
                                "recoveryResourceGroupId": target_rg} for d in disks]}}}).result()
    az.advance(IR_SECONDS + 1)
    item = asr.replication_protected_items.get(VAULT_RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)
    assert item.properties.protection_state == "Protected", item.properties.protection_state
    monkeypatch.setenv("VMKEEPER_VAULTS", json.dumps({SECOND: vault}))
    return {"vault": vault, "item": item.id, "item_name": vm.name, "target_rg": TARGET_RG, "asr": asr}


def item_of(replica: dict[str, Any]) -> Any:
    return replica["asr"].replication_protected_items.get(VAULT_RG, VAULT, SRC_FABRIC, SRC_CONTAINER, replica["item_name"])
