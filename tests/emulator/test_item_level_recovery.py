"""Azure Backup item-level recovery (file recovery) through the real RecoveryServicesBackupClient (11.2.0,
2026-10-01): provision (202 + the item's monitors) opens a session on the recovery point when its operation ends,
listInstantItemRecoveryOperationResult gives the client scripts for the VM's OS, revoke or Azure's 12 hours end
it; the errors for a wrong state; Azure Backup's check on the caller (virtualMachines/write on the source VM).
The official examples are replayed by test_recoveryservices.py (next/ root)."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup.models import (
    IaasVMILRRegistrationRequest,
    ILRRequestResource,
    InstantItemRecoveryOperationResultRequest,
)

from emulator.testing import StaticCredential
from tests.app.ilr_world import session, vault_point

HOURS_12 = 12 * 3600
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
ITEM_OPS = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
PROVISION = f"{ITEM_OPS}/recoveryPoints/provisionInstantItemRecovery/action"


@pytest.fixture
def backup(az, sub):
    return az.client(RecoveryServicesBackupClient, sub, polling_interval=0)


def headers(pipeline_response, deserialized, hdrs):
    return pipeline_response.http_response.status_code, {k.lower(): v for k, v in pipeline_response.http_response.headers.items()}


def provision(backup, vp, *, renew: bool = False, vm_id: str | None = None, initiator: str | None = "iqn.1991-05.com.contoso:ws1"):
    request = ILRRequestResource(properties=IaasVMILRRegistrationRequest(
        recovery_point_id=vp.point, virtual_machine_id=vm_id or vp.vm_id, initiator_name=initiator,
        renew_existing_registration=renew))
    return backup.item_level_recovery_connections.provision(*vp.sdk_args(), request, cls=headers)


def op_id(hdrs: dict) -> str:
    return hdrs["location"].split("/operationResults/")[1].split("?")[0]


def scripts(backup, vp, operation_id: str):
    vault, rg, fabric, container, item, point = vp.sdk_args()
    return backup.item_level_recovery_connections.list_instant_item_recovery_operation_result(
        rg, vault, fabric, container, item, point,
        InstantItemRecoveryOperationResultRequest(provision_instant_item_recovery_operation_id=operation_id))


def active(backup, vp) -> bool:
    vault, rg, fabric, container, item, point = vp.sdk_args()
    return backup.recovery_points.get(vault, rg, fabric, container, item, point).properties["isInstantIlrSessionActive"]


def code(err: pytest.ExceptionInfo) -> tuple[int, str]:
    return err.value.status_code, err.value.error.code


@pytest.mark.parametrize("os_type, extensions", [("Linux", [".py"]), ("Windows", [".exe", ".ps1"])])
def test_provision_opens_a_session_whose_scripts_suit_the_vms_os(az, emu, backup, sub, os_type, extensions):
    vp = vault_point(emu, sub, os_type=os_type)
    az.settings(lro={"default_seconds": 30, "retry_after_ms": None})
    status, hdrs = provision(backup, vp)
    assert status == 202 and "/operationsStatus/" in hdrs["azure-asyncoperation"] and hdrs["retry-after"] == "30"
    assert hdrs["location"].startswith(f"{az.base_url}{vp.item_id}/operationResults/")
    operation = op_id(hdrs)
    vault, rg, *_ = vp.sdk_args()
    assert backup.protected_item_operation_statuses.get(vault, rg, "Azure", vp.container, vp.item, operation).status \
        == "InProgress"
    assert session(emu, vp) is None and not active(backup, vp)
    with pytest.raises(HttpResponseError) as err:  # not yet: the scripts come once the operation has ended
        scripts(backup, vp, operation)
    assert code(err) == (400, "UserErrorIlrProvisionInProgress")

    az.advance(31)
    assert backup.protected_item_operation_statuses.get(vault, rg, "Azure", vp.container, vp.item, operation).status \
        == "Succeeded"
    assert backup.backup_operation_statuses.get(vault, rg, operation).status == "Succeeded"  # the CLI's way of looking
    target = session(emu, vp)
    assert target["virtualMachineId"].lower() == vp.vm_id.lower()
    assert target["initiatorName"] == "iqn.1991-05.com.contoso:ws1" and target["renewExistingRegistration"] is False
    assert target["expiry"] - target["start"] == HOURS_12
    assert active(backup, vp)
    got = scripts(backup, vp, operation).client_scripts
    assert [s.script_extension for s in got] == extensions and {s.os_type for s in got} == {os_type}
    assert all(s.script_name_suffix == vp.point for s in got)
    with_content = [s for s in got if s.script_content]
    assert len(with_content) == 1 and target["password"] in with_content[0].script_content
    if os_type == "Windows":
        assert got[0].url and not got[0].script_content  # the executable is downloaded, not inlined


def test_revoke_ends_the_session_and_its_scripts(az, emu, backup, sub):
    vp = vault_point(emu, sub)
    operation = op_id(provision(backup, vp)[1])
    az.advance(1)
    assert active(backup, vp)
    status, hdrs = backup.item_level_recovery_connections.revoke(*vp.sdk_args(), cls=headers)
    assert status == 202 and "/operationsStatus/" in hdrs["azure-asyncoperation"]
    assert session(emu, vp) is not None  # until the revoke's operation ends
    az.advance(1)
    assert session(emu, vp) is None and not active(backup, vp)
    with pytest.raises(HttpResponseError) as err:
        scripts(backup, vp, operation)
    assert code(err) == (400, "UserErrorNoActiveIlrSession")
    with pytest.raises(HttpResponseError) as err:  # a second revoke: nothing left to revoke
        backup.item_level_recovery_connections.revoke(*vp.sdk_args())
    assert code(err) == (400, "UserErrorNoActiveIlrSession")


def test_a_session_ends_by_itself_after_12_hours_and_a_renewal_counts_them_again(az, emu, backup, sub):
    vp = vault_point(emu, sub)
    operation = op_id(provision(backup, vp)[1])
    az.advance(1)
    first = session(emu, vp)
    az.advance(HOURS_12 - 3600)
    provision(backup, vp, renew=False)  # again without renewing: the same session, the same end
    az.advance(1)
    assert session(emu, vp)["expiry"] == first["expiry"]
    renewed_op = op_id(provision(backup, vp, renew=True)[1])
    az.advance(1)
    renewed = session(emu, vp)
    assert renewed["password"] == first["password"] and renewed["expiry"] > first["expiry"] + HOURS_12 - 3600
    assert scripts(backup, vp, operation).client_scripts  # the first provision's id still names the session
    az.advance(renewed["expiry"] - emu.clock.timestamp() + 1)
    assert session(emu, vp) is None and not active(backup, vp)
    with pytest.raises(HttpResponseError) as err:
        scripts(backup, vp, renewed_op)
    assert code(err) == (400, "UserErrorNoActiveIlrSession")
    with pytest.raises(HttpResponseError) as err:
        backup.item_level_recovery_connections.revoke(*vp.sdk_args())
    assert code(err) == (400, "UserErrorNoActiveIlrSession")


def test_wrong_state_and_bad_requests_are_refused_and_change_nothing(az, emu, backup, sub):
    vp = vault_point(emu, sub)
    with pytest.raises(HttpResponseError) as err:  # revoke without a provision
        backup.item_level_recovery_connections.revoke(*vp.sdk_args())
    assert code(err) == (400, "UserErrorNoActiveIlrSession")
    vault, rg, fabric, container, item, _ = vp.sdk_args()
    request = ILRRequestResource(properties=IaasVMILRRegistrationRequest(virtual_machine_id=vp.vm_id))
    with pytest.raises(ResourceNotFoundError) as err:  # a point that does not exist
        backup.item_level_recovery_connections.provision(vault, rg, fabric, container, item, "404404", request)
    assert code(err) == (404, "BMSUserErrorRecoveryPointNotFound")
    with pytest.raises(ResourceNotFoundError) as err:
        backup.item_level_recovery_connections.revoke(vault, rg, fabric, container, item, "404404")
    assert code(err) == (404, "BMSUserErrorRecoveryPointNotFound")
    other = vp.vm_id.rsplit("/", 1)[0] + "/another-vm"
    with pytest.raises(HttpResponseError) as err:  # a VM the item does not back up
        provision(backup, vp, vm_id=other)
    assert code(err) == (400, "BMSUserErrorInvalidInput") and err.value.error.target == "properties.virtualMachineId"
    with pytest.raises(ResourceNotFoundError) as err:  # an operation id that provisioned nothing here
        scripts(backup, vp, "00000000-0000-0000-0000-000000000001")
    assert code(err) == (404, "BMSUserErrorOperationNotFound")
    az.settings(lro={"default_seconds": 30})
    provision(backup, vp)
    with pytest.raises(HttpResponseError) as err:  # while the provision runs
        backup.item_level_recovery_connections.revoke(*vp.sdk_args())
    assert code(err) == (400, "BMSUserErrorAnotherOperationInProgress")
    az.advance(31)
    assert session(emu, vp) is not None  # the refused calls changed nothing


def test_provisioning_needs_virtual_machine_write_on_the_source_vm(az, emu, sub):
    vp = vault_point(emu, sub)
    az.role_assignments([{"principal": "file-restorer", "scope": f"/subscriptions/{sub}",
                          "actions": ["Microsoft.RecoveryServices/*"]}])
    restorer = az.client(RecoveryServicesBackupClient, sub, credential=StaticCredential("file-restorer"),
                         polling_interval=0)
    since = len(az.calls())
    with pytest.raises(HttpResponseError) as err:
        provision(restorer, vp)
    assert code(err) == (403, "LinkedAuthorizationFailed") and VM_WRITE in err.value.error.message
    assert sorted((c["method"], c["operation"], c["status"]) for c in az.calls(since)) == [
        ("LINKED", VM_WRITE, 403), ("POST", PROVISION, 403)]
    az.advance(1)
    assert session(emu, vp) is None
    az.role_assignments([{"principal": "file-restorer", "scope": f"/subscriptions/{sub}",
                          "actions": ["Microsoft.RecoveryServices/*"]},
                         {"principal": "file-restorer", "scope": vp.vm_id, "actions": [VM_WRITE]}])
    assert provision(restorer, vp)[0] == 202
    az.advance(1)
    assert session(emu, vp) is not None
    assert restorer.item_level_recovery_connections.revoke(*vp.sdk_args(), cls=headers)[0] == 202  # vault actions only
