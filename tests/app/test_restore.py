"""On-demand restores end to end: the HTTP API on the local Functions host (function key, App Service's
X-MS-CLIENT-PRINCIPAL), its queue worker on Azurite, the real SDK clients against the emulator — from
recovery points vmkeeper's own scheduled protection made (tests/app/restore_world.py). Every answer is
checked against the OpenAPI document."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from shared import tags as T
from tests.app import openapi_check
from tests.app.restore_world import (
    OPERATOR_PRINCIPAL,
    READER_PRINCIPAL,
    REGION,
    SECOND,
    CrashAfter,
    protect_once,
    protected,
    start,
    storage_account_id,
    wiring_wrapping,
)

WRITES = ("PUT", "PATCH", "DELETE", "POST")
READ_POSTS = ("Microsoft.ResourceGraph/resources/read", "backupValidateOperation")


def api(world: dict[str, Any], method: str, path: str, body: Any = None, *, principal: str | None = OPERATOR_PRINCIPAL,
        headers: dict[str, str] | None = None, key: bool = True, raw: bytes | None = None) -> Any:
    h = dict(headers or {})
    if principal:
        h["X-MS-CLIENT-PRINCIPAL"] = principal
    if key:
        h["x-functions-key"] = world["host"].function_key
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    answer = world["host"].http(method, path, headers=h, body=data)
    if answer.status != 401 or key:  # the host's own 401 (no function key) has no body to check
        openapi_check.check(method, path, answer.status, answer.headers, answer.body, request=data)
    return answer


def writes(az: Any, since: int) -> list[dict[str, Any]]:
    """ARM writes since a mark in the emulator's call log (queries and validations are reads)."""
    return [c for c in az.calls(since) if c["method"] in WRITES
            and not any(r in (c.get("operation") or "") + c["path"] for r in READ_POSTS)]


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    """The world one scheduled slot protected, once for the module: each test starts from its own copy."""
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("protected"))


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    yield w
    w["host"].close()


def catalogue(world: dict[str, Any], vm: str = "vm-00000", group: str = "rg-vm-00") -> dict[str, Any]:
    answer = api(world, "GET", f"/api/vms/{world['sub']}/{group}/{vm}/recovery-points")
    assert answer.status == 200, answer.body
    return answer.json()


def point(world: dict[str, Any], source: str) -> dict[str, Any]:
    kind, copy = {"set": ("snapshot_set", False), "set_copy": ("snapshot_set", True), "rp": ("restore_point", False),
                  "rp_copy": ("restore_point", True), "vault": ("vault", False)}[source]
    found = [p for p in catalogue(world)["value"] if p["kind"] == kind and p["copy"] == copy]
    assert found, f"no {source} point"
    return found[0]


def restore(world: dict[str, Any], body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POST, run the queue to the end, GET: the finished restore."""
    answer = api(world, "POST", "/api/restores", body, **kwargs)
    assert answer.status == 202, answer.body
    assert answer.headers["Location"] == f"/api/restores/{answer.json()['id']}" and int(answer.headers["Retry-After"]) > 0
    assert world["host"].run_until_idle(timeout=120)
    done = api(world, "GET", answer.headers["Location"])
    assert done.status == 200
    return done.json()


def rg(world: dict[str, Any], name: str = "rg-restore") -> str:
    return f"/subscriptions/{world['sub']}/resourceGroups/{name}"


def compute(az: Any, world: dict[str, Any]) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return az.client(ComputeManagementClient, world["sub"], polling_interval=0)


# --- the catalogue ----------------------------------------------------------------------------------
def test_catalogue_offers_no_snapshot_made_by_hand_with_vmkeepers_tags_copied(world, az):
    """A snapshot an operator makes of a disk, every tag of vmkeeper's set copied onto it, is no member of
    the set (vmkeeper's names decide, not tags alone): the set stays whole and complete, and the hand-made
    snapshot is offered nowhere; nor is a restore point made by hand in vmkeeper's collection."""
    from azure.mgmt.compute.models import CreationData, RestorePoint, Snapshot

    before = {p["id"]: p for p in catalogue(world)["value"] if p["kind"] == "snapshot_set"}
    source = point(world, "set")
    c = compute(az, world)
    member = c.snapshots.get("rg-vm-00", source["disks"][0]["source_id"].rsplit("/", 1)[-1])
    c.snapshots.begin_create_or_update("rg-vm-00", "before-upgrade", Snapshot(
        location=member.location, tags=dict(member.tags), incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=member.creation_data.source_resource_id))
    ).result()
    collection = point(world, "rp")["resource_id"].split("/")
    c.restore_points.begin_create("rg-vm-00", collection[-3], "by-hand",
                                  RestorePoint(consistency_mode="CrashConsistent")).result()
    offered = catalogue(world)["value"]
    assert not any(p["id"].lower().endswith("/restorepoints/by-hand") for p in offered)
    after = {p["id"]: p for p in offered if p["kind"] == "snapshot_set"}
    assert after == before and after[source["id"]]["complete"], after[source["id"]]["note"]
    assert not any(d["name"] == "before-upgrade" for p in after.values() for d in p["disks"])


def test_catalogue_merges_every_kind_newest_first_and_outlives_the_vm(az, emu, azurite, tmp_path, monkeypatch):
    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True)
    try:
        protect_once(w)
        points = catalogue(w)["value"]
        kinds = {(p["kind"], p["copy"], p["region"]) for p in points}
        assert kinds == {("snapshot_set", False, REGION), ("snapshot_set", True, SECOND), ("restore_point", False, REGION),
                         ("restore_point", True, SECOND), ("vault", False, REGION)}
        assert [p["time"] for p in points] == sorted((p["time"] for p in points), reverse=True)
        for p in points:
            assert p["complete"], p
            luns = [d["lun"] for d in p["disks"]]
            assert luns == [None, 0, 1], p  # the OS disk first, then the data disks
        sets = [p for p in points if p["kind"] == "snapshot_set"]
        assert all(d["source_id"].split("/")[-2] == "snapshots" for p in sets for d in p["disks"])

        compute(az, w).virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()
        after = catalogue(w)
        assert after["vm"]["exists"] is False
        assert [p["id"] for p in after["value"]] == [p["id"] for p in points]
    finally:
        w["host"].close()


def test_an_incomplete_set_is_listed_but_refused(world, az):
    snapshots = compute(az, world).snapshots
    member = next(s for s in snapshots.list_by_resource_group("rg-vm-00") if s.tags.get(T.LUN) == "1"
                  and T.COPY_OF not in s.tags)
    snapshots.begin_delete("rg-vm-00", member.name).result()
    entry = point(world, "set")
    assert entry["complete"] is False and "2 of 3 disks" in entry["note"]
    before = len(az.calls())
    answer = api(world, "POST", "/api/restores", {"vm": world["vm_id"], "recovery_point": entry["id"],
                                                  "target": {"type": "disks", "resource_group": rg(world)}})
    assert answer.status == 409 and answer.json()["errors"][0]["field"] == "recovery_point"
    assert writes(az, before) == []


# --- each source × target ---------------------------------------------------------------------------
def _check_disks(az: Any, world: dict[str, Any], done: dict[str, Any], source: dict[str, Any], option: str) -> list:
    c = compute(az, world)
    disks = [r for r in done["resources"] if "/disks/" in r.lower()]
    assert len(disks) == len(source["disks"])
    out = []
    for disk_id, want in zip(disks, source["disks"], strict=True):
        disk = c.disks.get(disk_id.split("/")[4], disk_id.split("/")[-1])
        assert disk.tags[T.RESTORE] == done["id"]
        assert disk.creation_data.create_option == option
        assert disk.creation_data.source_resource_id.lower() == want["source_id"].lower()
        assert disk.location == source["region"]
        assert disk.disk_size_gb == want["size_gb"]
        out.append(disk)
    return out


@pytest.mark.parametrize("source", ["set", "set_copy", "rp", "rp_copy"])
def test_restore_into_new_disks(world, az, source):
    p = point(world, source)
    done = restore(world, {"vm": world["vm_id"], "recovery_point": p["id"],
                           "target": {"type": "disks", "resource_group": rg(world)}})
    assert done["state"] == "succeeded" and done["percent"] == 100, done
    assert [s["state"] for s in done["steps"]] == ["done"]
    _check_disks(az, world, done, p, "Copy" if source.startswith("set") else "Restore")


@pytest.mark.parametrize("source", ["set", "set_copy", "rp", "rp_copy"])
def test_restore_into_a_new_vm(world, az, source):
    p = point(world, source)
    subnet = world["subnet"][p["region"]]
    done = restore(world, {"vm": world["vm_id"], "recovery_point": p["id"],
                           "target": {"type": "vm", "resource_group": rg(world), "vm_name": f"back-{source}".replace("_", "-"),
                                      "subnet": subnet}})
    assert done["state"] == "succeeded", done
    assert [s["name"] for s in done["steps"]] == ["create_disks", "create_nic", "create_vm"]
    assert all(s["seconds"] is not None for s in done["steps"])
    disks = _check_disks(az, world, done, p, "Copy" if source.startswith("set") else "Restore")
    c = compute(az, world)
    vm = c.virtual_machines.get("rg-restore", f"back-{source}".replace("_", "-"))
    assert vm.location == p["region"] and vm.tags[T.RESTORE] == done["id"]
    assert vm.hardware_profile.vm_size == c.virtual_machines.get("rg-vm-00", "vm-00000").hardware_profile.vm_size
    assert vm.storage_profile.os_disk.managed_disk.id.lower() == disks[0].id.lower()
    assert vm.storage_profile.os_disk.create_option == "Attach" and vm.os_profile is None
    assert {(d.lun, d.managed_disk.id.lower()) for d in vm.storage_profile.data_disks} == \
        {(want["lun"], d.id.lower()) for want, d in zip(p["disks"][1:], disks[1:], strict=True)}
    from azure.mgmt.network import NetworkManagementClient

    nic_id = vm.network_profile.network_interfaces[0].id
    nic = az.client(NetworkManagementClient, world["sub"]).network_interfaces.get("rg-restore", nic_id.split("/")[-1])
    assert nic.ip_configurations[0].subnet.id.lower() == subnet.lower()


def _power(c: Any, group: str, name: str) -> str:
    return next(s.code for s in c.virtual_machines.instance_view(group, name).statuses if s.code.startswith("PowerState/"))


@pytest.mark.parametrize("source", ["set", "rp"])
def test_swap_the_os_disk_of_the_running_vm(world, az, source):
    c = compute(az, world)
    old = c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id
    assert _power(c, "rg-vm-00", "vm-00000") == "PowerState/running"
    p = point(world, source)
    done = restore(world, {"vm": world["vm_id"], "recovery_point": p["id"], "target": {"type": "os_disk",
                                                                                      "vm": world["vm_id"]}})
    assert done["state"] == "succeeded", done
    assert [s["name"] for s in done["steps"]] == ["create_disks", "deallocate_vm", "tag_old_os_disk", "swap_os_disk",
                                                  "start_vm"]
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    (new,) = done["resources"]
    assert vm.storage_profile.os_disk.managed_disk.id.lower() == new.lower() != old.lower()
    kept = c.disks.get("rg-vm-00", old.split("/")[-1])
    assert kept.tags[T.REPLACED_BY_RESTORE] == done["id"] and kept.disk_state == "Unattached"
    assert _power(c, "rg-vm-00", "vm-00000") == "PowerState/running"  # it was running: started again


@pytest.mark.parametrize("source", ["set_copy", "rp_copy"])
def test_disaster_recovery_in_the_second_region_then_swap_its_os_disk(world, az, source):
    """A VM rebuilt in the second region from the copies, then its OS disk swapped from them (a deallocated
    VM stays deallocated)."""
    p = point(world, source)
    first = restore(world, {"vm": world["vm_id"], "recovery_point": p["id"], "target": {
        "type": "vm", "resource_group": rg(world, "rg-vm-01"), "vm_name": "dr", "subnet": world["subnet"][SECOND]}})
    assert first["state"] == "succeeded", first
    c = compute(az, world)
    c.virtual_machines.begin_deallocate("rg-vm-01", "dr").result()
    dr_id = f"{rg(world, 'rg-vm-01')}/providers/Microsoft.Compute/virtualMachines/dr"
    done = restore(world, {"vm": world["vm_id"], "recovery_point": p["id"], "target": {"type": "os_disk", "vm": dr_id}})
    assert done["state"] == "succeeded", done
    assert c.virtual_machines.get("rg-vm-01", "dr").storage_profile.os_disk.managed_disk.id.lower() == \
        done["resources"][0].lower()
    assert _power(c, "rg-vm-01", "dr") == "PowerState/deallocated"


def test_an_os_disk_of_another_size_is_refused_naming_the_field(world, az):
    c = compute(az, world)
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    disk = vm.storage_profile.os_disk.managed_disk.id.split("/")[-1]
    c.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    c.disks.begin_create_or_update("rg-vm-00", disk, {"location": REGION, "properties": {"diskSizeGB": 128}}).result()
    before = len(az.calls())
    answer = api(world, "POST", "/api/restores", {"vm": world["vm_id"], "recovery_point": point(world, "set")["id"],
                                                  "target": {"type": "os_disk", "vm": world["vm_id"]}})
    assert answer.status == 400 and answer.json()["errors"][0]["field"] == "target.vm"
    assert "same size" in answer.json()["errors"][0]["detail"]
    assert writes(az, before) == []


@pytest.fixture
def alerted(az, emu, azurite, tmp_path, monkeypatch, saved):
    """The world with an alerts outbox to read."""
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved, VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
    yield w
    w["host"].close()


def alerts(world: dict[str, Any]) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    outbox = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                                world["settings"]["VMKEEPER_ALERTS_TABLE"])
    return [json.loads(r["event"]) for r in outbox.list_entities()]


def test_a_failed_os_disk_swap_is_undone_the_old_disk_tagged_and_the_vm_started_again(alerted, az):
    """The swap's PATCH ends Failed (ARM took the new disk in, then failed): the VM was left deallocated, its old
    disk detached and untagged. Now the old disk goes back, the VM is started again (it was running), the old
    disk carries the restore's tag next to an operator's, and restore.failed says what state the VM is in."""
    w = alerted
    c = compute(az, w)
    old = c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.resources.models import Tags, TagsPatchResource

    az.client(ResourceManagementClient, w["sub"]).tags.begin_update_at_scope(
        old, TagsPatchResource(operation="Merge", properties=Tags(tags={"owner": "db-team"}))).result()
    p = point(w, "set")
    az.faults([{"kind": "lro_failed", "method": "PATCH", "path": "/virtualMachines/vm-00000$", "count": 1}])
    done = restore(w, {"vm": w["vm_id"], "recovery_point": p["id"], "target": {"type": "os_disk", "vm": w["vm_id"]}})
    assert az.admin("GET", "faults")["rules"][0]["fired"] == 1
    az.faults([])
    assert done["state"] == "failed", done
    assert [(s["name"], s["state"]) for s in done["steps"]] == [
        ("create_disks", "done"), ("deallocate_vm", "done"), ("tag_old_os_disk", "done"), ("swap_os_disk", "failed"),
        ("put_back_os_disk", "done"), ("start_vm", "done")]
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    assert vm.storage_profile.os_disk.managed_disk.id.lower() == old.lower()
    assert _power(c, "rg-vm-00", "vm-00000") == "PowerState/running"
    kept = c.disks.get("rg-vm-00", old.split("/")[-1])
    assert kept.tags == {"owner": "db-team", T.REPLACED_BY_RESTORE: done["id"]} and kept.disk_state != "Unattached"
    (restored,) = done["resources"]
    disk = c.disks.get("rg-vm-00", restored.split("/")[-1])
    assert disk.tags[T.RESTORE] == done["id"] and disk.disk_state == "Unattached"  # kept, this restore's
    error = done["error"]
    assert error["step"] == "swap_os_disk" and error["vm"]["power"] == "running", error
    assert error["vm"]["os_disk_id"].lower() == old.lower()
    assert "is running on its old OS disk" in error["message"] and "it was running" in error["message"], error
    (event,) = alerts(w)
    assert event["type"] == "vmkeeper.restore.failed", event
    assert "is running on its old OS disk" in json.dumps(event)


class OperatorRepairs:
    """The restores table as an operator attaching a disk of their own to the VM the moment a failed swap is saved,
    before its undo looks at the VM (``repair``: the operator's PATCH, done once)."""

    def __init__(self, table: Any, repair: Any):
        self.table, self.repair, self.repaired = table, repair, False

    def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        answer = self.table.update_entity(entity, **kwargs)
        undo = json.loads(entity.get("context") or "{}").get("undo") or {}  # the swap failed: its undo is next
        if not self.repaired and "put_back_os_disk" in (undo.get("steps") or []):
            self.repaired = True
            self.repair()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def test_an_os_disk_an_operator_attached_after_a_failed_swap_is_left_attached(az, emu, azurite, tmp_path, monkeypatch,
                                                                              saved):
    """The swap fails with the restored disk in, and before its undo runs an operator attaches a disk of their own:
    the undo puts the old disk back only over this restore's disk, never over theirs. The restore ends failed,
    saying the VM's OS disk is neither, and nothing is PATCHed after the operator's change."""
    from azure.mgmt.compute.models import CreationData, Disk

    calls: dict[str, Any] = {}

    def repair() -> None:
        calls["c"].virtual_machines.begin_update("rg-vm-00", "vm-00000", {"properties": {"storageProfile": {"osDisk": {
            "managedDisk": {"id": calls["theirs"]}}}}}).result()
        calls["mark"] = len(az.calls())

    tables: list[OperatorRepairs] = []

    def racing(table: Any) -> OperatorRepairs:
        tables.append(OperatorRepairs(table, repair))
        return tables[-1]

    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved, VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}",
              wiring_class=wiring_wrapping("VMKEEPER_RESTORE_TABLE", racing))
    try:
        c = calls["c"] = compute(az, w)
        vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
        calls["theirs"] = c.disks.begin_create_or_update("rg-vm-00", "ops-repaired-os", Disk(
            location=vm.location, os_type=vm.storage_profile.os_disk.os_type, creation_data=CreationData(
                create_option="Copy", source_resource_id=vm.storage_profile.os_disk.managed_disk.id))).result().id
        az.faults([{"kind": "lro_failed", "method": "PATCH", "path": "/virtualMachines/vm-00000$", "count": 1}])
        done = restore(w, {"vm": w["vm_id"], "recovery_point": point(w, "set")["id"],
                           "target": {"type": "os_disk", "vm": w["vm_id"]}})
        az.faults([])
        assert [t.repaired for t in tables] == [True]
        assert done["state"] == "failed", done
        assert ("put_back_os_disk", "failed") in [(s["name"], s["state"]) for s in done["steps"]], done["steps"]
        now = c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id
        assert now.lower() == calls["theirs"].lower()
        assert [x for x in az.calls(calls["mark"]) if x["method"] == "PATCH"] == []
        assert "neither its old" in done["error"]["message"] and "left as it is" in done["error"]["message"], done
        assert [e["type"] for e in alerts(w)] == ["vmkeeper.restore.failed"]
    finally:
        w["host"].close()


def test_a_swap_arm_keeps_refusing_is_given_up_then_undone_with_one_alert(alerted, az):
    """A deallocated VM under a ReadOnly lock: ARM refuses the swap (409 ScopeLocked) at every try, so the job
    gives up. Giving up undoes first, on a message of its own: the VM is left on its old disk and deallocated, as
    it was, and the one alert is restore.failed saying so (not a poisoned job)."""
    from azure.mgmt.resource.locks import ManagementLockClient
    from azure.mgmt.resource.locks.models import ManagementLockObject

    w = alerted
    c = compute(az, w)
    old = c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id
    c.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    locks = az.client(ManagementLockClient, w["sub"]).management_locks
    locks.create_or_update_by_scope(w["vm_id"], "change-freeze", ManagementLockObject(level="ReadOnly"))
    mark = len(az.calls())
    done = restore(w, {"vm": w["vm_id"], "recovery_point": point(w, "set")["id"],
                       "target": {"type": "os_disk", "vm": w["vm_id"]}})
    patches = [x for x in az.calls(mark) if x["method"] == "PATCH" and "/virtualmachines/" in x["path"].lower()]
    assert patches and all(x["status"] == 409 for x in patches), patches  # each try of the job refused, then given up
    locks.delete_by_scope(w["vm_id"], "change-freeze")
    assert done["state"] == "failed", done
    assert [(s["name"], s["state"]) for s in done["steps"]] == [
        ("create_disks", "done"), ("deallocate_vm", "done"), ("tag_old_os_disk", "done"), ("swap_os_disk", "failed"),
        ("put_back_os_disk", "done"), ("start_vm", "done")]
    assert done["error"]["code"] == "GaveUp" and "ScopeLocked" in done["error"]["message"], done["error"]
    assert "is deallocated on its old OS disk" in done["error"]["message"], done["error"]
    assert c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id.lower() == old.lower()
    assert _power(c, "rg-vm-00", "vm-00000") == "PowerState/deallocated"  # as it was
    assert c.disks.get("rg-vm-00", old.split("/")[-1]).tags[T.REPLACED_BY_RESTORE] == done["id"]
    assert [e["type"] for e in alerts(w)] == ["vmkeeper.restore.failed"]


def test_an_os_disk_changed_after_the_plan_stops_the_swap_before_anything_changes(world, az):
    """The plan (and the allow-list) admitted the VM's OS disk as it was; swapped for another by hand before the
    restore ran, the restore stops at its first look at the VM: no deallocation, no tag, no swap."""
    c = compute(az, world)
    p = point(world, "set")
    answer = api(world, "POST", "/api/restores", {"vm": world["vm_id"], "recovery_point": p["id"],
                                                  "target": {"type": "os_disk", "vm": world["vm_id"]}})
    assert answer.status == 202
    os_point = p["disks"][0]
    other = c.disks.begin_create_or_update("rg-vm-00", "os-by-hand", {
        "location": REGION, "properties": {"osType": os_point["os_type"], "creationData": {
            "createOption": "Copy", "sourceResourceId": os_point["source_id"]}}}).result()
    c.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    c.virtual_machines.begin_update("rg-vm-00", "vm-00000", {"properties": {"storageProfile": {"osDisk": {
        "managedDisk": {"id": other.id}}}}}).result()
    c.virtual_machines.begin_start("rg-vm-00", "vm-00000").result()
    mark = len(az.calls())
    assert world["host"].run_until_idle(timeout=120)
    done = api(world, "GET", answer.headers["Location"]).json()
    assert done["state"] == "failed" and done["error"]["step"] == "deallocate_vm", done
    assert done["error"]["code"] == "Conflict" and "os-by-hand" in done["error"]["message"]
    assert [s["name"] for s in done["steps"] if s["state"] == "done"] == ["create_disks"]
    vm_writes = [x for x in writes(az, mark) if "/virtualmachines/" in x["path"].lower() or "tags" in x["path"].lower()]
    assert vm_writes == []
    assert c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id.lower() == other.id.lower()
    assert _power(c, "rg-vm-00", "vm-00000") == "PowerState/running"
    assert T.REPLACED_BY_RESTORE not in (c.disks.get("rg-vm-00", "os-by-hand").tags or {})


def test_an_os_disk_in_a_group_outside_the_allow_list_is_refused_and_nothing_is_written(world, az):
    """The VM's group is allowed, its OS disk lives in another that is not: the swap would tag that disk (and
    detach it there), so the request is refused at plan time, dry run or not, and nothing is written."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    c = compute(az, world)
    p = point(world, "set")
    os_point = p["disks"][0]
    az.client(ResourceManagementClient, world["sub"]).resource_groups.create_or_update("rg-elsewhere", {"location": REGION})
    outside = c.disks.begin_create_or_update("rg-elsewhere", "os-elsewhere", {
        "location": REGION, "properties": {"osType": os_point["os_type"], "creationData": {
            "createOption": "Copy", "sourceResourceId": os_point["source_id"]}}}).result()
    c.virtual_machines.begin_deallocate("rg-vm-00", "vm-00000").result()
    c.virtual_machines.begin_update("rg-vm-00", "vm-00000", {"properties": {"storageProfile": {"osDisk": {
        "managedDisk": {"id": outside.id}}}}}).result()
    assert c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id.lower() == outside.id.lower()
    mark = len(az.calls())
    for dry_run in (True, False):
        answer = api(world, "POST", "/api/restores", {"vm": world["vm_id"], "recovery_point": p["id"], "dry_run": dry_run,
                                                      "target": {"type": "os_disk", "vm": world["vm_id"]}})
        assert answer.status == 403, answer.json()
        (error,) = answer.json()["errors"]
        assert error["field"] == "target.vm" and "rg-elsewhere" in error["detail"], error
    assert writes(az, mark) == []
    assert api(world, "GET", "/api/restores").json()["value"] == []
    assert T.REPLACED_BY_RESTORE not in (c.disks.get("rg-elsewhere", "os-elsewhere").tags or {})


# --- Azure Backup's restore types ---------------------------------------------------------------------
@pytest.fixture
def vaulted(az, emu, azurite, tmp_path, monkeypatch):
    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True)
    yield w
    w["host"].close()


def _restore_jobs(world: dict[str, Any]) -> list:
    return list(world["backup"].backup_jobs.list(world["vault_id"].split("/")[-1], "rg-backup",
                                                 filter="operation eq 'Restore'"))


@pytest.mark.parametrize("target", ["disks", "vm", "original_location"])
def test_restore_from_a_vault_recovery_point(vaulted, az, target):
    w = vaulted
    p = point(w, "vault")
    body: dict[str, Any] = {"type": target, "staging_storage_account": storage_account_id(w["sub"])}
    if target in ("disks", "vm"):
        body["resource_group"] = rg(w)
    if target == "vm":
        body.update(vm_name="from-vault", subnet=w["subnet"][REGION])
    c = compute(az, w)
    before_os = c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id
    done = restore(w, {"vm": w["vm_id"], "recovery_point": p["id"], "target": body})
    assert done["state"] == "succeeded", done
    assert [s["name"] for s in done["steps"]] == ["trigger_vault_restore", "follow_backup_job"]
    (job,) = _restore_jobs(w)  # exactly one restore was sent
    assert job.properties.status == "Completed"
    if target == "disks":
        assert len([r for r in done["resources"] if "/disks/" in r.lower()]) == 3
        assert all(r.split("/")[4].lower() == "rg-restore" for r in done["resources"])
    elif target == "vm":
        vm = c.virtual_machines.get("rg-restore", "from-vault")
        assert vm.id.lower() in {r.lower() for r in done["resources"]}
    else:
        after = c.virtual_machines.get("rg-vm-00", "vm-00000").storage_profile.os_disk.managed_disk.id
        assert after.lower() != before_os.lower()  # replaced in place


def test_vault_dry_run_asks_azure_backup_to_validate_and_creates_nothing(vaulted, az):
    w = vaulted
    p = point(w, "vault")
    before = len(az.calls())
    ok = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "dry_run": True, "target": {
        "type": "vm", "resource_group": rg(w), "vm_name": "from-vault", "subnet": w["subnet"][REGION],
        "staging_storage_account": storage_account_id(w["sub"])}})
    assert ok.status == 200, ok.json()
    assert ok.json()["plan"]["vault"]["recovery_type"] == "AlternateLocation"
    assert any("backupValidateOperation" in c["path"] for c in az.calls(before))
    bad = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "dry_run": True, "target": {
        "type": "vm", "resource_group": rg(w), "vm_name": "from-vault", "subnet": w["subnet"][SECOND],
        "staging_storage_account": storage_account_id(w["sub"])}})
    assert bad.status == 400 and bad.json()["errors"][0]["field"] == "target.subnet"
    assert writes(az, before) == [] and _restore_jobs(w) == []
    # What only Azure Backup knows: the original VM is gone, so OriginalLocation cannot be.
    compute(az, w).virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()
    before = len(az.calls())
    gone = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "dry_run": True, "target": {
        "type": "original_location", "staging_storage_account": storage_account_id(w["sub"])}})
    assert gone.status == 400 and "UserErrorOriginalVmNotFound" in gone.json()["errors"][0]["detail"], gone.json()
    assert writes(az, before) == [] and _restore_jobs(w) == []


APP_IDENTITY = "vmkeeper-identity"  # the bearer token of the app's credential in the next test


@pytest.mark.parametrize("target", ["disks", "vm", "original_location"])
def test_under_the_deployed_roles_a_vault_restore_stages_only_in_a_granted_account(az, emu, azurite, tmp_path,
                                                                                     monkeypatch, target):
    """The app as deployed: the emulator holds the roles infra/ assigns its identity (deployed_roles.py), and
    checks each request's action and Azure Backup's linked checks on the caller (Learn, backup-rbac-rs-vault)."""
    from emulator.testing import StaticCredential
    from tests.app.deployed_roles import assignments

    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True, credential=StaticCredential(APP_IDENTITY))
    try:
        granted = storage_account_id(w["sub"])
        az.role_assignments(assignments(APP_IDENTITY, [w["sub"]], [granted]))
        p = point(w, "vault")
        body: dict[str, Any] = {"type": target}
        if target in ("disks", "vm"):
            body["resource_group"] = rg(w)
        if target == "vm":
            body.update(vm_name="from-vault", subnet=w["subnet"][REGION])
        other = granted.replace("/vmkstaging", "/notgranted")  # in the allow-list's group, but no role there
        mark = len(az.calls())
        refused = restore(w, {"vm": w["vm_id"], "recovery_point": p["id"], "target": {
            **body, "staging_storage_account": other}})
        assert refused["state"] == "failed", refused
        assert refused["error"]["code"] == "Forbidden" and refused["error"]["step"] == "trigger_vault_restore"
        assert "LinkedAuthorizationFailed" in refused["error"]["message"]
        assert f"'Microsoft.Storage/storageAccounts/write' on the linked scope(s) '{other}'" in refused["error"]["message"]
        assert _restore_jobs(w) == []  # Azure Backup did nothing
        assert [c["path"] for c in az.calls(mark) if c["method"] == "LINKED" and c["status"] == 403] == [other]
        done = restore(w, {"vm": w["vm_id"], "recovery_point": p["id"], "target": {
            **body, "staging_storage_account": granted}})
        assert done["state"] == "succeeded", done
        (job,) = _restore_jobs(w)
        assert job.properties.status == "Completed"
        # The role held every other action the app took: the one refusal was the restore its linked check failed.
        assert [c["operation"] for c in az.calls(mark) if c["status"] == 403 and c["method"] != "LINKED"] == [
            "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints/"
            "restore/action"]
    finally:
        w["host"].close()


def test_a_vault_restore_staging_in_an_account_infra_did_not_grant_is_refused_up_front(az, emu, azurite, tmp_path,
                                                                                        monkeypatch):
    """VMKEEPER_RESTORE_STAGING_ACCOUNTS (infra writes it from restoreStagingAccountIds): an account not in it is
    refused at the request, naming the field, with nothing written (Azure Backup would refuse it mid-restore)."""
    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True,
              VMKEEPER_RESTORE_STAGING_ACCOUNTS=storage_account_id("{sub}").replace("/rg-restore/", "/RG-Restore/"))
    try:
        p = point(w, "vault")
        granted = storage_account_id(w["sub"])
        other = granted.replace("/vmkstaging", "/notgranted")
        mark = len(az.calls())
        for dry_run in (True, False):
            refused = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "dry_run": dry_run,
                                                       "target": {"type": "disks", "resource_group": rg(w),
                                                                  "staging_storage_account": other}})
            assert refused.status == 403, refused.json()
            assert refused.headers["Content-Type"].startswith("application/problem+json")
            assert [e["field"] for e in refused.json()["errors"]] == ["target.staging_storage_account"]
        assert writes(az, mark) == [] and _restore_jobs(w) == []
        done = restore(w, {"vm": w["vm_id"], "recovery_point": p["id"], "target": {  # the granted one, any case
            "type": "disks", "resource_group": rg(w), "staging_storage_account": granted}})
        assert done["state"] == "succeeded", done
    finally:
        w["host"].close()


# --- resumable, idempotent, cancellable ---------------------------------------------------------------
@pytest.mark.parametrize("step", ["create_disks", "create_nic", "create_vm"])
def test_a_crash_between_steps_resumes_and_creates_nothing_twice(az, emu, azurite, tmp_path, monkeypatch, saved, step):
    crashes: list[CrashAfter] = []

    def crash(table: Any) -> CrashAfter:  # the restores table dying once after ``step``
        crashes.append(CrashAfter(table, step))
        return crashes[-1]

    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved,
              wiring_class=wiring_wrapping("VMKEEPER_RESTORE_TABLE", crash))
    try:
        p = point(w, "set")
        mark = len(az.calls())
        done = restore(w, {"vm": w["vm_id"], "recovery_point": p["id"], "target": {
            "type": "vm", "resource_group": rg(w), "vm_name": "phoenix", "subnet": w["subnet"][REGION]}})
        assert [c.crashed for c in crashes] == [True] and done["state"] == "succeeded", done
        # The runner took the death for a transient error of the job and sent it on again; the next delivery
        # re-ran the step, which found what it had made.
        created = [c for c in writes(az, mark) if c["method"] == "PUT" and c["status"] in (200, 201, 202)]
        assert sorted(c["path"].split("?")[0].rsplit("/", 2)[-2] for c in created) == \
            ["disks", "disks", "disks", "networkInterfaces", "virtualMachines"]  # each once
        assert len(done["resources"]) == 5
    finally:
        w["host"].close()


class MarkLandsFirst:
    """The restores table as the submit's ``queued`` mark (written after the message is sent) landing between the
    worker's read of the row and its first save: before that save, the row is written once by someone else."""

    def __init__(self, table: Any):
        self.table, self.landed = table, False

    def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        if not self.landed and entity.get("state") == "running":
            self.landed = True
            self.table.update_entity({"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], "queued": True})
        return self.table.update_entity(entity, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def test_a_row_changed_before_the_first_step_is_not_taken_for_another_delivery(az, emu, azurite, tmp_path, monkeypatch,
                                                                                 saved):
    """Found by bench/drill.py: 10 drills' restores at once, one of them read its row before the submit marked it
    queued; its first save met the new ETag and the delivery was dropped as "advanced by another", so the restore
    stayed pending, and its drill waited, for ever."""
    tables: list[MarkLandsFirst] = []

    def racing(table: Any) -> MarkLandsFirst:
        tables.append(MarkLandsFirst(table))
        return tables[-1]

    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved,
              wiring_class=wiring_wrapping("VMKEEPER_RESTORE_TABLE", racing))
    try:
        mark = len(az.calls())
        done = restore(w, {"vm": w["vm_id"], "recovery_point": point(w, "rp")["id"],
                           "target": {"type": "disks", "resource_group": rg(w)}})
        assert [t.landed for t in tables] == [True]
        assert done["state"] == "succeeded", done
        created = [c for c in writes(az, mark) if c["method"] == "PUT" and c["status"] in (200, 201, 202)]
        assert len(created) == len(done["resources"]) == 3  # each disk once
    finally:
        w["host"].close()


@pytest.mark.parametrize("taken", ["disk", "nic"])
def test_a_name_taken_by_something_not_this_restores_is_never_written_over(world, az, taken):
    """Create-only: the plan's deterministic name already holds a resource this restore did not make (here an
    operator's, with their tags): the step refuses instead of adopting it, and the resource is untouched."""
    from azure.mgmt.network import NetworkManagementClient

    from shared.access import principal
    from shared.restore.plan import disk_name
    from shared.restore.service import restore_id_for

    rid = restore_id_for(principal(OPERATOR_PRINCIPAL), "ticket-9")
    tags = {"owner": "db-team", T.RESTORE: "0123456789abcdef"}  # another restore's, as far as this one knows
    c = compute(az, world)
    p = point(world, "set")
    if taken == "disk":
        name = disk_name("vm-00000", None, rid)
        c.disks.begin_create_or_update("rg-restore", name, {"location": REGION, "tags": tags,
                                                            "properties": {"creationData": {"createOption": "Empty"},
                                                                           "diskSizeGB": 4}}).result()
        read = lambda: c.disks.get("rg-restore", name)  # noqa: E731
        target = {"type": "disks", "resource_group": rg(world)}
    else:
        name = f"back-nic-r{rid}"
        network = az.client(NetworkManagementClient, world["sub"]).network_interfaces
        network.begin_create_or_update("rg-restore", name, {"location": REGION, "tags": tags, "properties": {
            "ipConfigurations": [{"name": "ipconfig1", "properties": {"subnet": {"id": world["subnet"][REGION]}}}]}}).result()
        read = lambda: network.get("rg-restore", name)  # noqa: E731
        target = {"type": "vm", "resource_group": rg(world), "vm_name": "back", "subnet": world["subnet"][REGION]}
    before = read()
    mark = len(az.calls())
    done = restore(world, {"vm": world["vm_id"], "recovery_point": p["id"], "target": target},
                   headers={"Idempotency-Key": "ticket-9"})
    assert done["id"] == rid and done["state"] == "failed" and done["error"]["code"] == "NameTaken", done
    assert not [x for x in writes(az, mark) if name.lower() in x["path"].lower()]  # never written to
    after = read()
    assert after.tags == tags and getattr(after, "etag", None) == getattr(before, "etag", None)
    assert name.lower() not in {r.rsplit("/", 1)[-1].lower() for r in done["resources"]}


def test_idempotency_key_returns_the_same_restore(world, az):
    body = {"vm": world["vm_id"], "recovery_point": point(world, "rp")["id"],
            "target": {"type": "disks", "resource_group": rg(world)}}
    first = api(world, "POST", "/api/restores", body, headers={"Idempotency-Key": "ticket-4711"})
    again = api(world, "POST", "/api/restores", body, headers={"Idempotency-Key": "ticket-4711"})
    assert first.status == again.status == 202
    assert first.json()["id"] == again.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
    other = api(world, "POST", "/api/restores", {**body, "target": {"type": "disks", "resource_group": rg(world, "rg-vm-01")}},
                headers={"Idempotency-Key": "ticket-4711"})
    assert other.status == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert world["host"].run_until_idle(timeout=60)
    listed = api(world, "GET", "/api/restores").json()["value"]
    assert [r["id"] for r in listed] == [first.json()["id"]] and listed[0]["state"] == "succeeded"


def test_cancel_before_it_starts_and_not_after(world, az):
    body = {"vm": world["vm_id"], "recovery_point": point(world, "set")["id"],
            "target": {"type": "disks", "resource_group": rg(world)}}
    mark = len(az.calls())
    accepted = api(world, "POST", "/api/restores", body).json()
    cancelled = api(world, "DELETE", f"/api/restores/{accepted['id']}")
    assert cancelled.status == 200 and cancelled.json()["state"] == "cancelled"
    assert world["host"].run_until_idle(timeout=60)
    assert writes(az, mark) == []  # its message came and went: nothing was created
    assert api(world, "GET", f"/api/restores/{accepted['id']}").json()["state"] == "cancelled"
    ran = restore(world, body)
    late = api(world, "DELETE", f"/api/restores/{ran['id']}")
    assert late.status == 409 and late.json()["errors"][0]["field"] == "state"


def test_dry_run_plans_and_creates_nothing(world, az):
    p = point(world, "set")
    mark = len(az.calls())
    answer = api(world, "POST", "/api/restores", {"vm": world["vm_id"], "recovery_point": p["id"], "dry_run": True,
                                                  "target": {"type": "vm", "resource_group": rg(world), "vm_name": "plan",
                                                             "subnet": world["subnet"][REGION]}})
    assert answer.status == 200
    plan = answer.json()["plan"]
    assert plan["steps"] == ["create_disks", "create_nic", "create_vm"]
    assert [c["type"] for c in plan["creates"]] == ["Microsoft.Compute/disks"] * 3 + [
        "Microsoft.Network/networkInterfaces", "Microsoft.Compute/virtualMachines"]
    assert writes(az, mark) == []
    assert api(world, "GET", "/api/restores").json()["value"] == []


def test_recent_restores_are_paged(world):
    body = {"vm": world["vm_id"], "recovery_point": point(world, "set")["id"], "dry_run": False,
            "target": {"type": "disks", "resource_group": rg(world)}}
    ids = [api(world, "POST", "/api/restores", body, headers={"Idempotency-Key": f"k{i}"}).json()["id"] for i in range(3)]
    first = api(world, "GET", "/api/restores?top=2")
    assert first.status == 200 and len(first.json()["value"]) == 2
    second = api(world, "GET", first.json()["nextLink"])
    assert "nextLink" not in second.json()
    assert sorted(r["id"] for r in first.json()["value"] + second.json()["value"]) == sorted(ids)
    assert api(world, "GET", "/api/restores?top=0").status == 400
    assert api(world, "GET", "/api/restores?skiptoken=%%%").status == 400


# --- who may do what, and where ---------------------------------------------------------------------
def test_refusals_create_nothing(world, az):
    from shared.access import encode_principal

    sub = world["sub"]
    good = {"vm": world["vm_id"], "recovery_point": point(world, "set")["id"],
            "target": {"type": "disks", "resource_group": rg(world)}}
    foreign = "11111111-2222-3333-4444-555555555555"
    nobody = encode_principal("00000000-0000-0000-0000-0000000000cc", [])
    via_role_typ = encode_principal("00000000-0000-0000-0000-0000000000dd", ["Restore.Reader"],
                                    role_claim="http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
    mark = len(az.calls())
    cases = [
        (dict(principal=None), 401, "X-MS-CLIENT-PRINCIPAL"),
        (dict(principal="not base64!"), 401, "X-MS-CLIENT-PRINCIPAL"),
        (dict(principal=READER_PRINCIPAL), 403, "X-MS-CLIENT-PRINCIPAL.roles"),
        (dict(principal=nobody), 403, "X-MS-CLIENT-PRINCIPAL.roles"),
        (dict(principal=via_role_typ), 403, "X-MS-CLIENT-PRINCIPAL.roles"),  # a reader, read from role_typ
    ]
    for kwargs, status, field in cases:
        answer = api(world, "POST", "/api/restores", good, **kwargs)
        assert answer.status == status and answer.json()["errors"][0]["field"] == field, (kwargs, answer.json())
    assert api(world, "POST", "/api/restores", good, key=False).status == 401  # the host: no function key
    bodies = [
        ({**good, "target": {"type": "disks", "resource_group": f"/subscriptions/{sub}/resourceGroups/rg-elsewhere"}},
         403, "target.resource_group"),
        ({**good, "target": {"type": "disks", "resource_group": f"/subscriptions/{foreign}/resourceGroups/rg-restore"}},
         403, "target.resource_group"),
        ({**good, "vm": world["vm_id"].replace(sub, foreign)}, 403, "vm"),
        ({**good, "target": {"type": "disks", "resource_group": rg(world) + "/../../rg-elsewhere"}}, 400,
         "target.resource_group"),
        ({**good, "vm": world["vm_id"] + "?api-version=1"}, 400, "vm"),
        ({**good, "target": {"type": "vm", "resource_group": rg(world), "vm_name": "x",
                             "subnet": "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/subnets"}}, 400,
         "target.subnet"),
        ({**good, "recovery_point": "snapshot-set:nothex:westeurope"}, 400, "recovery_point"),
        ({**good, "recovery_point": "snapshot-set:0123456789abcdef:westeurope"}, 400, "recovery_point"),
        ({k: v for k, v in good.items() if k != "target"}, 400, "target"),
        ({**good, "target": {"type": "os_disk"}}, 400, "target.vm"),
    ]
    for body, status, field in bodies:
        answer = api(world, "POST", "/api/restores", body)
        assert answer.status == status, (body, answer.json())
        assert field in [e["field"] for e in answer.json()["errors"]], (body, answer.json())
    assert api(world, "POST", "/api/restores", raw=b"{not json").json()["errors"][0]["field"] == "body"
    reader_get = api(world, "GET", f"/api/vms/{sub}/rg-vm-00/vm-00000/recovery-points", principal=READER_PRINCIPAL)
    assert reader_get.status == 200
    assert api(world, "GET", f"/api/vms/{foreign}/rg-vm-00/vm-00000/recovery-points").status == 403
    assert api(world, "GET", "/api/restores/not-an-id").status == 400
    assert api(world, "GET", "/api/restores/0123456789abcdef").status == 404
    assert api(world, "DELETE", "/api/restores/0123456789abcdef", principal=READER_PRINCIPAL).status == 403
    assert writes(az, mark) == []
    assert api(world, "GET", "/api/restores").json()["value"] == []


def test_openapi_document_matches_the_registered_routes(world):
    from openapi_spec_validator import validate

    doc = api(world, "GET", "/api/openapi.json", principal=None, key=False).json()
    validate(doc)
    registered = set()
    for f in world["host"].functions.values():
        trigger = f.get_trigger()
        if trigger.type == "httpTrigger" and trigger.route != "health":
            for method in trigger.methods:
                registered.add((method.lower() if isinstance(method, str) else method.value.lower(), "/" + trigger.route))
    documented = {(m, p) for p, item in doc["paths"].items() for m in item if m in ("get", "post", "put", "patch", "delete")}
    assert documented == registered
