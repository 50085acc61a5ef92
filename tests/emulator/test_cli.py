"""`python -m emulator` as a process: its first line is JSON naming base_url and ca_path, it
serves HTTPS on 127.0.0.1, and --state carries the fleet across a restart."""

from __future__ import annotations

from azure.mgmt.compute import ComputeManagementClient

from devtools.processes import emulator_process
from emulator.testing import LocalAzure


def test_process_prints_json_serves_https_and_keeps_state(tmp_path):
    state = tmp_path / "state.json"
    with emulator_process("--state", str(state)) as info:
        assert info["base_url"].startswith("https://127.0.0.1:")
        az = LocalAzure(info["base_url"], info["ca_path"])
        sub = az.seed(subscriptions=1, resource_groups=1, vms=3)["subscriptions"][0]
        names = sorted(vm.name for vm in az.client(ComputeManagementClient, sub).virtual_machines.list_all())
    assert state.exists()
    with emulator_process("--state", str(state)) as info:
        az = LocalAzure(info["base_url"], info["ca_path"])
        again = sorted(vm.name for vm in az.client(ComputeManagementClient, sub).virtual_machines.list_all())
    assert again == names == ["vm-00000", "vm-00001", "vm-00002"]
