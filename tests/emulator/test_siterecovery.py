"""Site Recovery (Azure-to-Azure) through the real SiteRecoveryManagementClient (azure-mgmt-recoveryservicessiterecovery
2.0.0, api-version 2025-08-01) against the emulator: the enable chain to Protected, recovery points on the emulated
clock, re-PUTs, test failover and its cleanup (a real VM, NIC and disks in the target group), failover, commit and
reprotect, recovery plans in boot order, wrong-state errors, eligibility, disable refused (150144) and purge.

The SDK's models are mappings (TypeSpec-generated): A2A details are read as ``item.properties.provider_specific_details
["rpoInSeconds"]`` or through their attributes alike."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.core.rest import HttpRequest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from emulator.recoveryservices.models import seed_vault

SOURCE, TARGET = "westeurope", "northeurope"
RG = "rg-dr"
VAULT = "vault-dr"
TARGET_RG = "rg-dr-target"
SRC_FABRIC, TGT_FABRIC = "asr-a2a-default-westeurope", "asr-a2a-default-northeurope"
SRC_CONTAINER, TGT_CONTAINER = "asr-a2a-default-westeurope-container", "asr-a2a-default-northeurope-container"
POLICY = "24-hour-retention-policy"
MAPPING, REVERSE_MAPPING = "westeurope-northeurope-24-hour", "northeurope-westeurope-24-hour"
IR_SECONDS = 60


# --- arrangement ------------------------------------------------------------------------------------------
@pytest.fixture
def asr(az, sub):
    return az.client(SiteRecoveryManagementClient, sub, polling_interval=0)


@pytest.fixture
def network(az, sub):
    return az.client(NetworkManagementClient, sub, polling_interval=0)


def _vnet(network, rg: str, name: str, location: str) -> str:
    return network.virtual_networks.begin_create_or_update(rg, name, {
        "location": location, "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]},
                                             "subnets": [{"name": "default", "properties": {"addressPrefix": "10.9.0.0/24"}}]}},
    ).result().id


@pytest.fixture
def dr(az, emu, sub, resources, network) -> dict:
    """A vault in the target region, the target group with a recovery VNet and an isolated test VNet."""
    vault_id = seed_vault(emu, sub, RG, VAULT, TARGET)
    resources.resource_groups.create_or_update(TARGET_RG, {"location": TARGET})
    az.settings(siterecovery={"initial_replication_seconds": IR_SECONDS})
    return {"vault": vault_id, "target_rg": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}",
            "recovery_vnet": _vnet(network, TARGET_RG, "vnet-recovery", TARGET),
            "test_vnet": _vnet(network, TARGET_RG, "vnet-drill", TARGET),
            "cache": f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/cachewesteurope"}


def infrastructure(asr, dr: dict, *, reverse: bool = True) -> None:
    """Fabrics, containers, policy, container mappings (both ways) and the network mapping, as the portal makes them."""
    for fabric, region in ((SRC_FABRIC, SOURCE), (TGT_FABRIC, TARGET)):
        asr.replication_fabrics.begin_create(RG, VAULT, fabric, {"properties": {"customDetails": {
            "instanceType": "Azure", "location": region}}}).result()
    for fabric, container in ((SRC_FABRIC, SRC_CONTAINER), (TGT_FABRIC, TGT_CONTAINER)):
        asr.replication_protection_containers.begin_create(RG, VAULT, fabric, container, {"properties": {
            "providerSpecificInput": [{"instanceType": "A2A"}]}}).result()
    asr.replication_policies.begin_create(RG, VAULT, POLICY, {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "recoveryPointHistory": 1440, "appConsistentFrequencyInMinutes": 60,
        "multiVmSyncStatus": "Enable"}}}).result()
    pairs = [(SRC_FABRIC, SRC_CONTAINER, MAPPING, TGT_FABRIC, TGT_CONTAINER)]
    if reverse:
        pairs.append((TGT_FABRIC, TGT_CONTAINER, REVERSE_MAPPING, SRC_FABRIC, SRC_CONTAINER))
    for fabric, container, name, target_fabric, target in pairs:
        asr.replication_protection_container_mappings.begin_create(RG, VAULT, fabric, container, name, {"properties": {
            "targetProtectionContainerId": f"{dr['vault']}/replicationFabrics/{target_fabric}/replicationProtectionContainers/{target}",
            "policyId": f"{dr['vault']}/replicationPolicies/{POLICY}",
            "providerSpecificInput": {"instanceType": "A2A", "agentAutoUpdateStatus": "Disabled"}}}).result()


def source_vnet(vm) -> str:
    return f"/subscriptions/{vm.id.split('/')[2]}/resourceGroups/{vm.id.split('/')[4]}/providers/Microsoft.Network/virtualNetworks/vnet-{SOURCE}"


def map_network(asr, dr: dict, vm) -> None:
    name = f"map-{vm.id.split('/')[4]}"
    asr.replication_network_mappings.begin_create(RG, VAULT, SRC_FABRIC, "azureNetwork", name, {"properties": {
        "recoveryFabricName": TGT_FABRIC, "recoveryNetworkId": dr["recovery_vnet"],
        "fabricSpecificDetails": {"instanceType": "AzureToAzure", "primaryNetworkId": source_vnet(vm)}}}).result()


def enable_input(dr: dict, vm, **extra) -> dict:
    storage = vm.storage_profile
    disks = [storage.os_disk.managed_disk.id] + [d.managed_disk.id for d in storage.data_disks]
    return {"properties": {
        "policyId": f"{dr['vault']}/replicationPolicies/{POLICY}",
        "providerSpecificDetails": {
            "instanceType": "A2A", "fabricObjectId": vm.id,
            "recoveryContainerId": f"{dr['vault']}/replicationFabrics/{TGT_FABRIC}/replicationProtectionContainers/{TGT_CONTAINER}",
            "recoveryResourceGroupId": dr["target_rg"],
            "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": dr["cache"],
                                "recoveryResourceGroupId": dr["target_rg"]} for d in disks],
            **extra}}}


def enable(asr, dr: dict, vm, name: str | None = None, **extra):
    return asr.replication_protected_items.begin_create(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, name or vm.name,
                                                        enable_input(dr, vm, **extra))


def get_item(asr, name: str):
    return asr.replication_protected_items.get(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, name)


def details(item) -> dict:
    return item.properties.provider_specific_details


def protect(az, asr, dr: dict, vm) -> object:
    """The whole chain for one VM, waited on to Protected."""
    enable(asr, dr, vm).result()
    az.advance(IR_SECONDS + 1)
    item = get_item(asr, vm.name)
    assert item.properties.protection_state == "Protected"
    return item


def code_of(err) -> str:
    return err.value.error.code if err.value.error else ""


# --- the enable chain ------------------------------------------------------------------------------------------
def test_enable_chain_reaches_protected_with_a_point_every_5_minutes(az, emu, asr, dr, compute, network):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    map_network(asr, dr, vm)
    fabric = asr.replication_fabrics.get(RG, VAULT, SRC_FABRIC)
    assert fabric.properties.custom_details["location"] == SOURCE
    assert fabric.properties.custom_details["containerIds"][0].endswith(SRC_CONTAINER)
    mapping = asr.replication_protection_container_mappings.get(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, MAPPING)
    assert mapping.properties.state == "Paired" and mapping.properties.policy_friendly_name == POLICY

    poller = enable(asr, dr, vm)
    started = get_item(asr, vm.name)
    assert started.properties.protection_state == "EnablingProtection"
    assert started.properties.current_scenario.scenario_name == "EnableDr"
    item = poller.result()
    assert item.properties.protection_state == "InitialReplicationInProgress"
    az.advance(IR_SECONDS / 2)
    halfway = details(get_item(asr, vm.name))
    assert halfway["monitoringJobType"] == "InitialReplication" and 0 < halfway["monitoringPercentageCompletion"] < 100
    assert list(asr.recovery_points.list_by_replication_protected_items(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)) == []

    az.advance(IR_SECONDS / 2 + 1)
    item = get_item(asr, vm.name)
    props = item.properties
    assert (props.protection_state, props.replication_health, props.active_location) == ("Protected", "Normal", "Primary")
    assert set(props.allowed_operations) == {"PlannedFailover", "UnplannedFailover", "DisableProtection", "TestFailover"}
    a2a = details(item)
    assert a2a["instanceType"] == "A2A" and a2a["fabricObjectId"].lower() == vm.id.lower()
    assert a2a["primaryFabricLocation"] == SOURCE and a2a["recoveryFabricLocation"] == TARGET
    assert a2a["selectedRecoveryAzureNetworkId"].lower() == dr["recovery_vnet"].lower()  # from the network mapping
    assert a2a["rpoInSeconds"] is not None and a2a["rpoInSeconds"] < 300 and a2a["lastRpoCalculatedTime"]

    az.advance(20 * 60)
    points = list(asr.recovery_points.list_by_replication_protected_items(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name))
    assert len(points) == 5  # at protection, then every 5 emulated minutes
    times = sorted(p.properties.recovery_point_time for p in points)
    assert all((b - a).total_seconds() == 300 for a, b in zip(times, times[1:], strict=False))
    assert {p.properties.recovery_point_type for p in points} == {"AppConsistent", "CrashConsistent"}
    assert points[0].properties.provider_specific_details["recoveryPointSyncType"] == "PerVmRecoveryPoint"

    # The replica disks are real disks in the target group; the job ran its tasks.
    replicas = [d for d in compute.disks.list_by_resource_group(TARGET_RG) if d.name.endswith("-ASRReplica")]
    assert len(replicas) == len(a2a["protectedManagedDisks"]) == 1 + len(vm.storage_profile.data_disks)
    job = next(j for j in asr.replication_jobs.list(RG, VAULT) if j.properties.scenario_name == "EnableDr")
    assert job.properties.state == "Succeeded" and len(job.properties.tasks) == 5
    assert all(t.state == "Succeeded" for t in job.properties.tasks)
    assert job.properties.custom_details.instance_type == "AsrJobDetails"

    linked = {(c["operation"], c["path"].rsplit("/", 1)[-1]) for c in az.calls() if c["method"] == "LINKED"}
    assert ("Microsoft.Storage/storageAccounts/read", "cachewesteurope") in linked
    assert any(op == "Microsoft.Compute/disks/write" and name.endswith("-ASRReplica") for op, name in linked)
    ops = {c["operation"] for c in az.calls()}
    assert "Microsoft.RecoveryServices/vaults/replicationOperationStatus/read" in ops


def test_re_put_answers_the_existing_object_and_refuses_other_settings(az, asr, dr, compute):
    vms = list(compute.virtual_machines.list_all())
    infrastructure(asr, dr)
    protect(az, asr, dr, vms[0])
    jobs_before = len(list(asr.replication_jobs.list(RG, VAULT)))
    replicas_before = {d.id for d in compute.disks.list_by_resource_group(TARGET_RG)}

    again = asr.replication_fabrics.begin_create(RG, VAULT, SRC_FABRIC, {"properties": {"customDetails": {
        "instanceType": "Azure", "location": SOURCE}}}).result()
    assert again.name == SRC_FABRIC and again.properties.custom_details["location"] == SOURCE
    infrastructure(asr, dr)  # the whole chain again: every object answered as it is
    item = enable(asr, dr, vms[0]).result()
    assert item.properties.protection_state == "Protected"
    assert len(list(asr.replication_jobs.list(RG, VAULT))) == jobs_before  # nothing ran, nothing was made
    assert {d.id for d in compute.disks.list_by_resource_group(TARGET_RG)} == replicas_before

    with pytest.raises(ResourceExistsError) as err:  # same name, another region
        asr.replication_fabrics.begin_create(RG, VAULT, SRC_FABRIC, {"properties": {"customDetails": {
            "instanceType": "Azure", "location": "eastus"}}})
    assert code_of(err) == "ResourceAlreadyExists"
    with pytest.raises(HttpResponseError) as err:  # another name, a region that has its fabric
        asr.replication_fabrics.begin_create(RG, VAULT, "second-weu", {"properties": {"customDetails": {
            "instanceType": "Azure", "location": SOURCE}}})
    assert err.value.status_code == 400 and code_of(err) == "FabricAlreadyExistsForLocation"
    with pytest.raises(ResourceExistsError):  # the policy with other settings: that is an update (PATCH)
        asr.replication_policies.begin_create(RG, VAULT, POLICY, {"properties": {"providerSpecificInput": {
            "instanceType": "A2A", "recoveryPointHistory": 720, "multiVmSyncStatus": "Enable"}}})
    with pytest.raises(ResourceExistsError):  # the item's name for another VM
        asr.replication_protected_items.begin_create(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vms[0].name,
                                                     enable_input(dr, vms[1]))
    with pytest.raises(HttpResponseError) as err:  # the same VM under another name
        enable(asr, dr, vms[0], name="another-name")
    assert err.value.status_code == 400 and code_of(err) == "VmAlreadyProtected"
    assert err.value.error.target == "properties.providerSpecificDetails.fabricObjectId"


def test_bad_input_is_refused_naming_the_field(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    cases = [
        ({"instanceType": "HyperVReplicaAzure"}, "properties.providerSpecificDetails.instanceType"),
        ({"fabricObjectId": vm.id + "-missing"}, "properties.providerSpecificDetails.fabricObjectId"),
        ({"recoveryResourceGroupId": dr["target_rg"] + "-missing"}, "properties.providerSpecificDetails.recoveryResourceGroupId"),
        ({"vmManagedDisks": [{"diskId": vm.storage_profile.os_disk.managed_disk.id,
                              "primaryStagingAzureStorageAccountId": "not-an-id", "recoveryResourceGroupId": dr["target_rg"]}]},
         "properties.providerSpecificDetails.vmManagedDisks[0].primaryStagingAzureStorageAccountId"),
    ]
    for override, target in cases:
        body = enable_input(dr, vm)
        body["properties"]["providerSpecificDetails"].update(override)
        with pytest.raises(HttpResponseError) as err:
            asr.replication_protected_items.begin_create(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name, body)
        assert err.value.status_code == 400 and err.value.error.target == target, (target, err.value.message)
    with pytest.raises(HttpResponseError) as err:
        asr.replication_policies.begin_create(RG, VAULT, "bad", {"properties": {"providerSpecificInput": {
            "instanceType": "A2A", "appConsistentFrequencyInMinutes": 30, "multiVmSyncStatus": "Enable"}}})
    assert err.value.error.target == "properties.providerSpecificInput.appConsistentFrequencyInMinutes"
    assert list(asr.replication_protected_items.list(RG, VAULT)) == []  # nothing made when refusing


# --- test failover --------------------------------------------------------------------------------------------
def test_test_failover_makes_a_vm_in_the_target_group_and_cleanup_removes_it(az, asr, dr, compute, network):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    protect(az, asr, dr, vm)
    before = {r.id.lower() for r in compute.disks.list_by_resource_group(TARGET_RG)} | \
        {n.id.lower() for n in network.network_interfaces.list(TARGET_RG)}
    az.advance(10 * 60)
    newest = max(asr.recovery_points.list_by_replication_protected_items(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name),
                 key=lambda p: p.properties.recovery_point_time)

    item = asr.replication_protected_items.begin_test_failover(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name, {"properties": {
        "failoverDirection": "PrimaryToRecovery", "networkType": "VmNetworkAsInput", "networkId": dr["test_vnet"],
        "providerSpecificDetails": {"instanceType": "A2A", "recoveryPointId": newest.id}}}).result()
    props = item.properties
    assert (props.test_failover_state, props.allowed_operations) == ("WaitingForCompletion", ["TestFailoverCleanup"])
    assert props.failover_recovery_point_id.lower() == newest.id.lower()
    test_vm = compute.virtual_machines.get(TARGET_RG, f"{vm.name}-test", expand="instanceView")
    assert test_vm.location == TARGET and test_vm.provisioning_state == "Succeeded"
    nic = network.network_interfaces.get(TARGET_RG, test_vm.network_profile.network_interfaces[0].id.rsplit("/", 1)[1])
    assert nic.ip_configurations[0].subnet.id.lower().startswith(dr["test_vnet"].lower() + "/subnets/")
    test_disks = [d for d in compute.disks.list_by_resource_group(TARGET_RG) if d.name.endswith("-test")]
    assert len(test_disks) == 1 + len(vm.storage_profile.data_disks) and all(d.managed_by == test_vm.id for d in test_disks)
    az.advance(5)
    statuses = {s.code for s in compute.virtual_machines.instance_view(TARGET_RG, test_vm.name).statuses}
    assert "PowerState/running" in statuses
    assert compute.virtual_machines.get(vm.id.split("/")[4], vm.name).provisioning_state == "Succeeded"  # source untouched

    with pytest.raises(HttpResponseError) as err:  # a second one while the first awaits its cleanup
        asr.replication_protected_items.begin_test_failover(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name, {"properties": {
            "networkId": dr["test_vnet"], "providerSpecificDetails": {"instanceType": "A2A"}}})
    assert err.value.status_code == 400 and code_of(err) == "OperationNotAllowedInCurrentState"
    assert "cleanup" in err.value.message.lower()

    item = asr.replication_protected_items.begin_test_failover_cleanup(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name, {
        "properties": {"comments": "drill passed"}}).result()
    assert (item.properties.test_failover_state, item.properties.protection_state) == ("None", "Protected")
    assert item.properties.last_successful_test_failover_time is not None
    after = {r.id.lower() for r in compute.disks.list_by_resource_group(TARGET_RG)} | \
        {n.id.lower() for n in network.network_interfaces.list(TARGET_RG)}
    assert after == before  # nothing of the test is left
    assert f"{vm.name}-test" not in {v.name for v in compute.virtual_machines.list(TARGET_RG)}
    events = az.admin("GET", "events")["value"]
    written = {e["subject"].lower() for e in events if e["eventType"].endswith("WriteSuccess")}
    deleted = {e["subject"].lower() for e in events if e["eventType"].endswith("DeleteSuccess")}
    assert test_vm.id.lower() in written and test_vm.id.lower() in deleted


def test_wrong_states_are_refused_with_asr_errors(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    enable(asr, dr, vm).result()
    args = (RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)
    with pytest.raises(HttpResponseError) as err:  # initial replication still running
        asr.replication_protected_items.begin_test_failover(*args, {"properties": {"networkId": dr["test_vnet"]}})
    assert code_of(err) == "OperationNotAllowedInCurrentState"
    az.advance(IR_SECONDS + 1)
    with pytest.raises(HttpResponseError) as err:
        asr.replication_protected_items.begin_failover_commit(*args)
    assert err.value.status_code == 400 and code_of(err) == "OperationNotAllowedInCurrentState"
    assert "not failed over" in err.value.message
    with pytest.raises(HttpResponseError) as err:
        asr.replication_protected_items.begin_test_failover_cleanup(*args, {"properties": {}})
    assert "no test failover" in err.value.message.lower()
    with pytest.raises(HttpResponseError) as err:
        asr.replication_protected_items.begin_reprotect(*args, {"properties": {"providerSpecificDetails": {"instanceType": "A2A"}}})
    assert code_of(err) == "OperationNotAllowedInCurrentState"
    with pytest.raises(HttpResponseError) as err:  # the other direction is not possible before a failover
        asr.replication_protected_items.begin_unplanned_failover(*args, {"properties": {
            "failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}})
    assert err.value.error.target == "properties.failoverDirection"
    info = err.value.error.additional_info
    assert info is None or all(i.type == "SiteRecoveryErrorDetails" for i in info)
    assert get_item(asr, vm.name).properties.protection_state == "Protected"  # nothing changed


# --- failover, commit, reprotect ----------------------------------------------------------------------------------
def test_failover_commit_and_reprotect_reverse_the_replication(az, asr, dr, compute, network):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    map_network(asr, dr, vm)
    protect(az, asr, dr, vm)
    az.advance(6 * 60)
    args = (RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)
    item = asr.replication_protected_items.begin_unplanned_failover(*args, {"properties": {
        "failoverDirection": "PrimaryToRecovery", "sourceSiteOperations": "NotRequired",
        "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    props = item.properties
    assert (props.protection_state, props.active_location) == ("UnplannedFailoverCompleted", "Recovery")
    assert props.allowed_operations == ["Commit", "DisableProtection"]
    recovered = compute.virtual_machines.get(TARGET_RG, vm.name)
    assert recovered.location == TARGET
    assert recovered.storage_profile.os_disk.managed_disk.id.lower().endswith("-asrreplica")  # on the replica disks
    nic = network.network_interfaces.get(TARGET_RG, recovered.network_profile.network_interfaces[0].id.rsplit("/", 1)[1])
    assert nic.ip_configurations[0].subnet.id.lower().startswith(dr["recovery_vnet"].lower() + "/subnets/")
    source_view = compute.virtual_machines.instance_view(vm.id.split("/")[4], vm.name)
    assert "PowerState/running" in {s.code for s in source_view.statuses}  # NotRequired: the source is left alone

    item = asr.replication_protected_items.begin_failover_commit(*args).result()
    assert (item.properties.protection_state, item.properties.allowed_operations) == (
        "FailoverCommitted", ["ReverseReplicate", "DisableProtection"])
    item = asr.replication_protected_items.begin_reprotect(*args, {"properties": {
        "failoverDirection": "RecoveryToPrimary", "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    a2a = details(item)
    assert (a2a["primaryFabricLocation"], a2a["recoveryFabricLocation"]) == (TARGET, SOURCE)
    assert a2a["fabricObjectId"].lower() == recovered.id.lower()
    assert item.properties.protection_state == "InitialReplicationInProgress"
    az.advance(IR_SECONDS + 1)
    item = get_item(asr, vm.name)
    assert (item.properties.protection_state, item.properties.active_location) == ("Protected", "Recovery")
    back = [d.name for d in compute.disks.list_by_resource_group(vm.id.split("/")[4]) if d.name.endswith("-ASRReplica-ASRReplica")]
    assert len(back) == 1 + len(vm.storage_profile.data_disks)
    jobs = [j.properties.scenario_name for j in asr.replication_jobs.list(RG, VAULT)]
    assert ["UnplannedFailover", "Commit", "ReverseReplication"] == [j for j in jobs if j in (
        "UnplannedFailover", "Commit", "ReverseReplication")]


def test_reprotect_needs_the_reverse_container_mapping(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr, reverse=False)
    map_network(asr, dr, vm)
    protect(az, asr, dr, vm)
    args = (RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)
    asr.replication_protected_items.begin_planned_failover(*args, {"properties": {"failoverDirection": "PrimaryToRecovery"}}).result()
    view = compute.virtual_machines.instance_view(vm.id.split("/")[4], vm.name)
    assert "PowerState/deallocated" in {s.code for s in view.statuses}  # planned: the source is shut down first
    asr.replication_protected_items.begin_failover_commit(*args).result()
    with pytest.raises(HttpResponseError) as err:
        asr.replication_protected_items.begin_reprotect(*args, {"properties": {"providerSpecificDetails": {"instanceType": "A2A"}}})
    assert code_of(err) == "ContainerMappingNotFound"
    assert err.value.error.target == "properties.providerSpecificDetails.recoveryContainerId"


# --- recovery plans -----------------------------------------------------------------------------------------------------
def test_recovery_plan_fails_over_group_by_group_in_boot_order(az, emu, asr, dr, compute):
    vms = list(compute.virtual_machines.list_all())[:3]
    infrastructure(asr, dr)
    for vm in {v.id.split("/")[4]: v for v in vms}.values():  # each source group's VNet
        map_network(asr, dr, vm)
    for vm in vms:
        enable(asr, dr, vm).result()
    az.advance(IR_SECONDS + 1)
    item_id = {vm.name: get_item(asr, vm.name).id for vm in vms}
    groups = [{"groupType": "Boot", "replicationProtectedItems": [{"id": item_id[v.name]} for v in vms[:2]]},
              {"groupType": "Boot", "replicationProtectedItems": [{"id": item_id[vms[2].name]}]}]
    plan = asr.replication_recovery_plans.begin_create(RG, VAULT, "billing", {"properties": {
        "primaryFabricId": f"{dr['vault']}/replicationFabrics/{SRC_FABRIC}",
        "recoveryFabricId": f"{dr['vault']}/replicationFabrics/{TGT_FABRIC}", "failoverDeploymentModel": "ResourceManager",
        "groups": groups}}).result()
    assert [g.group_type for g in plan.properties.groups] == ["Shutdown", "Failover", "Boot", "Boot"]
    assert set(plan.properties.allowed_operations) == {"PlannedFailover", "UnplannedFailover", "TestFailover"}

    az.settings(lro={"per_type": {"Microsoft.RecoveryServices/vaults/replicationRecoveryPlans/testFailover": 2.0}})
    poller = asr.replication_recovery_plans.begin_test_failover(RG, VAULT, "billing", {"properties": {
        "failoverDirection": "PrimaryToRecovery", "networkType": "VmNetworkAsInput", "networkId": dr["test_vnet"],
        "providerSpecificDetails": [{"instanceType": "A2A", "recoveryPointType": "LatestProcessed"}]}})
    az.advance(2.5)  # past the first group's part, before the second's
    names = {v.name for v in compute.virtual_machines.list(TARGET_RG)}
    assert {f"{v.name}-test" for v in vms[:2]} <= names and f"{vms[2].name}-test" not in names
    plan = poller.result()
    assert (plan.properties.current_scenario.scenario_name, plan.properties.current_scenario_status) == (
        "TestFailover", "Suspended")
    assert plan.properties.allowed_operations == ["TestFailoverCleanup"]
    created = {v.name: v.time_created for v in compute.virtual_machines.list(TARGET_RG)}
    assert max(created[f"{v.name}-test"] for v in vms[:2]) < created[f"{vms[2].name}-test"]
    job = asr.replication_jobs.get(RG, VAULT, plan.properties.current_scenario.job_id.rsplit("/", 1)[1])
    assert [t.friendly_name.split(":")[0] for t in job.properties.tasks] == ["Group 1", "Group 2"]
    assert vms[2].name in job.properties.tasks[1].friendly_name

    asr.replication_recovery_plans.begin_test_failover_cleanup(RG, VAULT, "billing", {"properties": {"comments": "ok"}}).result()
    assert not [v for v in compute.virtual_machines.list(TARGET_RG) if v.name.endswith("-test")]
    plan = asr.replication_recovery_plans.begin_planned_failover(RG, VAULT, "billing", {"properties": {
        "failoverDirection": "PrimaryToRecovery"}}).result()
    assert {v.name for v in compute.virtual_machines.list(TARGET_RG)} == {v.name for v in vms}
    assert plan.properties.allowed_operations == ["Commit"] or "Commit" in plan.properties.allowed_operations
    asr.replication_recovery_plans.begin_failover_commit(RG, VAULT, "billing").result()
    asr.replication_recovery_plans.begin_reprotect(RG, VAULT, "billing").result()
    az.advance(IR_SECONDS + 1)
    for vm in vms:
        item = get_item(asr, vm.name)
        assert (item.properties.protection_state, details(item)["primaryFabricLocation"]) == ("Protected", TARGET)


def test_recovery_plan_refuses_when_one_item_cannot(az, asr, dr, compute):
    vms = list(compute.virtual_machines.list_all())[:2]
    infrastructure(asr, dr)
    for vm in vms:
        enable(asr, dr, vm).result()
    az.advance(IR_SECONDS + 1)
    asr.replication_recovery_plans.begin_create(RG, VAULT, "app", {"properties": {
        "primaryFabricId": f"{dr['vault']}/replicationFabrics/{SRC_FABRIC}",
        "recoveryFabricId": f"{dr['vault']}/replicationFabrics/{TGT_FABRIC}",
        "groups": [{"groupType": "Boot", "replicationProtectedItems": [{"id": get_item(asr, v.name).id} for v in vms]}]}}).result()
    asr.replication_protected_items.begin_test_failover(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vms[1].name, {"properties": {
        "networkId": dr["test_vnet"], "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    with pytest.raises(HttpResponseError) as err:
        asr.replication_recovery_plans.begin_test_failover(RG, VAULT, "app", {"properties": {
            "networkId": dr["test_vnet"], "providerSpecificDetails": [{"instanceType": "A2A", "recoveryPointType": "Latest"}]}})
    assert code_of(err) == "OperationNotAllowedInCurrentState" and vms[1].name in err.value.message
    assert get_item(asr, vms[0].name).properties.test_failover_state == "None"  # nothing started for the other
    assert [v.name for v in compute.virtual_machines.list(TARGET_RG)] == [f"{vms[1].name}-test"]


# --- eligibility, disable, purge, health --------------------------------------------------------------------------------
def test_eligibility_reports_azures_reason_and_enable_refuses_the_vm(az, asr, dr, compute, network):
    fleet_vm = next(iter(compute.virtual_machines.list_all()))
    rg = fleet_vm.id.split("/")[4]
    ok = asr.replication_eligibility_results.get(rg, fleet_vm.name)
    assert ok.name == "default" and ok.properties.errors == []
    nic = network.network_interfaces.begin_create_or_update(rg, "old-nic", {"location": SOURCE, "properties": {
        "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": source_vnet(fleet_vm) + "/subnets/default"}}}]}}).result()
    old = compute.virtual_machines.begin_create_or_update(rg, "old-ubuntu", {
        "location": SOURCE, "properties": {"hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                                           "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "UbuntuServer",
                                                                                 "sku": "18.04-LTS", "version": "latest"},
                                                              "osDisk": {"createOption": "FromImage"}},
                                           "osProfile": {"computerName": "old", "adminUsername": "azureuser"},
                                           "networkProfile": {"networkInterfaces": [{"id": nic.id}]}}}).result()
    result = asr.replication_eligibility_results.get(rg, "old-ubuntu")
    (error,) = result.properties.errors
    assert error.code == "A2AOperatingSystemNotSupported" and "18.04" in error.message
    assert error.recommended_action and error.possible_causes and error.status == "Error"
    infrastructure(asr, dr)
    with pytest.raises(HttpResponseError) as err:
        enable(asr, dr, old)
    assert code_of(err) == "A2AOperatingSystemNotSupported"
    with pytest.raises(HttpResponseError) as err:
        asr.replication_eligibility_results.get(rg, "no-such-vm")
    assert err.value.status_code == 404


def test_disable_is_refused_with_150144_when_the_vm_is_not_running_and_purge_removes_the_item(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    rg = vm.id.split("/")[4]
    infrastructure(asr, dr)
    protect(az, asr, dr, vm)
    compute.virtual_machines.begin_deallocate(rg, vm.name).result()
    args = (RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)
    with pytest.raises(HttpResponseError) as err:
        asr.replication_protected_items.begin_delete(*args, {"properties": {"disableProtectionReason": "NotSpecified"}}).result()
    assert code_of(err) == "150144"
    item = get_item(asr, vm.name)  # kept, back to what it was
    assert item.properties.protection_state == "Protected"
    job = next(j for j in asr.replication_jobs.list(RG, VAULT) if j.properties.scenario_name == "DisableDr")
    assert job.properties.state == "Failed" and job.properties.errors[0].service_error_details["code"] == "150144"

    asr.replication_protected_items.begin_purge(*args).result()
    with pytest.raises(HttpResponseError) as err:
        get_item(asr, vm.name)
    assert err.value.status_code == 404
    assert not [d for d in compute.disks.list_by_resource_group(TARGET_RG) if d.name.endswith("-ASRReplica")]
    assert asr.replication_protected_items.begin_purge(*args).result() is None  # gone: 204


def test_disable_of_a_running_vm_removes_item_and_replicas(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    protect(az, asr, dr, vm)
    asr.replication_protected_items.begin_delete(RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name,
                                                 {"properties": {"disableProtectionReason": "NotSpecified"}}).result()
    assert list(asr.replication_protected_items.list(RG, VAULT)) == []
    assert not [d for d in compute.disks.list_by_resource_group(TARGET_RG) if d.name.endswith("-ASRReplica")]


def test_a_stalled_replication_turns_unhealthy_as_its_rpo_grows(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    item = protect(az, asr, dr, vm)
    az.admin("POST", "siterecovery/stall", {"protectedItemId": item.id, "stalled": True})
    az.advance(30 * 60)
    assert get_item(asr, vm.name).properties.replication_health == "Normal"  # within the threshold
    az.advance(31 * 60)
    item = get_item(asr, vm.name)
    assert item.properties.replication_health == "Warning" and details(item)["rpoInSeconds"] > 3600
    (error,) = item.properties.health_errors
    assert error.error_code == "RpoThresholdExceeded" and error.recommended_action
    az.admin("POST", "siterecovery/stall", {"protectedItemId": item.id, "stalled": False})
    az.advance(5 * 60)
    item = get_item(asr, vm.name)
    assert item.properties.replication_health == "Normal" and item.properties.health_errors == []


# --- conformance replay of the official examples ---------------------------------------------------------------
SHARED = Path(__file__).resolve().parents[3] / "shared" / "azure-api" / "next"
EXAMPLES = SHARED / "examples" / "Microsoft.RecoveryServices.SiteRecovery" / "2025-08-01"
SPEC = SHARED / "specs" / "Microsoft.RecoveryServices.SiteRecovery" / "2025-08-01" / "service.a2a-replication.excerpt.json"
# Hyper-V/VMM-flavoured requests (a provider-specific instanceType other than A2A/Azure/AzureToAzure, or a recovery
# fabric "Microsoft Azure"): the A2A emulator refuses them with 400 naming the field; noted in emulator/README.md.
NOT_A2A = {
    "ReplicationFabrics_Create": "properties.customDetails.instanceType",
    "ReplicationNetworkMappings_Create": "properties.fabricSpecificDetails.instanceType",
    "ReplicationPolicies_Create": "properties.providerSpecificInput.instanceType",
    "ReplicationProtectionContainers_Create": "properties.providerSpecificInput",
    "ReplicationProtectionContainerMappings_Create": "properties.providerSpecificInput.instanceType",
    "ReplicationProtectedItems_Create": "properties.providerSpecificDetails.instanceType",
    "ReplicationProtectedItems_TestFailover": "properties.providerSpecificDetails.instanceType",
    "ReplicationProtectedItems_PlannedFailover": "properties.providerSpecificDetails.instanceType",
    "ReplicationProtectedItems_UnplannedFailover": "properties.providerSpecificDetails.instanceType",
    "ReplicationProtectedItems_Reprotect": "properties.providerSpecificDetails.instanceType",
    "ReplicationRecoveryPlans_Create": "properties.recoveryFabricId",
    "ReplicationRecoveryPlans_TestFailover": "properties.providerSpecificDetails",
    "ReplicationRecoveryPlans_PlannedFailover": "properties.providerSpecificDetails",
    "ReplicationRecoveryPlans_UnplannedFailover": "properties.providerSpecificDetails",
}
# Keys of the examples' answers that are Hyper-V/VMM's own (their A2A counterparts are in providerSpecificDetails).
EXAMPLE_ONLY = {
    "properties.customDetails.affectedObjectDetails.PrimaryVmmId", "properties.customDetails.affectedObjectDetails.PrimaryVmmName",
    "properties.customDetails.affectedObjectDetails.RecoveryVmmId",
    "properties.customDetails.affectedObjectDetails.PrimaryFabricProviderId",
    "properties.customDetails.affectedObjectDetails.RecoveryFabricProviderId",
    "nextLink",
}
RECOVERY_FABRIC, RECOVERY_CONTAINER = "recovery-fabric", "recovery-container"


def _spec_paths() -> dict[str, tuple[str, str]]:
    spec = json.loads(SPEC.read_text())
    out = {}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "operationId" in op:
                out[op["operationId"]] = (method.upper(), path)
    return out


def _shape(obj, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else k
            keys.add(path)
            keys |= _shape(v, path)
    elif isinstance(obj, list):
        for v in obj:
            keys |= _shape(v, prefix)
    return keys


def _send(az, client, method: str, path: str, body=None):
    return client._client.send_request(HttpRequest(method, f"{az.base_url}{path}?api-version=2025-08-01", json=body))


def _world(az, emu, client, p: dict, *, item: bool = True) -> dict:
    """The example's vault, fabric, container, policy, mapping and (``item``) replicated item, under its own names,
    made A2A: a VM in the source region protected to a recovery fabric in the target region."""
    from emulator.compute import models as cm
    from emulator.network.responses import new_nic, new_vnet

    sub, rg, vault_name = p["subscriptionId"], p["resourceGroupName"], p["resourceName"]
    vault_id = seed_vault(emu, sub, rg, vault_name, TARGET)
    with emu.lock:
        store, t = emu.store, emu.clock.timestamp()
        store.put_resource_group(sub, "rg-source", SOURCE)
        store.put_resource_group(sub, "rg-target", TARGET)
        for vnet_rg, name, region in (("rg-source", "vnet-source", SOURCE), ("rg-target", "vnet-recovery", TARGET),
                                      ("rg-target", "vnet-drill", TARGET)):
            store.put(new_vnet(sub, vnet_rg, name, region, ["10.0.0.0/16"],
                               [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}], None, t))
        subnet = f"/subscriptions/{sub}/resourceGroups/rg-source/providers/Microsoft.Network/virtualNetworks/vnet-source/subnets/default"
        nic = store.put(new_nic(sub, "rg-source", "vm1-nic", SOURCE, subnet, None, t))
        disk = cm.new_disk(sub, "rg-source", "vm1-osdisk", SOURCE, t, size_gb=64, os_type="Linux")
        vm = cm.new_vm(sub, "rg-source", "vm1", SOURCE, t, size="Standard_D2s_v5", storage={"osDisk": {
            "osType": "Linux", "name": disk.name, "createOption": "Attach", "managedDisk": {"id": disk.id}}, "dataDisks": []},
            network={"networkInterfaces": [{"id": nic.id}]}, tags=None, state="Succeeded")
        cm.attach_disk(disk, vm.id)
        store.put(disk)
        nic.properties["virtualMachine"] = {"id": vm.id}
        store.put(vm)
    vault = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault_name}"
    fabric = p.get("fabricName", "cloud1")
    container = p.get("protectionContainerName", "cloud_6d224fc6-f326-5d35-96de-fbf51efb3179")
    for name, region in ((fabric, SOURCE), (RECOVERY_FABRIC, TARGET)):
        assert _send(az, client, "PUT", f"{vault}/replicationFabrics/{name}", {"properties": {"customDetails": {
            "instanceType": "Azure", "location": region}}}).status_code == 202
    az.advance(1)
    for name, cont in ((fabric, container), (RECOVERY_FABRIC, RECOVERY_CONTAINER)):
        _send(az, client, "PUT", f"{vault}/replicationFabrics/{name}/replicationProtectionContainers/{cont}",
              {"properties": {"providerSpecificInput": [{"instanceType": "A2A"}]}})
    policy = p.get("policyName", "protectionprofile1")
    _send(az, client, "PUT", f"{vault}/replicationPolicies/{policy}", {"properties": {"providerSpecificInput": {
        "instanceType": "A2A", "multiVmSyncStatus": "Disable"}}})
    az.advance(1)
    source_container = f"{vault}/replicationFabrics/{fabric}/replicationProtectionContainers/{container}"
    recovery_container = f"{vault}/replicationFabrics/{RECOVERY_FABRIC}/replicationProtectionContainers/{RECOVERY_CONTAINER}"
    for base, target, name in ((source_container, recovery_container, p.get("mappingName", "cloud1protectionprofile1")),
                               (recovery_container, source_container, "reverse")):
        _send(az, client, "PUT", f"{base}/replicationProtectionContainerMappings/{name}", {"properties": {
            "targetProtectionContainerId": target, "policyId": f"{vault}/replicationPolicies/{policy}",
            "providerSpecificInput": {"instanceType": "A2A"}}})
    az.advance(1)
    world = {"vault": vault, "vault_id": vault_id, "source_container": source_container, "vm": vm.id,
             "drill": f"/subscriptions/{sub}/resourceGroups/rg-target/providers/Microsoft.Network/virtualNetworks/vnet-drill"}
    if item:
        name = p.get("replicatedProtectedItemName", "f8491e4f-817a-40dd-a90c-af773978c75b")
        resp = _send(az, client, "PUT", f"{source_container}/replicationProtectedItems/{name}", {"properties": {
            "policyId": f"{vault}/replicationPolicies/{policy}", "providerSpecificDetails": {
                "instanceType": "A2A", "fabricObjectId": vm.id, "recoveryContainerId": recovery_container,
                "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/rg-target",
                "recoveryAzureNetworkId": f"/subscriptions/{sub}/resourceGroups/rg-target/providers/Microsoft.Network/virtualNetworks/vnet-recovery",
                "vmManagedDisks": [{"diskId": disk.id, "recoveryResourceGroupId": f"/subscriptions/{sub}/resourceGroups/rg-target",
                                    "primaryStagingAzureStorageAccountId": f"/subscriptions/{sub}/resourceGroups/rg-source/"
                                                                           "providers/Microsoft.Storage/storageAccounts/cache"}]}}})
        assert resp.status_code == 202, resp.text()
        az.advance(IR_SECONDS + 2)
        az.advance(10 * 60)
        world["item"] = f"{source_container}/replicationProtectedItems/{name}"
    return world


def _wait(az, client, resp) -> None:
    """Follow an accepted operation's Azure-AsyncOperation to its end, as a poller would."""
    assert resp.status_code == 202, resp.text()
    for _ in range(200):
        az.advance(1)
        status = client._client.send_request(HttpRequest("GET", resp.headers["Azure-AsyncOperation"])).json()
        if status["status"] != "InProgress":
            assert status["status"] == "Succeeded", status
            return
    raise AssertionError("operation did not end")


def _arrange(az, emu, client, ex: dict) -> dict:
    p = dict(ex["parameters"])
    op = ex["operationId"]
    sub = p["subscriptionId"]
    with emu.lock:
        emu.store.add_subscription(sub)
    if op == "ReplicationEligibilityResults_Get":  # the example's VM, running an OS A2A does not support
        from emulator.compute import models as cm

        with emu.lock:
            emu.store.put_resource_group(sub, p["resourceGroupName"], SOURCE)
            vm = cm.new_vm(sub, p["resourceGroupName"], p["virtualMachineName"], SOURCE, emu.clock.timestamp(),
                           size="Standard_D2s_v5", storage={"imageReference": {"publisher": "Canonical", "sku": "18.04-LTS"},
                                                            "osDisk": {}}, network={}, tags=None, state="Succeeded")
            emu.store.put(vm)
        return p
    if op.startswith("ReplicationNetworkMappings"):
        world = _world(az, emu, client, dict(p, resourceName=p["resourceName"]), item=False)
        sub_rg = f"/subscriptions/{sub}/resourceGroups"
        resp = _send(az, client, "PUT", f"{world['vault']}/replicationFabrics/{p['fabricName']}/replicationNetworks/"
                                        f"{p['networkName']}/replicationNetworkMappings/{p['networkMappingName']}", {"properties": {
            "recoveryFabricName": RECOVERY_FABRIC,
            "recoveryNetworkId": f"{sub_rg}/rg-target/providers/Microsoft.Network/virtualNetworks/vnet-recovery",
            "fabricSpecificDetails": {"instanceType": "AzureToAzure",
                                      "primaryNetworkId": f"{sub_rg}/rg-source/providers/Microsoft.Network/virtualNetworks/vnet-source"}}})
        _wait(az, client, resp)
        return p
    world = _world(az, emu, client, p, item=op not in ("ReplicationProtectionContainerMappings_Delete",
                                                       "ReplicationProtectedItems_Create"))
    item, vault = world.get("item"), world["vault"]
    if op in ("ReplicationProtectedItems_TestFailoverCleanup",):
        _wait(az, client, _send(az, client, "POST", f"{item}/testFailover", {"properties": {
            "networkId": world["drill"], "providerSpecificDetails": {"instanceType": "A2A"}}}))
    if op in ("ReplicationProtectedItems_FailoverCommit",):
        _wait(az, client, _send(az, client, "POST", f"{item}/unplannedFailover", {"properties": {
            "providerSpecificDetails": {"instanceType": "A2A"}}}))
    if op.startswith("ReplicationRecoveryPlans") and op != "ReplicationRecoveryPlans_Create":
        plan = f"{vault}/replicationRecoveryPlans/{p['recoveryPlanName']}"
        _wait(az, client, _send(az, client, "PUT", plan, {"properties": {
            "primaryFabricId": f"{vault}/replicationFabrics/cloud1", "recoveryFabricId": f"{vault}/replicationFabrics/{RECOVERY_FABRIC}",
            "groups": [{"groupType": "Boot", "replicationProtectedItems": [{"id": item}]}]}}))
        if op == "ReplicationRecoveryPlans_TestFailoverCleanup":
            _wait(az, client, _send(az, client, "POST", f"{plan}/testFailover", {"properties": {"networkId": world["drill"]}}))
        if op in ("ReplicationRecoveryPlans_FailoverCommit", "ReplicationRecoveryPlans_Reprotect"):
            _wait(az, client, _send(az, client, "POST", f"{plan}/unplannedFailover", {"properties": {}}))
        if op == "ReplicationRecoveryPlans_Reprotect":
            _wait(az, client, _send(az, client, "POST", f"{plan}/failoverCommit"))
    if op == "ReplicationJobs_Get":  # the example's job id for a job the world ran
        with emu.lock:
            job = emu.store.of_type("Microsoft.RecoveryServices/vaults/replicationJobs", world["vault_id"])[0]
            emu.store.delete(job.id)
            job.id, job.name = f"{job.id.rsplit('/', 1)[0]}/{p['jobName']}", p["jobName"]
            emu.store.put(job)
    return p


def test_conformance_replay_of_site_recovery_examples(az, emu, capsys):
    paths = _spec_paths()
    files = sorted(EXAMPLES.glob("*.json"))
    assert len(files) == 35, f"examples under {EXAMPLES}"
    replayed, refused = [], []
    for path in files:
        ex = json.loads(path.read_text())
        ex.setdefault("operationId", path.stem)
        op = ex["operationId"]
        az.reset()
        az.settings(lro={"default_seconds": 0.05, "retry_after_ms": 20}, siterecovery={"initial_replication_seconds": IR_SECONDS})
        client = az.client(SiteRecoveryManagementClient, ex["parameters"]["subscriptionId"], polling_interval=0)
        params = _arrange(az, emu, client, ex)
        method, template = paths[op]
        url = re.sub(r"\{(\w+)\}", lambda mt, p=params: urllib.parse.quote(p[mt.group(1)], safe=""), template)
        body = next((v for v in params.values() if isinstance(v, dict)), None)
        resp = _send(az, client, method, url, body)
        where = f"{path.name} ({op})"
        if op in NOT_A2A:
            assert resp.status_code == 400, f"{where}: {resp.status_code} {resp.text()[:300]}"
            assert resp.json()["error"]["target"] == NOT_A2A[op], f"{where}: {resp.text()[:300]}"
            refused.append(where)
            continue
        codes = {int(c) for c in ex["responses"]}
        assert resp.status_code in codes, f"{where}: {resp.status_code} not in {sorted(codes)}: {resp.text()[:300]}"
        expected = ex["responses"][str(resp.status_code)]
        if expected.get("body"):
            missing = _shape(expected["body"]) - _shape(resp.json()) - EXAMPLE_ONLY
            assert not missing, f"{where}: keys missing from the emulator's body: {sorted(missing)}"
        for header in expected.get("headers") or {}:
            if method == "GET":
                continue  # the examples' reads carry the monitor headers of another call
            alternatives = {header.lower()} | ({"retry-after-ms"} if header.lower() == "retry-after" else set())
            assert alternatives & {h.lower() for h in resp.headers}, f"{where}: header {header} missing"
        if resp.status_code == 202:
            _wait(az, client, resp)
        replayed.append(where)
    with capsys.disabled():
        print(f"\nreplayed {len(replayed)} Site Recovery examples; {len(refused)} Hyper-V/VMM-flavoured ones refused as not A2A")
    assert len(replayed) + len(refused) == len(files) and len(replayed) == 21


def test_a_failed_test_failover_leaves_nothing_and_can_be_cleaned_up(az, asr, dr, compute):
    vm = next(iter(compute.virtual_machines.list_all()))
    infrastructure(asr, dr)
    protect(az, asr, dr, vm)
    az.faults([{"kind": "lro_failed", "operation": ".*/replicationProtectedItems/testFailover/action", "count": 1}])
    args = (RG, VAULT, SRC_FABRIC, SRC_CONTAINER, vm.name)
    with pytest.raises(HttpResponseError):
        asr.replication_protected_items.begin_test_failover(*args, {"properties": {
            "networkId": dr["test_vnet"], "providerSpecificDetails": {"instanceType": "A2A"}}}).result()
    item = get_item(asr, vm.name)
    assert (item.properties.test_failover_state, item.properties.allowed_operations) == ("Failed", ["TestFailoverCleanup"])
    assert f"{vm.name}-test" not in {v.name for v in compute.virtual_machines.list(TARGET_RG)}
    job = next(j for j in asr.replication_jobs.list(RG, VAULT) if j.properties.scenario_name == "TestFailover")
    assert job.properties.state == "Failed" and job.properties.errors
    item = asr.replication_protected_items.begin_test_failover_cleanup(*args, {"properties": {}}).result()
    assert item.properties.test_failover_state == "None" and item.properties.last_successful_test_failover_time is None
    assert "TestFailover" in item.properties.allowed_operations
