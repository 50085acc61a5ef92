"""Security posture of what infra/ deploys: no basic-auth publishing on the function app, a Log Analytics workspace
that takes Microsoft Entra ID only, and diagnostic settings sending the app's, its storage's and the vaults' logs
to that workspace (offline, as tests/infra/test_bicep.py parses the Bicep)."""

from __future__ import annotations

from tests.infra.test_bicep import BICEP_FILES, INFRA, bicep, evaluate

DIAGNOSTICS = "Microsoft.Insights/diagnosticSettings"
# Resource types vmkeeper makes that have resource logs, each with the categories its setting must send:
# Microsoft Learn, "Supported logs for Microsoft.Web/sites" (FunctionAppLogs), "… Microsoft.Storage/
# storageAccounts/{blob,queue,table}Services" (StorageRead, StorageWrite, StorageDelete) and Azure Backup's
# "resource-specific" categories for Recovery Services vaults ("Configure Azure Monitor diagnostics for Azure
# Backup"), and Event Grid's topic failures (infra/alerts/topic.bicep).
LOGGED = {
    "Microsoft.Web/sites": {"FunctionAppLogs"},
    "Microsoft.Storage/storageAccounts/blobServices": {"StorageRead", "StorageWrite", "StorageDelete"},
    "Microsoft.Storage/storageAccounts/queueServices": {"StorageRead", "StorageWrite", "StorageDelete"},
    "Microsoft.Storage/storageAccounts/tableServices": {"StorageRead", "StorageWrite", "StorageDelete"},
    "Microsoft.RecoveryServices/vaults": {"CoreAzureBackup", "AddonAzureBackupJobs", "AddonAzureBackupAlerts",
                                          "AddonAzureBackupPolicy", "AddonAzureBackupStorage",
                                          "AddonAzureBackupProtectedInstance"},
    "Microsoft.EventGrid/topics": {"PublishFailures", "DeliveryFailures"},
}


def resources(rel: str) -> dict[str, dict]:
    """A file's resources by symbolic name, a loop's or a condition's body unwrapped."""
    found = {}
    for name, res in (bicep(rel).get("resources") or {}).items():
        config = res["config"]
        while isinstance(config, dict) and "config" in config and ("loop_type" in config or "condition" in config):
            config = config["config"]
        found[name] = {**res, "config": config}
    return found


def diagnostics(rel: str) -> dict[str, dict]:
    """The diagnostic settings a file makes, by the symbolic name of the resource each is scoped to."""
    return {r["config"]["scope"]: r["config"] for r in resources(rel).values() if r["type"] == DIAGNOSTICS}


def logs(setting: dict, rel: str) -> set[str]:
    """The categories a setting sends (its ``logs`` inline or a variable of its file)."""
    value = setting["properties"]["logs"]
    if isinstance(value, str):
        value = bicep(rel)["variables"][value]["value"]
    return {log["category"] for log in value if log["enabled"] is True}


# --- publishing ------------------------------------------------------------------------------------

def test_basic_auth_publishing_is_off():
    # Microsoft Learn, "Disable basic authentication in App Service deployments": ftp is FTP's, scm everything
    # else using publishing credentials (zip deploy with a password, Kudu). azd deploys with Microsoft Entra ID.
    policies = {r["config"]["name"]: r["config"] for r in resources("app/function.bicep").values()
                if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"}
    assert set(policies) == {"ftp", "scm"}
    for name, policy in policies.items():
        assert policy["parent"] == "site", name
        assert policy["properties"] == {"allow": False}, name
        # ARM answers a policy without location "The parameter location has an invalid value" though the type
        # does not declare it (Azure/bicep-types-az#1317, #1529)
        assert policy["location"] == "location", name


# --- Log Analytics ---------------------------------------------------------------------------------

def test_log_analytics_takes_microsoft_entra_id_only():
    module = bicep("main.bicep")["modules"]["logAnalytics"]
    assert module["type"] == "local" and module["detail"]["path"] == "monitoring/workspace.bicep"
    assert module["config"]["params"]["retentionInDays"] == "logRetentionDays"
    workspace = resources("monitoring/workspace.bicep")["workspace"]
    assert workspace["type"] == "Microsoft.OperationalInsights/workspaces" and not workspace["existing"]
    props = workspace["config"]["properties"]
    assert props["features"]["disableLocalAuth"] is True  # no shared keys: agents and the API take Entra tokens
    assert props["features"]["enableLogAccessUsingOnlyResourcePermissions"] is True
    assert props["retentionInDays"] == "retentionInDays"
    outputs = bicep("monitoring/workspace.bicep")["outputs"]
    assert evaluate(outputs["resourceId"]["value"], {}) == "workspace.id"


# --- diagnostic settings ---------------------------------------------------------------------------

def test_every_logged_resource_vmkeeper_makes_sends_its_logs_to_the_workspace():
    made = 0
    for path in BICEP_FILES:
        rel = path.relative_to(INFRA).as_posix()
        found = diagnostics(rel)
        for name, res in resources(rel).items():
            if res["type"] not in LOGGED or res["existing"]:
                continue
            made += 1
            assert name in found, f"{rel}: {name} ({res['type']}) has no diagnostic setting"
            setting = found[name]
            assert setting["properties"]["workspaceId"] == "workspaceId", f"{rel}: {name}"
            assert logs(setting, rel) >= LOGGED[res["type"]], f"{rel}: {name}"
    assert made >= 6  # the site, three storage services, the vault, the alerts topic


def test_vault_logs_go_to_azure_backups_own_tables():
    # Azure Backup's resource-specific tables (CoreAzureBackup, AddonAzureBackupJobs, …), which Backup reports and
    # the Backup center read, need the resource-specific destination; the default is AzureDiagnostics
    setting = diagnostics("backup/vault.bicep")["vault"]
    assert setting["properties"]["logAnalyticsDestinationType"] == "Dedicated"


def test_the_workspace_reaches_every_module_with_logs():
    main = bicep("main.bicep")["modules"]
    for module in ("app", "storage", "vaults", "alertsTopic"):
        config = main[module]["config"]
        while "params" not in config:  # a loop's or a condition's body
            config = config["config"]
        assert evaluate(config["params"]["workspaceId"], {}) == "logAnalytics.outputs.resourceId", module
    for rel in ("app/function.bicep", "app/storage.bicep", "backup/vault.bicep"):
        assert "workspaceId" in bicep(rel)["parameters"], rel
