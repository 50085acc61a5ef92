"""``vmkeeper`` end to end through click's CliRunner, against the ARM emulator and Azurite: one VM
protected by vmkeeper's own scheduled slot through the local Functions host (tests/app/restore_world.py)
plus an older snapshot set that retention's ``keep_last: 1`` lets go. Every command in both forms, the
JSON checked against tests/cli/output_schemas.json or the restore API's OpenAPI document; ``plan`` proven
to write nothing; ``restore`` through the host's real HTTP server with its queue worker running.

The world is built once for the module (a slot takes seconds); no test here resets local Azure."""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulator.testing import StaticCredential
from tests.app.restore_world import OPERATOR_PRINCIPAL, POLICIES, old_snapshot_set, protect_once, start
from tests.cli.cli_world import FAST, json_out, settings_file, storage_state, vmkeeper, writes

KEEP_ONE = {**POLICIES, "policies": {"full": {**POLICIES["policies"]["full"], "retention": {"keep_last": 1}}}}


@pytest.fixture(scope="module")
def world(_local_azure, azurite, tmp_path_factory) -> Iterator[dict[str, Any]]:
    az, emu = _local_azure
    az.reset()
    az.settings(**FAST)
    tmp = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        w = start(az, emu, azurite, tmp, mp, VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *",
                  VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
        (tmp / "policies.json").write_text(json.dumps(KEEP_ONE))
        w["old_set"] = old_snapshot_set(az, w, timedelta(days=2))
        protect_once(w)
        w.update(az=az, azurite=azurite, tmp=tmp)
        try:
            yield w
        finally:
            w["host"].close()


# --- input refused before anything is read --------------------------------------------------------
def test_bad_input_exits_1_naming_the_option(tmp_path):
    at = vmkeeper("plan", "--at", "tomorrow")
    assert at.exit_code == 1 and "--at" in at.stderr and at.stdout == ""
    naive = vmkeeper("plan", "--at", "2026-11-25T06:00:00", "--json")
    assert naive.exit_code == 1 and json_out(naive, "error")["error"]["field"] == "--at"
    assert "UTC offset" in json_out(naive)["error"]["message"]
    vm = vmkeeper("points", "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x")
    assert vm.exit_code == 1 and "VM_ID" in vm.stderr
    point = vmkeeper("restore", "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
                     "Microsoft.Compute/virtualMachines/vm", "snapshot-set:nothex:westeurope", "--target-type", "disks")
    assert point.exit_code == 1 and "POINT_ID" in point.stderr
    choice = vmkeeper("status", "--state", "sunny")
    assert choice.exit_code == 1 and "--state" in choice.stderr  # a usage error is 1 too: 2 means breached
    missing = vmkeeper("--settings", str(tmp_path / "nope.json"), "status")
    assert missing.exit_code == 1 and "--settings" in missing.stderr
    no_subs = settings_file(tmp_path / "local.settings.json", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    unset = vmkeeper("--settings", no_subs, "status", "--json")
    assert unset.exit_code == 1 and json_out(unset, "error")["error"]["field"] == "VMKEEPER_SUBSCRIPTIONS"
    assert vmkeeper("--help").exit_code == 0 and "Exit codes" in vmkeeper("--help").stdout
    assert "--principal" in vmkeeper("restore", "--help").stdout and "no App Service" in vmkeeper(
        "restore", "--help").stdout.replace("\n", " ")


def test_the_api_client_sends_the_key_and_a_bearer_token_and_refuses_plain_http_afar():
    from shared.cli.api_client import RestoreClient, base_url
    from shared.cli.context import CliError

    token = StaticCredential().get_token("api://vmkeeper/.default").token
    client = RestoreClient("https://vmkeeper.example/api/", key="k1", token=lambda: token)
    assert client.url == "https://vmkeeper.example"
    assert client.headers()["x-functions-key"] == "k1" and client.headers()["Authorization"] == f"Bearer {token}"
    assert "X-MS-CLIENT-PRINCIPAL" not in client.headers()
    assert base_url("http://127.0.0.1:7071") == "http://127.0.0.1:7071"
    with pytest.raises(CliError, match="--api: .* must be https"):
        base_url("http://vmkeeper.example")


# --- status -------------------------------------------------------------------------------------------
def test_status_shows_every_kind_met_and_exits_0(world):
    human = vmkeeper("status")
    assert human.exit_code == 0, human.output
    assert "vm-00000" in human.stdout and "met" in human.stdout and "Restore point" in human.stdout
    assert "1 VM: 0 breached, 0 not protected, 0 missing, 1 met, 0 opted out" in human.stdout
    assert "exit code 2" not in human.stdout
    doc = json_out(vmkeeper("status", "--json"), "status")
    (vm,) = doc["vms"]
    assert vm["state"] == "met" and {k["kind"]: k["state"] for k in vm["kinds"]} == {
        "snapshot_set": "met", "restore_point": "met", "snapshot_copy": "met", "restore_point_copy": "met"}
    assert vm["missing"] == []
    assert doc["summary"] == [{"subscription": world["sub"], "policy": "full", "met": 1, "breached": 0,
                               "not_protected": 0, "missing": 0, "opted_out": 0, "not_supported": 0}]


# --- plan ---------------------------------------------------------------------------------------------
def test_plan_writes_nothing_and_tells_the_slot_and_retention(world, tmp_path):
    az = world["az"]
    before_storage, mark = storage_state(world["azurite"].connection_string), len(az.calls())
    now = json_out(vmkeeper("plan", "--json"), "plan")
    later = datetime.now(UTC) + timedelta(hours=1)
    ahead = json_out(vmkeeper("plan", "--at", later.isoformat(), "--json"), "plan")
    human = vmkeeper("plan")
    # A policy seen only by this command (its own settings file) that selects no disk: a skip with a reason.
    narrow = tmp_path / "narrow.json"
    narrow.write_text(json.dumps({**KEEP_ONE, "policies": {"full": {
        **KEEP_ONE["policies"]["full"], "snapshots": {"luns": [7], "include_os_disk": False}}}}))
    skipping = vmkeeper("--settings", settings_file(tmp_path / "s.json", {
        **world["settings"], "VMKEEPER_POLICY_FILE": str(narrow)}), "plan", "--json")
    assert writes(az, mark) == []
    assert [c["method"] for c in az.calls(mark)].count("GET") > 0  # it did read
    assert all("vmkeeper-cli/" in c["userAgent"] for c in az.calls(mark))  # as the operator, not the app
    assert storage_state(world["azurite"].connection_string) == before_storage

    # The slot in force was taken by protect_once: both jobs done, by name.
    assert sorted((j["kind"], j["state"]) for j in now["schedule"]["jobs"]) == [("restore_point", "done"),
                                                                               ("snapshot_set", "done")]
    # The next slot: new names, the same shape.
    jobs = {j["kind"]: j for j in ahead["schedule"]["jobs"]}
    assert {j["state"] for j in jobs.values()} == {"new"}
    snap, rp = jobs["snapshot_set"], jobs["restore_point"]
    assert [s["lun"] for s in snap["snapshots"]] == [None, 0, 1]
    assert all(s["copy_name"] == f"{s['name']}-northeurope" for s in snap["snapshots"])
    assert rp["restore_point"]["copy_collection"] == rp["restore_point"]["collection"] + "-northeurope"
    assert snap["slot"] > now["schedule"]["jobs"][0]["slot"]
    # Retention: the older set goes (keep_last 1), the slot's set and points stay.
    changes = ahead["retention"]["changes"]
    assert {c["name"] for c in changes} == set(world["set_names"][world["old_set"]])
    assert {(c["action"], c["rule"]) for c in changes} == {("mark", "not_selected")}
    assert all(c["delete_after"] and c["vm_id"] == world["vm_id"].lower() for c in changes)
    assert ahead["retention"]["counts"]["keep"]["newest_good"] >= 2
    # People see the same.
    assert human.exit_code == 0 and "nothing was written" in human.stdout
    assert "done" in human.stdout and world["set_names"][world["old_set"]][1] in human.stdout and "not_selected" in human.stdout
    skip_doc = json_out(skipping, "plan")
    assert [(k["kind"], k["problem"]) for k in skip_doc["schedule"]["skipped"]] == [("snapshot_set", True)]
    assert "selects no disk" in skip_doc["schedule"]["skipped"][0]["reason"]


# --- points -------------------------------------------------------------------------------------------
def test_points_lists_the_catalogue(world):
    doc = json_out(vmkeeper("points", world["vm_id"], "--json"), api_schema="Catalogue")
    kinds = sorted((p["kind"], p["copy"]) for p in doc["value"])
    assert kinds == [("restore_point", False), ("restore_point", True), ("snapshot_set", False),
                     ("snapshot_set", False), ("snapshot_set", True)]
    assert doc["vm"]["exists"] is True and all(p["complete"] for p in doc["value"])
    human = vmkeeper("points", world["vm_id"])
    assert human.exit_code == 0 and "5 points, 5 complete" in human.stdout
    assert all(p["id"] in human.stdout for p in doc["value"])
    outside = vmkeeper("points", world["vm_id"].replace(world["sub"], "00000000-0000-0000-0000-00000000dead"))
    assert outside.exit_code == 1 and "VMKEEPER_SUBSCRIPTIONS" in outside.stderr


# --- restore ------------------------------------------------------------------------------------------
@contextmanager
def queue_worker(host: Any) -> Iterator[None]:
    """The host's queue triggers running meanwhile, as the Functions host runs them."""
    stop = threading.Event()

    def pump() -> None:
        while not stop.is_set():
            host.run_until_idle(timeout=1)
            stop.wait(0.05)

    thread = threading.Thread(target=pump, name="cli-test-queue", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)


def test_restore_dry_run_then_to_disks_through_the_http_api(world):
    from azure.mgmt.compute import ComputeManagementClient

    az, host = world["az"], world["host"]
    url = host.serve_http()
    api = ["--api", url, "--key", host.function_key, "--principal", OPERATOR_PRINCIPAL, "--poll-interval", "0.1"]
    points = json_out(vmkeeper("points", world["vm_id"], "--json"))["value"]
    point = next(p for p in points if p["kind"] == "restore_point" and not p["copy"])
    rg = f"/subscriptions/{world['sub']}/resourceGroups/rg-restore"
    target = ["--target-type", "disks", "--resource-group", rg]

    mark = len(az.calls())
    dry = json_out(vmkeeper("restore", world["vm_id"], point["id"], *target, *api, "--dry-run", "--json"),
                   api_schema="DryRun")
    assert dry["valid"] is True and dry["plan"]["steps"] == ["create_disks"] and len(dry["plan"]["creates"]) == 3
    told = vmkeeper("restore", world["vm_id"], point["id"], *target, *api, "--dry-run")
    assert told.exit_code == 0 and "Valid" in told.stdout and "would create Microsoft.Compute/disks" in told.stdout
    assert writes(az, mark) == []

    missing = vmkeeper("restore", world["vm_id"], point["id"], "--target-type", "disks", *api, "--json")
    assert missing.exit_code == 1
    err = json_out(missing, "error")["error"]
    assert err["field"] == "--target-resource-group" and err["problem"]["status"] == 400
    refused = vmkeeper("restore", world["vm_id"], point["id"], *target, "--api", url, "--key", host.function_key)
    assert refused.exit_code == 1 and "Not authenticated" in refused.stderr  # no principal: the API's 401
    no_key = vmkeeper("restore", world["vm_id"], point["id"], *target, "--api", url)
    assert no_key.exit_code == 1 and "--key" in no_key.stderr  # the host's own 401: no function key
    assert vmkeeper("restore", world["vm_id"], point["id"], *target).exit_code == 1  # no --api at all

    with queue_worker(host):
        done = json_out(vmkeeper("restore", world["vm_id"], point["id"], *target, *api, "--json"),
                        api_schema="Restore")
        assert done["state"] == "succeeded" and done["percent"] == 100
        seen = vmkeeper("restore", world["vm_id"], point["id"], *target, *api)
    assert seen.exit_code == 0, seen.output
    assert "succeeded" in seen.stdout and "create_disks: done" in seen.stdout
    disks = {d.id.lower() for d in az.client(ComputeManagementClient, world["sub"]).disks.list_by_resource_group(
        "rg-restore")}
    assert {r.lower() for r in done["resources"]} <= disks and len(done["resources"]) == 3


# --- report -------------------------------------------------------------------------------------------
def test_report_json_and_page(world, tmp_path):
    world["host"].fire_timer("compliance_evaluation")
    doc = json_out(vmkeeper("report", "--json"), "report")
    assert doc["evaluated"] and [v["name"] for v in doc["vms"]] == ["vm-00000"]
    assert {d["kind"] for d in doc["points_per_day"]} >= {"snapshot_set", "restore_point", "snapshot_copy",
                                                          "restore_point_copy"}
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    human = vmkeeper("report", "-o", str(page))
    assert human.exit_code == 0 and str(page) in human.stdout.replace("\n", "")
    html = page.read_text()
    assert "<html" in html.lower() and "vm-00000" in html
    bad = vmkeeper("report", "-o", str(tmp_path / "no" / "such" / "dir" / "r.html"))
    assert bad.exit_code == 1 and "--output" in bad.stderr
