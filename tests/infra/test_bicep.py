"""The Bicep under infra/: every file parses (tree-sitter-bicep and pycep-parser, offline: no Bicep compiler
here), and what it deploys agrees with what the code reads: app settings, queue and table names, the
policy document's Azure Backup policies, least privilege, Event Grid's filter, App Service authentication."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_bicep
import yaml
from pycep import BicepParser

from shared import settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
LOCAL_ONLY = {"VMKEEPER_ARM_ENDPOINT", "VMKEEPER_ARM_CA_BUNDLE"}
PLATFORM = re.compile(r"^(FUNCTIONS_[A-Z_]+|APPLICATIONINSIGHTS_[A-Z_]+|AzureWebJobsStorage__\w+|AZURE_CLIENT_ID)$")
SUB = "00000000-0000-0000-0000-000000000001"
# Built-in roles no vmkeeper identity may hold: Owner, Contributor, User Access Administrator, RBAC Administrator.
BROAD_ROLES = ("8e3af657-a8ff-443c-a75c-2fe8c4bcd635", "b24988ac-6180-42a0-ab88-20f7382dd24c",
               "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "f58310d9-a9f6-439a-9e8d-f62e7b41a168")


def ts_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def ts_problems(source: bytes) -> list[str]:
    """ERROR and MISSING nodes of tree-sitter-bicep's tree, with their line."""
    problems, stack = [], [ts_parser().parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            problems.append(f"line {node.start_point[0] + 1}: {node.type} {source[node.start_byte:node.end_byte][:60]!r}")
        stack.extend(node.children)
    return problems


@cache
def bicep(relative: str) -> dict:
    return BicepParser().parse(text=(INFRA / relative).read_text(encoding="utf-8"))


def accessor(value) -> tuple[str, str] | None:
    """``a.b`` as pycep renders it: (a, b)."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        ops = value["operator"]["operands"]
        if isinstance(ops["operand_1"], str) and isinstance(ops["operand_2"], str):
            return ops["operand_1"], ops["operand_2"]
    return None


def code_settings() -> set[str]:
    found = set()
    for path in [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]:
        found |= set(re.findall(r"VMKEEPER_[A-Z_]+", path.read_text(encoding="utf-8")))
    return found


def binding_settings() -> set[str]:
    found = set()
    for path in ROOT.joinpath("functions").glob("*.py"):
        found |= set(re.findall(r"%([A-Za-z_]+)%", path.read_text(encoding="utf-8")))
    return found


def app_settings() -> dict:
    fn = bicep("app/function.bicep")
    assert fn["resources"]["settings"]["config"]["properties"] == "appSettings"
    assert fn["resources"]["settings"]["config"]["name"] == "appsettings"
    return fn["variables"]["appSettings"]["value"]


# --- every file parses ---------------------------------------------------------------------------------

def test_there_is_bicep_to_check():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "app/function.bicep", "app/storage.bicep", "backup/vault.bicep",
            "eventgrid/event-subscription.bicep", "security/role-definition.bicep"} <= names


def test_tree_sitter_sees_broken_bicep():
    # the check below could fail: a resource with an unclosed object is an ERROR/MISSING node
    assert ts_problems(b"resource x 'A/b@2020-01-01' = {\n  name: 'x'\n")
    assert not ts_problems(b"param x string\n")


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_parses_with_tree_sitter_bicep(path):
    assert ts_problems(path.read_bytes()) == []


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_parses_with_pycep(path):
    parsed = bicep(path.relative_to(INFRA).as_posix())
    assert parsed.get("resources") or parsed.get("modules")


def test_pycep_rejects_broken_bicep():
    with pytest.raises(Exception):  # noqa: B017 - lark's errors vary
        BicepParser().parse(text="resource x 'A/b@2020-01-01' = {\n  name: 'x'\n")


# --- app settings: exactly what the code reads ------------------------------------------------------

def test_bicep_sets_every_setting_the_code_reads_and_no_other():
    wanted = code_settings() - set(settings.RETIRED) - LOCAL_ONLY
    assert len(wanted) > 20  # the grep found the settings
    keys = set(app_settings())
    vmkeeper = {k for k in keys if k.startswith("VMKEEPER_")}
    assert wanted - vmkeeper == set(), "read by the code, not set in Azure"
    assert vmkeeper - wanted == set(), "set in Azure, read by nothing"
    assert {k for k in keys - vmkeeper if not PLATFORM.match(k)} == set(), "not the platform's either"


def test_retired_and_local_only_settings_are_not_set():
    keys = set(app_settings())
    assert not keys & (set(settings.RETIRED) | LOCAL_ONLY)


def test_every_binding_setting_is_set():
    assert binding_settings() >= {"VMKEEPER_PROTECT_QUEUE", "VMKEEPER_SCHEDULE"}
    assert binding_settings() - set(app_settings()) == set()


def test_identity_based_storage_and_app_insights():
    s = app_settings()
    assert s["AzureWebJobsStorage__credential"] == "managedidentity"
    assert s["AzureWebJobsStorage__clientId"] == "identityClientId" == s["AZURE_CLIENT_ID"]
    assert accessor(s["AzureWebJobsStorage__accountName"]) == ("account", "name")
    assert "AzureWebJobsStorage" not in s  # no connection string
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    assert not any(k.startswith("FUNCTIONS_") for k in s)  # Flex Consumption: the runtime is functionAppConfig's


# --- queue and table names agree ------------------------------------------------------------------

def code_defaults(tmp_path) -> dict[str, str]:
    policy = tmp_path / "p.json"
    policy.write_text((ROOT / "policies.json").read_text(encoding="utf-8"), encoding="utf-8")
    env = {"VMKEEPER_VAULTS": "{}", "VMKEEPER_POLICY_FILE": str(policy), "VMKEEPER_SUBSCRIPTIONS": SUB}
    p, f, r = (settings.ProtectSettings.from_env(env), settings.FleetSettings.from_env(env),
               settings.RestoreSettings.from_env(env))
    return {"VMKEEPER_PROTECT_QUEUE": p.queue, "VMKEEPER_PROTECT_TABLE": p.ledger_table,
            "VMKEEPER_JOBS_QUEUE": f.jobs_queue, "VMKEEPER_LEDGER_TABLE": f.ledger_table,
            "VMKEEPER_BUDGET_TABLE": f.budget_table, "VMKEEPER_RESTORE_QUEUE": "vmkeeper-restores",
            "VMKEEPER_RESTORE_TABLE": r.table}


def test_queue_and_table_names_agree(tmp_path):
    main = bicep("main.bicep")
    names = {"queues": main["variables"]["queues"]["value"], "tables": main["variables"]["tables"]["value"]}
    s = app_settings()
    for setting, default in code_defaults(tmp_path).items():
        var, key = accessor(s[setting])  # e.g. queues.protect
        assert names[var][key] == default, setting
    for module in ("storage", "app"):
        params = main["modules"][module]["config"]["params"]
        assert params["queues"] == "queues" and params["tables"] == "tables", module
    assert set(names["queues"].values()) == {"vmkeeper-protect", "vmkeeper-jobs", "vmkeeper-restores"}


def test_storage_makes_each_queue_with_its_poison_queue_and_each_table():
    res = bicep("app/storage.bicep")["resources"]
    made = {}
    for r in res.values():
        loop = r["config"].get("loop_type") if isinstance(r.get("config"), dict) else None
        if loop:
            made.setdefault(r["type"].rsplit("/", 1)[-1], []).append(
                (loop["detail"]["array_name"], r["config"]["config"]["name"]))
    items = {"function": {"type": "items", "parameters": {"arg_1": "queues"}}}

    def value(item):  # ``item.value``
        return {"operator": {"type": "property_accessor", "operands": {"operand_1": item, "operand_2": "value"}}}

    assert sorted(made["queues"], key=str) == sorted([(items, value("queue")), (items, "${queue.value}-poison")], key=str)
    assert made["tables"] == [({"function": {"type": "items", "parameters": {"arg_1": "tables"}}}, value("table"))]
    assert made["containers"] == [("containers", "container")]


def test_host_poison_rule_matches():
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["queues"]["maxDequeueCount"] >= 1  # the host moves messages to <queue>-poison


# --- storage, function app, monitoring ------------------------------------------------------------

def test_storage_account_takes_no_keys():
    props = bicep("app/storage.bicep")["resources"]["account"]["config"]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"


def test_flex_consumption_function_app():
    site = bicep("app/function.bicep")["resources"]["site"]["config"]
    fac = site["properties"]["functionAppConfig"]
    assert fac["runtime"] == {"name": "python", "version": "3.11"}
    assert fac["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert fac["scaleAndConcurrency"]["maximumInstanceCount"] == "maximumInstanceCount"
    assert site["identity"]["type"] == "UserAssigned"
    main = bicep("main.bicep")
    assert "maximumInstanceCount" in main["parameters"]
    assert main["modules"]["plan"]["config"]["params"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}


def test_app_insights_takes_no_local_auth():
    main = bicep("main.bicep")
    assert main["modules"]["appInsights"]["config"]["params"]["disableLocalAuth"] is True


def test_avm_modules_are_pinned():
    registry = [m for m in bicep("main.bicep")["modules"].values() if m["type"] == "bicep_registry_alias"]
    assert registry
    for m in registry:
        assert m["detail"]["path"].startswith("avm/res/")
        assert re.fullmatch(r"\d+\.\d+\.\d+", m["detail"]["tag"]), m["detail"]["full"]


def test_identity_gets_data_plane_roles_on_its_own_storage_and_app_insights():
    rbac = bicep("app/rbac.bicep")
    roles = rbac["variables"]["roles"]["value"]
    assert roles == {"storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
                     "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
                     "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
                     "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb"}
    assert len(rbac["variables"]["storageRoles"]["value"]) == 3
    assert rbac["resources"]["storageAssignments"]["config"]["config"]["scope"] == "account"
    assert rbac["resources"]["metricsPublisher"]["config"]["scope"] == "appInsights"


# --- least privilege -------------------------------------------------------------------------------

def test_custom_role_loads_its_permissions_from_the_json():
    doc = json.loads((INFRA / "vmkeeper-role.json").read_text(encoding="utf-8"))
    assert set(doc) == {"roleName", "description", "actions", "notActions", "dataActions", "notDataActions"}
    assert doc["actions"] and "*" not in doc["actions"]
    role = bicep("security/role-definition.bicep")
    assert role["variables"]["role"]["value"]["function"]["parameters"]["file_path"] == "../vmkeeper-role.json"
    perms = role["resources"]["definition"]["config"]["properties"]["permissions"][0]
    assert {k: accessor(v) for k, v in perms.items()} == {k: ("role", k) for k in
                                                          ("actions", "notActions", "dataActions", "notDataActions")}


def test_role_is_assigned_in_every_protected_subscription():
    m = bicep("main.bicep")["modules"]["roleAssignments"]["config"]
    assert m["loop_type"]["detail"] == {"item_name": "sub", "array_name": "subscriptionIds"}
    assert m["config"]["scope"] == {"function": {"type": "subscription", "parameters": {"subscription_id": "sub"}}}
    # named by the protected subscription's own path of the (tenant-wide) definition
    for module in ("security/role-assignment.bicep", "security/role-assignment-rg.bicep"):
        props = bicep(module)["resources"]["assignment"]["config"]["properties"]
        assert props["roleDefinitionId"]["function"]["type"] == "subscription_resource_id", module
        assert props["principalType"] == "ServicePrincipal"


def test_no_broad_built_in_roles_anywhere():
    text = "\n".join(p.read_text(encoding="utf-8").lower() for p in [*BICEP_FILES, INFRA / "vmkeeper-role.json"])
    for role in BROAD_ROLES:
        assert role not in text
    for word in ("'contributor'", "'owner'", "\"*\""):
        assert word not in text


# --- Event Grid -----------------------------------------------------------------------------------

def test_system_topic_is_the_subscriptions():
    topic = bicep("eventgrid/system-topic.bicep")["resources"]["topic"]["config"]
    assert topic["location"] == "global"
    assert topic["properties"]["topicType"] == "Microsoft.Resources.Subscriptions"
    assert "existingSystemTopicIds" in bicep("main.bicep")["parameters"]


def test_event_subscription_filters_vm_writes_and_deletes():
    sub = bicep("eventgrid/event-subscription.bicep")["resources"]["vmEvents"]["config"]["properties"]
    assert sub["destination"]["endpointType"] == "AzureFunction"
    assert sub["destination"]["properties"]["resourceId"] == "${functionAppId}/functions/vm_events"
    assert set(sub["filter"]["includedEventTypes"]) == {"Microsoft.Resources.ResourceWriteSuccess",
                                                        "Microsoft.Resources.ResourceDeleteSuccess"}
    assert sub["filter"]["advancedFilters"] == [{"operatorType": "StringIn", "key": "data.operationName", "values": [
        "Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/virtualMachines/delete"]}]
    assert set(sub["retryPolicy"]) == {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"}
    dl = sub["deadLetterWithResourceIdentity"]
    assert dl["identity"]["type"] == "UserAssigned"
    assert dl["deadLetterDestination"]["endpointType"] == "StorageBlob"


def test_the_function_exists():
    assert "def vm_events(" in (ROOT / "functions" / "autoprotect.py").read_text(encoding="utf-8")


# --- vaults and the policy document ---------------------------------------------------------------

def test_vaults_have_the_backup_policies_the_policy_document_names():
    from shared.policy.document import load_policy_file

    named = {p.backup_policy for p in load_policy_file(ROOT / "policies.json").policies.values() if p.backup_policy}
    assert named >= {"DefaultPolicy", "EnhancedPolicy"}
    made = {r["config"]["name"] for r in bicep("backup/vault.bicep")["resources"].values()
            if r["type"] == "Microsoft.RecoveryServices/vaults/backupPolicies"}
    assert named <= made


def test_vaults_setting_is_built_from_what_is_deployed():
    main = bicep("main.bicep")
    assert {"backupRegions", "existingVaultIds"} <= set(main["parameters"])
    assert main["modules"]["app"]["config"]["params"]["vaults"] == {
        "function": {"type": "string", "parameters": {"value_to_convert": "vaultIds"}}}
    assert main["modules"]["vaults"]["config"]["loop_type"]["detail"]["array_name"] == "newVaultRegions"


def test_policy_file_ships_with_the_code():
    assert app_settings()["VMKEEPER_POLICY_FILE"] == "policyFile"
    assert bicep("app/function.bicep")["variables"]["policyFile"]["value"] == "/home/site/wwwroot/policies.json"
    ignored = [line.strip() for line in (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    import fnmatch

    assert not any(fnmatch.fnmatch("policies.json", pat.rstrip("/")) for pat in ignored if not pat.startswith("!"))


# --- App Service authentication --------------------------------------------------------------------

def test_auth_only_with_a_client_id_and_open_paths():
    auth = bicep("app/function.bicep")["resources"]["auth"]["config"]
    assert auth["condition"] == {"operator": {"type": "not", "operands": {"bool_value": {
        "function": {"type": "empty", "parameters": {"item_to_test": "authClientId"}}}}}}
    gv = auth["config"]["properties"]["globalValidation"]
    assert gv["unauthenticatedClientAction"] == "Return401"
    assert gv["excludedPaths"] == ["/api/health", "/api/openapi.json"]
    assert {"authTenantId", "authClientId", "authAllowedAudiences"} <= set(bicep("main.bicep")["parameters"])


# --- azd ------------------------------------------------------------------------------------------

def test_azure_yaml_names_the_service_and_the_hook():
    doc = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert list(doc["services"]) == ["vmkeeper"]
    svc = doc["services"]["vmkeeper"]
    assert (svc["host"], svc["language"], svc["project"]) == ("function", "python", ".")
    hook = doc["hooks"]["postdeploy"]["posix"]["run"]
    script = ROOT / hook
    assert script.is_file() and script.stat().st_mode & 0o111
    assert "eventgrid/event-subscriptions.bicep" in script.read_text(encoding="utf-8")
    tags = bicep("app/function.bicep")["resources"]["site"]["config"]["tags"]["function"]["parameters"]["arg_2"]
    assert tags == {"'azd-service-name'": "vmkeeper"}


def test_parameters_file_names_only_main_parameters():
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = bicep("main.bicep")["parameters"]
    assert set(params) <= set(declared)
    required = {n for n, p in declared.items() if p.get("default") is None}
    assert required <= set(params)


def test_hook_outputs_exist():
    outputs = set(bicep("main.bicep")["outputs"])
    script = (INFRA / "hooks" / "postdeploy.sh").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z_]+)", script)) - {"AZURE_ENV_NAME"}
    assert used and used <= outputs


def test_app_roles_file_names_the_roles_the_code_checks():
    from shared.restore import access

    roles = json.loads((INFRA / "restore-app-roles.json").read_text(encoding="utf-8"))
    assert {r["value"] for r in roles} == {access.READER, access.OPERATOR}
    assert len({r["id"] for r in roles}) == len(roles)
