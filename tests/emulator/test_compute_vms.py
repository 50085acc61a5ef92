"""Virtual machines through azure-mgmt-compute: create (validated as ARM validates), read,
instanceView, lists with paging, power actions, delete with disk/NIC delete options."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    DataDisk,
    HardwareProfile,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    StorageProfile,
    VirtualMachine,
    VirtualMachineUpdate,
)
from azure.mgmt.resource.resources.models import GenericResource

NET_API = "2024-05-01"


def make_nic(resources, sub: str, rg: str, name: str, location: str = "westeurope") -> str:
    vnet_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet-westeurope"
    nic_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}"
    body = GenericResource(location=location, properties={
        "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": f"{vnet_id}/subnets/default"}}}]})
    resources.resources.begin_create_or_update_by_id(nic_id, body, api_version=NET_API).result()
    return nic_id


def vm_body(nic_id: str, data_disks: list[DataDisk] | None = None, location: str = "westeurope") -> VirtualMachine:
    return VirtualMachine(
        location=location,
        tags={"env": "test"},
        hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(
            os_disk=OSDisk(create_option="FromImage", managed_disk=ManagedDiskParameters(storage_account_type="Premium_LRS"),
                           delete_option="Delete"),
            data_disks=data_disks or [DataDisk(lun=0, create_option="Empty", disk_size_gb=32)],
        ),
        network_profile=NetworkProfile(network_interfaces=[NetworkInterfaceReference(id=nic_id)]),
    )


def test_create_vm_makes_its_disks_and_reaches_succeeded(compute, resources, sub):
    nic = make_nic(resources, sub, "rg-vm-00", "nic-new")
    poller = compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-new", vm_body(nic))
    assert poller.status() != "Succeeded" or True  # the first answer is 201 Creating (checked below via raw)
    vm = poller.result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.vm_id
    os_disk = compute.disks.get("rg-vm-00", vm.storage_profile.os_disk.name)
    assert os_disk.managed_by.lower() == vm.id.lower()
    assert os_disk.disk_state == "Attached"
    data = compute.disks.get("rg-vm-00", vm.storage_profile.data_disks[0].name)
    assert data.disk_size_gb == 32


def test_first_answer_is_201_creating_then_200_on_update(az, compute, resources, sub):
    from azure.core.rest import HttpRequest

    nic = make_nic(resources, sub, "rg-vm-00", "nic-raw")
    url = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-raw?api-version=2026-04-01"
    body = vm_body(nic).as_dict()
    first = compute._client.send_request(HttpRequest("PUT", az.base_url + url, json=body))
    assert first.status_code == 201
    assert first.json()["properties"]["provisioningState"] == "Creating"
    assert "Azure-AsyncOperation" in first.headers and "Location" in first.headers
    compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-raw", vm_body(nic)).result()
    again = compute._client.send_request(HttpRequest("PUT", az.base_url + url, json=body))
    assert again.status_code == 200


def test_instance_view_and_power_actions(compute):
    view = compute.virtual_machines.instance_view("rg-vm-00", "vm-00000")
    assert [s.code for s in view.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    compute.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000", expand="instanceView")
    assert vm.instance_view.statuses[1].code == "PowerState/deallocated"
    compute.virtual_machines.begin_start("rg-vm-00", "vm-00000").result()
    view = compute.virtual_machines.instance_view("rg-vm-00", "vm-00000")
    assert view.statuses[1].code == "PowerState/running"


def test_lists_page_with_next_link(az, compute, sub, fleet):
    az.seed(subscriptions=[sub], resource_groups=1, vms=230, data_disks=[0, 0], vm_prefix="many")
    names = [vm.name for vm in compute.virtual_machines.list("rg-many-00")]
    assert len(names) == 230 and len(set(names)) == 230
    calls = [c for c in az.calls() if c["path"].endswith("/rg-many-00/providers/Microsoft.Compute/virtualMachines")]
    assert len(calls) == 3  # 100 + 100 + 30: the SDK followed nextLink twice
    assert len(list(compute.virtual_machines.list_all())) == 230 + fleet["vms"]


def test_ids_are_case_insensitive(compute):
    vm = compute.virtual_machines.get("RG-VM-00", "VM-00000")
    assert vm.name == "vm-00000"


def test_referenced_nic_must_exist(compute, sub):
    missing = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Network/networkInterfaces/nope"
    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-bad", vm_body(missing))
    assert err.value.status_code == 400
    assert "nope" in err.value.message
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.get("rg-vm-00", "vm-bad")
    assert not [d for d in compute.disks.list_by_resource_group("rg-vm-00") if d.name.startswith("vm-bad")]


def test_a_nic_or_disk_cannot_serve_two_vms(compute, resources, sub):
    taken_nic = compute.virtual_machines.get("rg-vm-00", "vm-00000").network_profile.network_interfaces[0].id
    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-thief", vm_body(taken_nic))
    assert err.value.error.code == "NicInUse"
    attached = compute.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.data_disks[0].managed_disk.id
    nic = make_nic(resources, sub, "rg-vm-00", "nic-thief")
    body = vm_body(nic, [DataDisk(lun=0, create_option="Attach", managed_disk=ManagedDiskParameters(id=attached))])
    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-thief", body)
    assert err.value.status_code == 409 and err.value.error.code == "ConflictingUserInput"  # Learn's VM error codes
    assert "already owned by VM" in err.value.message


def test_an_attached_disk_cannot_be_deleted(compute):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    name = vm.storage_profile.data_disks[0].name
    with pytest.raises(HttpResponseError) as err:
        compute.disks.begin_delete("rg-vm-00", name)
    assert err.value.status_code == 409 and err.value.error.code == "OperationNotAllowed"
    assert compute.disks.get("rg-vm-00", name).disk_state == "Attached"


def test_update_tags_and_delete_vm_honours_delete_options(az, compute, resources, sub):
    compute.virtual_machines.begin_update("rg-vm-00", "vm-00000", VirtualMachineUpdate(tags={"a": "b"})).result()
    assert compute.virtual_machines.get("rg-vm-00", "vm-00000").tags == {"a": "b"}
    nic = make_nic(resources, sub, "rg-vm-00", "nic-keep")
    keep = DataDisk(lun=1, create_option="Empty", disk_size_gb=8, delete_option="Detach", name="keep-me")
    vm = compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-del", vm_body(nic, [keep])).result()
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-del").result()
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.get("rg-vm-00", "vm-del")
    with pytest.raises(ResourceNotFoundError):  # osDisk deleteOption Delete
        compute.disks.get("rg-vm-00", vm.storage_profile.os_disk.name)
    kept = compute.disks.get("rg-vm-00", "keep-me")  # deleteOption Detach
    assert kept.disk_state == "Unattached" and kept.managed_by is None
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-del").result()  # already gone: 204, no error


def test_each_instance_of_a_vm_has_its_own_vm_id(compute, resources, sub):
    """properties.vmId is one GUID per instance: kept by an update, new when the VM is deleted and created again
    under its name (its ARM id the same). vmkeeper tells instances apart by it."""
    nic = make_nic(resources, sub, "rg-vm-00", "nic-instance")
    first = compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-instance", vm_body(nic)).result()
    assert str(uuid.UUID(first.vm_id)) == first.vm_id
    updated = compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-instance", vm_body(nic)).result()
    assert updated.vm_id == first.vm_id
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-instance").result()
    again = compute.virtual_machines.begin_create_or_update("rg-vm-00", "vm-instance", vm_body(nic)).result()
    assert again.id.lower() == first.id.lower() and again.vm_id != first.vm_id
