"""The vaults vmkeeper makes are protected (issue 24, infra/README.md "Protected vaults"): soft delete always-on,
immutability Unlocked unless the operator locks it, multi-user authorization through a Resource Guard whose id is a
parameter (a VaultProxy child naming it; none when empty) — and vmkeeper's own role can change none of it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.infra.test_bicep import bicep

ROOT = Path(__file__).resolve().parents[2]


def allowed(param: dict) -> list[str]:
    return next(d["argument"] for d in param["decorators"] if d["type"] == "allowed")


def test_soft_delete_is_always_on_and_immutability_is_the_parameters():
    vault = bicep("backup/vault.bicep")
    security = vault["resources"]["vault"]["config"]["properties"]["securitySettings"]
    assert security["softDeleteSettings"]["softDeleteState"] == "AlwaysON"
    assert 14 <= security["softDeleteSettings"]["softDeleteRetentionPeriodInDays"] <= 180
    assert security["immutabilitySettings"]["state"] == "immutabilityState"
    param = vault["parameters"]["immutabilityState"]
    assert param["default"] == "Unlocked" and sorted(allowed(param)) == ["Locked", "Unlocked"]


def test_main_passes_immutability_unlocked_by_default_and_no_guard_by_default():
    main = bicep("main.bicep")
    params = main["modules"]["vaults"]["config"]["config"]["params"]
    assert params["immutabilityState"] == "vaultImmutability"
    assert params["resourceGuardId"] == "resourceGuardId"
    assert main["parameters"]["vaultImmutability"]["default"] == "Unlocked"
    assert sorted(allowed(main["parameters"]["vaultImmutability"])) == ["Locked", "Unlocked"]
    assert main["parameters"]["resourceGuardId"]["default"] == ""
    azd = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert azd["vaultImmutability"]["value"] == "${VAULT_IMMUTABILITY=Unlocked}"
    assert azd["resourceGuardId"]["value"] == "${RESOURCE_GUARD_ID}"


def test_the_resource_guard_proxy_is_made_only_with_a_guard_and_names_it():
    proxy = bicep("backup/vault.bicep")["resources"]["resourceGuardProxy"]
    assert proxy["type"] == "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies"
    assert proxy["config"]["config"]["parent"] == "vault"
    assert proxy["config"]["config"]["name"] == "VaultProxy"  # the one name a Recovery Services vault's proxy takes
    assert proxy["config"]["config"]["properties"] == {"resourceGuardResourceId": "resourceGuardId"}
    condition = proxy["config"]["condition"]["operator"]
    assert condition["type"] == "not"
    assert condition["operands"]["bool_value"]["function"] == {"type": "empty",
                                                               "parameters": {"item_to_test": "resourceGuardId"}}


def test_vmkeepers_role_can_not_change_the_vaults_protection():
    """No vault write (security settings), no proxy write or delete (MUA), no unlockDelete, nothing on a guard."""
    actions = [a.lower() for a in json.loads((ROOT / "infra" / "vmkeeper-role.json").read_text())["actions"]]
    for forbidden in ("microsoft.recoveryservices/vaults/write", "microsoft.recoveryservices/vaults/delete",
                      "microsoft.recoveryservices/vaults/backupresourceguardproxies/write",
                      "microsoft.recoveryservices/vaults/backupresourceguardproxies/delete",
                      "microsoft.recoveryservices/vaults/backupresourceguardproxies/unlockdelete/action",
                      "microsoft.recoveryservices/vaults/backuppolicies/write",
                      "microsoft.recoveryservices/vaults/backupconfig/write",  # the Backup config's soft delete switch
                      "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems/delete"):
        assert forbidden not in actions, forbidden
    assert not any("*" in a for a in actions if a.startswith("microsoft.recoveryservices/vaults/"))
    assert not any(a.startswith("microsoft.dataprotection/") for a in actions)
