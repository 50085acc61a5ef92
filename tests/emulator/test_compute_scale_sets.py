"""Virtual machine scale sets through azure-mgmt-compute: Flexible sets whose instances are VMs (made by a scale-out,
reported to Event Grid as any VM's creation, or joined by a VM PUT naming the set, refused as ARM refuses), Uniform
sets whose instances are listed under the set and in Resource Graph's ComputeResources table."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.emulator.test_compute_vms import make_nic, vm_body

RG = "rg-vm-00"


def subnet(sub: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet-westeurope/subnets/default"


def scale_set(sub: str, mode: str, capacity: int, fault_domains: int | None = 1, location: str = "westeurope") -> dict:
    props = {"orchestrationMode": mode, "virtualMachineProfile": {
        "storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server",
                                              "version": "latest"},
                           "osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}},
                           "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 32}]},
        "osProfile": {"computerNamePrefix": "web", "adminUsername": "azureuser"},
        "networkProfile": {"networkInterfaceConfigurations": [{"name": "nic", "properties": {
            "primary": True, "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet(sub)}}}]}}]}}}
    if fault_domains is not None:
        props["platformFaultDomainCount"] = fault_domains
    return {"location": location, "tags": {"app": "web"}, "sku": {"name": "Standard_D2s_v5", "capacity": capacity},
            "properties": props}


def flexible_vms(compute, set_id: str) -> list:
    return [vm for vm in compute.virtual_machines.list_all()
            if vm.virtual_machine_scale_set and vm.virtual_machine_scale_set.id.lower() == set_id.lower()]


def test_a_flexible_scale_out_makes_vms_with_the_reference_and_their_creation_events(compute, emu, sub):
    mark = len(emu.events.published)
    vmss = compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", scale_set(sub, "Flexible", 3, 3)).result()
    assert vmss.orchestration_mode == "Flexible" and vmss.platform_fault_domain_count == 3
    vms = flexible_vms(compute, vmss.id)
    assert len(vms) == 3 and all(vm.name.startswith("web_") and vm.provisioning_state == "Succeeded" for vm in vms)
    assert sorted(vm.platform_fault_domain for vm in vms) == [0, 1, 2]  # the platform spreads them
    assert all(vm.tags == {"app": "web"} for vm in vms)
    disk = compute.disks.get(RG, vms[0].storage_profile.data_disks[0].name)
    assert disk.managed_by.lower() == vms[0].id.lower()
    writes = {e["subject"].lower() for e in list(emu.events.published)[mark:]
              if e["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
              and e["data"]["operationName"] == "Microsoft.Compute/virtualMachines/write"}
    assert writes == {vm.id.lower() for vm in vms}
    # scale in: the newest goes, as a VM delete (its disks with it)
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", {"location": "westeurope",
                                                                          "sku": {"capacity": 2}}).result()
    left = flexible_vms(compute, vmss.id)
    assert len(left) == 2 and {vm.id for vm in left} < {vm.id for vm in vms}
    # the set's delete takes its VMs
    compute.virtual_machine_scale_sets.begin_delete(RG, "web").result()
    assert flexible_vms(compute, vmss.id) == []
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machine_scale_sets.get(RG, "web")


def test_a_vm_joins_a_flexible_set_in_its_fault_domain_and_azures_refusals(compute, resources, sub):
    flex = compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", scale_set(sub, "Flexible", 0, 2)).result()
    one = compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex1", scale_set(sub, "Flexible", 0, 1)).result()
    uniform = compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", scale_set(sub, "Uniform", 1, 5)).result()

    def put(name: str, vmss_id: str, fd: int | None = None, location: str = "westeurope"):
        body = vm_body(make_nic(resources, sub, RG, f"{name}-nic", location), location=location).as_dict()
        body["properties"]["virtualMachineScaleSet"] = {"id": vmss_id}
        if fd is not None:
            body["properties"]["platformFaultDomain"] = fd
        return compute.virtual_machines.begin_create_or_update(RG, name, body).result()

    vm = put("joined", flex.id, fd=1)
    assert vm.virtual_machine_scale_set.id.lower() == flex.id.lower() and vm.platform_fault_domain == 1
    refusals = [("fd-out", flex.id, 2, "westeurope", "properties.platformFaultDomain"),
                ("fd-count1", one.id, 0, "westeurope", "properties.platformFaultDomain"),
                ("to-uniform", uniform.id, None, "westeurope", "properties.virtualMachineScaleSet.id"),
                ("elsewhere", flex.id, None, "northeurope", "properties.virtualMachineScaleSet.id"),
                ("no-set", flex.id.replace("/flex", "/nothere"), None, "westeurope", "properties.virtualMachineScaleSet.id")]
    for name, vmss_id, fd, location, target in refusals:
        with pytest.raises(HttpResponseError) as err:
            put(name, vmss_id, fd, location)
        assert err.value.status_code == 400 and err.value.error.target == target, (name, err.value.message)
        with pytest.raises(ResourceNotFoundError):  # nothing made
            compute.virtual_machines.get(RG, name)
    # a VM's set and fault domain never change
    body = vm.as_dict()
    body["properties"]["platformFaultDomain"] = 0
    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machines.begin_create_or_update(RG, "joined", body).result()
    assert err.value.status_code == 409


def test_scale_set_rules_the_fault_domain_count_and_the_mode(compute, sub):
    with pytest.raises(HttpResponseError) as err:  # Flexible, regional: 1-3
        compute.virtual_machine_scale_sets.begin_create_or_update(RG, "bad", scale_set(sub, "Flexible", 0, 4)).result()
    assert err.value.status_code == 400 and err.value.error.target == "properties.platformFaultDomainCount"
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "set", scale_set(sub, "Flexible", 0, None)).result()
    assert compute.virtual_machine_scale_sets.get(RG, "set").platform_fault_domain_count == 1  # Flexible's default
    with pytest.raises(HttpResponseError) as err:
        compute.virtual_machine_scale_sets.begin_create_or_update(RG, "set", scale_set(sub, "Uniform", 0, None)).result()
    assert err.value.status_code == 409


def test_uniform_instances_are_listed_under_the_set_and_in_compute_resources(compute, graph, sub):
    from azure.mgmt.resourcegraph.models import QueryRequest

    vmss = compute.virtual_machine_scale_sets.begin_create_or_update(RG, "batch", scale_set(sub, "Uniform", 2, 5)).result()
    instances = list(compute.virtual_machine_scale_set_vms.list(RG, "batch"))
    assert [i.instance_id for i in instances] == ["0", "1"] and instances[0].name == "batch_0"
    assert compute.virtual_machine_scale_set_vms.get(RG, "batch", "1").id.lower() == f"{vmss.id}/virtualMachines/1".lower()
    assert not [vm for vm in compute.virtual_machines.list_all() if vm.name.startswith("batch")]  # no VMs of their own
    rows = graph.resources(QueryRequest(subscriptions=[sub], query=(
        "ComputeResources | where type =~ 'microsoft.compute/virtualmachinescalesets/virtualmachines' "
        "| project id, name, tags"))).data
    assert sorted(r["name"] for r in rows if r["id"].lower().startswith(vmss.id.lower())) == ["batch_0", "batch_1"]
    in_resources = graph.resources(QueryRequest(subscriptions=[sub], query=(
        "Resources | where type =~ 'microsoft.compute/virtualmachinescalesets/virtualmachines'"))).data
    assert in_resources == []
    with pytest.raises(HttpResponseError):  # a Flexible set's instances are VMs, not scale set VMs
        compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flx", scale_set(sub, "Flexible", 0, 1)).result()
        list(compute.virtual_machine_scale_set_vms.list(RG, "flx"))


def test_the_seeded_fleet_has_a_flexible_set_of_three_vms_and_a_uniform_set(fleet, compute, graph, sub):
    from azure.mgmt.resourcegraph.models import QueryRequest

    from devtools.fleet import FLEXIBLE_SET, UNIFORM_SET

    flex, uniform = fleet["scaleSets"]
    assert (flex["orchestrationMode"], len(flex["instances"]), uniform["orchestrationMode"], len(uniform["instances"])) \
        == ("Flexible", 3, "Uniform", 2)
    vms = list(compute.virtual_machines.list_all())
    assert len(vms) == fleet["vms"] == 4 + 3  # the Flexible set's VMs are VMs
    assert sorted(vm.name for vm in flexible_vms(compute, flex["id"])) == sorted(i.rsplit("/", 1)[-1] for i in flex["instances"])
    assert all(vm.name.startswith(f"{FLEXIBLE_SET}_") for vm in flexible_vms(compute, flex["id"]))
    rows = graph.resources(QueryRequest(subscriptions=[sub], query="ComputeResources | project name")).data
    assert sorted(r["name"] for r in rows) == [f"{UNIFORM_SET}_0", f"{UNIFORM_SET}_1"]
    again = compute.virtual_machine_scale_sets.get(RG, FLEXIBLE_SET)
    assert again.orchestration_mode == "Flexible" and again.sku.capacity == 3
