"""A world of replicated VMs for the failover tests: three VMs in westeurope replicating with Site Recovery (A2A) to a
vault in northeurope, arranged with the real SDK client straight against the emulator (the calls of the portal's
enable, as tests/emulator/test_siterecovery.py makes them) — until vmkeeper's own enable path does it — and the app
on the local Functions host over Azurite, with the settings its failovers and recovery plans read."""

from __future__ import annotations

import importlib
import json
import uuid
from typing import Any

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import tags as T
from shared import wiring
from shared.restore.access import FAILOVER, OPERATOR, READER, encode_principal
from tests.app import openapi_check

SOURCE, TARGET = "westeurope", "northeurope"
RG, VAULT, TARGET_RG = "rg-dr", "vault-dr", "rg-dr-target"
SRC_FABRIC, TGT_FABRIC = f"asr-a2a-default-{SOURCE}", f"asr-a2a-default-{TARGET}"
SRC_CONTAINER, TGT_CONTAINER = f"{SRC_FABRIC}-container", f"{TGT_FABRIC}-container"
POLICY = "24-hour-retention-policy"
IR_SECONDS = 60
# vm-00000 and vm-00001 boot first, vm-00002 after them (seed: VMs alternate between rg-vm-00 and rg-vm-01).
APP_TAGS = [{T.APP: "billing", T.APP_GROUP: "1"}, {T.APP: "Billing", T.APP_GROUP: "1"}, {T.APP: "billing", T.APP_GROUP: "2"}]
FAILOVER_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000f0", [FAILOVER], name="dr@example.com")
RESTORE_OPERATOR_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000aa", [OPERATOR], name="ops@example.com")
RESTORE_ROLES_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000ab", [OPERATOR, READER])
WRITES = ("PUT", "PATCH", "DELETE", "POST")


def asr(az: Any, sub: str) -> Any:
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    return az.client(SiteRecoveryManagementClient, sub, polling_interval=0)


def _vnet(network: Any, rg: str, name: str) -> str:
    return network.virtual_networks.begin_create_or_update(rg, name, {
        "location": TARGET, "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}, "subnets": [
            {"name": "default", "properties": {"addressPrefix": "10.9.0.0/24"}}]}}).result().id


def replicate(az: Any, emu: Any, sub: str, vms: list[Any]) -> dict[str, Any]:
    """The DR side made as the portal makes it, then each VM enabled and waited on to Protected (plain SDK clients:
    the arrangement's calls are not the app's)."""
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    from emulator.recoveryservices.models import seed_vault

    vault = seed_vault(emu, sub, RG, VAULT, TARGET)
    az.client(ResourceManagementClient, sub).resource_groups.create_or_update(TARGET_RG, {"location": TARGET})
    network = az.client(NetworkManagementClient, sub, polling_interval=0)
    dr = {"vault": vault, "target_rg": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}",
          "recovery_vnet": _vnet(network, TARGET_RG, "vnet-recovery"), "test_vnet": _vnet(network, TARGET_RG, "vnet-drill")}
    az.settings(siterecovery={"initial_replication_seconds": IR_SECONDS})
    client = asr(az, sub)
    for fabric, region in ((SRC_FABRIC, SOURCE), (TGT_FABRIC, TARGET)):
        client.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {
            "instanceType": "Azure", "location": region}}}).result()
    for fabric, container in ((SRC_FABRIC, SRC_CONTAINER), (TGT_FABRIC, TGT_CONTAINER)):
        client.replication_protection_containers.begin_create(RG, VAULT, fabric, container, {"properties": {
            "providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    client.replication_policies.begin_create(RG, VAULT, POLICY, {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 60,
        "multiVmSyncStatus": "Enable"}}}).result()
    for fabric, container, name, target_fabric, target in (
            (SRC_FABRIC, SRC_CONTAINER, "forward", TGT_FABRIC, TGT_CONTAINER),
            (TGT_FABRIC, TGT_CONTAINER, "reverse", SRC_FABRIC, SRC_CONTAINER)):
        client.replication_protection_container_mappings.begin_create(RG, VAULT, fabric, container, name, {"properties": {
            "targetProtectionContainerId": f"{vault}/replicationFabrics/{target_fabric}/replicationProtectionContainers/{target}",
            "policyId": f"{vault}/replicationPolicies/{POLICY}",
            "providerSpecificInput": {"instanceType": "A2A", "agentAutoUpdateStatus": "Disabled"}}}).result()
    for group in sorted({vm.id.split("/")[4] for vm in vms}):
        client.replication_network_mappings.begin_create(RG, VAULT, SRC_FABRIC, "azureNetwork", f"map-{group}", {
            "properties": {"recoveryFabricName": TGT_FABRIC, "recoveryNetworkId": dr["recovery_vnet"],
                           "fabricSpecificDetails": {"instanceType": "AzureToAzure", "primaryNetworkId":
                                                     f"/subscriptions/{sub}/resourceGroups/{group}/providers/"
                                                     f"Microsoft.Network/virtualNetworks/vnet-{SOURCE}"}}}).result()
    cache = f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/cache{SOURCE}"
    for vm in vms:
        disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]
        client.replication_protected_items.begin_create(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name, {"properties": {
            "policyId": f"{vault}/replicationPolicies/{POLICY}",
            "providerSpecificDetails": {
                "instanceType": "A2A", "fabricObjectId": vm.id,
                "recoveryContainerId": f"{vault}/replicationFabrics/{TGT_FABRIC}/replicationProtectionContainers/{TGT_CONTAINER}",
                "recoveryResourceGroupId": dr["target_rg"],
                "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache,
                                    "recoveryResourceGroupId": dr["target_rg"]} for d in disks]}}}).result()
    az.advance(IR_SECONDS + 1)
    az.advance(10 * 60)  # a few recovery points
    dr["items"] = {vm.name: client.replication_protected_items.get(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name).id
                   for vm in vms}
    return dr


def start(az: Any, emu: Any, azurite: Any, tmp_path: Any, monkeypatch: Any, *, wiring_class: type = wiring.Wiring,
          **extra: str) -> dict[str, Any]:
    """Three tagged VMs replicating, and the app on the local host (its failover settings, an allow-list that admits
    both regions' groups). ``wiring_class``: the app's wiring, or a test's subclass of it (parts that misbehave)."""
    from azure.mgmt.compute import ComputeManagementClient

    import function_app

    summary = az.seed(subscriptions=1, resource_groups=2, vms=3, data_disks=[1, 1], regions=[SOURCE],
                      tag_sets=APP_TAGS, seed=21)
    sub = summary["subscriptions"][0]
    compute = az.client(ComputeManagementClient, sub, polling_interval=0)
    vms = sorted(compute.virtual_machines.list_all(), key=lambda v: v.name)
    dr = replicate(az, emu, sub, vms)
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps({"version": 1, "default": "none", "policies": {"none": {
        "schedule": {"every_hours": 24}, "snapshots": {"luns": "all", "include_os_disk": True}}}}))
    suffix = uuid.uuid4().hex[:8]
    groups = [f"/subscriptions/{sub}/resourceGroups/{g}" for g in ("rg-vm-00", "rg-vm-01", TARGET_RG)]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_VAULTS": json.dumps({TARGET: dr["vault"]}),
                "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}", "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}",
                "VMKEEPER_RESTORE_QUEUE": f"restores-{suffix}", "VMKEEPER_RESTORE_TABLE": f"restores{suffix}",
                "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}", "VMKEEPER_BUDGET_TABLE": f"budget{suffix}",
                "VMKEEPER_DRILL_QUEUE": f"drills-{suffix}", "VMKEEPER_FAILOVER_QUEUE": f"failovers-{suffix}",
                "VMKEEPER_FAILOVER_TABLE": f"failovers{suffix}", "VMKEEPER_ALERTS_TABLE": f"alerts{suffix}",
                "VMKEEPER_RECOVERY_PLAN_SCHEDULE": "0 */15 * * * *", "VMKEEPER_RESTORE_SCOPES": ",".join(groups),
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path, **extra}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wired = wiring.use(wiring_class(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    return {"sub": sub, "vms": vms, "dr": dr, "host": host, "settings": settings, "wiring": wired, "asr": asr(az, sub),
            "compute": compute}


def api(world: dict[str, Any], method: str, path: str, body: Any = None, *, principal: str | None = FAILOVER_PRINCIPAL,
        headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    """A request through the local host (function key, App Service's principal header), its answer checked against
    the OpenAPI document."""
    h = dict(headers or {})
    if principal:
        h["X-MS-CLIENT-PRINCIPAL"] = principal
    h["x-functions-key"] = world["host"].function_key
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    answer = world["host"].http(method, path, headers=h, body=data)
    openapi_check.check(method, path, answer.status, answer.headers, answer.body)
    return answer


def app_calls(az: Any, since: int) -> list[dict[str, Any]]:
    """The app's own ARM calls since a mark (its clients' user agent names vmkeeper)."""
    return [c for c in az.calls(since) if "vmkeeper/" in (c.get("userAgent") or "")]


def writes(az: Any, since: int) -> list[dict[str, Any]]:
    """The app's ARM writes since a mark (Resource Graph queries are POSTs that read)."""
    return [c for c in app_calls(az, since) if c["method"] in WRITES and "ResourceGraph" not in (c.get("operation") or "")]


def plan(world: dict[str, Any], name: str = "vmkeeper-app-billing") -> Any:
    return world["asr"].replication_recovery_plans.get(RG, VAULT, name)


def boot_order(world: dict[str, Any], name: str = "vmkeeper-app-billing") -> list[list[str]]:
    """The plan's Boot groups as VM names, in order."""
    names = {v.lower(): k for k, v in world["dr"]["items"].items()}
    return [sorted(names[i.id.lower()] for i in g.replication_protected_items or [])
            for g in plan(world, name).properties.groups if g.group_type == "Boot"]
