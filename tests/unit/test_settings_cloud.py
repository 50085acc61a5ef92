"""Settings that depend on where the app runs: the cloud's Resource Manager (endpoint and token audience, as Bicep
sets them from environment()) and the policy document shipped with the code, wherever the platform mounts it."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import settings
from shared.azure.clients import ArmClients
from shared.settings import AzureSettings, FleetSettings, ProtectSettings, SettingError

ROOT = Path(__file__).resolve().parents[2]
SUB = "00000000-0000-0000-0000-000000000001"
# environment().resourceManager in each cloud (Bicep's environment() function): with its trailing slash.
CLOUDS = ["https://management.azure.com/", "https://management.chinacloudapi.cn/",
          "https://management.usgovcloudapi.net/"]


class Stop(Exception):
    """Raised by the credential: the request never leaves the process."""


class AskedFor:
    """A credential that records the scopes it is asked a token for, then stops the request."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs):
        self.scopes.append(scopes)
        raise Stop

    def get_token_info(self, *scopes: str, options=None):
        self.scopes.append(scopes)
        raise Stop


@pytest.mark.parametrize("endpoint", CLOUDS)
def test_arm_endpoint_as_bicep_sets_it(endpoint):
    s = AzureSettings.from_env({"VMKEEPER_ARM_ENDPOINT": endpoint})
    assert s.arm_endpoint == endpoint.rstrip("/")
    assert s.arm_scope == f"{endpoint}.default"


@pytest.mark.parametrize("endpoint", CLOUDS)
def test_the_sdk_clients_ask_for_a_token_for_the_clouds_resource_manager(endpoint):
    # Through the clients the app uses: the SDK's authentication policy asks the credential before anything is sent.
    credential = AskedFor()
    arm = ArmClients(AzureSettings.from_env({"VMKEEPER_ARM_ENDPOINT": endpoint}), lambda: credential)
    with pytest.raises(Stop):
        arm.compute(SUB).virtual_machines.get("rg", "vm")
    with pytest.raises(Stop):
        arm.backup(SUB).protected_items.get("vault", "rg", "Azure", "c", "i")
    with pytest.raises(Stop):
        arm.resource_graph().resources({"subscriptions": [SUB], "query": "resources"})
    assert credential.scopes == [(f"{endpoint}.default",)] * 3


def test_arm_endpoint_defaults_to_the_public_cloud():
    s = AzureSettings.from_env({})
    assert (s.arm_endpoint, s.arm_scope) == ("https://management.azure.com", "https://management.azure.com/.default")


# --- the policy document -----------------------------------------------------------------------

def fleet(policy_file: str) -> FleetSettings:
    return FleetSettings.from_env({"VMKEEPER_SUBSCRIPTIONS": SUB, "VMKEEPER_POLICY_FILE": policy_file})


def test_the_app_root_is_where_function_app_py_is():
    assert settings.APP_ROOT == ROOT
    assert (settings.APP_ROOT / "function_app.py").is_file()


def test_a_relative_policy_file_is_the_one_shipped_with_the_code(tmp_path, monkeypatch):
    # Where Flex Consumption mounts the package (and the worker's current directory) is undocumented: a relative
    # path is the app's own file, whatever the current directory is.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies.json").write_text("{}", encoding="utf-8")  # a decoy where the process happens to run
    assert fleet("policies.json").policy_file == str(ROOT / "policies.json")
    env = {"VMKEEPER_VAULTS": "{}", "VMKEEPER_POLICY_FILE": "./policies.json"}
    assert ProtectSettings.from_env(env).policy_file == str(ROOT / "policies.json")


def test_an_absolute_policy_file_is_taken_as_given(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("{}", encoding="utf-8")
    assert fleet(str(path)).policy_file == str(path)


def test_a_missing_policy_file_names_the_setting_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingError) as err:
        fleet("nothere.json")
    assert str(err.value).startswith("VMKEEPER_POLICY_FILE: no such file")
    assert str(ROOT / "nothere.json") in str(err.value)
    with pytest.raises(SettingError, match="VMKEEPER_POLICY_FILE: required"):
        fleet(" ")
