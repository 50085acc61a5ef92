"""``vmkeeper`` with the Azure CLI's habits, through click's CliRunner against the emulator, Azurite and the local
Functions host: -o/--output and --query, global options before or after the command, -g/-n/--ids for a VM, tables
that fit 80 columns (COLUMNS), a mistyped VM or an endpoint that refuses told as errors. One VM protected by one
scheduled slot (tests/app/restore_world.py); the world is built once for the module and no test resets it."""

from __future__ import annotations

import json
import secrets
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
