"""Management locks through azure-mgmt-resource-locks: CanNotDelete and ReadOnly at subscription,
group and resource scope, enforced as ARM does (409 ScopeLocked)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import CreationData, Snapshot, SnapshotUpdate
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.locks.models import ManagementLockObject


@pytest.fixture
def locks(az, sub):
    return az.client(ManagementLockClient, sub)


@pytest.fixture
def snapshot(compute):
    disk = compute.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.data_disks[0].managed_disk.id
    body = Snapshot(location="westeurope", incremental=True, creation_data=CreationData(create_option="Copy", source_resource_id=disk))
    return compute.snapshots.begin_create_or_update("rg-vm-00", "locked-snap", body).result()


def test_can_not_delete_on_a_snapshot(compute, locks, snapshot):
    locks.management_locks.create_or_update_by_scope(snapshot.id, "keep", ManagementLockObject(level="CanNotDelete", notes="hold"))
    with pytest.raises(HttpResponseError) as err:
        compute.snapshots.begin_delete("rg-vm-00", "locked-snap")
    assert err.value.status_code == 409 and err.value.error.code == "ScopeLocked"
    compute.snapshots.begin_update("rg-vm-00", "locked-snap", SnapshotUpdate(tags={"still": "writable"})).result()
    assert [lk.name for lk in locks.management_locks.list_by_scope(snapshot.id)] == ["keep"]
    locks.management_locks.delete_by_scope(snapshot.id, "keep")
    compute.snapshots.begin_delete("rg-vm-00", "locked-snap").result()


def test_read_only_on_a_group_blocks_writes_not_reads(compute, locks, snapshot, resources):
    locks.management_locks.create_or_update_at_resource_group_level("rg-vm-00", "ro", ManagementLockObject(level="ReadOnly"))
    with pytest.raises(HttpResponseError) as err:
        compute.snapshots.begin_update("rg-vm-00", "locked-snap", SnapshotUpdate(tags={"x": "y"}))
    assert err.value.error.code == "ScopeLocked"
    assert compute.snapshots.get("rg-vm-00", "locked-snap").name == "locked-snap"
    locks.management_locks.delete_at_resource_group_level("rg-vm-00", "ro")
    compute.snapshots.begin_update("rg-vm-00", "locked-snap", SnapshotUpdate(tags={"x": "y"})).result()


def test_a_lock_below_blocks_deleting_the_group_and_subscription_locks_cover_all(az, compute, locks, snapshot, resources):
    locks.management_locks.create_or_update_by_scope(snapshot.id, "keep", ManagementLockObject(level="CanNotDelete"))
    with pytest.raises(HttpResponseError) as err:
        resources.resource_groups.begin_delete("rg-vm-00")
    assert err.value.error.code == "ScopeLocked"
    locks.management_locks.create_or_update_at_subscription_level("sub-wide", ManagementLockObject(level="CanNotDelete"))
    with pytest.raises(HttpResponseError):
        compute.virtual_machines.begin_delete("rg-vm-01", "vm-00001")
    assert {lk.name for lk in locks.management_locks.list_at_subscription_level()} == {"keep", "sub-wide"}
    assert locks.management_locks.get_at_subscription_level("sub-wide").level == "CanNotDelete"
