"""Restore point collections and restore points: crash/app consistency, excluded disks,
instanceView, one creation at a time per VM, cross-region copies, disks restored from them."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute.models import (
    ApiEntityReference,
    CreationData,
    Disk,
    RestorePoint,
    RestorePointCollection,
    RestorePointCollectionSourceProperties,
)


@pytest.fixture
def vm(compute):
    return compute.virtual_machines.get("rg-vm-00", "vm-00000")


@pytest.fixture
def rpc(compute, vm):
    body = RestorePointCollection(location=vm.location, source=RestorePointCollectionSourceProperties(id=vm.id))
    return compute.restore_point_collections.create_or_update("rg-vm-00", "rpc-vm0", body)


def test_collection_create_is_201_then_200_and_only_tags_change(az, compute, vm, rpc, sub):
    from azure.core.rest import HttpRequest

    assert rpc.source.id == vm.id
    url = f"{az.base_url}/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/restorePointCollections/rpc-vm0?api-version=2026-04-01"
    again = compute._client.send_request(HttpRequest("PUT", url, json={"location": vm.location, "properties": {"source": {"id": vm.id}}, "tags": {"a": "1"}}))
    assert again.status_code == 200 and again.json()["tags"] == {"a": "1"}
    other = compute.virtual_machines.get("rg-vm-00", "vm-00002").id
    moved = compute._client.send_request(HttpRequest("PUT", url, json={"location": vm.location, "properties": {"source": {"id": other}}}))
    assert moved.status_code == 409


def test_restore_point_captures_every_disk_but_the_excluded(compute, vm, rpc):
    excluded = vm.storage_profile.data_disks[0].managed_disk.id
    poller = compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint(
        consistency_mode="ApplicationConsistent", exclude_disks=[ApiEntityReference(id=excluded)]))
    rp = poller.result()
    assert rp.provisioning_state == "Succeeded"
    assert rp.consistency_mode == "ApplicationConsistent"
    captured = [d.managed_disk.id for d in rp.source_metadata.storage_profile.data_disks]
    assert excluded not in captured
    assert len(captured) == len(vm.storage_profile.data_disks) - 1
    assert rp.source_metadata.storage_profile.os_disk.disk_restore_point.id
    view = compute.restore_points.get("rg-vm-00", "rpc-vm0", "rp1", expand="instanceView").instance_view
    assert len(view.disk_restore_points) == len(captured) + 1
    expanded = compute.restore_point_collections.get("rg-vm-00", "rpc-vm0", expand="restorePoints")
    assert [p.name for p in expanded.restore_points] == ["rp1"]


def test_one_restore_point_creation_at_a_time_per_vm(az, compute, rpc):
    az.settings(lro={"per_type": {"Microsoft.Compute/restorePointCollections/restorePoints": 30}})
    compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp-a", RestorePoint(consistency_mode="CrashConsistent"), polling=False)
    with pytest.raises(HttpResponseError) as err:
        compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp-b", RestorePoint(consistency_mode="CrashConsistent"))
    assert err.value.status_code == 409 and "one restore point creation at a time" in err.value.message
    az.advance(31)
    assert compute.restore_points.get("rg-vm-00", "rpc-vm0", "rp-a").provisioning_state == "Succeeded"
    rp = compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp-b", RestorePoint(consistency_mode="CrashConsistent")).result()
    assert rp.provisioning_state == "Succeeded"


def test_existing_restore_point_cannot_be_updated(compute, rpc):
    compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint()).result()
    with pytest.raises(HttpResponseError) as err:
        compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint())
    assert err.value.status_code == 409


def test_deallocated_vm_gets_crash_consistent_point(compute, rpc):
    compute.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    rp = compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint(consistency_mode="ApplicationConsistent")).result()
    assert rp.consistency_mode == "CrashConsistent"


def test_cross_region_copy_replicates_with_progress(az, compute, vm, rpc):
    source = compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint()).result()
    remote = compute.restore_point_collections.create_or_update("rg-vm-01", "rpc-vm0-copy", RestorePointCollection(
        location="northeurope", source=RestorePointCollectionSourceProperties(id=rpc.id)))
    assert remote.source.id == rpc.id
    az.settings(lro={"per_type": {"Microsoft.Compute/restorePoints/copy": 1}})
    body = {"properties": {"sourceRestorePoint": {"id": source.id}}}
    compute.restore_points.begin_create("rg-vm-01", "rpc-vm0-copy", "rp1", body, polling=False)
    during = compute.restore_points.get("rg-vm-01", "rpc-vm0-copy", "rp1", expand="instanceView")
    assert during.provisioning_state == "Creating"
    status = during.instance_view.disk_restore_points[0].replication_status
    assert status.status.code == "ReplicationState/inprogress" and status.completion_percent < 100
    az.advance(11)
    after = compute.restore_points.get("rg-vm-01", "rpc-vm0-copy", "rp1", expand="instanceView")
    assert after.provisioning_state == "Succeeded"
    assert {d.replication_status.completion_percent for d in after.instance_view.disk_restore_points} == {100}
    assert after.source_restore_point.id == source.id


def test_disk_restored_from_a_disk_restore_point(compute, rpc):
    rp = compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint()).result()
    drp_id = rp.source_metadata.storage_profile.data_disks[0].disk_restore_point.id
    drps = list(compute.disk_restore_point.list_by_restore_point("rg-vm-00", "rpc-vm0", "rp1"))
    assert drp_id in [d.id for d in drps]
    disk = compute.disks.begin_create_or_update("rg-vm-00", "from-drp", Disk(
        location="westeurope", creation_data=CreationData(create_option="Restore", source_resource_id=drp_id))).result()
    assert disk.provisioning_state == "Succeeded"
    assert disk.creation_data.source_resource_id == drp_id


def test_deleting_the_collection_removes_its_points(compute, rpc):
    compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint()).result()
    compute.restore_point_collections.begin_delete("rg-vm-00", "rpc-vm0").result()
    with pytest.raises(ResourceNotFoundError):
        compute.restore_point_collections.get("rg-vm-00", "rpc-vm0")
    assert list(compute.restore_point_collections.list_all()) == []


def test_restore_point_for_a_deleted_point_is_404_then_delete_is_idempotent(compute, rpc):
    compute.restore_points.begin_create("rg-vm-00", "rpc-vm0", "rp1", RestorePoint()).result()
    compute.restore_points.begin_delete("rg-vm-00", "rpc-vm0", "rp1").result()
    with pytest.raises(ResourceNotFoundError):
        compute.restore_points.get("rg-vm-00", "rpc-vm0", "rp1")
    compute.restore_points.begin_delete("rg-vm-00", "rpc-vm0", "rp1").result()


def test_a_collection_carries_its_creation_time_in_system_data(az, compute, vm, rpc):
    created = rpc.system_data.created_at
    assert created is not None
    az.advance(3600)
    again = compute.restore_point_collections.get("rg-vm-00", "rpc-vm0", expand="restorePoints")
    assert again.system_data.created_at == created  # ARM's systemData.createdAt: set once, at creation
    assert [c.system_data.created_at for c in compute.restore_point_collections.list("rg-vm-00")] == [created]
