"""Disk and snapshot access (a SAS: beginGetAccess / endGetAccess, the ``next/`` contracts Disk_BeginGetAccess,
Disk_EndGetAccess, Snapshot_BeginGetAccess, Snapshot_EndGetAccess) and data disks attached and detached by a VM
PATCH, with Azure's errors, through the real SDK client (azure-mgmt-compute 39.0.0). The SAS URL is served by
the emulator over its own HTTPS: it reads while granted, 403 once revoked or expired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.models import CreationData, Disk, GrantAccessData, Snapshot

RG = "rg-vm-00"
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "azure-api" / "next" / "examples" / "Microsoft.Compute"


def _error(err: pytest.ExceptionInfo) -> tuple[int, str]:
    return err.value.status_code, err.value.error.code if err.value.error else ""


def _empty_disk(compute, name: str, *, location: str = "westeurope", size: int = 32, rg: str = RG) -> Disk:
    return compute.disks.begin_create_or_update(rg, name, Disk(
        location=location, disk_size_gb=size, creation_data=CreationData(create_option="Empty"))).result()


def _get(az, url: str, **headers: str) -> requests.Response:
    return requests.get(url, headers=headers, verify=az.ca_path, timeout=10)


def _vm(compute, name: str = "vm-00000"):
    return compute.virtual_machines.get(RG, name)


def _data_disks(vm) -> list[dict]:
    return [{"lun": d.lun, "createOption": "Attach", "managedDisk": {"id": d.managed_disk.id}} for d in vm.storage_profile.data_disks]


def _patch(compute, disks: list[dict], name: str = "vm-00000"):
    return compute.virtual_machines.begin_update(RG, name, {"properties": {"storageProfile": {"dataDisks": disks}}})


# --- access ------------------------------------------------------------------------------------------------
def test_the_examples_bodies_grant_and_revoke(az, compute):
    """The next/ examples' request bodies (GrantAccessData with fileFormat) are taken; the answers have their shapes."""
    _empty_disk(compute, "myDisk")
    grant = json.loads((EXAMPLES / "2026-03-02/diskExamples/Disk_BeginGetAccess.json").read_text())
    access = compute.disks.begin_grant_access(RG, "myDisk", grant["parameters"]["grantAccessData"]).result()
    assert set(access.as_dict()) >= set(grant["responses"]["200"]["body"]) and access.access_sas.startswith(az.base_url)
    compute.disks.begin_revoke_access(RG, "myDisk").result()
    snapshot = compute.snapshots.begin_create_or_update(RG, "mySnapshot", Snapshot(
        location="westeurope", creation_data=CreationData(
            create_option="Copy", source_resource_id=compute.disks.get(RG, "myDisk").id))).result()
    body = json.loads((EXAMPLES / "2025-01-02/snapshotExamples/Snapshot_BeginGetAccess.json").read_text())
    sas = compute.snapshots.begin_grant_access(RG, snapshot.name, body["parameters"]["grantAccessData"]).result().access_sas
    assert _get(az, sas).status_code == 200
    compute.snapshots.begin_revoke_access(RG, snapshot.name).result()
    assert _get(az, sas).status_code == 403


def test_a_sas_reads_while_granted_and_is_refused_after_revoke(az, compute):
    _empty_disk(compute, "export-me")
    sas = compute.disks.begin_grant_access(RG, "export-me", GrantAccessData(access="Read", duration_in_seconds=3600)).result().access_sas
    assert compute.disks.get(RG, "export-me").disk_state == "ActiveSAS"
    whole = _get(az, sas)
    assert whole.status_code == 200 and b"export-me" in whole.content
    part = _get(az, sas, Range="bytes=0-9")
    assert part.status_code == 206 and part.content == whole.content[:10]
    assert _get(az, sas.replace("sig=", "sig=x")).status_code == 403  # another signature
    with pytest.raises(HttpResponseError) as err:  # exported: not deleted under the reader
        compute.disks.begin_delete(RG, "export-me").result()
    assert _error(err) == (409, "OperationNotAllowed")
    with pytest.raises(HttpResponseError) as err:  # one SAS at a time
        compute.disks.begin_grant_access(RG, "export-me", GrantAccessData(access="Read", duration_in_seconds=60)).result()
    assert _error(err) == (409, "OperationNotAllowed")
    compute.disks.begin_revoke_access(RG, "export-me").result()
    refused = _get(az, sas)
    assert refused.status_code == 403 and b"AuthenticationFailed" in refused.content
    assert compute.disks.get(RG, "export-me").disk_state == "Unattached"
    compute.disks.begin_delete(RG, "export-me").result()


def test_a_sas_ends_with_its_duration(az, compute):
    _empty_disk(compute, "short")
    sas = compute.disks.begin_grant_access(RG, "short", GrantAccessData(access="Read", duration_in_seconds=60)).result().access_sas
    assert _get(az, sas).status_code == 200
    az.advance(61)
    assert _get(az, sas).status_code == 403
    assert compute.disks.get(RG, "short").disk_state == "Unattached"


def test_grant_access_refuses_a_bad_body_and_a_disk_of_a_running_vm(compute):
    _empty_disk(compute, "bad-body")
    for body, target in (({"access": "None", "durationInSeconds": 60}, "access"),
                         ({"access": "Read", "durationInSeconds": 0}, "durationInSeconds")):
        with pytest.raises(HttpResponseError) as err:
            compute.disks.begin_grant_access(RG, "bad-body", body).result()
        assert _error(err) == (400, "InvalidParameter") and err.value.error.target == target
    attached = _vm(compute).storage_profile.data_disks[0].name
    with pytest.raises(HttpResponseError) as err:
        compute.disks.begin_grant_access(RG, attached, GrantAccessData(access="Read", duration_in_seconds=60)).result()
    assert _error(err) == (409, "OperationNotAllowed")


# --- data disks attached and detached by a VM PATCH ------------------------------------------------------
def test_patch_attaches_and_detaches_data_disks(compute):
    vm = _vm(compute)
    free_lun = max(d.lun for d in vm.storage_profile.data_disks) + 1
    disk = _empty_disk(compute, "extra")
    done = _patch(compute, _data_disks(vm) + [{"lun": free_lun, "createOption": "Attach",
                                               "managedDisk": {"id": disk.id}}]).result()
    assert disk.id.lower() in [d.managed_disk.id.lower() for d in done.storage_profile.data_disks]
    attached = compute.disks.get(RG, "extra")
    assert attached.disk_state == "Attached" and attached.managed_by.lower() == vm.id.lower()
    # Detached by leaving it out of the list: the VM's own disks untouched, the disk kept, Unattached.
    after = _patch(compute, _data_disks(vm)).result()
    assert [d.managed_disk.id for d in after.storage_profile.data_disks] == [d.managed_disk.id for d in vm.storage_profile.data_disks]
    kept = compute.disks.get(RG, "extra")
    assert kept.disk_state == "Unattached" and kept.managed_by is None
    # And with toBeDetached, as the examples do.
    _patch(compute, _data_disks(vm) + [{"lun": free_lun, "createOption": "Attach", "managedDisk": {"id": disk.id}}]).result()
    entries = _data_disks(vm) + [{"lun": free_lun, "createOption": "Attach", "managedDisk": {"id": disk.id}, "toBeDetached": True}]
    assert disk.id.lower() not in [d.managed_disk.id.lower() for d in _patch(compute, entries).result().storage_profile.data_disks]
    assert compute.disks.get(RG, "extra").disk_state == "Unattached"


def test_patch_refuses_as_azure_does_and_changes_nothing(az, compute, emu):
    vm = _vm(compute)
    own = _data_disks(vm)
    used_lun = own[0]["lun"]
    free_lun = max(d["lun"] for d in own) + 1
    disk = _empty_disk(compute, "candidate")
    far = _empty_disk(compute, "far-away", location="northeurope")
    other = _vm(compute, "vm-00002")  # another VM of the group
    theirs = other.storage_profile.data_disks[0].managed_disk.id

    def refused(entries: list[dict]) -> tuple[int, str]:
        with pytest.raises(HttpResponseError) as err:
            _patch(compute, entries).result()
        return _error(err)

    assert refused(own + [{"lun": used_lun, "createOption": "Attach", "managedDisk": {"id": disk.id}}]) == (400, "InvalidParameter")
    assert refused(own + [{"lun": free_lun, "createOption": "Attach", "managedDisk": {"id": far.id}}]) == (400, "InvalidParameter")
    assert refused(own + [{"lun": free_lun, "createOption": "Attach", "managedDisk": {"id": theirs}}]) == (409, "ConflictingUserInput")
    emu.store.get(vm.id).properties["hardwareProfile"]["vmSize"] = "Standard_B1s"  # 2 data disks at most
    two_more = [{"lun": free_lun + i, "createOption": "Attach", "managedDisk": {"id": _empty_disk(compute, f"more-{i}").id}}
                for i in range(2)]
    assert refused(own + two_more) == (409, "OperationNotAllowed")
    after = _vm(compute)
    assert _data_disks(after) == own
    for name in ("candidate", "far-away"):
        assert compute.disks.get(RG, name).managed_by is None


def test_a_disk_being_detached_cannot_be_attached_elsewhere(az, compute):
    az.settings(lro={"default_seconds": 30})
    vm, other = _vm(compute), _vm(compute, "vm-00002")
    leaving = _data_disks(vm)[-1]
    _patch(compute, _data_disks(vm)[:-1])  # accepted; the update runs for 30 s
    free_lun = max(d.lun for d in other.storage_profile.data_disks) + 1
    with pytest.raises(HttpResponseError) as err:
        _patch(compute, _data_disks(other) + [dict(leaving, lun=free_lun)], name="vm-00002")
    assert _error(err) == (409, "AttachDiskWhileBeingDetached")
    az.advance(31)
    _patch(compute, _data_disks(other) + [dict(leaving, lun=free_lun)], name="vm-00002")
    az.advance(31)
    moved = compute.disks.get(RG, leaving["managedDisk"]["id"].rsplit("/", 1)[-1])
    assert moved.managed_by.lower() == other.id.lower()


# --- the VM's ETag: a write conditioned on what was read --------------------------------------------------
def test_a_vm_carries_an_etag_and_refuses_a_write_on_a_stale_one_with_412(az, compute):
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    vm = _vm(compute)
    assert vm.etag and vm.etag.startswith('"')
    extra = _empty_disk(compute, "etag-extra")
    free_lun = max(d.lun for d in vm.storage_profile.data_disks) + 1
    entries = _data_disks(vm) + [{"lun": free_lun, "createOption": "Attach", "managedDisk": {"id": extra.id}}]
    done = compute.virtual_machines.begin_update(RG, vm.name, {"properties": {"storageProfile": {"dataDisks": entries}}},
                                                 etag=vm.etag, match_condition=MatchConditions.IfNotModified).result()
    assert done.etag != vm.etag and _vm(compute).etag == done.etag  # the update moved it
    with pytest.raises(ResourceModifiedError) as stale:  # the SDK's word for ARM's 412 on If-Match
        compute.virtual_machines.begin_update(RG, vm.name, {"properties": {"storageProfile": {
            "dataDisks": _data_disks(vm)}}}, etag=vm.etag, match_condition=MatchConditions.IfNotModified)
    assert stale.value.status_code == 412 and stale.value.error.code == "PreconditionFailed"
    assert vm.etag in stale.value.error.message and done.etag in stale.value.error.message
    assert compute.disks.get(RG, "etag-extra").managed_by.lower() == vm.id.lower()  # nothing was changed
    with pytest.raises(ResourceModifiedError):  # a PUT too
        compute.virtual_machines.begin_create_or_update(RG, vm.name, done, etag=vm.etag,
                                                        match_condition=MatchConditions.IfNotModified)
    without = compute.virtual_machines.begin_update(RG, vm.name, {"tags": {"a": "b"}}).result()  # no If-Match: as before
    assert without.tags == {"a": "b"} and without.etag != done.etag


def test_interleave_attaches_a_disk_before_the_next_write_of_the_vm(az, compute):
    """POST /_emulator/compute/interleave: another client's attach lands between a caller's read and its write."""
    vm = _vm(compute)
    theirs = _empty_disk(compute, "theirs")
    az.admin("POST", "compute/interleave", {"vm": vm.id, "attach": {"disk": theirs.id, "lun": 40}})
    assert _vm(compute).etag == vm.etag  # a read does not fire it
    # A write built on the stale read, without If-Match, replaces the list: their disk is dropped (the race).
    _patch(compute, _data_disks(vm) + [{"lun": 41, "createOption": "Attach",
                                        "managedDisk": {"id": _empty_disk(compute, "ours").id}}]).result()
    luns = {d.lun for d in _vm(compute).storage_profile.data_disks}
    assert 41 in luns and 40 not in luns and compute.disks.get(RG, "theirs").managed_by is None
    # With If-Match the same write is refused, and a re-read shows their disk.
    vm = _vm(compute)
    az.admin("POST", "compute/interleave", {"vm": vm.id, "attach": {"disk": theirs.id, "lun": 40}})
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    with pytest.raises(ResourceModifiedError):
        compute.virtual_machines.begin_update(RG, vm.name, {"properties": {"storageProfile": {
            "dataDisks": _data_disks(vm)}}}, etag=vm.etag, match_condition=MatchConditions.IfNotModified)
    assert 40 in {d.lun for d in _vm(compute).storage_profile.data_disks}
    assert compute.disks.get(RG, "theirs").managed_by.lower() == vm.id.lower()
    with pytest.raises(RuntimeError):
        az.admin("POST", "compute/interleave", {"vm": vm.id})
