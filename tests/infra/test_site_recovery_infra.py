"""What infra/ deploys for Site Recovery (issue 21; infra/README.md "Site Recovery"), offline as tests/infra/test_bicep.py
reads the Bicep: the target region's vault is one of the vaults (made if missing, with a system-assigned identity),
a cache storage account per source region (Standard general-purpose v2, no shared keys) on which each target vault's
identity — the one Site Recovery writes the cache with — is Storage Blob Data Contributor and nothing more, and the
account ids a policy's ``replication.cache_storage_accounts`` takes. main.bicep's own expressions are run over sample
parameters (a small interpreter of the Bicep functions they use), so the wiring is checked, not only its spelling."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.test_bicep import BROAD_ROLES, INFRA, bicep
from tests.infra.test_whatif import report

CACHE = "siterecovery/cache-storage.bicep"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # Learn, "Azure built-in roles for Storage"
SUB = "00000000-0000-0000-0000-000000000001"


# --- a small interpreter of main.bicep's expressions -----------------------------------------------------------
def run(expr: Any, env: dict[str, Any]) -> Any:
    """A pycep expression over ``env`` (names → values; a string not in it is a literal, as pycep spells both the
    same): the functions and operators main.bicep's region and vault expressions use."""
    if isinstance(expr, bool) or expr is None:
        return expr
    if isinstance(expr, str):
        return env.get(expr, expr)
    if isinstance(expr, list):
        return [run(e, env) for e in expr]
    if expr.get("type") == "lambda_expression":
        detail = expr["detail"]
        return lambda value: run(detail["expression"], {**env, detail["var_1"]: value})
    if "loop_type" in expr:  # a for-expression: [for x in xs: value]
        detail = expr["loop_type"]["detail"]
        return [run(expr["config"], {**env, detail["item_name"]: item}) for item in run(detail["array_name"], env)]
    if "function" in expr:
        fn, args = expr["function"]["type"], expr["function"].get("parameters") or {}
        a = {k: run(v, env) for k, v in args.items()}
        if fn == "map":
            return [a["arg_2"](x) for x in a["arg_1"]]
        if fn == "filter":
            return [x for x in a["input_array"] if a["expression"](x)]
        if fn == "union":
            out: list[Any] = []
            for part in (a[k] for k in sorted(a)):
                out += [x for x in part if x not in out]
            return out
        if fn == "contains":
            return a["item_to_find"] in a["container"]
        if fn == "empty":
            return not a["item_to_test"]
        if fn == "to_lower":
            return a["string_to_change"].lower()
        if fn == "replace":
            return a["original_string"].replace(a["old_string"], a["new_string"])
        if fn == "index_of":
            found = a["string_to_search"]
            return found.index(a["string_to_find"]) if a["string_to_find"] in found else -1
        if fn == "toObject":
            return {a["arg_2"](x): a["arg_3"](x) for x in a["arg_1"]}
        raise AssertionError(f"function {fn} not interpreted")
    op = expr["operator"]
    ops = op["operands"]
    if op["type"] == "not":
        return not run(ops["bool_value"], env)
    if op["type"] == "conditional":
        return run(ops["true_value"] if run(ops["condition"], env) else ops["false_value"], env)
    if op["type"] == "index_accessor":  # a module collection's element: named, as ARM would reference it
        return f"{run(ops['operand_1'], env)}[{run(ops['operand_2'], env)}]"
    if op["type"] == "property_accessor":
        return f"{run(ops['operand_1'], env)}.{run(ops['operand_2'], {})}"
    raise AssertionError(f"operator {op['type']} not interpreted")


def deployed(location: str = "westeurope", backup: list[str] | None = None, existing: dict[str, str] | None = None,
             sources: list[str] | None = None, targets: list[str] | None = None) -> dict[str, Any]:
    """What main.bicep deploys for these parameters: the vaults (region → whether it has an identity), the cache
    modules (source region → the principal ids its role assignments get) and the regions VMKEEPER_VAULTS names."""
    main = bicep("main.bicep")
    env: dict[str, Any] = {"location": location, "backupRegions": backup or [], "existingVaultIds": existing or {},
                           "siteRecoverySourceRegions": sources or [], "siteRecoveryTargetRegions": targets or []}
    for name in ("drSourceRegions", "drTargetRegions", "regions", "newVaultRegions", "drTargetVaultRegions"):
        env[name] = run(main["variables"][name]["value"], env)
    vaults = main["modules"]["vaults"]["config"]
    assert vaults["loop_type"]["detail"] == {"item_name": "region", "array_name": "newVaultRegions"}
    identity = {r: run(vaults["config"]["params"]["systemAssignedIdentity"], {**env, "region": r})
                for r in env["newVaultRegions"]}
    caches = main["modules"]["siteRecoveryCaches"]["config"]
    assert caches["loop_type"]["detail"] == {"item_name": "region", "array_name": "drSourceRegions"}
    grants = {r: run(caches["config"]["params"]["vaultPrincipalIds"], {**env, "region": r}) for r in env["drSourceRegions"]}
    return {"vaults": identity, "caches": grants, "vault_regions": sorted([*env["newVaultRegions"], *(existing or {})])}


def test_the_interpreter_runs_what_it_is_given():
    # the checks below could fail: the interpreter is not a constant
    assert run({"function": {"type": "union", "parameters": {"arg_1": "a", "arg_2": "b"}}}, {"a": [1, 2], "b": [2, 3]}) == [1, 2, 3]
    with pytest.raises(AssertionError, match="not interpreted"):
        run({"function": {"type": "sort", "parameters": {}}}, {})


# --- the target region's vault ---------------------------------------------------------------------------------
def test_without_site_recovery_nothing_changes():
    assert deployed(backup=["westeurope", "northeurope"]) == {
        "vaults": {"westeurope": False, "northeurope": False}, "caches": {}, "vault_regions": ["northeurope", "westeurope"]}
    assert deployed() == {"vaults": {"westeurope": False}, "caches": {}, "vault_regions": ["westeurope"]}


def test_a_target_region_in_backup_regions_is_that_vault_with_an_identity_writing_each_cache():
    made = deployed(backup=["westeurope", "northeurope"], sources=["westeurope"], targets=["northeurope"])
    assert made["vaults"] == {"westeurope": False, "northeurope": True}  # one vault a region: no second one
    assert made["caches"] == {"westeurope": ["vaults[1].outputs.principalId"]}  # the northeurope vault's identity


def test_a_target_region_outside_backup_regions_gets_a_vault_named_in_vmkeeper_vaults():
    made = deployed(location="westeurope", sources=["West Europe", "eastus"], targets=["North Europe"])
    assert made["vault_regions"] == ["northeurope", "westeurope"]  # VMKEEPER_VAULTS names it: the app finds it
    assert made["vaults"] == {"westeurope": False, "northeurope": True}
    assert made["caches"] == {"westeurope": ["vaults[1].outputs.principalId"], "eastus": ["vaults[1].outputs.principalId"]}
    main = bicep("main.bicep")
    assert main["modules"]["app"]["config"]["params"]["vaults"] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "vaultIds"}}}


def test_two_target_regions_each_write_every_cache_and_an_existing_target_vault_is_left_to_its_owner():
    made = deployed(backup=["westeurope"], sources=["westeurope"], targets=["northeurope", "swedencentral"])
    assert made["caches"] == {"westeurope": ["vaults[1].outputs.principalId", "vaults[2].outputs.principalId"]}
    existing = {"northeurope": f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.RecoveryServices/vaults/dr"}
    made = deployed(backup=["westeurope"], existing=existing, sources=["westeurope"], targets=["northeurope"])
    assert made["vaults"] == {"westeurope": False}  # not made, not changed: its identity and grant are its owner's
    assert made["caches"] == {"westeurope": []} and "northeurope" in made["vault_regions"]


def test_the_vault_identity_is_system_assigned_only_when_asked_and_its_principal_is_an_output():
    vault = bicep("backup/vault.bicep")
    assert vault["parameters"]["systemAssignedIdentity"]["default"] is False
    identity = vault["resources"]["vault"]["config"]["identity"]["type"]["operator"]
    assert identity["type"] == "conditional" and identity["operands"] == {
        "condition": "systemAssignedIdentity", "true_value": "SystemAssigned", "false_value": "None"}
    assert run(vault["outputs"]["principalId"]["value"], {"systemAssignedIdentity": True}) == "vault.identity.principalId"
    assert run(vault["outputs"]["principalId"]["value"], {"systemAssignedIdentity": False}) == ""


# --- the cache storage accounts --------------------------------------------------------------------------------
def test_a_cache_is_a_standard_general_purpose_v2_account_without_shared_keys():
    module = bicep(CACHE)
    account = module["resources"]["account"]
    assert (account["type"], account["api_version"]) == ("Microsoft.Storage/storageAccounts", "2023-05-01")
    config = account["config"]
    assert (config["kind"], config["sku"]["name"], config["location"]) == ("StorageV2", "Standard_LRS", "location")
    props = config["properties"]
    assert props["allowSharedKeyAccess"] is False and props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2" and props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True and props["accessTier"] == "Hot"
    # Site Recovery's support matrix: no VNet restriction on a cache, trusted Microsoft services let through
    assert props["networkAcls"] == {"defaultAction": "Allow", "bypass": "AzureServices"}


def test_each_target_vault_identity_is_storage_blob_data_contributor_on_the_cache_and_nothing_else():
    module = bicep(CACHE)
    assignments = {n: r for n, r in module["resources"].items() if r["type"] == "Microsoft.Authorization/roleAssignments"}
    assert list(assignments) == ["vaultAssignments"]
    loop = assignments["vaultAssignments"]["config"]
    assert loop["loop_type"]["detail"] == {"item_name": "principalId", "array_name": "vaultPrincipalIds"}
    body = loop["config"]
    assert body["scope"] == "account"  # the cache account itself, not its group
    assert body["properties"]["principalId"] == "principalId" and body["properties"]["principalType"] == "ServicePrincipal"
    role = body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert module["variables"][role]["value"] == STORAGE_BLOB_DATA_CONTRIBUTOR
    assert body["name"]["function"]["type"] == "guid"  # deterministic: a re-provision assigns nothing new
    text = (INFRA / CACHE).read_text(encoding="utf-8").lower()
    assert not [r for r in BROAD_ROLES if r in text] and "listkeys" not in text


def test_caches_live_in_rg_env_and_vmkeepers_custom_role_reads_them():
    main = bicep("main.bicep")
    caches = main["modules"]["siteRecoveryCaches"]["config"]["config"]
    assert caches["scope"] == "rg" and caches["params"]["location"] == "region"  # azd down deletes them with rg-<env>
    # enabling replication: ARM's linked check of storageAccounts/read on the cache, on vmkeeper's identity
    # (infra/LEAST_PRIVILEGE.md): its custom role holds it (at the protected subscriptions, or rg-<env>)
    role = json.loads((INFRA / "vmkeeper-role.json").read_text(encoding="utf-8"))
    assert "Microsoft.Storage/storageAccounts/read" in role["actions"]
    assert not [a for a in role["dataActions"] if a.lower().startswith("microsoft.storage/")]  # the cache is the vault's


def test_the_cache_ids_output_is_what_a_policys_replication_block_takes():
    from shared.policy.document import PolicyError, load_policies

    main = bicep("main.bicep")
    name = main["variables"]["cacheAccountNames"]["value"]["function"]["parameters"]["arg_3"]["detail"]["expression"]
    assert name == "stc${resourceToken}${take(uniqueString(r), 8)}"
    sample = "stc" + "a1b2c3d4e5f6g" + "h7i8j9k0"  # uniqueString: 13 lower-case letters and digits
    out = main["outputs"]["SITE_RECOVERY_CACHE_ACCOUNT_IDS"]["value"]["function"]["parameters"]["arg_3"]["detail"]
    account_id = (out["expression"].replace("${subscription().subscriptionId}", SUB)
                  .replace("${resourceGroupName}", "rg-prod").replace("${cacheAccountNames[r]}", sample))

    def policy(cache: str) -> str:
        return json.dumps({"version": 1, "default": "dr", "policies": {"dr": {"schedule": {"every_hours": 24},
            "snapshots": {}, "replication": {"target_region": "northeurope",
                                             "target_resource_group": f"/subscriptions/{SUB}/resourceGroups/rg-dr",
                                             "network": {"isolated": True},
                                             "cache_storage_accounts": {"westeurope": cache}}}}})
    spec = load_policies(policy(account_id)).policies["dr"].replication
    assert spec.cache_account("westeurope") == account_id and len(sample) == 24
    with pytest.raises(PolicyError, match="cache_storage_accounts"):  # one character more: not an account name
        load_policies(policy(account_id + "x"))


def test_parameters_come_from_the_azd_environment():
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert params["siteRecoverySourceRegions"]["value"] == "${SITE_RECOVERY_SOURCE_REGIONS=[]}"
    assert params["siteRecoveryTargetRegions"]["value"] == "${SITE_RECOVERY_TARGET_REGIONS=[]}"


def test_the_replication_queue_and_settings_are_deployed():
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert re.search(r"^\s*replication: 'vmkeeper-replication'$", main, re.M)
    function = (INFRA / "app" / "function.bicep").read_text(encoding="utf-8")
    assert "VMKEEPER_REPLICATION_QUEUE: queues.replication" in function
    assert "VMKEEPER_REPLICATION_SCHEDULE: replicationSchedule" in function


# --- the dry check saw the new resources -----------------------------------------------------------------------
def test_the_what_if_check_looked_up_the_cache_the_grant_and_the_vault_identity():
    checked = {(d.file.removeprefix("infra/"), d.symbol) for d in report().checked}
    assert {(CACHE, "account"), (CACHE, "vaultAssignments"), ("backup/vault.bicep", "vault")} <= checked
    looked = "\n".join(report().properties)
    for prop in ("allowSharedKeyAccess", "accessTier", "principalType", "identity"):
        assert prop in looked, prop
