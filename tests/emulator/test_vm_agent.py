"""The VM agent in a VM's instance view, through azure-mgmt-compute: Not Ready while the guest boots,
Ready once ``settings.vm_agent.ready_after_seconds`` of emulated time have passed since the VM's create,
start or restart ended, absent while deallocated; the ``vm_agent_not_ready`` fault keeps it Not Ready."""

from __future__ import annotations

import pytest
from azure.mgmt.compute.models import (
    HardwareProfile,
    ManagedDiskParameters,
    NetworkInterfaceReference,
    NetworkProfile,
    OSDisk,
    StorageProfile,
    VirtualMachine,
)
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import NetworkInterface, NetworkInterfaceIPConfiguration, Subnet

READY_AFTER = 60.0  # long enough that no test is slow enough to cross it by itself
NOT_READY = {"code": "ProvisioningState/Unavailable", "level": "Warning", "displayStatus": "Not Ready",
             "message": "VM Agent is unresponsive."}


@pytest.fixture
def network(az, sub):
    return az.client(NetworkManagementClient, sub, polling_interval=0)


@pytest.fixture
def slow_agent(az):
    az.settings(vm_agent={"ready_after_seconds": READY_AFTER})


def create_vm(compute, network, sub: str, name: str, rg: str = "rg-vm-00") -> None:
    subnet = network.subnets.get(rg, "vnet-westeurope", "default")
    nic = network.network_interfaces.begin_create_or_update(rg, f"{name}-nic", NetworkInterface(
        location="westeurope", ip_configurations=[NetworkInterfaceIPConfiguration(name="ipconfig1", subnet=Subnet(id=subnet.id))],
    )).result()
    compute.virtual_machines.begin_create_or_update(rg, name, VirtualMachine(
        location="westeurope", hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(os_disk=OSDisk(create_option="FromImage", delete_option="Delete",
                                                      managed_disk=ManagedDiskParameters(storage_account_type="Premium_LRS"))),
        network_profile=NetworkProfile(network_interfaces=[NetworkInterfaceReference(id=nic.id)]))).result()


def agent(compute, name: str, rg: str = "rg-vm-00") -> dict | None:
    """The agent as both reads show it; they must agree (apart from the time a Not Ready status is read)."""
    view = compute.virtual_machines.instance_view(rg, name).vm_agent
    expanded = compute.virtual_machines.get(rg, name, expand="instanceView").instance_view.vm_agent
    if view is None or expanded is None:
        assert view is None and expanded is None
        return None
    first, second = view.as_dict(), expanded.as_dict()
    for status in first["statuses"] + second["statuses"]:
        status.pop("time")
    assert first == second
    return first


def status(compute, name: str) -> dict | None:
    found = agent(compute, name)
    return None if found is None else found["statuses"][0]


def is_ready(compute, name: str) -> bool:
    found = status(compute, name)
    return found is not None and found["displayStatus"] == "Ready"


def test_a_seeded_vm_has_long_since_booted(compute):
    ready = agent(compute, "vm-00000")
    assert ready["statuses"] == [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
                                  "message": "GuestAgent is running and accepting new configurations."}]
    assert ready["vmAgentVersion"] != "Unknown"


def test_a_new_vm_is_not_ready_until_its_boot_delay_has_passed(az, compute, network, sub, slow_agent):
    create_vm(compute, network, sub, "vm-new")
    assert compute.virtual_machines.get("rg-vm-00", "vm-new").provisioning_state == "Succeeded"
    found = agent(compute, "vm-new")
    assert found["statuses"] == [NOT_READY] and found["vmAgentVersion"] == "Unknown"
    az.advance(READY_AFTER / 2)
    assert not is_ready(compute, "vm-new")
    az.advance(READY_AFTER / 2)
    assert is_ready(compute, "vm-new")


def test_deallocated_shows_no_agent_and_a_start_boots_again(az, compute, slow_agent):
    compute.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    assert agent(compute, "vm-00000") is None
    compute.virtual_machines.begin_start("rg-vm-00", "vm-00000").result()
    assert status(compute, "vm-00000") == NOT_READY
    az.advance(READY_AFTER)
    assert is_ready(compute, "vm-00000")
    compute.virtual_machines.begin_power_off("rg-vm-00", "vm-00000").result()
    assert status(compute, "vm-00000") == NOT_READY  # stopped: the guest is off but the VM keeps its host
    compute.virtual_machines.begin_restart("rg-vm-00", "vm-00000").result()
    assert not is_ready(compute, "vm-00000")
    az.advance(READY_AFTER)
    assert is_ready(compute, "vm-00000")


def test_the_fault_keeps_matching_vms_not_ready(az, compute, network, sub, slow_agent):
    rules = az.vm_agent_fault("drill-")
    assert [r["kind"] for r in rules["rules"]] == ["vm_agent_not_ready"]
    create_vm(compute, network, sub, "drill-web")
    create_vm(compute, network, sub, "web-drill")  # the prefix is the name's start, not anywhere in it
    az.advance(24 * 3600)
    assert status(compute, "drill-web") == NOT_READY
    assert is_ready(compute, "web-drill")
    compute.virtual_machines.begin_restart("rg-vm-00", "drill-web").result()
    az.advance(24 * 3600)
    assert status(compute, "drill-web") == NOT_READY  # every boot, while the rule stands
    az.faults([])
    compute.virtual_machines.begin_restart("rg-vm-00", "drill-web").result()
    az.advance(READY_AFTER)
    assert is_ready(compute, "drill-web")


def test_a_counted_fault_by_vm_id_sticks_to_the_boot_it_hit(az, compute, slow_agent):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    az.faults([{"kind": "429", "path": "/nowhere$", "count": 1}])
    rules = az.vm_agent_fault(vm.id.upper(), count=1)["rules"]
    assert [r["kind"] for r in rules] == ["429", "vm_agent_not_ready"]  # added beside the rules set before
    assert is_ready(compute, "vm-00000")  # already running: nothing booted
    compute.virtual_machines.begin_restart("rg-vm-00", "vm-00002").result()  # another VM: not its id
    compute.virtual_machines.begin_restart("rg-vm-00", "vm-00000").result()
    az.advance(3600)
    assert is_ready(compute, "vm-00002")
    assert status(compute, "vm-00000") == NOT_READY
    compute.virtual_machines.begin_restart("rg-vm-00", "vm-00000").result()  # the count is spent: this boot is fine
    az.advance(READY_AFTER)
    assert is_ready(compute, "vm-00000")


def test_the_setting_is_checked_and_reset(az):
    assert az.admin("GET", "settings")["vm_agent"] == {"ready_after_seconds": 3.0}
    assert az.settings(vm_agent={"ready_after_seconds": 2})["vm_agent"] == {"ready_after_seconds": 2.0}
    for bad, field in (({"ready_after_seconds": -1}, "settings.vm_agent.ready_after_seconds"),
                       ({"ready_after_seconds": "2"}, "settings.vm_agent.ready_after_seconds"),
                       ({"ready_after": 2}, "settings.vm_agent"), (5, "settings.vm_agent")):
        with pytest.raises(RuntimeError, match=field.replace(".", r"\.")):
            az.settings(vm_agent=bad)
    assert az.admin("GET", "settings")["vm_agent"] == {"ready_after_seconds": 2.0}
    with pytest.raises(RuntimeError, match="fault.kind"):
        az.admin("POST", "faults", {"kind": "vm_agent_broken", "probability": 1})
    az.reset()
    assert az.admin("GET", "settings")["vm_agent"] == {"ready_after_seconds": 3.0}
