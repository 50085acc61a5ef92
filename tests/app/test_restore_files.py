"""File recoveries and exports end to end, from points vmkeeper's own scheduled protection made
(tests/app/restore_world.py): the restore API on the local Functions host, its worker and timer, Azurite, the real
SDK clients against the emulator. Disks made from a point are attached to an operator's VM (the emulator shows
them attached), ended by the operator and by expiry after a worker died mid-way (the timer reads the records);
the VM's own disks untouched; an export's SAS that reads, then stops working once revoked; refusals that write
nothing. Every answer is checked against the OpenAPI document."""

from __future__ import annotations

import importlib
import json
import secrets
import time
from typing import Any

import pytest
import requests

from shared import tags as T
from shared.access import OPERATOR, encode_principal
from tests.app.restore_world import (
    OPERATOR_PRINCIPAL,
    READER_PRINCIPAL,
    REGION,
    SECOND,
    crash_after,
    protected,
    start,
    wiring_wrapping,
)
from tests.app.test_restore import api, compute, point, writes

OTHER_OPERATOR = encode_principal("00000000-0000-0000-0000-0000000000cc", [OPERATOR], name="other@example.com")
SHORT = 0.002  # hours (7.2 s): an expiry a test can wait for


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("protected-files"))


def _helpers(az: Any, sub: str) -> dict[str, str]:
    """The operator's VMs (each with one data disk at LUN 0): in scope in the point's region, in scope in the other
    region, and out of scope."""
    az.seed(subscriptions=[sub], resource_groups=3, vms=3, data_disks=[1, 1], regions=[REGION, SECOND, REGION],
            tag_sets=[{}], vm_prefix="helper", seed=5)
    return {name: f"/subscriptions/{sub}/resourceGroups/rg-helper-{i:02d}/providers/Microsoft.Compute/virtualMachines/"
                  f"helper-{i:05d}" for i, name in enumerate(("here", "elsewhere", "outside"))}


def _start(az, emu, azurite, tmp_path, monkeypatch, saved, **kwargs: Any) -> dict[str, Any]:
    sub = saved["sub"]
    scopes = ",".join(f"/subscriptions/{sub}/resourceGroups/{g}" for g in ("rg-restore", "rg-vm-00", "rg-helper-00",
                                                                           "rg-helper-01"))
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=saved, VMKEEPER_RESTORE_SCOPES=scopes,
              VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}", **kwargs)
    w["helpers"] = _helpers(az, sub)
    return w


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = _start(az, emu, azurite, tmp_path, monkeypatch, saved)
    yield w
    w["host"].close()


def _vm_disks(az, world, vm_id: str) -> dict[int, str]:
    p = vm_id.split("/")
    vm = compute(az, world).virtual_machines.get(p[4], p[-1])
    return {d.lun: d.managed_disk.id.lower() for d in vm.storage_profile.data_disks}


def _disk(az, world, disk_id: str) -> Any | None:
    from azure.core.exceptions import ResourceNotFoundError

    p = disk_id.split("/")
    try:
        return compute(az, world).disks.get(p[4], p[-1])
    except ResourceNotFoundError:
        return None


def _alerts(world) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    outbox = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                                world["settings"]["VMKEEPER_ALERTS_TABLE"])
    return [json.loads(r["event"]) for r in outbox.list_entities()]


def _files(world, source: str = "set", **target: Any) -> dict[str, Any]:
    return {"vm": world["vm_id"], "recovery_point": point(world, source)["id"],
            "target": {"type": "files", "vm": world["helpers"]["here"], **target}}


def _submit(world, body: dict[str, Any], principal: str = OPERATOR_PRINCIPAL) -> dict[str, Any]:
    answer = api(world, "POST", "/api/restores", body, principal=principal)
    assert answer.status == 202, answer.body
    return answer.json()


def _get(world, restore_id: str) -> dict[str, Any]:
    answer = api(world, "GET", f"/api/restores/{restore_id}")
    assert answer.status == 200
    return answer.json()


# --- files -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["set", "rp"])
def test_files_are_attached_to_the_operators_vm_then_detached_and_deleted_when_done(world, az, source):
    helper = world["helpers"]["here"]
    own = _vm_disks(az, world, helper)
    assert api(world, "GET", f"/api/vms/{world['sub']}/rg-vm-00/vm-00000/recovery-points").json()["value"][0]["targets"]
    made = _submit(world, _files(world, source, luns=[1], os_disk=True, duration_hours=2))
    assert world["host"].run_until_idle(timeout=60)
    ready = _get(world, made["id"])
    assert ready["state"] == "ready", ready["error"]
    carries = ready["lease"]["carries"]
    assert [(c["source_lun"], c["lun"]) for c in carries] == [(1, 1), (None, 2)]  # LUN 0 is the VM's own
    attached = _vm_disks(az, world, helper)
    assert {lun: i for lun, i in attached.items() if lun in own} == own  # the VM's own disk untouched
    for c in carries:  # the emulator shows each made disk attached, tagged with the restore and its expiry
        assert attached[c["lun"]] == c["disk_id"].lower()
        disk = _disk(az, world, c["disk_id"])
        assert disk.managed_by.lower() == helper.lower() and disk.disk_state == "Attached"
        assert disk.tags[T.RESTORE] == made["id"] and disk.tags[T.RESTORE_EXPIRES] == ready["lease"]["expires_at"]
    (event,) = [e for e in _alerts(world) if e["type"] == "vmkeeper.restore.files.ready"]
    assert event["data"]["carries"] == carries and event["data"]["expires_at"] == ready["lease"]["expires_at"]

    done = api(world, "DELETE", f"/api/restores/{made['id']}")
    assert done.status == 202 and done.json()["state"] == "ending"
    assert world["host"].run_until_idle(timeout=60)
    ended = _get(world, made["id"])
    assert ended["state"] == "succeeded" and ended["lease"]["ending"]["why"] == "done"
    assert _vm_disks(az, world, helper) == own
    assert all(_disk(az, world, c["disk_id"]) is None for c in carries)
    assert all(_disk(az, world, i).managed_by.lower() == helper.lower() for i in own.values())
    assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 200  # done again: nothing more


def test_files_expire_after_the_worker_died_mid_way_and_the_timer_ends_them(az, emu, azurite, tmp_path, monkeypatch,
                                                                            saved):
    """The worker attaches the disks and dies before it saves (its message lost with the host). Past the expiry a
    new host's timer reads the records, ends the recovery: only its disks detached and deleted."""
    dying, died = crash_after("attach_disks")

    w = _start(az, emu, azurite, tmp_path, monkeypatch, saved,
               wiring_class=wiring_wrapping("VMKEEPER_RESTORE_TABLE", dying))
    try:
        helper = w["helpers"]["here"]
        own = _vm_disks(az, w, helper)
        made = _submit(w, _files(w, luns=[0], duration_hours=SHORT))
        deadline = time.monotonic() + 30
        while not died["once"]:
            assert time.monotonic() < deadline, "the worker never reached the attach"
            w["host"].poll_once()
        w["host"].close()
        from azure.storage.queue import QueueClient

        QueueClient.from_connection_string(w["settings"]["AzureWebJobsStorage"],
                                           w["settings"]["VMKEEPER_RESTORE_QUEUE"]).clear_messages()
        planned = [d["id"] for d in made["plan"]["disks"]]
        assert set(_vm_disks(az, w, helper).values()) == set(own.values()) | {planned[0].lower()}  # left attached
        assert _get_record_state(w, made["id"]) == "running"
        time.sleep(max(0.0, SHORT * 3600 + 0.5))
        restart(w)
        w["host"].fire_timer("restore_leases")
        assert w["host"].run_until_idle(timeout=60)
        ended = _get(w, made["id"])
        assert ended["state"] == "succeeded" and ended["lease"]["ending"]["why"] == "expired"
        assert _vm_disks(az, w, helper) == own and _disk(az, w, planned[0]) is None
        assert "vmkeeper.restore.files.expired" in [e["type"] for e in _alerts(w)]
    finally:
        w["host"].close()


def _get_record_state(world, restore_id: str) -> str:
    return _get(world, restore_id)["state"]


def restart(world: dict[str, Any]) -> None:
    """A new host process: the app's own wiring (nothing of the old process), the same settings and storage."""
    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from emulator.testing import StaticCredential
    from shared import wiring

    world["wiring"] = wiring.use(wiring.Wiring(credential=StaticCredential()))
    world["host"] = LocalFunctionsHost(importlib.reload(function_app).app, world["settings"]["AzureWebJobsStorage"],
                                       visibility_timeout=1)
    world["host"].ensure_queues()


def test_refusals_write_nothing(world, az):
    """Wrong role, a VM out of the allow-list, a VM in another region, a VM without free LUNs: refused before
    anything is written (the emulator's call log shows no write), each naming its field."""
    here = world["helpers"]["here"].split("/")
    # The VM resized to one that takes 2 data disks (it has 1): no room for the point's 2.
    compute(az, world).virtual_machines.begin_update(here[4], here[-1], {"properties": {"hardwareProfile": {
        "vmSize": "Standard_B1s"}}}).result()
    mark = len(az.calls())
    assert api(world, "POST", "/api/restores", _files(world), principal=READER_PRINCIPAL).status == 403
    outside = api(world, "POST", "/api/restores", dict(_files(world), target={"type": "files",
                                                                               "vm": world["helpers"]["outside"]}))
    assert outside.status == 403 and outside.json()["errors"][0]["field"] == "target.vm"
    elsewhere = api(world, "POST", "/api/restores", dict(_files(world), target={"type": "files",
                                                                                 "vm": world["helpers"]["elsewhere"]}))
    assert elsewhere.status == 400 and elsewhere.json()["errors"][0]["field"] == "target.vm"
    assert "northeurope" in elsewhere.json()["errors"][0]["detail"]
    full = api(world, "POST", "/api/restores", _files(world))
    assert full.status == 409 and full.json()["errors"][0]["field"] == "target.vm", full.body
    assert "no free LUN" in full.json()["errors"][0]["detail"]
    assert writes(az, mark) == []
    assert api(world, "GET", "/api/restores").json()["value"] == []


def test_a_dry_run_says_what_it_would_make_and_for_how_long(world, az):
    mark = len(az.calls())
    answer = api(world, "POST", "/api/restores", dict(_files(world, luns=[0], duration_hours=3), dry_run=True))
    assert answer.status == 200, answer.body
    plan = answer.json()["plan"]
    assert plan["lease"]["hours"] == 3 and plan["lease"]["expires_at"]
    assert [c["type"] for c in plan["creates"]] == ["Microsoft.Compute/disks"]
    assert plan["carries"][0]["source_lun"] == 0 and plan["carries"][0]["lun"] == 1
    assert writes(az, mark) == []


# --- export ----------------------------------------------------------------------------------------------
def test_an_export_sas_is_handed_once_to_its_caller_and_stops_working_after_revoke(world, az):
    body = {"vm": world["vm_id"], "recovery_point": point(world, "rp")["id"],
            "target": {"type": "export", "resource_group": f"/subscriptions/{world['sub']}/resourceGroups/rg-restore",
                       "lun": 0, "duration_hours": 1}}
    made = _submit(world, body)
    assert world["host"].run_until_idle(timeout=60)
    ready = _get(world, made["id"])
    assert ready["state"] == "ready", ready["error"]
    path = f"/api/restores/{made['id']}/access"
    assert api(world, "POST", path, principal=READER_PRINCIPAL).status == 403
    assert api(world, "POST", path, principal=OTHER_OPERATOR).status == 403
    taken = api(world, "POST", path)
    assert taken.status == 200 and taken.headers.get("Cache-Control") == "no-store"
    sas = taken.json()["access_sas"]
    read = requests.get(sas, verify=az.ca_path, headers={"Range": "bytes=0-511"}, timeout=10)
    assert read.status_code == 206 and len(read.content) == 512
    assert api(world, "POST", path).status == 409  # once
    record = api(world, "GET", f"/api/restores/{made['id']}")
    assert sas not in record.body.decode() and "sig=" not in json.dumps(_alerts(world))  # never stored, never alerted
    disk_id = made["plan"]["disks"][0]["id"]
    assert _disk(az, world, disk_id).disk_state == "ActiveSAS"

    assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 202
    assert world["host"].run_until_idle(timeout=60)
    assert _get(world, made["id"])["state"] == "succeeded"
    assert requests.get(sas, verify=az.ca_path, timeout=10).status_code == 403
    assert _disk(az, world, disk_id) is None


# --- a disk someone attaches between our read of the VM and our write is never dropped ----------------------
def _theirs(az, world, name: str) -> tuple[str, int]:
    """An empty disk of someone else's, and the LUN their attach takes (past any this test's plan picks)."""
    from azure.mgmt.compute.models import CreationData, Disk

    disk = compute(az, world).disks.begin_create_or_update("rg-helper-00", name, Disk(
        location=REGION, disk_size_gb=8, creation_data=CreationData(create_option="Empty"))).result()
    return disk.id, 40


def _interleave(az, vm_id: str, disk_id: str, lun: int) -> None:
    """The emulator lands their attach just before the VM's next write, after our step read the VM."""
    az.admin("POST", "compute/interleave", {"vm": vm_id, "attach": {"disk": disk_id, "lun": lun}})


def test_a_disk_attached_while_files_are_being_attached_is_kept(world, az):
    helper = world["helpers"]["here"]
    own = _vm_disks(az, world, helper)
    disk_id, lun = _theirs(az, world, "theirs-at-attach")
    _interleave(az, helper, disk_id, lun)
    made = _submit(world, _files(world, luns=[0]))
    assert world["host"].run_until_idle(timeout=60)
    ready = _get(world, made["id"])
    assert ready["state"] == "ready", ready["error"]
    attached = _vm_disks(az, world, helper)
    (carried,) = ready["lease"]["carries"]
    assert attached[carried["lun"]] == carried["disk_id"].lower()
    assert attached[lun] == disk_id.lower() and _disk(az, world, disk_id).managed_by.lower() == helper.lower()
    assert {k: v for k, v in attached.items() if k in own} == own
    assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 202
    assert world["host"].run_until_idle(timeout=60)
    assert _vm_disks(az, world, helper) == {**own, lun: disk_id.lower()}  # ours gone, theirs and the VM's own kept


def test_a_disk_attached_while_files_are_being_detached_is_kept(world, az):
    helper = world["helpers"]["here"]
    own = _vm_disks(az, world, helper)
    made = _submit(world, _files(world, luns=[0]))
    assert world["host"].run_until_idle(timeout=60)
    assert _get(world, made["id"])["state"] == "ready"
    disk_id, lun = _theirs(az, world, "theirs-at-detach")
    _interleave(az, helper, disk_id, lun)
    assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 202
    assert world["host"].run_until_idle(timeout=60)
    ended = _get(world, made["id"])
    assert ended["state"] == "succeeded", ended["error"]
    assert _vm_disks(az, world, helper) == {**own, lun: disk_id.lower()}
    assert _disk(az, world, disk_id).managed_by.lower() == helper.lower()
    assert all(_disk(az, world, c["disk_id"]) is None for c in ended["lease"]["carries"])


def test_the_report_lists_file_recoveries_and_exports_in_flight_until_they_end(world, az):
    from shared.wiring import current

    made = _submit(world, _files(world, luns=[0], duration_hours=2))
    assert world["host"].run_until_idle(timeout=60)
    ready = _get(world, made["id"])
    assert ready["state"] == "ready", ready["error"]
    (row,) = current().reports.data().leases
    assert (row.id, row.vm_id, row.point_id, row.target_type, row.state) == (
        made["id"], world["vm_id"], made["request"]["recovery_point"], "files", "ready")
    assert row.attached_to == world["helpers"]["here"] and row.expires_at == ready["lease"]["expires_at"]
    (carried,) = ready["lease"]["carries"]
    assert row.luns == (f"LUN {carried['lun']}: LUN 0 ({carried['source_disk']})",)
    assert row.disks == (carried["disk_id"],)
    page = current().reports.html()
    assert "File recoveries and exports in flight" in page and made["id"] in page
    assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 202
    assert world["host"].run_until_idle(timeout=60)
    assert current().reports.data().leases == ()  # ended: history only
