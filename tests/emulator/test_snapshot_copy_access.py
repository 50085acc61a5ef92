"""A snapshot copied into another subscription (createOption Copy; Learn, "Copy snapshot of a managed disk to same
or different subscription"; the REST example "Create a snapshot from an existing snapshot in the same or a different
subscription"): ARM's linked access check on the source (emulator/README.md, "Role assignments and linked access
checks"), and a Copy whose source is deleted before it completes ends Failed."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, Snapshot
from azure.mgmt.resource.resources import ResourceManagementClient

from emulator.testing import StaticCredential

BACKUP = "4f4f4f4f-0000-4000-8000-0000000000c1"
COPIER = "the-copier"


@pytest.fixture
def source(az, compute):
    az.admin("POST", "subscriptions", {"id": BACKUP})
    az.client(ResourceManagementClient, BACKUP).resource_groups.create_or_update("rg-backup", {"location": "westeurope"})
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    body = Snapshot(location=vm.location, incremental=True,
                    creation_data=CreationData(create_option="Copy", source_resource_id=vm.storage_profile.os_disk.managed_disk.id))
    return compute.snapshots.begin_create_or_update("rg-vm-00", "snap-src", body).result()


def copy_body(source) -> Snapshot:
    return Snapshot(location=source.location, incremental=True,
                    creation_data=CreationData(create_option="Copy", source_resource_id=source.id))


def test_a_copy_into_another_subscription_needs_begin_get_access_on_its_source(az, sub, source):
    backup = az.client(ComputeManagementClient, BACKUP, credential=StaticCredential(COPIER), polling_interval=0)
    group = f"/subscriptions/{BACKUP}/resourceGroups/rg-backup"
    az.role_assignments([{"principal": COPIER, "scope": group, "actions": ["Microsoft.Compute/snapshots/*"]}])
    since = len(az.calls())
    with pytest.raises(HttpResponseError) as err:
        backup.snapshots.begin_create_or_update("rg-backup", "snap-copy", copy_body(source))
    assert (err.value.status_code, err.value.error.code) == (403, "LinkedAuthorizationFailed")
    assert "Microsoft.Compute/snapshots/beginGetAccess/action" in err.value.message and source.id in err.value.message
    linked = [(c["operation"], c["path"], c["status"]) for c in az.calls(since) if c["method"] == "LINKED"]
    assert linked == [("Microsoft.Compute/snapshots/beginGetAccess/action", source.id, 403)]
    with pytest.raises(HttpResponseError):  # nothing was made
        backup.snapshots.get("rg-backup", "snap-copy")
    az.role_assignments([{"principal": COPIER, "scope": group, "actions": ["Microsoft.Compute/snapshots/*"]},
                         {"principal": COPIER, "scope": f"/subscriptions/{sub}",
                          "actions": ["Microsoft.Compute/snapshots/beginGetAccess/action"]}])
    backup.snapshots.begin_create_or_update("rg-backup", "snap-copy", copy_body(source), polling=False)
    az.advance(1)
    copy = backup.snapshots.get("rg-backup", "snap-copy")
    assert copy.provisioning_state == "Succeeded" and copy.creation_data.source_resource_id.lower() == source.id.lower()


def test_a_copy_whose_source_is_deleted_before_it_completes_ends_failed(az, compute, source):
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 60}})
    backup = az.client(ComputeManagementClient, BACKUP, polling_interval=0)
    backup.snapshots.begin_create_or_update("rg-backup", "snap-copy", copy_body(source), polling=False)
    assert backup.snapshots.get("rg-backup", "snap-copy").provisioning_state != "Succeeded"  # still copying
    compute.snapshots.begin_delete("rg-vm-00", "snap-src").result()
    az.advance(61)
    assert backup.snapshots.get("rg-backup", "snap-copy").provisioning_state == "Failed"
