"""What the planner learns of earlier runs through Resource Graph (shared/schedule_run.taken_history):
each disk's count of incremental snapshots, whoever made them — the real SDK against the emulator."""

from __future__ import annotations

from shared.schedule.service import taken_history


def _snapshot(compute, rg, name, disk_id, incremental=True):
    from azure.mgmt.compute.models import CreationData, Snapshot

    compute.snapshots.begin_create_or_update(rg, name, Snapshot(
        location="westeurope", incremental=incremental,
        creation_data=CreationData(create_option="Copy", source_resource_id=disk_id))).result()


def test_counts_every_incremental_snapshot_per_source_disk(az, sub, compute, graph):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    os_disk = vm.storage_profile.os_disk.managed_disk.id
    data_disk = vm.storage_profile.data_disks[0].managed_disk.id
    for i in range(3):
        _snapshot(compute, "rg-vm-00", f"mine-{i}", os_disk)
    _snapshot(compute, "rg-vm-00", "someone-elses", os_disk)  # not ours: still counts toward Azure's limit
    _snapshot(compute, "rg-vm-00", "full-copy", os_disk, incremental=False)  # a full snapshot: not limited
    _snapshot(compute, "rg-vm-00", "data", data_disk)
    history = taken_history(graph, [sub])
    assert dict(history.snapshot_counts_by_disk) == {os_disk.lower(): 4, data_disk.lower(): 1}
    assert taken_history(graph, ["00000000-0000-0000-0000-000000000000"]).snapshot_counts_by_disk == {}
