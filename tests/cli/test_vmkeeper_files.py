"""``vmkeeper files`` / ``vmkeeper files done`` / ``vmkeeper export`` end to end through click's CliRunner: the restore
API on the local Functions host's real HTTP server with its queue worker running, Azurite, the real SDK clients
against the emulator. One VM protected by one scheduled slot, and an operator's VM (one data disk at LUN 0) in the
point's region and in VMKEEPER_RESTORE_SCOPES. The world is built once for the module; no test resets local Azure."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.app.restore_world import OPERATOR_PRINCIPAL, REGION, protect_once, start
from tests.app.test_restore import api as app_api
from tests.cli.cli_world import FAST, json_out, vmkeeper, writes
from tests.cli.test_vmkeeper_cli import queue_worker


@pytest.fixture(scope="module")
def world(_local_azure, azurite, tmp_path_factory) -> Iterator[dict[str, Any]]:
    az, emu = _local_azure
    az.reset()
    az.settings(**FAST)
    tmp = tmp_path_factory.mktemp("cli-files")
    with pytest.MonkeyPatch.context() as mp:
        w = start(az, emu, azurite, tmp, mp, VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
        sub = w["sub"]
        mp.setenv("VMKEEPER_RESTORE_SCOPES", f"/subscriptions/{sub}/resourceGroups/rg-restore,"
                                             f"/subscriptions/{sub}/resourceGroups/rg-helper-00")
        protect_once(w)
        az.seed(subscriptions=[sub], resource_groups=1, vms=1, data_disks=[1, 1], regions=[REGION], tag_sets=[{}],
                vm_prefix="helper", seed=5)
        w.update(az=az, helper=f"/subscriptions/{sub}/resourceGroups/rg-helper-00/providers/Microsoft.Compute/"
                               "virtualMachines/helper-00000")
        url = w["host"].serve_http()
        w["api"] = ["--api", url, "--key", w["host"].function_key, "--principal", OPERATOR_PRINCIPAL,
                    "--poll-interval", "0.1", "--wait", "60"]
        points = json_out(vmkeeper("points", w["vm_id"], "--json"))["value"]
        w["point"] = next(p for p in points if p["kind"] == "restore_point" and not p["copy"])["id"]
        try:
            yield w
        finally:
            w["host"].close()


def _compute(world: dict[str, Any]) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return world["az"].client(ComputeManagementClient, world["sub"])


def _vm_disks(world: dict[str, Any]) -> dict[int, str]:
    vm = _compute(world).virtual_machines.get("rg-helper-00", "helper-00000")
    return {d.lun: d.managed_disk.id.lower() for d in vm.storage_profile.data_disks}


def _gone(world: dict[str, Any], disk_id: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    p = disk_id.split("/")
    try:
        _compute(world).disks.get(p[4], p[-1])
    except ResourceNotFoundError:
        return True
    return False


def _accepted(out: str) -> str:
    return re.search(r"Restore ([0-9a-f]{16}) accepted", out).group(1)


def test_bad_input_exits_1_naming_the_option():
    vm = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a"
    luns = vmkeeper("files", vm, "--point", "snapshot-set:0123456789abcdef:westeurope", "--attach-to", vm, "--luns", "0,x",
                    "--api", "http://127.0.0.1:1")
    assert luns.exit_code == 1 and "--luns" in luns.stderr
    both = vmkeeper("export", vm, "--point", "snapshot-set:0123456789abcdef:westeurope", "--resource-group",
                    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg", "--lun", "0", "--os-disk",
                    "--api", "http://127.0.0.1:1", "--json")
    assert both.exit_code == 1 and json.loads(both.stdout)["error"]["field"] == "--lun"
    point = vmkeeper("files", vm, "--point", "yesterday", "--attach-to", vm)
    assert point.exit_code == 1 and "--point" in point.stderr
    assert vmkeeper("files", "--help").exit_code == 0 and "done" in vmkeeper("files", "--help").stdout


def test_files_follow_to_ready_show_each_lun_then_done_detaches_and_deletes(world):
    az, helper = world["az"], world["helper"]
    own = _vm_disks(world)
    args = ["files", world["vm_id"], "--point", world["point"], "--attach-to", helper, "--luns", "1", "--os-disk",
            "--hours", "2", *world["api"]]

    mark = len(az.calls())
    dry = vmkeeper(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "LUN 1: LUN 1" in dry.stdout and "LUN 2: OS disk" in dry.stdout and "for 2 h" in dry.stdout
    refused = vmkeeper(*args)  # no terminal to ask, no --yes: nothing sent
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    said_no = vmkeeper(*args, input="n\n")
    assert said_no.exit_code == 1 and "not confirmed" in said_no.stderr
    assert writes(az, mark) == [] and _vm_disks(world) == own

    with queue_worker(world["host"]):
        made = vmkeeper(*args, input="y\n")
    assert made.exit_code == 0, made.output
    restore_id = _accepted(made.stdout)  # the id told as soon as accepted, before following it to ready
    assert made.stdout.index(f"Restore {restore_id} accepted") < made.stdout.index(": ready")
    attached = _vm_disks(world)
    assert {lun: i for lun, i in attached.items() if lun in own} == own  # the VM's own disk untouched
    assert set(attached) == set(own) | {1, 2}
    table = made.stdout[made.stdout.index(": ready"):]
    assert "LUN 1 (" in table and "OS disk (" in table and "until" in table
    for lun in (1, 2):
        assert attached[lun].rsplit("/", 1)[-1] in table

    with queue_worker(world["host"]):
        done = json_out(vmkeeper("files", "done", restore_id, *world["api"], "--json"), api_schema="Restore")
    assert done["state"] == "succeeded" and done["lease"]["ending"]["why"] == "done"
    assert _vm_disks(world) == own
    assert all(_gone(world, c["disk_id"]) for c in done["lease"]["carries"])
    again = vmkeeper("files", "done", restore_id, *world["api"])
    assert again.exit_code == 0 and "succeeded" in again.stdout  # ended already: nothing more
    missing = vmkeeper("files", "done", "0" * 16, *world["api"])
    assert missing.exit_code == 1 and "Not found" in missing.stderr


def test_files_json_waits_for_ready_and_names_the_luns(world):
    args = ["files", world["vm_id"], "--point", world["point"], "--attach-to", world["helper"], "--luns", "0",
            "--yes", *world["api"], "--json"]
    with queue_worker(world["host"]):
        made = vmkeeper(*args)
        assert made.exit_code == 0, made.output
        record = json_out(made, api_schema="Restore")
        assert record["state"] == "ready" and record["lease"]["expires_at"]
        (carried,) = record["lease"]["carries"]
        assert carried["source_lun"] == 0 and _vm_disks(world)[carried["lun"]] == carried["disk_id"].lower()
        assert f"Restore {record['id']} accepted" in made.stderr
        assert json_out(vmkeeper("files", "done", record["id"], *world["api"], "--json"))["state"] == "succeeded"


def test_export_follows_to_ready_and_prints_the_sas_once(world):
    az = world["az"]
    group = f"/subscriptions/{world['sub']}/resourceGroups/rg-restore"
    with queue_worker(world["host"]):
        made = vmkeeper("export", world["vm_id"], "--point", world["point"], "--resource-group", group, "--lun", "0",
                        "--hours", "1", "--yes", *world["api"])
    assert made.exit_code == 0, made.output
    out = made.stdout
    assert "shown once" in out and "valid until" in out
    sas = next(line.strip() for line in out.splitlines() if line.strip().startswith("https://") and "sig=" in line)
    read = requests.get(sas, verify=az.ca_path, headers={"Range": "bytes=0-511"}, timeout=10)
    assert read.status_code == 206
    restore_id = _accepted(out)
    assert app_api(world, "POST", f"/api/restores/{restore_id}/access").status == 409  # handed once
    record = app_api(world, "GET", f"/api/restores/{restore_id}")
    assert "sig=" not in record.body.decode()
    with queue_worker(world["host"]):
        ended = vmkeeper("files", "done", restore_id, *world["api"])
    assert ended.exit_code == 0 and "succeeded" in ended.stdout
    assert requests.get(sas, verify=az.ca_path, timeout=10).status_code == 403
