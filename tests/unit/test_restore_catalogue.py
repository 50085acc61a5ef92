"""A VM's recovery point catalogue from rows and REST bodies: snapshot sets, restore points (and copies), vault points."""

from __future__ import annotations

from datetime import UTC, datetime

from shared import tags as T
from shared.points import model as catalogue
from shared.points.model import (
    RESTORE_POINT,
    SNAPSHOT_SET,
    VAULT,
    merge,
    restore_points,
    snapshot_sets,
    vault_points,
)

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-prod"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/web-01"
SET = "0123456789abcdef"
SLOT = "2026-11-25T06:00:00Z"


def snap(lun: int | None, *, set_id: str = SET, size: int = 3, location: str = "westeurope", state: str = "Succeeded",
         completion: float | None = None, copy: bool = False, managed: bool = True, slot: str = SLOT) -> dict:
    """A Resource Graph row of inventory.VM_SNAPSHOTS' projection."""
    part = "os" if lun is None else str(lun)
    name = f"vmk-web-01-{part}-202611250600-{set_id[:8]}"
    tags = {T.VM: VM.lower(), T.SET: set_id, T.SET_SIZE: str(size), T.LUN: str(lun), T.SLOT: slot}
    if managed:
        tags[T.MANAGED_BY] = T.MANAGED_BY_VALUE
    if copy:
        tags[T.COPY_OF] = f"{RG}/providers/Microsoft.Compute/snapshots/{name}"
    return {"id": f"{RG}/providers/Microsoft.Compute/snapshots/{name}{'-copy' if copy else ''}", "name": name,
            "location": location, "tags": tags, "state": state, "completion": completion,
            "size": 128 if lun is None else 64, "osType": "Linux" if lun is None else None}


def test_a_complete_set_with_the_os_disk_first():
    [point] = snapshot_sets([snap(1), snap(0), snap(None)])
    assert point.id == f"snapshot-set:{SET}:westeurope" and point.kind == SNAPSHOT_SET
    assert (point.complete, point.copy, point.note) == (True, False, "")
    assert point.time == datetime(2026, 11, 25, 6, tzinfo=UTC)
    assert point.consistency == "CrashConsistent"
    assert [d.lun for d in point.disks] == [None, 0, 1]
    assert point.os_disk.os_type == "Linux" and point.os_disk.size_gb == 128
    assert point.os_disk.source_id.endswith("/snapshots/vmk-web-01-os-202611250600-01234567")
    assert point.to_json()["resource_id"] is None and point.to_json()["time"] == SLOT


def test_a_missing_member_makes_it_incomplete():
    [point] = snapshot_sets([snap(None), snap(0)])
    assert not point.complete and point.note == "2 of 3 disks"


def test_a_member_not_succeeded_makes_it_incomplete():
    [point] = snapshot_sets([snap(None), snap(0, state="Creating"), snap(1)])
    assert not point.complete and "is creating" in point.note


def test_without_a_set_size_tag_it_is_incomplete():
    row = snap(None, size=1)
    del row["tags"][T.SET_SIZE]
    [point] = snapshot_sets([row])
    assert not point.complete and T.SET_SIZE in point.note


def test_sets_are_grouped_by_set_and_region_and_copies_are_flagged():
    rows = [snap(None, size=2), snap(0, size=2),
            snap(None, size=2, location="West US", copy=True, completion=100.0),
            snap(0, size=2, location="westus", copy=True, completion=42.5),
            snap(None, size=1, set_id="fedcba9876543210")]
    points = {p.id: p for p in snapshot_sets(rows)}
    assert set(points) == {f"snapshot-set:{SET}:westeurope", f"snapshot-set:{SET}:westus",
                           "snapshot-set:fedcba9876543210:westeurope"}
    source, copy = points[f"snapshot-set:{SET}:westeurope"], points[f"snapshot-set:{SET}:westus"]
    assert source.complete and not source.copy
    assert copy.copy and copy.region == "westus" and not copy.complete and "42.5% copied" in copy.note
    assert points["snapshot-set:fedcba9876543210:westeurope"].complete


def test_a_copy_fully_copied_is_complete():
    [point] = snapshot_sets([snap(None, size=1, location="westus", copy=True, completion=100)])
    assert point.copy and point.complete


def test_rows_not_vmkeepers_are_ignored():
    foreign = snap(0, managed=False)
    no_set = snap(1)
    del no_set["tags"][T.SET]
    bad_set = snap(None, set_id="not-hex-at-all!")
    no_slot = snap(None, set_id="1111111111111111", slot="yesterday")
    [point] = snapshot_sets([snap(None, size=1), foreign, no_set, bad_set, no_slot, {"id": "x"}])
    assert [d.lun for d in point.disks] == [None] and point.complete


# --- restore points ----------------------------------------------------------------------------------
RPC = f"{RG}/providers/Microsoft.Compute/restorePointCollections/vmk-rpc-web"
COPY_RPC = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Compute/restorePointCollections/vmk-rpc-web-wus"


def collection(rpc_id: str, location: str, source: str) -> dict:
    return {"id": rpc_id, "name": rpc_id.rsplit("/", 1)[-1], "location": location,
            "type": "Microsoft.Compute/restorePointCollections",
            "properties": {"source": {"id": source, "location": location}, "provisioningState": "Succeeded"}}


def rp(rpc_id: str, name: str, created: str, *, state: str = "Succeeded", replication: list[str] | None = None) -> dict:
    rp_id = f"{rpc_id}/restorePoints/{name}"

    def disk(spec_name: str, lun: int | None, size: int) -> dict:
        out = {"name": spec_name, "caching": "ReadWrite", "diskSizeGB": size,
               "managedDisk": {"id": f"{RG}/providers/Microsoft.Compute/disks/{spec_name}", "storageAccountType": "Premium_LRS"},
               "diskRestorePoint": {"id": f"{rp_id}/diskRestorePoints/{spec_name}_guid"}}
        if lun is None:
            out["osType"] = "Linux"
        else:
            out["lun"] = lun
        return out

    props = {"sourceMetadata": {"vmId": "vm-guid", "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                                "storageProfile": {"osDisk": disk("web-01-os", None, 128),
                                                   "dataDisks": [disk("web-01-data0", 0, 64), disk("web-01-data1", 1, 32)],
                                                   "diskControllerType": "SCSI"}, "location": "westeurope"},
             "consistencyMode": "ApplicationConsistent", "provisioningState": state, "timeCreated": created,
             "excludeDisks": []}
    if replication is not None:
        props["instanceView"] = {"diskRestorePoints": [
            {"id": f"{rp_id}/diskRestorePoints/d{i}", "snapshotAccessState": "Available",
             "replicationStatus": {"status": {"code": f"ReplicationState/{code}", "level": "Info"}, "completionPercent": 50}}
            for i, code in enumerate(replication)]}
    return {"id": rp_id, "name": name, "type": "Microsoft.Compute/restorePointCollections/restorePoints", "properties": props}


def test_restore_points_of_a_collection_and_of_its_copy():
    source = (collection(RPC, "westeurope", VM), [rp(RPC, "rp-1", "2026-11-25T06:00:03.1234567+00:00")])
    copy = (collection(COPY_RPC, "westus", RPC),
            [rp(COPY_RPC, "rp-1", "2026-11-25T06:20:00+00:00", replication=["succeeded", "succeeded", "succeeded"]),
             rp(COPY_RPC, "rp-2", "2026-11-25T10:20:00+00:00", state="Creating",
                replication=["succeeded", "inprogress", "succeeded"])])
    points = {p.id: p for p in restore_points([source, copy])}
    original = points[f"{RPC}/restorePoints/rp-1"]
    assert (original.kind, original.region, original.copy, original.complete) == (RESTORE_POINT, "westeurope", False, True)
    assert original.resource_id == original.id and original.vm_size == "Standard_D2s_v5"
    assert original.consistency == "ApplicationConsistent"
    assert [(d.lun, d.name, d.size_gb, d.sku) for d in original.disks] == [
        (None, "web-01-os", 128, "Premium_LRS"), (0, "web-01-data0", 64, "Premium_LRS"), (1, "web-01-data1", 32, "Premium_LRS")]
    assert original.os_disk.os_type == "Linux"
    assert original.os_disk.source_id == f"{RPC}/restorePoints/rp-1/diskRestorePoints/web-01-os_guid"
    copied = points[f"{COPY_RPC}/restorePoints/rp-1"]
    assert copied.copy and copied.region == "westus" and copied.complete
    replicating = points[f"{COPY_RPC}/restorePoints/rp-2"]
    assert replicating.copy and not replicating.complete
    assert "provisioning creating" in replicating.note and "d1 inprogress" in replicating.note


def test_a_failed_restore_point_is_incomplete_and_a_point_without_a_time_is_skipped():
    points = restore_points([(collection(RPC, "westeurope", VM),
                              [rp(RPC, "bad", "2026-11-25T06:00:00Z", state="Failed"), rp(RPC, "new", "not a time")])])
    assert [(p.id.rsplit("/", 1)[-1], p.complete, p.note) for p in points] == [("bad", False, "provisioning failed")]


# --- vault points ------------------------------------------------------------------------------------
VAULT_ID = f"{RG}/providers/Microsoft.RecoveryServices/vaults/vault-we"
ITEM = (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;rg-prod;web-01/"
        "protectedItems/VM;iaasvmcontainerv2;rg-prod;web-01")


def vault_point(name: str, when: str, kind: str = "AppConsistent") -> dict:
    return {"id": f"{ITEM}/recoveryPoints/{name}", "name": name,
            "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints",
            "properties": {"objectType": "IaasVMRecoveryPoint", "recoveryPointTime": when, "recoveryPointType": kind,
                           "virtualMachineSize": "Standard_D4s_v5", "osType": "Windows",
                           "recoveryPointDiskConfiguration": {"numberOfDisksIncludedInBackup": 2,
                                                              "includedDiskList": [{"lun": -1, "name": "web-01-os"},
                                                                                   {"lun": 0, "name": "web-01-data0"}],
                                                              "excludedDiskList": []}}}


def test_vault_points():
    points = vault_points(VAULT_ID, "westeurope", [vault_point("111", "2026-11-25T02:00:00Z"),
                                                  vault_point("222", "2026-11-24T02:00:00Z", "CrashConsistent"),
                                                  vault_point("333", "")])
    assert [p.id.rsplit("/", 1)[-1] for p in points] == ["111", "222"]
    first = points[0]
    assert (first.kind, first.region, first.complete, first.copy) == (VAULT, "westeurope", True, False)
    assert first.consistency == "ApplicationConsistent" and points[1].consistency == "CrashConsistent"
    assert [(d.lun, d.name, d.source_id, d.os_type) for d in first.disks] == [
        (None, "web-01-os", "", "Windows"), (0, "web-01-data0", "", None)]
    assert first.os_disk.name == "web-01-os"
    assert first.vm_size == "Standard_D4s_v5" and first.extra == {"vault_id": VAULT_ID}
    assert first.to_json()["disks"][0]["source_id"] is None


# --- merged ------------------------------------------------------------------------------------------
def test_merge_is_newest_first_then_by_kind():
    sets = snapshot_sets([snap(None, size=1, slot="2026-11-25T02:00:00Z")])
    rps = restore_points([(collection(RPC, "westeurope", VM), [rp(RPC, "rp-1", "2026-11-25T04:00:00Z")])])
    vps = vault_points(VAULT_ID, "westeurope", [vault_point("111", "2026-11-25T02:00:00Z"),
                                               vault_point("000", "2026-11-25T06:00:00Z")])
    merged = merge(vps, sets, rps)
    assert [(p.kind, p.time.hour) for p in merged] == [(VAULT, 6), (RESTORE_POINT, 4), (SNAPSHOT_SET, 2), (VAULT, 2)]
    assert merge() == []


def test_region_of():
    assert catalogue.region_of("West Europe") == "westeurope" and catalogue.region_of(None) == ""


def test_a_point_marked_for_deletion_is_offered_and_says_when_it_goes():
    """Issue 19: a marked point is still offered (it may be the one an operator needs), its note says when it
    is due to go, and a restore accepted before then pins it (tests/app/test_retention_run.py shows the pin)."""
    rows = [snap(None), snap(0), snap(1)]
    rows[1]["tags"]["Vmkeeper-Expiring"] = "2026-11-26T06:00:00Z"  # tag names are case-insensitive
    [point] = snapshot_sets(rows)
    assert point.complete  # a restore may read it
    assert point.note.startswith("marked for deletion after 2026-11-26T06:00:00Z: a restore accepted before then pins it")
    assert point.to_json()["note"] == point.note
    [unmarked] = snapshot_sets([snap(None), snap(0), snap(1)])
    assert unmarked.note == ""

    rp_id = f"{RPC}/restorePoints/rp-1"
    points = restore_points([(collection(RPC, "westeurope", VM), [rp(RPC, "rp-1", "2026-11-25T06:00:03+00:00")])],
                            marks={rp_id.upper(): "2026-11-26T06:00:00Z"})  # retention's ledger marks, by id
    assert points[0].complete and "marked for deletion after 2026-11-26T06:00:00Z" in points[0].note


def test_a_point_says_the_vm_instance_it_was_made_of():
    tagged = [dict(r, tags={**r["tags"], T.VM_INSTANCE: "AAAA-1"}) for r in (snap(None), snap(0), snap(1))]
    [point] = snapshot_sets(tagged)
    assert point.instance == "aaaa-1" and "instance" not in point.to_json()  # the API's shape is unchanged
    [untagged] = snapshot_sets([snap(None), snap(0), snap(1)])
    assert untagged.instance == ""
    mixed = tagged[:2] + [dict(tagged[2], tags={**tagged[2]["tags"], T.VM_INSTANCE: "bbbb-2"})]
    assert snapshot_sets(mixed)[0].instance == ""  # members disagree: not known
