"""``vmkeeper`` with the Azure CLI's habits, through click's CliRunner against the emulator, Azurite and the local
Functions host: -o/--output and --query, global options before or after the command, -g/-n/--ids for a VM, tables
that fit 80 columns (COLUMNS), a mistyped VM or an endpoint that refuses told as errors. One VM protected by one
scheduled slot (tests/app/restore_world.py); the world is built once for the module and no test resets it."""

from __future__ import annotations

import json
import re
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from emulator.testing import StaticCredential
from shared.cli.main import cli
from tests.app.restore_world import protect_once, start
from tests.cli.cli_world import FAST, json_out, settings_file, vmkeeper


@pytest.fixture(scope="module")
def world(_local_azure, azurite, tmp_path_factory) -> Iterator[dict[str, Any]]:
    az, emu = _local_azure
    az.reset()
    az.settings(**FAST)
    tmp = tmp_path_factory.mktemp("cli-az")
    with pytest.MonkeyPatch.context() as mp:
        w = start(az, emu, azurite, tmp, mp, VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
        protect_once(w)
        w.update(az=az, tmp=tmp, group="rg-vm-00", name="vm-00000")
        try:
            yield w
        finally:
            w["host"].close()


def at_width(columns: int, *args: str) -> Any:
    """As in a terminal ``columns`` wide (rich reads COLUMNS)."""
    return CliRunner(env={"COLUMNS": str(columns)}).invoke(cli, list(args), obj={"credential": StaticCredential()},
                                                            catch_exceptions=False)


# --- -o/--output, --query, global options anywhere -----------------------------------------------------
def test_output_formats_and_query_before_or_after_the_command(world):
    whole = json_out(vmkeeper("status", "-o", "json"), "status")
    assert whole["vms"] == json_out(vmkeeper("status", "--json"))["vms"]  # --json: an alias of -o json
    assert json_out(vmkeeper("-o", "json", "status"), "status")["vms"][0]["name"] == "vm-00000"
    assert json_out(vmkeeper("--output=json", "status"), "status")["counts"]["met"] == 1
    assert json_out(vmkeeper("status", "--output", "jsonc"), "status")["counts"]["met"] == 1  # no terminal: plain

    names = vmkeeper("status", "--query", "vms[].name", "-o", "json")
    assert names.exit_code == 0 and json.loads(names.stdout) == ["vm-00000"]
    before = vmkeeper("--query", "vms[].name", "-o", "json", "status")
    assert json.loads(before.stdout) == ["vm-00000"]

    listed = yaml.safe_load(vmkeeper("status", "-o", "yaml").stdout)
    assert listed["counts"]["met"] == 1 and listed["vms"][0]["resource_group"] == "rg-vm-00"

    tsv = vmkeeper("status", "--query", "vms[].[name, resource_group, state]", "-o", "tsv")
    assert tsv.exit_code == 0 and tsv.stdout == "vm-00000\trg-vm-00\tmet\n"
    scalars = vmkeeper("-o", "tsv", "status", "--query", "counts.met")
    assert scalars.stdout == "1\n"

    table = vmkeeper("status", "--query", "vms[].{name: name, state: state}")  # -o table (the default) of a query
    assert table.exit_code == 0 and "Name" in table.stdout and "vm-00000" in table.stdout and "met" in table.stdout
    assert "RPO compliance" not in table.stdout  # the query's table, not the command's own

    bad = vmkeeper("status", "--query", "vms[?", "-o", "json")
    assert bad.exit_code == 1 and json_out(bad, "error")["error"]["field"] == "--query"
    fmt = vmkeeper("status", "-o", "xml")
    assert fmt.exit_code == 1 and "-o" in fmt.stderr and "xml" in fmt.stderr
    yaml_error = vmkeeper("status", "--recorded", "-o", "yaml")
    assert yaml_error.exit_code == 1 and yaml.safe_load(yaml_error.stdout)["error"]["field"] == "--recorded"


def test_settings_and_subscription_after_the_command(world, tmp_path):
    path = settings_file(tmp_path / "local.settings.json", world["settings"])
    for args in (("--settings", path, "status", "-o", "json"), ("status", "--settings", path, "-o", "json"),
                 ("points", "-g", world["group"], "-n", world["name"], "--settings", path, "--json")):
        result = CliRunner(env={"VMKEEPER_SUBSCRIPTIONS": ""}).invoke(  # only the file names the subscription
            cli, list(args), obj={"credential": StaticCredential()}, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.output)
    empty = settings_file(tmp_path / "none.json", {**world["settings"], "VMKEEPER_SUBSCRIPTIONS": ""})
    unset = vmkeeper("status", "--settings", empty, "--json")
    assert unset.exit_code == 1 and json_out(unset, "error")["error"]["field"] == "VMKEEPER_SUBSCRIPTIONS"


def test_report_takes_a_format_or_its_file_after_o(world, tmp_path):
    doc = yaml.safe_load(vmkeeper("report", "-o", "yaml").stdout)
    assert doc["vms"] == [] or doc["vms"][0]["name"] == "vm-00000"
    page = tmp_path / "r.html"
    assert vmkeeper("report", "-o", str(page)).exit_code == 0 and "<html" in page.read_text().lower()
    other = tmp_path / "f.html"
    assert vmkeeper("report", "--file", str(other), "-o", "json").exit_code == 0 and other.exists()


# --- a VM by -g/-n or --ids; a mistyped one is an error ---------------------------------------------------
def test_a_vm_by_group_and_name_or_ids_is_the_vm_by_its_id(world, tmp_path):
    by_id = json_out(vmkeeper("points", world["vm_id"], "--json"))
    by_name = json_out(vmkeeper("points", "-g", world["group"], "-n", world["name"], "-o", "json"))
    by_ids = json_out(vmkeeper("points", "--ids", world["vm_id"], "-o", "json"))
    explicit = json_out(vmkeeper("points", "--resource-group", world["group"], "--name", world["name"],
                                 "--subscription", world["sub"], "-o", "json"))
    assert by_id["value"] and by_name == by_id == by_ids == explicit
    assert json_out(vmkeeper("drills", "-g", world["group"], "-n", world["name"], "-o", "json"))["filter"]["vm"] \
        == world["vm_id"]
    assert json_out(vmkeeper("status", "-g", world["group"], "-o", "json"))["vms"][0]["name"] == world["name"]

    both = vmkeeper("points", world["vm_id"], "-g", world["group"], "-n", world["name"])
    assert both.exit_code == 1 and "one way" in both.stderr
    no_group = vmkeeper("points", "-n", world["name"], "-o", "json")
    assert no_group.exit_code == 1 and json_out(no_group, "error")["error"]["field"] == "--resource-group"
    # Two subscriptions configured and no --subscription: which one is not guessed.
    two = settings_file(tmp_path / "two.json", {**world["settings"], "VMKEEPER_SUBSCRIPTIONS":
                                                f"{world['sub']},00000000-0000-0000-0000-00000000beef"})
    ambiguous = vmkeeper("points", "-g", world["group"], "-n", world["name"], "--settings", two, "--json")
    assert ambiguous.exit_code == 1 and json_out(ambiguous, "error")["error"]["field"] == "--subscription"
    assert "names 2" in json_out(ambiguous)["error"]["message"]
    bad_sub = vmkeeper("points", "-g", world["group"], "-n", world["name"], "--subscription", "prod")
    assert bad_sub.exit_code == 1 and "--subscription" in bad_sub.stderr


def test_a_mistyped_vm_is_an_error_naming_it_not_an_empty_table(world):
    typo = vmkeeper("points", "-g", world["group"], "-n", "vm-0000")
    assert typo.exit_code == 1 and "--name" in typo.stderr and "vm-0000" in typo.stderr and typo.stdout == ""
    by_id = vmkeeper("points", world["vm_id"] + "x", "--json")
    assert by_id.exit_code == 1 and json_out(by_id, "error")["error"]["field"] == "VM_ID"
    drills = vmkeeper("drills", "--vm", world["vm_id"].replace("vm-00000", "vm-00001"))
    assert drills.exit_code == 1 and "--vm" in drills.stderr and "vm-00001" in drills.stderr
    status = vmkeeper("status", "-n", "vm-0000", "-o", "json")
    assert status.exit_code == 1 and json_out(status, "error")["error"]["field"] == "--name"
    group = vmkeeper("status", "-g", "rg-vm-0")
    assert group.exit_code == 1 and "--resource-group" in group.stderr and "rg-vm-0" in group.stderr


def test_connection_refused_says_so_naming_the_endpoint(world, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = vmkeeper("restore", "list", "--api", f"http://127.0.0.1:{port}", "--key", "k")
    assert api.exit_code == 1 and "--api: connection refused" in api.stderr and f"127.0.0.1:{port}" in api.stderr
    arm = settings_file(tmp_path / "arm.json", {**world["settings"], "VMKEEPER_ARM_ENDPOINT": f"https://127.0.0.1:{port}"})
    points = vmkeeper("points", world["vm_id"], "--settings", arm, "-o", "json")
    err = json_out(points, "error")["error"]
    assert points.exit_code == 1 and err["field"] == "VMKEEPER_ARM_ENDPOINT" and err["endpoint"] == f"127.0.0.1:{port}"
    assert "connection refused" in err["message"]


# --- tables in 80 and 100 columns -------------------------------------------------------------------------
def _fits(result: Any, columns: int, *whole: str) -> None:
    assert result.exit_code in (0, 2), result.output
    lines = result.stdout.splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│└"]  # ids printed whole for copying may run longer
    assert table and max(len(line) for line in table) <= columns, result.stdout
    for word in whole:  # never broken over lines (one character a line is the failure this prevents)
        assert any(word in line for line in lines), (word, result.stdout)


@pytest.mark.parametrize("columns", [80, 100])
def test_status_and_points_fit_the_terminal(world, columns):
    status = at_width(columns, "status")
    _fits(status, columns, "vm-00000", "met", "Snapshot set", "Restore point")
    if columns == 80:
        assert "left out" in status.stdout  # said, not silently dropped
    points = at_width(columns, "points", world["vm_id"])
    _fits(points, columns, "restore_point", "snapshot_set", "westeurope")
    wide = at_width(200, "status")
    assert "Resource group" in wide.stdout and "left out" not in wide.stdout


# --- restores: the id at once, show / list / wait / cancel, Ctrl-C leaves it running ------------------------
def _api(world: dict[str, Any]) -> list[str]:
    from tests.app.restore_world import OPERATOR_PRINCIPAL

    host = world["host"]
    return ["--api", host.serve_http(), "--key", host.function_key, "--principal", OPERATOR_PRINCIPAL]


def _ctrl_c_once_a_restore_is_listed(world: dict[str, Any], known: set[str]) -> threading.Thread:
    """Ctrl-C (SIGINT to this process's main thread, where CliRunner runs the command) once the app lists a restore
    not in ``known`` and the command has had a moment to start following it."""
    from tests.app.test_restore import api as app_api

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ids = {r["id"] for r in json.loads(app_api(world, "GET", "/api/restores?top=100").body)["value"]}
            if ids - known:
                time.sleep(0.8)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=watch, name="ctrl-c", daemon=True)
    thread.start()
    return thread


def test_a_restore_survives_ctrl_c_with_its_id_printed_then_wait_show_list_cancel(world):
    from tests.app.test_restore import api as app_api
    from tests.cli.test_vmkeeper_cli import queue_worker

    api = _api(world)
    poll = ["--poll-interval", "0.1"]
    point = next(p for p in json_out(vmkeeper("points", world["vm_id"], "--json"))["value"]
                 if p["kind"] == "restore_point" and not p["copy"])["id"]
    target = ["--target-type", "disks", "--target-resource-group", f"/subscriptions/{world['sub']}/resourceGroups/rg-restore"]
    known = {r["id"] for r in json.loads(app_api(world, "GET", "/api/restores?top=100").body)["value"]}

    watcher = _ctrl_c_once_a_restore_is_listed(world, known)
    stopped = vmkeeper("restore", "-g", world["group"], "-n", world["name"], point, *target, *api, *poll)  # no queue
    watcher.join(5)  # (no queue worker: it stays pending)
    assert stopped.exit_code == 130, stopped.output
    restore_id = re.search(r"Restore ([0-9a-f]{16}) accepted", stopped.stdout).group(1)
    assert f"vmkeeper restore wait {restore_id}" in stopped.stdout  # told at once, before following
    assert f"Stopped following restore {restore_id}" in stopped.stderr
    assert f"`vmkeeper restore wait {restore_id}`" in stopped.stderr and "goes on" in stopped.stderr

    shown = json_out(vmkeeper("restore", "show", restore_id, *api, "-o", "json"), api_schema="Restore")
    assert shown["id"] == restore_id and shown["state"] in ("pending", "running")  # not cancelled by Ctrl-C
    with queue_worker(world["host"]):
        waited = vmkeeper("restore", "wait", restore_id, *api, *poll)
    assert waited.exit_code == 0, waited.output
    assert "succeeded" in waited.stdout and "1/1 create_disks: done" in waited.stdout  # each step, numbered
    assert f"{restore_id}: " in waited.stderr and "steps done" in waited.stderr  # progress, a line per change
    assert json_out(vmkeeper("restore", "show", restore_id, *api, "--json"))["state"] == "succeeded"

    queued = vmkeeper("restore", world["vm_id"], point, *target, *api, *poll, "--no-wait", "-o", "json")
    pending = json_out(queued, api_schema="Restore")
    assert f"Restore {pending['id']} accepted" in queued.stderr  # -o json: stdout is the document alone
    cancelled = json_out(vmkeeper("restore", "cancel", pending["id"], *api, "-o", "json"), api_schema="Restore")
    assert cancelled["state"] == "cancelled"

    for columns in (80, 100):
        listed = at_width(columns, "restore", "list", *api)
        _fits(listed, columns, restore_id, pending["id"], "succeeded", "cancelled")
    ids = vmkeeper("restore", "list", *api, "--query", "value[].id", "-o", "tsv").stdout.split()
    assert {restore_id, pending["id"]} <= set(ids)
    missing = vmkeeper("restore", "show", "0" * 16, *api)
    assert missing.exit_code == 1 and "Not found" in missing.stderr
    bad = vmkeeper("restore", "wait", "latest", *api)
    assert bad.exit_code == 1 and "ID" in bad.stderr


# --- jobs --failed ----------------------------------------------------------------------------------------
def test_split_error_takes_azures_code_and_message_apart():
    from shared.cli.failures import split_error

    assert split_error("ARM 403: (AuthorizationFailed) The client 'x' has no authorization\nCode: AuthorizationFailed") \
        == ("AuthorizationFailed", "The client 'x' has no authorization")
    assert split_error("ARM 400: bad") == ("HTTP400", "ARM 400: bad")
    assert split_error("copy c1 ended Failed") == ("", "copy c1 ended Failed")
    # The report's groups read the same codes (one reader: shared/alerts/errors.py).
    assert split_error("OperationNotAllowed: disk is locked") == ("OperationNotAllowed", "disk is locked")
    assert split_error("snapshot copy: (DiskInUse) the disk is attached") == ("DiskInUse", "the disk is attached")


def test_jobs_failed_shows_kind_step_resource_azures_code_and_what_to_do(world):
    from tests.cli.test_vmkeeper_cli import queue_worker

    az, api = world["az"], _api(world)
    point = next(p for p in json_out(vmkeeper("points", world["vm_id"], "--json"))["value"]
                 if p["kind"] == "snapshot_set" and not p["copy"])["id"]
    az.faults([{"kind": "lro_failed", "method": "PATCH", "path": "/virtualMachines/vm-00000$", "count": 1}])
    try:  # Azure fails the OS disk swap: the restore fails in that step, and is undone
        with queue_worker(world["host"]):
            failed = vmkeeper("restore", world["vm_id"], point, "--target-type", "os_disk", "--target-vm",
                              world["vm_id"], *api, "--poll-interval", "0.1", "-o", "json")
    finally:
        az.faults([])
    assert failed.exit_code == 1
    restore_id = json_out(failed, "error")["error"]["restore"]["id"]

    doc = json_out(vmkeeper("jobs", "--failed", "-o", "json"))
    row = next(r for r in doc["failed"] if r["id"] == restore_id)
    assert row["kind"] == "restore:os_disk" and row["step"] == "swap_os_disk"
    assert row["resource"] == world["vm_id"] and row["code"] == "RestoreFailed"  # the code the restore recorded
    assert "ended Failed" in row["message"] and not row["message"].startswith("(")
    assert "restore again" in row["todo"] and f"vmkeeper restore show {restore_id}" in row["todo"]
    for columns in (80, 100):
        _fits(at_width(columns, "jobs", "--failed"), columns, "restore:os_disk")
    assert vmkeeper("jobs").exit_code == 1  # --failed is what it lists (for now)
