"""The CLI's credential from its settings: VMKEEPER_CLI_CREDENTIAL=local-static (what `make up` writes) is the
local stack's static token, refused for any endpoint that is not loopback — ARM, the app (setting or --api),
identity-based storage — with an error naming the setting or option, before any token is handed out; an
unknown kind is refused naming the setting. No credential is handed in here: the CLI picks its own, as an
operator's shell runs it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from shared.cli.main import cli
from tests.cli.cli_world import settings_file

SUB = "00000000-0000-0000-0000-000000000001"
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
LOCAL = {"VMKEEPER_CLI_CREDENTIAL": "local-static", "VMKEEPER_ARM_ENDPOINT": "https://127.0.0.1:8443",
         "VMKEEPER_SUBSCRIPTIONS": SUB, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def run(tmp_path, values: dict[str, str], *args: str):
    path = settings_file(tmp_path / "local.settings.json", values)
    return CliRunner().invoke(cli, ["--settings", path, *args], catch_exceptions=False)


@pytest.mark.parametrize(("change", "named"), [
    ({"VMKEEPER_ARM_ENDPOINT": "https://management.azure.com"}, "VMKEEPER_ARM_ENDPOINT"),
    ({"VMKEEPER_ARM_ENDPOINT": "https://127.0.0.1.nip.io:8443"}, "VMKEEPER_ARM_ENDPOINT"),
    ({"VMKEEPER_ARM_ENDPOINT": ""}, "VMKEEPER_ARM_ENDPOINT"),  # absent: Azure's own endpoint
    ({"VMKEEPER_API_URL": "https://vmkeeper-prod.azurewebsites.net"}, "VMKEEPER_API_URL"),
    ({"AzureWebJobsStorage": "", "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net"},
     "AzureWebJobsStorage__tableServiceUri"),
    ({"AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "stvmkeeper"}, "AzureWebJobsStorage__accountName"),
])
def test_the_static_credential_is_refused_for_an_endpoint_that_is_not_loopback(tmp_path, change, named):
    for command in (["status"], ["drills"], ["report", "--json"]):
        result = run(tmp_path, {**LOCAL, **change}, *command)
        assert result.exit_code == 1, (command, result.output)
        assert named in result.stderr and "local-static" in result.stderr
    doc = json.loads(run(tmp_path, {**LOCAL, **change}, "status", "--json").stdout)
    assert doc["error"]["field"] == named


def test_the_static_credential_is_refused_for_a_remote_api_given_on_the_command_line(tmp_path):
    result = run(tmp_path, {**LOCAL, "VMKEEPER_API_URL": "http://127.0.0.1:7071"}, "restore", VM,
                 f"snapshot-set:{'0' * 16}:westeurope", "--target-type", "disks", "--api",
                 "https://vmkeeper-prod.azurewebsites.net", "--scope", "api://vmkeeper/.default", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["field"] == "--api" and "local-static" in result.stderr


def test_an_unknown_credential_kind_is_refused_naming_the_setting(tmp_path):
    result = run(tmp_path, {**LOCAL, "VMKEEPER_CLI_CREDENTIAL": "client-secret"}, "status", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["field"] == "VMKEEPER_CLI_CREDENTIAL"
    assert "azure-cli" in result.stderr and "local-static" in result.stderr
