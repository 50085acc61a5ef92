"""File recovery from a vault point (Azure Backup item-level recovery) end to end: the restore API on the local
Functions host, its worker and timer, Azurite, the real RecoveryServicesBackupClient against the emulator. A session
provisioned on the point (the emulator shows it), its mount script fetched from Azure for a Restore.Operator (and
refused to a reader, nothing logged), revoked by DELETE and by expiry after the worker died; a session someone else
opened is joined and left to them; a revoke that fails is alerted once and sent again; refusals write nothing.
Every answer is checked against the OpenAPI document.

The lease's shortest duration is Azure's quarter of an hour (shared/restore/ilr.py MIN_HOURS) and the host's clock
is real: time passing is stood in for by moving the restore's expiry (and its last update) back in its row."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.instants import format_instant
from tests.app.ilr_world import put_vm
from tests.app.restore_world import READER_PRINCIPAL, REGION, crash_after, saved_after, start, wiring_wrapping
from tests.app.test_restore import api, point, writes
from tests.app.test_restore_files import _alerts, _get, _submit, restart
from tests.app.test_restore_files import _start as files_start

REVOKE_OP = ".*/recoveryPoints/revokeInstantItemRecovery/action"


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    """The VM backed up once in its region's vault (no scheduled slot: only the vault point is used here)."""
    return saved_after(_local_azure, azurite, tmp_path_factory.mktemp("vaulted-files"), start, None, vault=True)


def _start(az, emu, azurite, tmp_path, monkeypatch, saved, **kwargs: Any) -> dict[str, Any]:
    """The file recovery tests' world (their allow-list, alerts table and helper VMs), with the VM's vault."""
    w = files_start(az, emu, azurite, tmp_path, monkeypatch, saved, vault=True, **kwargs)
    w["emu"] = emu
    return w


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = _start(az, emu, azurite, tmp_path, monkeypatch, saved)
    yield w
    w["host"].close()


def _body(world, **target: Any) -> dict[str, Any]:
    return {"vm": world["vm_id"], "recovery_point": point(world, "vault")["id"], "target": {"type": "files", **target}}


def _session(world, point_id: str) -> dict | None:
    """The emulator's item-level recovery session on the point, if one is active (reading state only)."""
    from emulator.recoveryservices import ilr as emulated

    emu = world["emu"]
    item_id, name = point_id.split("/recoveryPoints/")
    with emu.lock:
        item = emu.store.get(item_id)
        found = emulated.session(item, name, emu.clock.timestamp()) if item is not None else None
        return dict(found) if found else None


def _open_elsewhere(world, point_id: str) -> None:
    """Someone else (the portal, another tool) opens a session on the point, straight through Azure Backup."""
    from azure.mgmt.recoveryservicesbackup.models import IaasVMILRRegistrationRequest, ILRRequestResource

    p = point_id.split("/")
    world["backup"].item_level_recovery_connections.provision(
        p[8], p[4], "Azure", p[12], p[14], p[16], ILRRequestResource(properties=IaasVMILRRegistrationRequest(
            recovery_point_id=p[16], virtual_machine_id=world["vm_id"], renew_existing_registration=False)))
    deadline = time.monotonic() + 10
    while _session(world, point_id) is None:
        assert time.monotonic() < deadline, "the session was never opened"
        time.sleep(0.05)


def _age(world, restore_id: str, *, expired: bool = False, minutes: float = 0) -> None:
    """Time passes for a restore: its row's expiry moved to the past (``expired``) and its last update ``minutes``
    back (the timer redrives what nobody touched for 5). The row is rewritten as the app wrote it, nothing else."""
    from azure.data.tables import TableClient, UpdateMode

    table = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                               world["settings"]["VMKEEPER_RESTORE_TABLE"])
    row = table.get_entity("restore", restore_id)
    now = datetime.now(UTC)
    if expired:
        plan = json.loads(row["plan"])
        plan["lease"]["expires_at"] = format_instant(now - timedelta(seconds=1))
        row["plan"] = json.dumps(plan)
    if minutes:
        row["updated_at"] = format_instant(now - timedelta(minutes=minutes))
    table.update_entity(row, mode=UpdateMode.REPLACE)


def _clear(world) -> None:
    """The restore queue's messages lost (a host that died with them, or a retry not yet due)."""
    from azure.storage.queue import QueueClient

    QueueClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                       world["settings"]["VMKEEPER_RESTORE_QUEUE"]).clear_messages()


def _ilr_calls(az, since: int, action: str) -> list[dict]:
    return [c for c in az.calls(since) if (c.get("operation") or "").endswith(f"/{action}/action")]


def test_a_session_is_provisioned_its_script_given_to_an_operator_only_and_revoked_when_done(world, az, caplog):
    caplog.set_level(logging.DEBUG)
    helper = world["helpers"]["here"]
    p = point(world, "vault")
    assert "files" in p["targets"]
    made = _submit(world, _body(world, vm=helper, duration_hours=2))
    assert made["plan"]["steps"] == ["provision_ilr"] and made["plan"]["lease"]["end_steps"] == ["revoke_ilr"]
    assert world["host"].run_until_idle(timeout=60)
    ready = _get(world, made["id"])
    assert ready["state"] == "ready", ready["error"]
    script_path = f"/api/restores/{made['id']}/script"
    assert ready["lease"]["script"] == script_path and ready["plan"]["vm"]["id"] == helper
    session = _session(world, p["resource_id"])  # the emulator shows the session, for the backed-up VM
    assert session is not None and session["virtualMachineId"].lower() == world["vm_id"].lower()
    (event,) = [e for e in _alerts(world) if e["type"] == "vmkeeper.restore.files.ready"]
    assert event["data"]["script"] == script_path and event["data"]["expires_at"] == ready["lease"]["expires_at"]

    mark = len(az.calls())
    refused = api(world, "POST", script_path, principal=READER_PRINCIPAL)
    assert refused.status == 403 and refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.json()["errors"][0]["field"] == "X-MS-CLIENT-PRINCIPAL.roles"
    assert az.calls(mark) == []  # nothing asked of Azure for a reader
    taken = api(world, "POST", script_path)
    assert taken.status == 200 and taken.headers.get("Cache-Control") == "no-store", taken.body
    (script,) = taken.json()["scripts"]
    assert script["os_type"] == "Linux" and script["name"].endswith(".py") and taken.json()["run_on"] == helper
    assert session["password"] in script["content"]  # fetched live from Azure: the session's own
    assert _ilr_calls(az, mark, "listInstantItemRecoveryOperationResult")
    shown = api(world, "GET", f"/api/restores/{made['id']}").body.decode()
    assert session["password"] not in shown and session["password"] not in json.dumps(_alerts(world))
    assert session["password"] not in caplog.text and script["content"] not in caplog.text  # never logged
    assert f"restore {made['id']}: its mount script(s) handed to" in caplog.text

    done = api(world, "DELETE", f"/api/restores/{made['id']}")
    assert done.status == 202 and done.json()["state"] == "ending"
    assert world["host"].run_until_idle(timeout=60)
    ended = _get(world, made["id"])
    assert ended["state"] == "succeeded" and ended["lease"]["ending"]["why"] == "done"
    assert ended["lease"]["session_left_active"] is False
    assert _session(world, p["resource_id"]) is None and _ilr_calls(az, mark, "revokeInstantItemRecovery")
    gone = api(world, "POST", script_path)
    assert gone.status == 409 and gone.json()["errors"][0]["field"] == "state"


def test_the_timer_revokes_a_session_past_its_expiry_after_the_worker_died_having_provisioned_it(
        az, emu, azurite, tmp_path, monkeypatch, saved):
    """The worker provisions the session and dies before it saves (its message lost with the host). Past the
    expiry a new host's timer reads the records and revokes it."""
    dying, died = crash_after("provision_ilr")

    w = _start(az, emu, azurite, tmp_path, monkeypatch, saved,
               wiring_class=wiring_wrapping("VMKEEPER_RESTORE_TABLE", dying))
    try:
        p = point(w, "vault")
        made = _submit(w, _body(w, duration_hours=0.25))
        deadline = time.monotonic() + 30
        while not died["once"]:
            assert time.monotonic() < deadline, "the worker never finished provisioning"
            w["host"].poll_once()
        w["host"].close()
        _clear(w)
        assert _session(w, p["resource_id"]) is not None and _get(w, made["id"])["state"] == "running"
        _age(w, made["id"], expired=True)
        mark = len(az.calls())
        restart(w)
        w["host"].fire_timer("restore_leases")
        assert w["host"].run_until_idle(timeout=60)
        ended = _get(w, made["id"])
        assert ended["state"] == "succeeded" and ended["lease"]["ending"]["why"] == "expired"
        assert _session(w, p["resource_id"]) is None and _ilr_calls(az, mark, "revokeInstantItemRecovery")
        assert "vmkeeper.restore.files.expired" in [e["type"] for e in _alerts(w)]
    finally:
        w["host"].close()


def test_a_session_someone_else_opened_is_joined_and_never_revoked_by_vmkeeper(world, az):
    p = point(world, "vault")
    _open_elsewhere(world, p["resource_id"])
    made = _submit(world, _body(world))
    assert world["host"].run_until_idle(timeout=60)
    assert _get(world, made["id"])["state"] == "ready"
    theirs = _session(world, p["resource_id"])
    assert api(world, "POST", f"/api/restores/{made['id']}/script").json()["scripts"][0]["content"].count(
        theirs["password"]) == 1  # the same session: the same script
    mark = len(az.calls())
    assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 202
    assert world["host"].run_until_idle(timeout=60)
    ended = _get(world, made["id"])
    assert ended["state"] == "succeeded" and ended["lease"]["session_left_active"] is True
    assert _session(world, p["resource_id"]) is not None and not _ilr_calls(az, mark, "revokeInstantItemRecovery")


def test_a_revoke_that_fails_is_alerted_once_and_sent_again(world, az):
    p = point(world, "vault")
    made = _submit(world, _body(world))
    assert world["host"].run_until_idle(timeout=60)
    az.faults([{"kind": "lro_failed", "operation": REVOKE_OP, "count": 1}])
    try:
        assert api(world, "DELETE", f"/api/restores/{made['id']}").status == 202
        deadline = time.monotonic() + 30
        while not [e for e in _alerts(world) if e["type"] == "vmkeeper.restore.files.overdue"]:
            assert time.monotonic() < deadline, "the failed revoke was never alerted"
            world["host"].poll_once()
    finally:
        az.faults([])
    assert _get(world, made["id"])["state"] == "ending" and _session(world, p["resource_id"]) is not None
    _clear(world)  # the retry is a minute away: the timer's redrive of an ending restore untouched for 5 stands in
    _age(world, made["id"], minutes=6)
    world["host"].fire_timer("restore_leases")
    assert world["host"].run_until_idle(timeout=60)
    assert _get(world, made["id"])["state"] == "succeeded" and _session(world, p["resource_id"]) is None
    overdue = [e for e in _alerts(world) if e["type"] == "vmkeeper.restore.files.overdue"]
    assert len(overdue) == 1 and overdue[0]["data"]["error"]["code"] == "RevokeFailed"


def test_refusals_write_nothing(world, az, emu):
    """Wrong role, a VM out of the allow-list, a VM of another OS, a duration past Azure's 12 hours: refused before
    anything is written (no ARM write, no session), each naming its field."""
    windows = put_vm(emu, world["sub"], "helper-win", "Windows", rg="rg-helper-00", region=REGION)
    p = point(world, "vault")
    mark = len(az.calls())
    reader = api(world, "POST", "/api/restores", _body(world), principal=READER_PRINCIPAL)
    assert reader.status == 403 and reader.json()["errors"][0]["field"] == "X-MS-CLIENT-PRINCIPAL.roles"
    outside = api(world, "POST", "/api/restores", _body(world, vm=world["helpers"]["outside"]))
    assert outside.status == 403 and outside.json()["errors"][0]["field"] == "target.vm"
    other_os = api(world, "POST", "/api/restores", _body(world, vm=windows))
    assert other_os.status == 400 and other_os.json()["errors"][0]["field"] == "target.vm"
    assert "runs on Linux only" in other_os.json()["errors"][0]["detail"]
    too_long = api(world, "POST", "/api/restores", _body(world, duration_hours=13))
    assert too_long.status == 400 and too_long.json()["errors"][0]["field"] == "target.duration_hours"
    assert writes(az, mark) == [] and _session(world, p["resource_id"]) is None
    assert api(world, "GET", "/api/restores").json()["value"] == []


def test_a_dry_run_says_what_it_would_provision_and_for_how_long(world, az):
    p = point(world, "vault")
    mark = len(az.calls())
    answer = api(world, "POST", "/api/restores", dict(_body(world, vm=world["helpers"]["here"], duration_hours=3),
                                                      dry_run=True))
    assert answer.status == 200, answer.body
    plan = answer.json()["plan"]
    assert plan["vault"]["recovery_type"] == "ItemLevelRecovery" and plan["vault"]["point_id"] == p["resource_id"]
    assert plan["lease"]["hours"] == 3 and plan["lease"]["expires_at"] and plan["creates"] == []
    assert writes(az, mark) == [] and _session(world, p["resource_id"]) is None


def test_a_second_file_recovery_on_a_point_in_use_is_refused_naming_the_restore_that_holds_it(world, az):
    """Azure Backup keeps one session per point: a second vmkeeper file recovery would join it and lose it when the
    first one's end revokes it. 409 naming the first (its script, or DELETE it), nothing sent; once the first has
    ended, a new one is accepted."""
    first = _submit(world, _body(world, duration_hours=2))
    assert world["host"].run_until_idle(timeout=60)
    assert _get(world, first["id"])["state"] == "ready"
    mark = len(az.calls())
    for dry_run in (True, False):
        refused = api(world, "POST", "/api/restores", {**_body(world, duration_hours=1), "dry_run": dry_run})
        assert refused.status == 409 and refused.headers["Content-Type"].startswith("application/problem+json")
        (error,) = refused.json()["errors"]
        assert error["field"] == "recovery_point" and first["id"] in error["detail"], error
    assert writes(az, mark) == [] and _ilr_calls(az, mark, "provisionInstantItemRecovery") == []
    assert api(world, "DELETE", f"/api/restores/{first['id']}").status == 202
    assert world["host"].run_until_idle(timeout=60)
    assert _get(world, first["id"])["state"] == "succeeded"
    again = _submit(world, _body(world, duration_hours=1))
    assert again["id"] != first["id"] and again["state"] in ("pending", "running")
