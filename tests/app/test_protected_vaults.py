"""vmkeeper under a protected vault (issue 24, docs/protected-vaults.md): multi-user authorization through a
Resource Guard that vmkeeper's identity holds nothing on. Auto-protect (enable, stop retaining data when a VM is
deleted) keeps working — it never does an operation the guard protects; a restore from a vault point the guard
protects is refused up front, 409 naming the guard, with nothing written and nothing sent to Azure Backup."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.mgmt.recoveryservicesbackup.models import (
    ResourceGuardOperationDetail,
    ResourceGuardProxyBase,
    ResourceGuardProxyBaseResource,
)

from tests.app import test_autoprotect as autoprotect
from tests.app.restore_world import REGION, start, storage_account_id
from tests.app.test_autoprotect import (
    create_vm,
    delete_vm_and_wait_until_stopped,
    protected_items,
    wait_until_protected,
)
from tests.app.test_restore import _restore_jobs, api, point, rg, writes

protect = autoprotect.protect  # the auto-protect world (fixture): vaults, the local host, Event Grid
GUARD = ("/subscriptions/0b352192-dcac-4cc7-992e-a96190ccc68c/resourceGroups/rg-security/providers/"
         "Microsoft.DataProtection/resourceGuards/guard-prod")


def enable_mua(backup: Any, vault_id: str, operations: list[str] | None = None) -> None:
    """The security admin's act: the vault names the guard (every critical operation, or only ``operations``)."""
    details = None if operations is None else [ResourceGuardOperationDetail(
        vault_critical_operation=f"Microsoft.DataProtection/resourceGuards/{op}",
        default_resource_request=f"{GUARD}/{op}/default") for op in operations]
    vault, group = vault_id.split("/")[-1], vault_id.split("/")[4]
    backup.resource_guard_proxy.put(vault, group, "VaultProxy", ResourceGuardProxyBaseResource(
        properties=ResourceGuardProxyBase(resource_guard_resource_id=GUARD, resource_guard_operation_details=details)))


def guard_checks(az: Any, since: int = 0) -> list[dict[str, Any]]:
    """The app's own requests that touched a Resource Guard (the tests' setup is not the app: no vmkeeper/ agent)."""
    return [c for c in az.calls(since) if "resourceguards" in c["path"].lower() and "vmkeeper/" in (c.get("userAgent") or "")]


def test_auto_protect_and_stopping_on_delete_keep_working_under_mua(az, protect, compute, resources, sub):
    for vault_id in protect["vaults"].values():
        enable_mua(protect["backup"], vault_id)
    create_vm(az, compute, resources, sub, "vm-guarded")
    wait_until_protected(az, protect, compute, "vm-guarded")
    [item] = protected_items(protect, "vm-guarded")
    assert item.properties["policyId"].endswith("/backupPolicies/EnhancedPolicy")
    delete_vm_and_wait_until_stopped(az, protect, compute, "vm-guarded")
    [item] = protected_items(protect, "vm-guarded")
    assert item.properties["protectionState"] == "ProtectionStopped"  # data retained: no guarded operation
    assert guard_checks(az) == []  # vmkeeper never asked for the guard
    refused = [c for c in az.calls() if c["status"] >= 400 and "protectedItems" in c["path"] and c["method"] != "GET"]
    assert refused == []


@pytest.fixture
def guarded(az, emu, azurite, tmp_path, monkeypatch):
    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True)
    yield w
    w["host"].close()


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_restore_the_guard_protects_is_refused_up_front_naming_the_guard(guarded, az, dry_run):
    w = guarded
    p = point(w, "vault")
    enable_mua(w["backup"], w["vault_id"])
    mark = len(az.calls())
    answer = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "dry_run": dry_run, "target": {
        "type": "disks", "resource_group": rg(w), "staging_storage_account": storage_account_id(w["sub"])}})
    assert answer.status == 409, answer.json()
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert GUARD in problem["detail"] and "triggerRestoreRequests" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["recovery_point"]
    assert writes(az, mark) == [] and _restore_jobs(w) == []  # nothing sent to Azure Backup, nothing made
    assert guard_checks(az, mark) == []
    assert api(w, "GET", "/api/restores").json()["value"] == []  # no restore recorded


def test_a_guard_that_excludes_restores_leaves_them_to_vmkeeper(guarded, az):
    w = guarded
    p = point(w, "vault")
    enable_mua(w["backup"], w["vault_id"], ["deleteProtectedItemRequests", "updateProtectionPolicyRequests"])
    answer = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "target": {
        "type": "disks", "resource_group": rg(w), "staging_storage_account": storage_account_id(w["sub"])}})
    assert answer.status == 202, answer.json()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not w["host"].run_until_idle(timeout=60):
        pass
    done = api(w, "GET", answer.headers["Location"]).json()
    assert done["state"] == "succeeded", done



# --- compliance and the report: each vault's posture ---------------------------------------------------------
@pytest.fixture
def posture_world(az, emu, azurite, tmp_path, monkeypatch):
    from tests.app.test_compliance_run import compliance_world

    w = compliance_world(az, emu, azurite, tmp_path, monkeypatch)
    yield w
    w["host"].close()


def report_html(w: dict[str, Any]) -> str:
    from tests.app.restore_world import READER_PRINCIPAL

    page = w["host"].http("GET", "/api/report", headers={"x-functions-key": w["host"].function_key,
                                                         "X-MS-CLIENT-PRINCIPAL": READER_PRINCIPAL})
    assert page.status == 200
    return page.body.decode()


def test_compliance_and_the_report_show_each_vaults_posture_and_an_unprotected_vault_needs_action(posture_world, az):
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.resources.models import GenericResource

    w = posture_world
    w["host"].fire_timer("compliance_evaluation")
    [before] = w["wiring"].compliance.recorded().vaults
    assert (before.vault_id, before.soft_delete, before.immutability, before.guard) == (w["vault_id"], "Enabled",
                                                                                         "Disabled", "")
    assert before.findings() == ["soft delete is Enabled, not always-on", "immutability is disabled"]
    html = report_html(w)
    assert 'id="vault-table"' in html and 'data-rank="vault"' in html and "immutability is disabled" in html

    # The vault as infra makes it (the test acts as the deploying user): always-on, immutable, a guard.
    resources = az.client(ResourceManagementClient, w["sub"], polling_interval=0)
    resources.resources.begin_create_or_update_by_id(w["vault_id"], GenericResource(
        location=REGION, sku={"name": "RS0", "tier": "Standard"}, properties={"securitySettings": {
            "softDeleteSettings": {"softDeleteState": "AlwaysON", "softDeleteRetentionPeriodInDays": 14},
            "immutabilitySettings": {"state": "Unlocked"}}}), api_version="2024-04-01").result()
    enable_mua(w["backup"], w["vault_id"])
    w["host"].fire_timer("compliance_evaluation")
    [after] = w["wiring"].compliance.recorded().vaults
    assert (after.soft_delete, after.immutability, after.guard, after.findings()) == ("AlwaysON", "Unlocked", GUARD, [])
    html = report_html(w)
    assert GUARD in html and 'data-rank="vault"' not in html


def test_a_guard_added_after_the_restore_was_accepted_fails_it_naming_the_guard(guarded, az):
    """The race: the restore was accepted (no guard then), the guard came before its POST to Azure Backup, which
    refuses it. The restore fails at once, code ResourceGuard, naming the guard; nothing is sent twice."""
    w = guarded
    p = point(w, "vault")
    answer = api(w, "POST", "/api/restores", {"vm": w["vm_id"], "recovery_point": p["id"], "target": {
        "type": "disks", "resource_group": rg(w), "staging_storage_account": storage_account_id(w["sub"])}})
    assert answer.status == 202, answer.json()
    enable_mua(w["backup"], w["vault_id"])
    mark = len(az.calls())
    assert w["host"].run_until_idle(timeout=120)
    done = api(w, "GET", answer.headers["Location"]).json()
    assert done["state"] == "failed", done
    assert done["error"]["code"] == "ResourceGuard" and done["error"]["step"] == "trigger_vault_restore"
    assert GUARD in done["error"]["message"]
    posts = [c for c in az.calls(mark) if c["method"] == "POST" and c["path"].endswith("/restore")]
    assert len(posts) == 1 and _restore_jobs(w) == []


def test_a_vault_that_does_not_answer_is_said_and_the_evaluation_goes_on(posture_world, az):
    w = posture_world
    az.faults([{"kind": "reset", "path": "backupResourceGuardProxies", "count": 20}])  # past the SDK's retries
    try:
        w["host"].fire_timer("compliance_evaluation")
    finally:
        az.faults([])
    evaluation = w["wiring"].compliance.recorded()
    assert evaluation is not None and evaluation.vms  # the fleet judged all the same: no alert lost for one vault
    [vault] = evaluation.vaults
    assert vault.vault_id == w["vault_id"] and vault.error and vault.findings() == []
