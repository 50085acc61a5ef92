"""Protected vaults through the real SDK clients: a vault's security settings (immutability Unlocked → Locked, never
back; soft delete AlwaysON, never off), what an immutable vault refuses (stop protection with delete data, a
policy's retention reduced), and multi-user authorization — a Resource Guard proxy on the vault
(RecoveryServicesBackupClient 11.2.0 resource_guard_proxy / resource_guard_proxies), and a guarded operation
refused unless it names the guard's operation and its caller holds it on the guard (emulator/README.md,
"Protected vaults")."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup.models import (
    IaasVMRestoreRequest,
    ResourceGuardProxyBase,
    ResourceGuardProxyBaseResource,
    RestoreRequestResource,
    UnlockDeleteRequest,
)
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources.models import GenericResource

from emulator.testing import StaticCredential
from tests.app.ilr_world import REGION, RG, vault_point

GUARD_SUB = "0b352192-dcac-4cc7-992e-a96190ccc68c"  # the security admin's subscription, not the vault's
GUARD = f"/subscriptions/{GUARD_SUB}/resourceGroups/rg-guards/providers/Microsoft.DataProtection/resourceGuards/guard-1"
VAULT_VERSION = "2024-04-01"
APPROVER = "backup-admin-with-jit"


@pytest.fixture
def backup(az, sub):
    return az.client(RecoveryServicesBackupClient, sub, polling_interval=0)


@pytest.fixture
def vp(emu, sub):
    return vault_point(emu, sub, vm="vm-guarded")


def arm(az, sub, token: str | None = None):
    return az.client(ResourceManagementClient, sub, polling_interval=0,
                     **({"credential": StaticCredential(token)} if token else {}))


def put_vault(az, sub, vault_id: str, security: dict):
    body = GenericResource(location=REGION, sku={"name": "RS0", "tier": "Standard"},
                           properties={"securitySettings": security})
    return arm(az, sub).resources.begin_create_or_update_by_id(vault_id, body, api_version=VAULT_VERSION).result()


def immutability(state: str) -> dict:
    return {"immutabilitySettings": {"state": state}}


def enable_mua(backup, vp, details=None):
    props = ResourceGuardProxyBase(resource_guard_resource_id=GUARD, resource_guard_operation_details=details)
    return backup.resource_guard_proxy.put(vp.vault, RG, "VaultProxy", ResourceGuardProxyBaseResource(properties=props))


def restore_request(vp, guard_requests=None) -> RestoreRequestResource:
    return RestoreRequestResource(properties=IaasVMRestoreRequest(
        object_type="IaasVMRestoreRequest", recovery_point_id=vp.point, recovery_type="RestoreDisks",
        source_resource_id=vp.vm_id, storage_account_id=f"/subscriptions/{vp.vault_id.split('/')[2]}/resourceGroups/{RG}"
        "/providers/Microsoft.Storage/storageAccounts/ststaging", region=REGION,
        target_resource_group_id=f"/subscriptions/{vp.vault_id.split('/')[2]}/resourceGroups/{RG}",
        create_new_cloud_service=False, original_storage_account_option=False,
        resource_guard_operation_requests=guard_requests))


def approver_can(az, sub, *operations: str) -> None:
    """The approver: anything in the vault's subscription, and (just in time) the guard's operations on the guard."""
    az.role_assignments([{"principal": APPROVER, "scope": f"/subscriptions/{sub}", "actions": ["*"]},
                         {"principal": APPROVER, "scope": GUARD,
                          "actions": [f"Microsoft.DataProtection/resourceGuards/{op}/write" for op in operations]}])


def disks(emu) -> int:
    with emu.lock:
        return len(emu.store.of_type("Microsoft.Compute/disks"))


# --- security settings ------------------------------------------------------------------------------
def test_locked_immutability_can_not_be_unlocked_or_disabled(az, sub, vp):
    put_vault(az, sub, vp.vault_id, immutability("Unlocked"))
    put_vault(az, sub, vp.vault_id, immutability("Disabled"))  # Unlocked is reversible
    put_vault(az, sub, vp.vault_id, immutability("Unlocked"))
    locked = put_vault(az, sub, vp.vault_id, immutability("Locked"))
    assert locked.properties["securitySettings"]["immutabilitySettings"]["state"] == "Locked"
    for state in ("Unlocked", "Disabled"):
        with pytest.raises(HttpResponseError) as err:
            put_vault(az, sub, vp.vault_id, immutability(state))
        assert err.value.status_code == 400
        assert err.value.error.code == "UserErrorUnsupportedVaultImmutabilityStateChange"
    got = arm(az, sub).resources.get_by_id(vp.vault_id, api_version=VAULT_VERSION)
    assert got.properties["securitySettings"]["immutabilitySettings"]["state"] == "Locked"


def test_a_vault_is_not_created_locked_and_always_on_soft_delete_stays_on(az, sub, vp):
    new_vault = vp.vault_id.rsplit("/", 1)[0] + "/vault-new"
    with pytest.raises(HttpResponseError) as err:
        put_vault(az, sub, new_vault, immutability("Locked"))
    assert err.value.error.code == "UserErrorUnsupportedVaultImmutabilityStateChange"
    with pytest.raises(Exception):  # noqa: B017 (nothing was made)
        arm(az, sub).resources.get_by_id(new_vault, api_version=VAULT_VERSION)
    put_vault(az, sub, vp.vault_id, {"softDeleteSettings": {"softDeleteState": "AlwaysON",
                                                            "softDeleteRetentionPeriodInDays": 14}})
    with pytest.raises(HttpResponseError) as err:
        put_vault(az, sub, vp.vault_id, {"softDeleteSettings": {"softDeleteState": "Disabled"}})
    assert err.value.error.code == "UserErrorSoftDeleteAlwaysOnCannotBeChanged"


def test_an_immutable_vault_refuses_stop_protection_with_delete_data(az, sub, vp, backup, emu):
    put_vault(az, sub, vp.vault_id, immutability("Unlocked"))
    with pytest.raises(HttpResponseError) as err:
        backup.protected_items.delete(vp.vault, RG, "Azure", vp.container, vp.item)
    assert (err.value.status_code, err.value.error.code) == (400, "UserErrorOperationNotAllowedOnImmutableVault")
    with emu.lock:
        assert emu.store.get(vp.item_id) is not None


def test_an_immutable_vault_refuses_a_policy_retention_reduced(az, sub, vp, backup):
    put_vault(az, sub, vp.vault_id, immutability("Unlocked"))
    policy = backup.protection_policies.get(vp.vault, RG, "DefaultPolicy")
    policy.properties.retention_policy.daily_schedule.retention_duration.count = 7
    with pytest.raises(HttpResponseError) as err:
        backup.protection_policies.create_or_update(vp.vault, RG, "DefaultPolicy", policy)
    assert err.value.error.code == "UserErrorOperationNotAllowedOnImmutableVault"
    policy.properties.retention_policy.daily_schedule.retention_duration.count = 60  # longer is fine
    assert backup.protection_policies.create_or_update(vp.vault, RG, "DefaultPolicy", policy) is not None


# --- multi-user authorization ----------------------------------------------------------------------------------
def test_the_proxy_names_the_guard_and_lists_its_critical_operations(vp, backup):
    made = enable_mua(backup, vp)
    assert made.name == "VaultProxy" and made.type == "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies"
    got = backup.resource_guard_proxy.get(vp.vault, RG, "VaultProxy")
    assert got.properties.resource_guard_resource_id == GUARD
    ops = {d.vault_critical_operation: d.default_resource_request for d in got.properties.resource_guard_operation_details}
    assert ops["Microsoft.DataProtection/resourceGuards/disableSoftDeleteRequests"] == f"{GUARD}/disableSoftDeleteRequests/default"
    assert "Microsoft.DataProtection/resourceGuards/triggerRestoreRequests" in ops
    listed = list(backup.resource_guard_proxies.get(vp.vault, RG))
    assert [p.properties.resource_guard_resource_id for p in listed] == [GUARD]
    with pytest.raises(HttpResponseError) as err:
        backup.resource_guard_proxy.get(vp.vault, RG, "OtherName")
    assert err.value.status_code == 400


def test_a_guarded_restore_is_refused_without_the_guard_and_creates_nothing(vp, backup, emu):
    enable_mua(backup, vp)
    before = disks(emu)
    with pytest.raises(HttpResponseError) as err:  # no resourceGuardOperationRequests
        backup.restores.begin_trigger(*vp.sdk_args(), restore_request(vp), polling=False)
    assert (err.value.status_code, err.value.error.code) == (400, "UserErrorResourceGuardOperationRequestMissing")
    assert GUARD in err.value.error.message
    with pytest.raises(HttpResponseError) as err:  # names it, but the caller holds nothing on the guard
        backup.restores.begin_trigger(*vp.sdk_args(), restore_request(vp, [f"{GUARD}/triggerRestoreRequests/default"]),
                                      polling=False)
    assert (err.value.status_code, err.value.error.code) == (403, "LinkedAuthorizationFailed")
    assert disks(emu) == before


def test_a_guarded_restore_passes_with_the_guard_operation_granted(az, sub, vp, emu):
    enable_mua(az.client(RecoveryServicesBackupClient, sub), vp)
    approver_can(az, sub, "triggerRestoreRequests")
    backup = az.client(RecoveryServicesBackupClient, sub, polling_interval=0, credential=StaticCredential(APPROVER))
    before = disks(emu)
    backup.restores.begin_trigger(*vp.sdk_args(), restore_request(vp, [f"{GUARD}/triggerRestoreRequests/default"])).result()
    assert disks(emu) > before
    linked = [c for c in az.calls() if c.get("method") == "LINKED" and "resourceGuards" in c.get("path", "")]
    assert linked and linked[-1]["status"] == 200


def test_a_guard_that_excludes_restores_does_not_guard_them(vp, backup, emu):
    delete_item = {"vault_critical_operation": "Microsoft.DataProtection/resourceGuards/deleteProtectedItemRequests",
                   "default_resource_request": f"{GUARD}/deleteProtectedItemRequests/default"}
    from azure.mgmt.recoveryservicesbackup.models import ResourceGuardOperationDetail

    enable_mua(backup, vp, [ResourceGuardOperationDetail(**delete_item)])
    before = disks(emu)
    backup.restores.begin_trigger(*vp.sdk_args(), restore_request(vp)).result()
    assert disks(emu) > before


def test_stop_protection_with_delete_data_needs_the_guards_unlock(az, sub, vp, backup, emu):
    enable_mua(backup, vp)
    with pytest.raises(HttpResponseError) as err:
        backup.protected_items.delete(vp.vault, RG, "Azure", vp.container, vp.item)
    assert err.value.error.code == "UserErrorResourceGuardOperationRequestMissing"
    unlock = UnlockDeleteRequest(resource_guard_operation_requests=[f"{GUARD}/deleteProtectedItemRequests/default"],
                                 resource_to_be_deleted=vp.item_id)
    with pytest.raises(HttpResponseError) as err:  # vmkeeper's identity (or anyone's) without the guard's yes
        backup.resource_guard_proxy.unlock_delete(vp.vault, RG, "VaultProxy", unlock)
    assert err.value.status_code == 403
    with emu.lock:
        assert emu.store.get(vp.item_id) is not None
    approver_can(az, sub, "deleteProtectedItemRequests")
    approver = az.client(RecoveryServicesBackupClient, sub, polling_interval=0, credential=StaticCredential(APPROVER))
    assert approver.resource_guard_proxy.unlock_delete(vp.vault, RG, "VaultProxy", unlock).unlock_delete_expiry_time
    approver.protected_items.delete(vp.vault, RG, "Azure", vp.container, vp.item)


def test_removing_mua_is_itself_guarded(az, sub, vp, backup):
    proxy = enable_mua(backup, vp)
    with pytest.raises(HttpResponseError):
        backup.resource_guard_proxy.delete(vp.vault, RG, "VaultProxy")
    assert list(backup.resource_guard_proxies.get(vp.vault, RG))
    approver_can(az, sub, "deleteResourceGuardProxyRequests")
    approver = az.client(RecoveryServicesBackupClient, sub, polling_interval=0, credential=StaticCredential(APPROVER))
    approver.resource_guard_proxy.unlock_delete(vp.vault, RG, "VaultProxy", UnlockDeleteRequest(
        resource_guard_operation_requests=[f"{GUARD}/deleteResourceGuardProxyRequests/default"], resource_to_be_deleted=proxy.id))
    approver.resource_guard_proxy.delete(vp.vault, RG, "VaultProxy")
    assert list(backup.resource_guard_proxies.get(vp.vault, RG)) == []
