"""Site Recovery (Azure-to-Azure) through the real SiteRecoveryManagementClient (azure-mgmt-recoveryservicessiterecovery
2.0.0, api-version 2025-08-01) against the emulator: the enable chain to Protected, recovery points on the emulated
clock, re-PUTs, test failover and its cleanup (a real VM, NIC and disks in the target group), failover, commit and
reprotect, recovery plans in boot order, wrong-state errors, eligibility, disable refused (150144) and purge.

The SDK's models are mappings (TypeSpec-generated): A2A details are read as ``item.properties.provider_specific_details
["rpoInSeconds"]`` or through their attributes alike."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
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
