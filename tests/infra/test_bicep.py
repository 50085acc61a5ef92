"""The Bicep under infra/: every file parses (tree-sitter-bicep and pycep-parser, offline: no Bicep compiler
here), and what it deploys agrees with what the code reads: app settings, queue and table names, the
policy document's Azure Backup policies, least privilege, Event Grid's filter, the alerts topic, App Service
authentication."""

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
LOCAL_ONLY = {"VMKEEPER_ARM_CA_BUNDLE"}  # the emulator's CA; VMKEEPER_ARM_ENDPOINT is Bicep's (this cloud's ARM)
PLATFORM = re.compile(r"^(FUNCTIONS_[A-Z_]+|APPLICATIONINSIGHTS_[A-Z_]+|AzureWebJobsStorage__\w+|AZURE_CLIENT_ID)$")
SUB = "00000000-0000-0000-0000-000000000001"
# Built-in roles no vmkeeper identity may hold: Owner, Contributor, User Access Administrator, RBAC Administrator.
BROAD_ROLES = ("8e3af657-a8ff-443c-a75c-2fe8c4bcd635", "b24988ac-6180-42a0-ab88-20f7382dd24c",
               "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "f58310d9-a9f6-439a-9e8d-f62e7b41a168")
# EventGrid Data Sender (Microsoft Learn, "Azure built-in roles for Integration"): send only, no management.
EVENTGRID_DATA_SENDER = "d5a91429-5739-47e2-a06b-3470a27159e7"


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


def dotted(value) -> str | None:
    """``a.b.c`` or ``f().b`` as pycep renders it, as text; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "function" in value and set(value["function"]) == {"type"}:
        return f"{value['function']['type']}()"
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        ops = value["operator"]["operands"]
        left, right = dotted(ops["operand_1"]), dotted(ops["operand_2"])
        return f"{left}.{right}" if left and right else None
    return None


def code_settings() -> set[str]:
    found = set()
    # The app's code only: shared/cli is the operator's tool (not deployed: .funcignore), its VMKEEPER_API_* are
    # the operator's environment, not app settings.
    for path in [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]:
        if ROOT.joinpath("shared", "cli") in path.parents:
            continue
        found |= set(re.findall(r"VMKEEPER_[A-Z_]+", path.read_text(encoding="utf-8")))
    return found


def binding_settings() -> set[str]:
    found = set()
    for path in ROOT.joinpath("functions").glob("*.py"):
        found |= set(re.findall(r"%([A-Za-z_]+)%", path.read_text(encoding="utf-8")))
    return found


def evaluate(expr, env: dict):
    """A pycep condition or value over ``env`` (parameter and variable names -> values): enough of Bicep's
    expressions (names, literals, &&, ||, !, ?:, empty()) to run main.bicep's alerts switches."""
    if isinstance(expr, bool):
        return expr
    if isinstance(expr, str):
        return env.get(expr, expr)
    if "function" in expr:
        fn = expr["function"]
        assert fn["type"] == "empty", fn
        return not evaluate(fn["parameters"]["item_to_test"], env)
    op = expr["operator"]
    ops = op["operands"]
    if op["type"] == "and":
        return evaluate(ops["operand_1"], env) and evaluate(ops["operand_2"], env)
    if op["type"] == "or":
        return evaluate(ops["operand_1"], env) or evaluate(ops["operand_2"], env)
    if op["type"] == "not":
        return not evaluate(ops["bool_value"], env)
    if op["type"] == "conditional":
        return evaluate(ops["true_value"] if evaluate(ops["condition"], env) else ops["false_value"], env)
    if op["type"] == "property_accessor":  # module outputs: named, not resolved
        return ".".join(str(v) for v in (ops["operand_1"], evaluate(ops["operand_2"], {})))
    raise AssertionError(f"unsupported expression {op['type']}")


def app_settings() -> dict:
    fn = bicep("app/function.bicep")
    assert fn["resources"]["settings"]["config"]["properties"] == "appSettings"
    assert fn["resources"]["settings"]["config"]["name"] == "appsettings"
    return fn["variables"]["appSettings"]["value"]


# --- every file parses ---------------------------------------------------------------------------------

def test_there_is_bicep_to_check():
    names = {p.relative_to(INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "app/function.bicep", "app/storage.bicep", "backup/vault.bicep",
            "eventgrid/system-topic.bicep", "security/role-definition.bicep", "alerts/topic.bicep",
            "alerts/data-sender.bicep", "alerts/webhook-subscription.bicep"} <= names


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
    assert "shared/cli/" in (ROOT / ".funcignore").read_text(encoding="utf-8").split()  # what code_settings skips
    keys = set(app_settings())
    vmkeeper = {k for k in keys if k.startswith("VMKEEPER_")}
    assert wanted - vmkeeper == set(), "read by the code, not set in Azure"
    assert vmkeeper - wanted == set(), "set in Azure, read by nothing"
    assert {k for k in keys - vmkeeper if not PLATFORM.match(k)} == set(), "not the platform's either"


def test_arm_endpoint_is_this_clouds_resource_manager():
    # environment().resourceManager ends with "/" (https://management.azure.com/): the code takes it as it is and asks
    # for tokens for that cloud's Resource Manager (tests/unit/test_settings_cloud.py)
    assert dotted(app_settings()["VMKEEPER_ARM_ENDPOINT"]) == "environment().resourceManager"
    s = settings.AzureSettings.from_env({"VMKEEPER_ARM_ENDPOINT": "https://management.chinacloudapi.cn/"})
    assert (s.arm_endpoint, s.arm_scope) == ("https://management.chinacloudapi.cn",
                                             "https://management.chinacloudapi.cn/.default")


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
    # the account's own endpoints, so any cloud works: __accountName makes the host and the code assume the public
    # cloud's core.windows.net (shared/azure/clients.py), wrong in Azure China or US Government
    for service in ("blob", "queue", "table"):
        assert dotted(s[f"AzureWebJobsStorage__{service}ServiceUri"]) == f"account.properties.primaryEndpoints.{service}"
    assert "AzureWebJobsStorage__accountName" not in s
    assert "AzureWebJobsStorage" not in s  # no connection string
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    assert not any(k.startswith("FUNCTIONS_") for k in s)  # Flex Consumption: the runtime is functionAppConfig's


# --- queue and table names agree ------------------------------------------------------------------

def code_defaults(tmp_path) -> dict[str, str]:
    policy = tmp_path / "p.json"
    policy.write_text((ROOT / "policies.json").read_text(encoding="utf-8"), encoding="utf-8")
    env = {"VMKEEPER_VAULTS": "{}", "VMKEEPER_POLICY_FILE": str(policy), "VMKEEPER_SUBSCRIPTIONS": SUB}
    p, f, r, a, d = (settings.ProtectSettings.from_env(env), settings.FleetSettings.from_env(env),
                     settings.RestoreSettings.from_env(env), settings.AlertSettings.from_env(env),
                     settings.DrillSettings.from_env(env))
    rep = settings.ReplicationSettings.from_env(env)
    fo = settings.FailoverSettings.from_env(env)
    return {"VMKEEPER_PROTECT_QUEUE": p.queue, "VMKEEPER_PROTECT_TABLE": p.ledger_table,
            "VMKEEPER_JOBS_QUEUE": f.jobs_queue, "VMKEEPER_LEDGER_TABLE": f.ledger_table,
            "VMKEEPER_BUDGET_TABLE": f.budget_table, "VMKEEPER_RESTORE_QUEUE": "vmkeeper-restores",
            "VMKEEPER_RESTORE_TABLE": r.table, "VMKEEPER_ALERTS_TABLE": a.table, "VMKEEPER_DRILL_QUEUE": d.queue,
            "VMKEEPER_REPLICATION_QUEUE": rep.queue, "VMKEEPER_FAILOVER_QUEUE": fo.queue, "VMKEEPER_FAILOVER_TABLE": fo.table}


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
    assert set(names["queues"].values()) == {"vmkeeper-protect", "vmkeeper-jobs", "vmkeeper-restores",
                                             "vmkeeper-drills", "vmkeeper-replication",
                                             "vmkeeper-failovers"}
    assert names["tables"]["alerts"] == "vmkeeperalerts"  # made by the storage module's loop over tables


def test_timer_schedules_are_six_field_ncrontab_compliance_half_hourly_drills_daily():
    main = bicep("main.bicep")
    params = main["parameters"]
    assert params["complianceSchedule"]["default"] == "0 */30 * * * *"
    assert params["drillSchedule"]["default"] == "0 0 3 * * *"  # daily: each VM's drill falls due once per every_days
    for name in ("schedule", "retentionSchedule", "complianceSchedule", "drillSchedule", "replicationSchedule",
                 "recoveryPlanSchedule", "protectSchedule"):
        assert len(params[name]["default"].split()) == 6, name
    for param, setting, module in (("complianceSchedule", "VMKEEPER_COMPLIANCE_SCHEDULE", "compliance"),
                                   ("drillSchedule", "VMKEEPER_DRILL_SCHEDULE", "drill"),
                                   ("replicationSchedule", "VMKEEPER_REPLICATION_SCHEDULE", "replication"),
                                   ("recoveryPlanSchedule", "VMKEEPER_RECOVERY_PLAN_SCHEDULE", "failover"),
                                   ("protectSchedule", "VMKEEPER_PROTECT_SCHEDULE", "autoprotect")):
        assert main["modules"]["app"]["config"]["params"][param] == param
        assert app_settings()[setting] == param
        assert f"%{setting}%" in (ROOT / "functions" / f"{module}.py").read_text(encoding="utf-8")


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


def test_staging_role_is_its_json_assigned_at_each_staging_account_and_nowhere_else():
    # Azure Backup checks storageAccounts/write on a restore's staging account (Learn, backup-rbac-rs-vault): that
    # action is granted at the accounts restoreStagingAccountIds lists, never at a subscription or a group.
    doc = json.loads((INFRA / "vmkeeper-staging-role.json").read_text(encoding="utf-8"))
    assert set(doc) == {"roleName", "description", "actions", "notActions", "dataActions", "notDataActions"}
    assert [a.lower().startswith("microsoft.storage/storageaccounts/") for a in doc["actions"]] == [True]
    role = bicep("security/staging-role-definition.bicep")
    assert role["variables"]["role"]["value"]["function"]["parameters"]["file_path"] == "../vmkeeper-staging-role.json"
    perms = role["resources"]["definition"]["config"]["properties"]["permissions"][0]
    assert {k: accessor(v) for k, v in perms.items()} == {k: ("role", k) for k in
                                                          ("actions", "notActions", "dataActions", "notDataActions")}
    assignment = bicep("security/role-assignment-storage.bicep")["resources"]
    assert assignment["account"]["type"] == "Microsoft.Storage/storageAccounts" and assignment["account"]["existing"]
    config = assignment["assignment"]["config"]
    assert config["scope"] == "account"  # the storage account itself
    assert config["properties"]["roleDefinitionId"]["function"]["type"] == "subscription_resource_id"
    assert config["properties"]["principalType"] == "ServicePrincipal"
    main = bicep("main.bicep")
    assert main["parameters"]["restoreStagingAccountIds"]["type"] == "array"
    modules = main["modules"]
    users = {name for name, m in modules.items() if m["detail"]["path"] in (
        "security/staging-role-definition.bicep", "security/role-assignment-storage.bicep")}
    assert users == {"stagingRole", "stagingRoleAssignments"}
    loop = modules["stagingRoleAssignments"]["config"]
    assert loop["loop_type"]["detail"]["array_name"] == "restoreStagingAccountIds"
    assert loop["loop_type"]["detail"]["item_name"] == "account"
    scope = loop["config"]["scope"]["function"]
    split = {"function": {"type": "split", "parameters": {"input_string": "account", "delimiter": "/"}}}
    assert scope["type"] == "resource_group" and scope["parameters"] == {
        "subscription_id": {"operator": {"type": "index_accessor", "operands": {"operand_1": split, "operand_2": 2}}},
        "resource_group_name": {"operator": {"type": "index_accessor", "operands": {"operand_1": split, "operand_2": 4}}}}
    assert loop["config"]["params"]["storageAccountName"] == {"function": {"type": "last", "parameters": {"arg_1": split}}}
    # the assignments name the definition the module makes (by its GUID, made only when there are accounts)
    assert loop["config"]["params"]["roleDefinitionName"] == "stagingRoleName"
    assert modules["stagingRole"]["config"]["config"]["params"]["name"] == "stagingRoleName"
    assert loop["config"]["dependsOn"] == ["stagingRole"]
    assert evaluate(modules["stagingRole"]["config"]["condition"], {"restoreStagingAccountIds": []}) is False
    assert evaluate(modules["stagingRole"]["config"]["condition"], {"restoreStagingAccountIds": ["/x"]}) is True


def test_custom_roles_grant_nothing_on_event_grid():
    # sending alerts is the built-in data role's, at the topic only (test_identity_sends_to_the_alerts_topic_only)
    for name in ("vmkeeper-role.json", "vmkeeper-staging-role.json"):
        doc = json.loads((INFRA / name).read_text(encoding="utf-8"))
        granted = [a for k in ("actions", "dataActions") for a in doc[k]]
        assert not [a for a in granted if a.lower().startswith("microsoft.eventgrid/")], name


def test_no_broad_built_in_roles_anywhere():
    text = "\n".join(p.read_text(encoding="utf-8").lower() for p in [*BICEP_FILES, INFRA / "vmkeeper-role.json",
                                                                      INFRA / "vmkeeper-staging-role.json"])
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


def test_the_function_exists():
    assert "def vm_events(" in (ROOT / "functions" / "autoprotect.py").read_text(encoding="utf-8")


# --- alerts: the Event Grid custom topic ------------------------------------------------------------

def test_alerts_topic_takes_cloud_events_and_no_keys():
    mod = bicep("alerts/topic.bicep")
    topic = mod["resources"]["topic"]
    assert topic["type"] == "Microsoft.EventGrid/topics" and not topic["existing"]
    props = topic["config"]["properties"]
    assert props["inputSchema"] == "CloudEventSchemaV1_0"
    assert props["disableLocalAuth"] is True
    assert props["minimumTlsVersionAllowed"] == "1.2"
    assert props["publicNetworkAccess"] == "publicNetworkAccess"
    access = mod["parameters"]["publicNetworkAccess"]
    assert access["default"] == "Enabled"
    assert {"type": "allowed", "argument": ["Enabled", "Disabled"]} in access["decorators"]
    assert "inboundIpRules" not in props and "inputSchemaMapping" not in props
    # dead letters of its event subscriptions are written with the app's identity
    assert topic["config"]["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"'${identityId}'": {}}}
    main = bicep("main.bicep")
    assert main["parameters"]["alertsPublicNetworkAccess"]["default"] == "Enabled"
    params = main["modules"]["alertsTopic"]["config"]["config"]["params"]
    assert params["publicNetworkAccess"] == "alertsPublicNetworkAccess"
    assert evaluate(params["identityId"], {}) == "identity.outputs.resourceId"


def test_alerts_topic_logs_publish_and_delivery_failures_to_the_workspace():
    mod = bicep("alerts/topic.bicep")
    diag = mod["resources"]["diagnostics"]
    assert diag["type"] == "Microsoft.Insights/diagnosticSettings"
    assert diag["config"]["scope"] == "topic"
    props = diag["config"]["properties"]
    assert props["workspaceId"] == "workspaceId"
    assert {(log["category"], log["enabled"]) for log in props["logs"]} == {("PublishFailures", True),
                                                                             ("DeliveryFailures", True)}
    params = bicep("main.bicep")["modules"]["alertsTopic"]["config"]["config"]["params"]
    assert evaluate(params["workspaceId"], {}) == "logAnalytics.outputs.resourceId"


def test_identity_sends_to_the_alerts_topic_only():
    mod = bicep("alerts/data-sender.bicep")
    assert mod["variables"]["eventGridDataSender"]["value"] == EVENTGRID_DATA_SENDER
    assert mod["resources"]["topic"]["existing"] is True
    assert mod["resources"]["topic"]["type"] == "Microsoft.EventGrid/topics"
    assignment = mod["resources"]["assignment"]["config"]
    assert assignment["scope"] == "topic"  # not the resource group, not the subscription
    role = assignment["properties"]["roleDefinitionId"]["function"]
    assert role["type"] == "subscription_resource_id"
    assert role["parameters"]["resource_name_1"] == "eventGridDataSender"
    assert assignment["properties"]["principalType"] == "ServicePrincipal"
    # the one place the role is granted
    holders = [p.relative_to(INFRA).as_posix() for p in BICEP_FILES if EVENTGRID_DATA_SENDER in p.read_text("utf-8")]
    assert holders == ["alerts/data-sender.bicep"]
    main = bicep("main.bicep")["modules"]["alertsSender"]["config"]
    assert evaluate(main["config"]["params"]["principalId"], {}) == "identity.outputs.principalId"
    # deployed where the topic is: its subscription and resource group, read from the topic id
    scope = main["config"]["scope"]["function"]
    assert scope["type"] == "resource_group"
    split = {"function": {"type": "split", "parameters": {"input_string": "alertsTopicId", "delimiter": "/"}}}
    assert scope["parameters"] == {
        "subscription_id": {"operator": {"type": "index_accessor", "operands": {"operand_1": split, "operand_2": 2}}},
        "resource_group_name": {"operator": {"type": "index_accessor", "operands": {"operand_1": split, "operand_2": 4}}}}


@pytest.mark.parametrize(("enabled", "existing", "webhook", "deployed", "endpoint"), [
    (True, "", "", {"alertsTopic", "alertsSender"}, "alertsSender.outputs.endpoint"),
    (True, "", "https://hook.example/x", {"alertsTopic", "alertsSender", "alertsWebhook"},
     "alertsSender.outputs.endpoint"),
    (True, "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/t", "https://hook.example/x",
     {"alertsSender"}, "alertsSender.outputs.endpoint"),
    (False, "", "https://hook.example/x", set(), ""),
    (False, "/subscriptions/s/resourceGroups/g/providers/Microsoft.EventGrid/topics/t", "", set(), ""),
])
def test_alerts_switches(enabled, existing, webhook, deployed, endpoint):
    main = bicep("main.bicep")
    env = {"alertsEnabled": enabled, "existingAlertsTopicId": existing, "alertWebhookUrl": webhook,
           "newAlertsTopicId": "NEW"}
    env["createAlertsTopic"] = evaluate(main["variables"]["createAlertsTopic"]["value"], env)
    env["alertsTopicId"] = evaluate(main["variables"]["alertsTopicId"]["value"], env)
    modules = {n: main["modules"][n]["config"]["condition"] for n in ("alertsTopic", "alertsSender", "alertsWebhook")}
    assert {n for n, cond in modules.items() if evaluate(cond, env)} == deployed
    assert env["alertsTopicId"] == (existing if enabled and existing else "NEW")  # always a well-formed id
    assert evaluate(main["modules"]["app"]["config"]["params"]["alertsTopicEndpoint"], env) == endpoint
    outputs = main["outputs"]
    assert evaluate(outputs["ALERTS_TOPIC_ENDPOINT"]["value"], env) == endpoint
    assert evaluate(outputs["ALERTS_TOPIC_ID"]["value"], env) == (env["alertsTopicId"] if enabled else "")


def test_alerts_settings_come_from_the_topic_and_the_tables():
    s = app_settings()
    assert s["VMKEEPER_ALERTS_TOPIC_ENDPOINT"] == "alertsTopicEndpoint"
    assert accessor(s["VMKEEPER_ALERTS_TABLE"]) == ("tables", "alerts")
    topic = bicep("alerts/topic.bicep")["outputs"]["endpoint"]["value"]
    sender = bicep("alerts/data-sender.bicep")["outputs"]["endpoint"]["value"]
    assert evaluate(topic, {}) == evaluate(sender, {}) == "topic.properties.endpoint"  # the topic's properties.endpoint
    main = bicep("main.bicep")
    assert main["parameters"]["alertsEnabled"]["default"] is True
    assert main["parameters"]["existingAlertsTopicId"]["default"] == ""
    assert "alertsSender" in main["modules"]["app"]["config"]["dependsOn"]  # the role exists before the app runs


def test_alerts_webhook_is_a_cloud_events_subscription_with_retries_and_dead_letters():
    mod = bicep("alerts/webhook-subscription.bicep")
    assert {"type": "secure"} in mod["parameters"]["webhookUrl"]["decorators"]
    sub = mod["resources"]["webhook"]
    assert sub["type"] == "Microsoft.EventGrid/topics/eventSubscriptions" and sub["config"]["parent"] == "topic"
    props = sub["config"]["properties"]
    assert props["eventDeliverySchema"] == "CloudEventSchemaV1_0"
    assert props["destination"]["endpointType"] == "WebHook"
    assert props["destination"]["properties"]["endpointUrl"] == "webhookUrl"
    assert props["destination"]["properties"]["minimumTlsVersionAllowed"] == "1.2"
    assert props["retryPolicy"] == {"maxDeliveryAttempts": "maxDeliveryAttempts",
                                    "eventTimeToLiveInMinutes": "eventTimeToLiveInMinutes"}
    assert mod["parameters"]["maxDeliveryAttempts"]["default"] >= 1
    dl = props["deadLetterWithResourceIdentity"]
    assert dl["identity"] == {"type": "UserAssigned", "userAssignedIdentity": "identityId"}
    assert dl["deadLetterDestination"] == {"endpointType": "StorageBlob", "properties": {
        "resourceId": "storageAccountId", "blobContainerName": "deadLetterContainerName"}}
    main = bicep("main.bicep")
    assert {"type": "secure"} in main["parameters"]["alertWebhookUrl"]["decorators"]
    assert main["parameters"]["alertWebhookUrl"]["default"] == ""
    params = main["modules"]["alertsWebhook"]["config"]["config"]["params"]
    assert params["webhookUrl"] == "alertWebhookUrl"
    assert params["deadLetterContainerName"] == "deadLetterContainerName"  # the container VM events dead-letter to
    assert evaluate(params["storageAccountId"], {}) == "storage.outputs.id"
    assert evaluate(params["identityId"], {}) == "identity.outputs.resourceId"


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


def test_policy_file_ships_with_the_code(tmp_path, monkeypatch):
    # relative: the code resolves it against its own root (where Flex mounts the package is not documented)
    assert app_settings()["VMKEEPER_POLICY_FILE"] == "policyFile"
    assert bicep("app/function.bicep")["variables"]["policyFile"]["value"] == "policies.json"
    monkeypatch.chdir(tmp_path)
    fleet = settings.FleetSettings.from_env({"VMKEEPER_SUBSCRIPTIONS": SUB, "VMKEEPER_POLICY_FILE": "policies.json"})
    assert fleet.policy_file == str(ROOT / "policies.json")
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
    assert gv["excludedPaths"] == ["/api/health", "/api/openapi.json", *sorted(EVENTGRID_WEBHOOK)]


def http_routes() -> dict[str, str]:
    """Every HTTP route the app declares (functions/), with its auth level."""
    found = {}
    for path in ROOT.joinpath("functions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found |= dict(re.findall(r'@bp\.route\(\s*route="([^"]+)"[^@]*?auth_level=func\.AuthLevel\.(\w+)', text))
    return found


# The Event Grid extension's webhook (Microsoft Learn, "Azure Event Grid trigger for Azure Functions"): Event Grid
# delivers every event there, to ?functionName=<function>, without a token — the extension's system key in ?code=
# is what protects it. Learn's pages spell the path both ways (…/eventgrid in the trigger's page, …/EventGrid in
# Event Grid's validation errors): both are left to the key.
EVENTGRID_WEBHOOK = {"/runtime/webhooks/eventgrid", "/runtime/webhooks/EventGrid"}


def event_grid_functions() -> set[str]:
    """The app's Event Grid triggered functions (functions/)."""
    found = set()
    for path in ROOT.joinpath("functions").glob("*.py"):
        found |= set(re.findall(r"@bp\.event_grid_trigger\([^)]*\)\s*def (\w+)\(", path.read_text(encoding="utf-8")))
    return found


def test_only_the_anonymous_routes_and_the_event_grid_webhook_skip_app_service_authentication():
    routes = http_routes()
    assert routes["report"] == "FUNCTION" and routes["restores"] == "FUNCTION"  # the grep found them
    assert event_grid_functions() == {"vm_events"}  # and this one: Event Grid delivers to the webhook
    assert "routePrefix" not in json.dumps(json.loads((ROOT / "host.json").read_text(encoding="utf-8")))  # /api
    gv = bicep("app/function.bicep")["resources"]["auth"]["config"]["config"]["properties"]["globalValidation"]
    anonymous = {f"/api/{route}" for route, level in routes.items() if level == "ANONYMOUS"}
    assert set(gv["excludedPaths"]) == anonymous | (EVENTGRID_WEBHOOK if event_grid_functions() else set())
    assert "/api/report" not in gv["excludedPaths"]
    assert {"authTenantId", "authClientId", "authAllowedAudiences"} <= set(bicep("main.bicep")["parameters"])


# --- azd ------------------------------------------------------------------------------------------

def test_azure_yaml_names_the_service():  # its hooks: tests/infra/test_hooks.py
    doc = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert list(doc["services"]) == ["vmkeeper"]
    svc = doc["services"]["vmkeeper"]
    assert (svc["host"], svc["language"], svc["project"]) == ("function", "python", ".")
    tags = bicep("app/function.bicep")["resources"]["site"]["config"]["tags"]["function"]["parameters"]["arg_2"]
    assert tags == {"'azd-service-name'": "vmkeeper"}


def test_parameters_file_names_only_main_parameters():
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    declared = bicep("main.bicep")["parameters"]
    assert set(params) <= set(declared)
    required = {n for n, p in declared.items() if p.get("default") is None}
    assert required <= set(params)
    # a secure parameter (the alerts webhook URL may carry a key) comes from the azd environment, never a literal
    secure = {n for n, p in declared.items() if {"type": "secure"} in p["decorators"]}
    assert secure == {"alertWebhookUrl"}
    for name in secure:
        assert re.fullmatch(r"\$\{[A-Z_]+\}", params[name]["value"]), name


def test_app_roles_file_names_the_roles_the_code_checks():
    from shared import access

    roles = json.loads((INFRA / "restore-app-roles.json").read_text(encoding="utf-8"))
    assert {r["value"] for r in roles} == {access.READER, access.OPERATOR, access.FAILOVER}
    assert len({r["id"] for r in roles}) == len(roles)
