"""Retention and a VM deleted and created again under its name (issue 19, defect 11), against local Azure: the
points are taken by the app's own Schedule (planner, queue runner, worker: each names the VM's instance, its vmId),
the VM is deleted and created again with the real SDK clients (same ARM id, new vmId), and retention passes run with
the wiring's parts. The queue's visibility delays become the emulator's clock (tests/app/test_retention_pins.py)."""

from __future__ import annotations

from datetime import timedelta

from shared import tags as T
from tests.app.test_retention_pins import SECOND, drive, make_world

POLICY = {"schedule": {"every_hours": 1}, "snapshots": {"luns": "all", "include_os_disk": True},
          "restore_point": {"consistency": "CrashConsistent"}, "copy": {"region": SECOND},
          "retention": {"keep_last": 1, "deferral": "PT10M", "orphan_grace": "P7D"}}
RG, NAME = "rg-vm-00", "vm-00000"


def create_again(az, sub: str) -> tuple[str, str]:
    """Delete the VM (its disks and NIC go with it) and create it again under its name, with new disks and a new
    NIC: (old vmId, new vmId)."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import DiskCreateOptionTypes
    from azure.mgmt.network import NetworkManagementClient

    compute = az.client(ComputeManagementClient, sub, polling_interval=0)
    network = az.client(NetworkManagementClient, sub, polling_interval=0)
    vm = compute.virtual_machines.get(RG, NAME)
    nic = network.network_interfaces.get(RG, vm.network_profile.network_interfaces[0].id.rsplit("/", 1)[-1])
    subnet = nic.ip_configurations[0].subnet.id
    compute.virtual_machines.begin_delete(RG, NAME).result()
    nic = network.network_interfaces.begin_create_or_update(RG, f"{NAME}-nic-2", {
        "location": vm.location, "properties": {"ipConfigurations": [{
            "name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}}).result()
    vm.network_profile.network_interfaces = [{"id": nic.id}]
    vm.storage_profile.os_disk.managed_disk, vm.storage_profile.os_disk.name = None, f"{NAME}-osdisk-2"
    for d in vm.storage_profile.data_disks:
        d.managed_disk, d.name, d.create_option = None, f"{d.name}-2", DiskCreateOptionTypes.EMPTY
    again = compute.virtual_machines.begin_create_or_update(RG, NAME, vm).result()
    assert again.id.lower() == vm.id.lower() and again.vm_id != vm.vm_id
    return vm.vm_id.lower(), again.vm_id.lower()


def points(compute) -> dict[str, set[str]]:
    """Every snapshot and restore point there is, by the instance it was made of (lower-case names)."""
    out: dict[str, set[str]] = {}
    for s in compute.snapshots.list():
        if T.is_managed(s.tags):
            out.setdefault(str(s.tags.get(T.VM_INSTANCE, "")).lower(), set()).add(s.name.lower())
    for rpc in compute.restore_point_collections.list(RG):
        for rp in compute.restore_point_collections.get(RG, rpc.name, expand="restorePoints").restore_points or []:
            out.setdefault(str(rp.source_metadata.vm_id).lower(), set()).add(f"{rpc.name}/{rp.name}".lower())
    return out


def test_the_old_instances_last_points_survive_the_new_instances_newer_ones(az, emu, azurite, tmp_path):
    """Two slots of the first instance, then the VM is deleted and created again, then a slot of the new one; keep_last
    1, a 10 minute deferral. Each instance keeps its newest snapshot set (OS disk and data disk), restore point and second-region copy of each;
    the first instance's older slot goes. On main both instances were one lineage: the old instance's last points (the
    deleted VM's last good copies) were marked, then deleted, because the new instance had newer ones."""
    from shared.policy.document import load_policy_file

    fleet = make_world(az, azurite, tmp_path, copy_hours=0.01, policy=POLICY)
    compute, schedule, retention = fleet["compute"], fleet["schedule"], fleet["retention"]
    policies = {"gold": load_policy_file(schedule.settings.policy_file).policies["gold"].retention}
    now = emu.clock.now

    def slot() -> set[str]:
        """One slot run to its end; what it made (names)."""
        before = set().union(*points(compute).values())
        schedule.plan_and_enqueue(now())
        assert drive(fleet, az) == []
        made = set().union(*points(compute).values()) - before
        assert len(made) == 2 + 2 + 2, made  # the OS and data disk's snapshots and their copies, a restore point and its copy
        az.advance(3600)
        return made

    older = slot()
    last = slot()
    old, new = create_again(az, fleet["sub"])
    newest = slot()
    assert points(compute) == {old: older | last, new: newest}

    def pass_at(minutes: float) -> dict[str, tuple[str, str, str]]:
        decisions, applied = retention.run(now() + timedelta(minutes=minutes), policies)
        assert not applied.errors
        return {d.artifact_id.lower().rsplit("/", 1)[-1]: (d.action, d.rule, d.reason) for d in decisions}

    decided = pass_at(0)
    for name in last:  # the deleted VM's last points: its own lineages' newest good, while the grace runs
        action, rule, reason = decided[name.rsplit("/", 1)[-1]]
        assert (action, rule) == ("keep", "newest_good"), (name, action, rule, reason)
        assert f"(instance {old})" in reason and f"instance {old} gone since" in reason
    for name in newest:
        assert decided[name.rsplit("/", 1)[-1]][:2] == ("keep", "newest_good"), name
    for name in older:
        assert decided[name.rsplit("/", 1)[-1]][:2] == ("mark", "not_selected"), name

    pass_at(11)  # past the deferral: what was marked goes
    az.advance(1)
    assert points(compute) == {old: last, new: newest}

    decided = pass_at(8 * 24 * 60)  # past the old instance's grace: keep_last 1, counted in its own lineages
    assert {decided[name.rsplit("/", 1)[-1]][:2] for name in last} == {("keep", "keep_last")}
    assert points(compute) == {old: last, new: newest}
