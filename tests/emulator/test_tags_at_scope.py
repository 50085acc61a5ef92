"""Tags at scope (``{scope}/providers/Microsoft.Resources/tags/default``) on the tracked resources
vmkeeper tags: snapshots and restore point collections, through the real SDK. No official example
exists in ../shared for this API: the behaviour follows the public REST reference (Tags - Update At
Scope): Merge adds or overwrites the named tags, Replace sets the whole set, Delete removes the named
tags (a value given must match); ARM's errors for a missing resource and a bad body."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.compute.models import (
    CreationData,
    RestorePointCollection,
    RestorePointCollectionSourceProperties,
    Snapshot,
)
from azure.mgmt.resource.resources.models import Tags, TagsPatchResource


@pytest.fixture
def snapshot(compute):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    return compute.snapshots.begin_create_or_update("rg-vm-00", "snap-tags", Snapshot(
        location=vm.location, tags={"keep": "me", "Owner": "ops"}, incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=vm.storage_profile.os_disk.managed_disk.id))).result()


def _patch(resources, scope, operation, tags):
    return resources.tags.begin_update_at_scope(scope, TagsPatchResource(operation=operation,
                                                                         properties=Tags(tags=tags))).result()


def test_merge_and_delete_touch_only_the_named_tags_of_a_snapshot(resources, compute, snapshot):
    _patch(resources, snapshot.id, "Merge", {"vmkeeper-expiring": "2026-11-26T00:00:00Z"})
    assert compute.snapshots.get("rg-vm-00", "snap-tags").tags == {
        "keep": "me", "Owner": "ops", "vmkeeper-expiring": "2026-11-26T00:00:00Z"}
    _patch(resources, snapshot.id, "Delete", {"vmkeeper-expiring": "2026-01-01T00:00:00Z"})  # value differs: kept
    assert "vmkeeper-expiring" in compute.snapshots.get("rg-vm-00", "snap-tags").tags
    _patch(resources, snapshot.id, "Delete", {"VMKEEPER-EXPIRING": "2026-11-26T00:00:00Z"})  # names: any case
    assert compute.snapshots.get("rg-vm-00", "snap-tags").tags == {"keep": "me", "Owner": "ops"}
    _patch(resources, snapshot.id, "Merge", {"owner": "dev"})  # an existing name in another case is updated
    tags = compute.snapshots.get("rg-vm-00", "snap-tags").tags
    assert len(tags) == 2 and {k.lower(): v for k, v in tags.items()} == {"keep": "me", "owner": "dev"}


def test_merge_replace_delete_on_a_restore_point_collection(az, resources, compute, sub):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    rpc = compute.restore_point_collections.create_or_update("rg-vm-00", "rpc-tags", RestorePointCollection(
        location=vm.location, tags={"managed-by": "vmkeeper"}, source=RestorePointCollectionSourceProperties(id=vm.id)))
    _patch(resources, rpc.id, "Merge", {"vmkeeper-hold": ""})
    assert compute.restore_point_collections.get("rg-vm-00", "rpc-tags").tags == {"managed-by": "vmkeeper", "vmkeeper-hold": ""}
    _patch(resources, rpc.id, "Replace", {"only": "this"})
    assert compute.restore_point_collections.get("rg-vm-00", "rpc-tags").tags == {"only": "this"}
    _patch(resources, rpc.id, "Delete", {"only": ""})  # no value: by name
    assert compute.restore_point_collections.get("rg-vm-00", "rpc-tags").tags == {}
    writes = [c for c in az.calls() if c["method"] == "PATCH" and "/tags/default" in c["path"]]
    assert writes and {c["operation"] for c in writes} == {"Microsoft.Resources/tags/write"}


def test_a_missing_resource_is_404_resource_not_found(resources, sub):
    scope = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/snapshots/nope"
    with pytest.raises(ResourceNotFoundError) as err:
        _patch(resources, scope, "Merge", {"a": "1"})
    assert err.value.error.code == "ResourceNotFound"


@pytest.mark.parametrize(("body", "field"), [
    ({"properties": {"tags": {"a": "1"}}}, "operation"),
    ({"operation": "Upsert", "properties": {"tags": {"a": "1"}}}, "operation"),
    ({"operation": "Merge", "properties": "tags"}, "properties"),
    ({"operation": "Merge", "properties": {"tags": ["a"]}}, "properties.tags"),
    ({"operation": "Merge", "properties": {"tags": {"a": 1}}}, "properties.tags"),
])
def test_a_bad_body_is_400_naming_the_field(az, resources, snapshot, body, field):
    url = f"{az.base_url}{snapshot.id}/providers/Microsoft.Resources/tags/default?api-version=2025-04-01"
    response = resources._client.send_request(HttpRequest("PATCH", url, json=body))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["target"] == field and field in error["message"]
    with pytest.raises(HttpResponseError):
        response.raise_for_status()
