"""Managed disks and snapshots: incremental Copy from a disk with Azure's limits, CopyStart to
another region with progress, disks made from snapshots and disk restore points."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.compute.models import CreationData, Disk, Snapshot, SnapshotUpdate


def data_disk(compute, vm="vm-00000"):
    return compute.virtual_machines.get("rg-vm-00", vm).storage_profile.data_disks[0].managed_disk.id


def snap(compute, name, source, location="westeurope", option="Copy", rg="rg-vm-00"):
    body = Snapshot(location=location, incremental=True,
                    creation_data=CreationData(create_option=option, source_resource_id=source))
    return compute.snapshots.begin_create_or_update(rg, name, body).result()


def test_incremental_snapshot_of_a_disk(compute):
    disk_id = data_disk(compute)
    first = snap(compute, "s1", disk_id)
    second = snap(compute, "s2", disk_id)
    assert first.provisioning_state == "Succeeded" and first.incremental
    assert first.incremental_snapshot_family_id == second.incremental_snapshot_family_id
    assert first.creation_data.source_resource_id.lower() == disk_id.lower()
    assert first.snapshot_access_state == "Available"
    listed = [s.name for s in compute.snapshots.list_by_resource_group("rg-vm-00")]
    assert listed == ["s1", "s2"]


def test_snapshot_put_answers_202_then_200_for_the_same_name(az, compute, sub):
    url = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/snapshots/again?api-version=2026-03-02"
    body = {"location": "westeurope", "properties": {"incremental": True,
                                                     "creationData": {"createOption": "Copy", "sourceResourceId": data_disk(compute)}}}
    assert compute._client.send_request(HttpRequest("PUT", az.base_url + url, json=body)).status_code == 202
    assert compute._client.send_request(HttpRequest("PUT", az.base_url + url, json=body)).status_code == 200  # idempotent
    other = dict(body, properties=dict(body["properties"], creationData={"createOption": "Copy",
                                                                         "sourceResourceId": data_disk(compute, "vm-00002")}))
    refused = compute._client.send_request(HttpRequest("PUT", az.base_url + url, json=other))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "PropertyChangeNotAllowed"


def test_seven_incremental_snapshots_per_disk_per_five_minutes(az, compute):
    disk_id = data_disk(compute)
    for i in range(7):
        snap(compute, f"burst{i}", disk_id)
    with pytest.raises(HttpResponseError) as err:
        snap(compute, "burst7", disk_id)
    assert err.value.status_code == 409 and "7 incremental snapshots" in err.value.message
    snap(compute, "other-disk", data_disk(compute, "vm-00002"))  # the limit is per disk
    az.advance(301)
    assert snap(compute, "burst7", disk_id).provisioning_state == "Succeeded"


def test_at_most_500_incremental_snapshots_per_disk(az, compute):
    disk_id = data_disk(compute)
    body = Snapshot(location="westeurope", incremental=True, creation_data=CreationData(create_option="Copy", source_resource_id=disk_id))
    for i in range(500):
        if i and i % 7 == 0:
            az.advance(301)
        compute.snapshots.begin_create_or_update("rg-vm-00", f"n{i:03d}", body, polling=False)
    az.advance(301)
    with pytest.raises(HttpResponseError) as err:
        compute.snapshots.begin_create_or_update("rg-vm-00", "n500", body)
    assert "500 incremental snapshots" in err.value.message
    compute.snapshots.begin_delete("rg-vm-00", "n000").result()
    assert compute.snapshots.begin_create_or_update("rg-vm-00", "n500", body).result().provisioning_state == "Succeeded"


def test_copy_start_to_another_region_reports_progress(az, compute):
    source = snap(compute, "src", data_disk(compute))
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 0.5}})  # copy takes 5 s of emulated time
    copy = snap(compute, "dst", source.id, location="northeurope", option="CopyStart")
    assert copy.provisioning_state == "Succeeded"
    assert copy.completion_percent < 100
    assert copy.snapshot_access_state == "Pending"
    az.advance(10)
    done = compute.snapshots.get("rg-vm-00", "dst")
    assert done.completion_percent == 100 and done.snapshot_access_state == "Available"
    assert done.copy_completion_error is None


def test_copy_start_reports_a_lost_source(az, compute):
    source = snap(compute, "src", data_disk(compute))
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 1}})
    snap(compute, "dst", source.id, location="northeurope", option="CopyStart")
    compute.snapshots.begin_delete("rg-vm-00", "src").result()
    az.advance(20)
    lost = compute.snapshots.get("rg-vm-00", "dst")
    assert lost.copy_completion_error.error_code == "CopySourceNotFound"


def test_copy_start_needs_another_region(compute):
    source = snap(compute, "src", data_disk(compute))
    with pytest.raises(HttpResponseError) as err:
        snap(compute, "dst", source.id, option="CopyStart")
    assert err.value.status_code == 400 and err.value.error.target == "location"


def test_disk_from_snapshot_then_delete_both(compute):
    source = snap(compute, "src", data_disk(compute))
    disk = compute.disks.begin_create_or_update(
        "rg-vm-00", "restored", Disk(location="westeurope", creation_data=CreationData(create_option="Copy", source_resource_id=source.id))
    ).result()
    assert disk.provisioning_state == "Succeeded" and disk.disk_state == "Unattached"
    assert disk.creation_data.source_resource_id == source.id
    compute.disks.begin_delete("rg-vm-00", "restored").result()
    compute.snapshots.begin_update("rg-vm-00", "src", SnapshotUpdate(tags={"k": "v"})).result()
    assert compute.snapshots.get("rg-vm-00", "src").tags == {"k": "v"}
    compute.snapshots.begin_delete("rg-vm-00", "src").result()
    with pytest.raises(ResourceNotFoundError):
        compute.snapshots.get("rg-vm-00", "src")
    compute.snapshots.begin_delete("rg-vm-00", "src").result()  # already gone: fine


def test_snapshot_of_a_missing_disk_is_refused(compute, sub):
    missing = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/disks/ghost"
    with pytest.raises(HttpResponseError) as err:
        snap(compute, "s", missing)
    assert err.value.status_code == 400 and "ghost" in err.value.message
