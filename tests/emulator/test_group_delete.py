"""An isolated resource group, as a DR drill makes one, through the real clients (azure-mgmt-resource,
-network, -compute, -resourcegraph): a VNet without peerings, a NIC joining its subnet, a VM, disks and
a snapshot; then the group's delete (azure-mgmt-resource's poller on the Location monitor) takes all of
it, each resource as its provider deletes it, and nothing outside the group — one call in the log."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    CreationData,
    DataDisk,
    Disk,
    HardwareProfile,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    Snapshot,
    StorageProfile,
    VirtualMachine,
)
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import (
    AddressSpace,
    NetworkInterface,
    NetworkInterfaceIPConfiguration,
    Subnet,
    VirtualNetwork,
)
from azure.mgmt.resource.resources.models import ResourceGroup
from azure.mgmt.resourcegraph.models import QueryRequest

DR = "rg-drill"
REGION = "northeurope"
GROUP_DELETE = "Microsoft.Resources/subscriptions/resourceGroups/delete"


@pytest.fixture
def network(az, sub):
    return az.client(NetworkManagementClient, sub, polling_interval=0)


def isolated_vnet(network, rg: str = DR, region: str = REGION) -> VirtualNetwork:
    return network.virtual_networks.begin_create_or_update(rg, "vnet-drill", VirtualNetwork(
        location=region, address_space=AddressSpace(address_prefixes=["10.80.0.0/16"]),
        subnets=[Subnet(name="restore", address_prefix="10.80.1.0/24")])).result()


def nic_in(network, subnet_id: str, name: str, rg: str = DR, region: str = REGION) -> NetworkInterface:
    return network.network_interfaces.begin_create_or_update(rg, name, NetworkInterface(
        location=region, ip_configurations=[NetworkInterfaceIPConfiguration(name="ipconfig1", subnet=Subnet(id=subnet_id))],
    )).result()


def vm_in(compute, name: str, nic_id: str, rg: str = DR, region: str = REGION,
          data_disks: list[DataDisk] | None = None) -> VirtualMachine:
    return compute.virtual_machines.begin_create_or_update(rg, name, VirtualMachine(
        location=region, hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(
            os_disk=OSDisk(create_option="FromImage", delete_option="Detach",
                           managed_disk=ManagedDiskParameters(storage_account_type="Premium_LRS")),
            data_disks=data_disks or []),
        network_profile=NetworkProfile(network_interfaces=[NetworkInterfaceReference(id=nic_id)]))).result()


def empty_disk(compute, rg: str, name: str, region: str = REGION) -> Disk:
    return compute.disks.begin_create_or_update(rg, name, Disk(
        location=region, disk_size_gb=32, creation_data=CreationData(create_option="Empty"))).result()


def graph_ids(graph, sub: str) -> set[str]:
    rows = graph.resources(QueryRequest(subscriptions=[sub], query="Resources | project id")).data
    return {row["id"].lower() for row in rows}


def test_a_new_vnet_has_no_peerings_and_its_subnet_takes_a_nic(resources, network):
    resources.resource_groups.create_or_update(DR, ResourceGroup(location=REGION))
    vnet = isolated_vnet(network)
    assert vnet.virtual_network_peerings == []
    assert list(network.virtual_network_peerings.list(DR, "vnet-drill")) == []
    with pytest.raises(ResourceNotFoundError):
        network.virtual_network_peerings.get(DR, "vnet-drill", "to-prod")
    (subnet,) = vnet.subnets
    assert subnet.id.lower().endswith(f"/resourcegroups/{DR}/providers/microsoft.network/virtualnetworks/vnet-drill/subnets/restore")
    assert subnet.address_prefix == "10.80.1.0/24"
    nic = nic_in(network, subnet.id, "drill-nic")
    assert nic.ip_configurations[0].subnet.id == subnet.id
    joined = network.subnets.get(DR, "vnet-drill", "restore")
    assert [c.id for c in joined.ip_configurations] == [nic.ip_configurations[0].id]
    assert [v.name for v in network.virtual_networks.list(DR)] == ["vnet-drill"]
    assert [s.name for s in network.subnets.list(DR, "vnet-drill")] == ["restore"]
    with pytest.raises(HttpResponseError) as err:  # peerings are not modelled: refused, never ignored
        network.virtual_networks.begin_create_or_update(DR, "vnet-peered", {
            "location": REGION, "properties": {"addressSpace": {"addressPrefixes": ["10.81.0.0/16"]},
                                               "virtualNetworkPeerings": [{"name": "to-prod"}]}})
    assert err.value.error.target == "properties.virtualNetworkPeerings"
    with pytest.raises(HttpResponseError) as err:
        network.virtual_networks.begin_create_or_update(DR, "vnet-unnamed", {
            "location": REGION, "properties": {"addressSpace": {"addressPrefixes": ["10.82.0.0/16"]},
                                               "subnets": [{"properties": {"addressPrefix": "10.82.0.0/24"}}]}})
    assert err.value.error.target == "properties.subnets[0].name"


def test_deleting_the_group_takes_everything_in_it_and_nothing_else(az, resources, network, compute, graph, sub):
    resources.resource_groups.create_or_update(DR, ResourceGroup(location=REGION))
    subnet = isolated_vnet(network).subnets[0]
    nic = nic_in(network, subnet.id, "drill-nic")
    outside = empty_disk(compute, "rg-vm-01", "kept-outside")  # another group's disk, lent to the drill VM
    vm = vm_in(compute, "drill-vm", nic.id, data_disks=[
        DataDisk(lun=0, create_option="Empty", disk_size_gb=32, delete_option="Detach"),
        DataDisk(lun=1, create_option="Attach", managed_disk=ManagedDiskParameters(id=outside.id))])
    data = compute.disks.get(DR, vm.storage_profile.data_disks[0].name)
    compute.snapshots.begin_create_or_update(DR, "drill-snap", Snapshot(
        location=REGION, incremental=True, creation_data=CreationData(create_option="Copy", source_resource_id=data.id))).result()
    empty_disk(compute, DR, "spare")
    before = graph_ids(graph, sub)
    in_group = {i for i in before if f"/resourcegroups/{DR}/".lower() in i}
    assert len(in_group) == 7  # VNet, NIC, VM, OS disk, data disk, spare disk, snapshot
    since = len(az.calls())

    az.settings(lro={"per_type": {"Microsoft.Resources/subscriptions/resourceGroups": 30}})
    poller = resources.resource_groups.begin_delete(DR)
    assert resources.resource_groups.get(DR).properties.provisioning_state == "Deleting"
    with pytest.raises(ResourceExistsError) as err:  # no new resources in a group being deleted
        empty_disk(compute, DR, "late")
    assert err.value.error.code == "ResourceGroupBeingDeleted"
    assert compute.virtual_machines.get(DR, "drill-vm")  # still there while the delete runs
    az.advance(30)
    assert poller.result() is None and poller.status() == "Succeeded"

    with pytest.raises(ResourceNotFoundError) as err:
        resources.resource_groups.get(DR)
    assert err.value.status_code == 404
    assert not resources.resource_groups.check_existence(DR)
    with pytest.raises(ResourceNotFoundError) as err:
        list(resources.resources.list_by_resource_group(DR))
    assert err.value.error.code == "ResourceGroupNotFound"
    after = graph_ids(graph, sub)
    assert after == before - in_group  # gone from Resource Graph; every other resource untouched
    assert not any(f"/resourcegroups/{DR}/".lower() in r.id.lower() for r in resources.resources.list())
    lent = compute.disks.get("rg-vm-01", "kept-outside")  # freed by its VM's delete, kept in its own group
    assert lent.disk_state == "Unattached" and lent.managed_by is None

    calls = az.calls(since)
    deletes = [c for c in calls if c["method"] == "DELETE"]
    assert [(c["operation"], c["path"]) for c in deletes] == [(GROUP_DELETE, f"/subscriptions/{sub}/resourcegroups/{DR}")]
    assert not any(c["operation"] and c["operation"].endswith("/delete") and c["operation"] != GROUP_DELETE for c in calls)


def test_a_group_holding_what_another_group_uses_is_kept(az, resources, network, compute, sub):
    resources.resource_groups.create_or_update(DR, ResourceGroup(location=REGION))
    empty_disk(compute, DR, "spare")
    lent = empty_disk(compute, DR, "lent", region="westeurope")
    subnet = network.subnets.get("rg-vm-00", "vnet-westeurope", "default")
    nic = nic_in(network, subnet.id, "holder-nic", rg="rg-vm-00", region="westeurope")
    vm_in(compute, "holder", nic.id, rg="rg-vm-00", region="westeurope", data_disks=[
        DataDisk(lun=0, create_option="Attach", managed_disk=ManagedDiskParameters(id=lent.id))])
    vnet = isolated_vnet(network)
    nic_in(network, vnet.subnets[0].id, "guest-nic", rg="rg-vm-01")  # another group's NIC in the drill's subnet

    with pytest.raises(HttpResponseError) as err:
        resources.resource_groups.begin_delete(DR).result()
    assert err.value.error.code == "ResourceGroupDeletionBlocked"
    assert sorted(d.target for d in err.value.error.details) == sorted([lent.id, vnet.id])
    group = resources.resource_groups.get(DR)  # rolled back, with what could not be deleted
    assert group.properties.provisioning_state == "Succeeded"
    assert sorted(r.name for r in resources.resources.list_by_resource_group(DR)) == ["lent", "vnet-drill"]
    assert compute.disks.get(DR, "lent").managed_by.lower().endswith("/virtualmachines/holder")
    empty_disk(compute, DR, "after")  # usable again
