"""Role assignments in the emulator (core/rbac.py): permissive until a principal (the bearer token its client
presents) is given assignments; then its requests' own actions (403 AuthorizationFailed) and the linked access
checks they make (403 LinkedAuthorizationFailed, recorded as LINKED in the call log) are checked — among them
Azure Backup's checks on the caller of a restore and of enabling protection (Learn, backup-rbac-rs-vault)."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
from azure.mgmt.recoveryservicesbackup.models import (
    AzureIaaSComputeVMProtectedItem,
    IaasVMRestoreRequest,
    ProtectedItemResource,
    RestoreRequestResource,
)
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest

from emulator.recoveryservices import models as rs
from emulator.recoveryservices.models import seed_protected_item, seed_recovery_point, seed_vaults
from emulator.testing import StaticCredential
from tests.emulator.test_compute_vms import make_nic
from tests.emulator.test_recoveryservices import refresh

RG = "rg-backup"
OPERATOR = "restorer-token"  # the principal under test: its client presents this bearer token
ITEM_OPS = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
RESTORE = f"{ITEM_OPS}/recoveryPoints/restore/action"
STORAGE_WRITE = "Microsoft.Storage/storageAccounts/write"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"
SUBNET_JOIN = "Microsoft.Network/virtualNetworks/subnets/join/action"
VNET_READ = "Microsoft.Network/virtualNetworks/read"
# What the principal holds at the subscription in every test: Azure Backup's own actions, none of the linked ones.
BACKUP_OPERATOR = ["Microsoft.RecoveryServices/*"]


@pytest.fixture
def world(az, emu, sub):
    """A protected VM with a recovery point in its region's vault, and the principal's Backup client."""
    vault_id = seed_vaults(emu, sub, RG, ["westeurope"])["westeurope"]
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    item_id = seed_protected_item(emu, vault_id, vm_id)
    point = seed_recovery_point(emu, item_id)
    backup = az.client(RecoveryServicesBackupClient, sub, credential=StaticCredential(OPERATOR), polling_interval=0)
    group = f"/subscriptions/{sub}/resourceGroups/rg-vm-01"
    return {"sub": sub, "vault": vault_id.rsplit("/", 1)[1], "vm_id": vm_id, "point": point, "backup": backup,
            "group": group, "staging": f"{group}/providers/Microsoft.Storage/storageAccounts/vmkstaging",
            "subnet": f"{group}/providers/Microsoft.Network/virtualNetworks/vnet-westeurope/subnets/default"}


def grant(az, w, *extra: tuple[str, str]) -> None:
    """The principal's assignments: BACKUP_OPERATOR at the subscription, and each (action, scope) given."""
    az.role_assignments([{"principal": OPERATOR, "scope": f"/subscriptions/{w['sub']}", "actions": BACKUP_OPERATOR,
                          "role": "backup operator"}]
                        + [{"principal": OPERATOR, "scope": scope, "actions": [action]} for action, scope in extra])


def restore(w, recovery_type: str):
    props = {"recovery_point_id": w["point"], "recovery_type": recovery_type, "source_resource_id": w["vm_id"],
             "region": "westeurope", "storage_account_id": w["staging"]}
    if recovery_type in ("RestoreDisks", "AlternateLocation"):
        props["target_resource_group_id"] = w["group"]
    if recovery_type == "AlternateLocation":
        props.update(target_virtual_machine_id=f"{w['group']}/providers/Microsoft.Compute/virtualMachines/restored",
                     subnet_id=w["subnet"], virtual_network_id=w["subnet"].split("/subnets/")[0])
    container, item = rs.container_name("rg-vm-00", "vm-00000"), rs.item_name("rg-vm-00", "vm-00000")
    return w["backup"].restores.begin_trigger(w["vault"], RG, "Azure", container, item, w["point"],
                                              RestoreRequestResource(properties=IaasVMRestoreRequest(**props)))


def restore_jobs(az, w) -> list:
    backup = az.client(RecoveryServicesBackupClient, w["sub"])
    return list(backup.backup_jobs.list(w["vault"], RG, filter="operation eq 'Restore'"))


def linked(calls: list[dict]) -> list[tuple[str, str, int]]:
    return [(c["operation"], c["path"], c["status"]) for c in calls if c["method"] == "LINKED"]


def refused(err: pytest.ExceptionInfo) -> tuple[int, str, str]:
    return err.value.status_code, err.value.error.code, err.value.error.message


# What each recovery type checks on the caller, as the Learn page's rows name it.
NEEDED = {
    "RestoreDisks": lambda w: [(VM_WRITE, w["vm_id"]), (STORAGE_WRITE, w["staging"]), (GROUP_WRITE, w["group"])],
    "AlternateLocation": lambda w: [(VM_WRITE, w["vm_id"]), (STORAGE_WRITE, w["staging"]), (GROUP_WRITE, w["group"]),
                                    (VM_WRITE, w["group"]), (VNET_READ, w["subnet"].split("/subnets/")[0]),
                                    (SUBNET_JOIN, w["subnet"])],
    "OriginalLocation": lambda w: [(VM_WRITE, w["vm_id"]), (STORAGE_WRITE, w["staging"])],
}


@pytest.mark.parametrize("recovery_type", sorted(NEEDED))
def test_a_restore_needs_each_linked_permission_and_succeeds_with_all(az, world, recovery_type):
    w, needed = world, NEEDED[recovery_type](world)
    for missing in needed:
        grant(az, w, *[n for n in needed if n != missing])
        since = len(az.calls())
        with pytest.raises(HttpResponseError) as err:
            restore(w, recovery_type)
        status, code, message = refused(err)
        assert (status, code) == (403, "LinkedAuthorizationFailed"), message
        assert f"'{missing[0]}'" in message and f"'{missing[1]}'" in message and f"'{RESTORE}'" in message
        assert (missing[0], missing[1], 403) in linked(az.calls(since))
        assert restore_jobs(az, w) == []  # refused before Azure Backup did anything
    grant(az, w, *needed)
    since = len(az.calls())
    restore(w, recovery_type).result()
    assert sorted(linked(az.calls(since))) == sorted((a, s, 200) for a, s in needed)
    (job,) = restore_jobs(az, w)
    assert job.properties.status == "Completed"


def test_staging_rights_at_the_accounts_group_or_above_count_and_elsewhere_do_not(az, world):
    w = world
    rest = [n for n in NEEDED["RestoreDisks"](w) if n[0] != STORAGE_WRITE]
    other = f"/subscriptions/{w['sub']}/resourceGroups/rg-vm-00"
    grant(az, w, *rest, (STORAGE_WRITE, other))  # on another group: no use
    with pytest.raises(HttpResponseError) as err:
        restore(w, "RestoreDisks")
    assert refused(err)[:2] == (403, "LinkedAuthorizationFailed")
    grant(az, w, *rest, (STORAGE_WRITE, w["group"]))  # on the staging account's group: covers it
    restore(w, "RestoreDisks").result()


def test_the_missing_linked_permissions_are_named_together(az, world):
    w = world
    grant(az, w)
    with pytest.raises(HttpResponseError) as err:
        restore(w, "RestoreDisks")
    message = refused(err)[2]
    assert f"'{VM_WRITE},{STORAGE_WRITE},{GROUP_WRITE}'" in message
    assert f"'{w['vm_id']},{w['staging']},{w['group']}'" in message


def enable(w, vm_id: str, protection_state: str | None = None):
    rg, name = vm_id.split("/")[4], vm_id.split("/")[8]
    vault_id = f"/subscriptions/{w['sub']}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/{w['vault']}"
    body = ProtectedItemResource(properties=AzureIaaSComputeVMProtectedItem(
        source_resource_id=vm_id, policy_id="" if protection_state else f"{vault_id}/backupPolicies/DefaultPolicy",
        protection_state=protection_state))
    return w["backup"].protected_items.begin_create_or_update(w["vault"], RG, "Azure", rs.container_name(rg, name),
                                                              rs.item_name(rg, name), body)


def test_enabling_protection_needs_write_on_the_vm_and_stopping_it_does_not(az, world):
    w = world
    vm_id = w["vm_id"].replace("vm-00000", "vm-00002")
    grant(az, w)
    refresh(w["backup"], f"/subscriptions/{w['sub']}/resourceGroups/{RG}/providers/Microsoft.RecoveryServices/vaults/"
                         f"{w['vault']}")  # the vault's own action: granted
    with pytest.raises(HttpResponseError) as err:
        enable(w, vm_id)
    status, code, message = refused(err)
    assert (status, code) == (403, "LinkedAuthorizationFailed") and f"'{VM_WRITE}'" in message and vm_id in message
    grant(az, w, (VM_WRITE, vm_id))
    since = len(az.calls())
    enable(w, vm_id).result()
    assert linked(az.calls(since)) == [(VM_WRITE, vm_id, 200)]
    grant(az, w)  # the VM's write taken away again: stopping protection is the vault's business alone
    since = len(az.calls())
    enable(w, vm_id, "ProtectionStopped").result()
    assert linked(az.calls(since)) == []


def test_the_requests_own_action_is_checked_too(az, world):
    w = world
    az.role_assignments([{"principal": OPERATOR, "scope": f"/subscriptions/{w['sub']}", "actions": ["*/read"]},
                         {"principal": OPERATOR, "scope": f"/subscriptions/{w['sub']}", "actions": ["*"],
                          "notActions": [RESTORE]}])
    since = len(az.calls())
    with pytest.raises(HttpResponseError) as err:
        restore(w, "RestoreDisks")
    status, code, message = refused(err)
    assert (status, code) == (403, "AuthorizationFailed") and f"'{RESTORE}'" in message
    (call,) = az.calls(since)
    assert (call["operation"], call["status"]) == (RESTORE, 403)  # refused before any linked check
    # Reads pass; tenant-level requests (a Resource Graph query) hold no assignment and are not checked.
    assert w["backup"].protected_items.get(w["vault"], RG, "Azure", rs.container_name("rg-vm-00", "vm-00000"),
                                           rs.item_name("rg-vm-00", "vm-00000"))
    graph = az.client(ResourceGraphClient, credential=StaticCredential(OPERATOR))
    assert graph.resources(QueryRequest(subscriptions=[w["sub"]], query="Resources | take 1")).count == 1


def test_without_assignments_every_caller_may_do_anything_and_linked_checks_are_recorded(az, resources, world):
    w = world
    az.role_assignments([{"principal": "someone-else", "scope": "/", "actions": ["*/read"]}])  # not these callers
    since = len(az.calls())
    make_nic(resources, w["sub"], "rg-vm-00", "nic-linked")
    subnet = f"/subscriptions/{w['sub']}/resourceGroups/rg-vm-00/providers/Microsoft.Network/virtualNetworks/" \
             "vnet-westeurope/subnets/default"
    assert linked(az.calls(since)) == [(SUBNET_JOIN, subnet, 200)]
    restore(w, "RestoreDisks").result()  # the restorer has no assignment: unrestricted
    (job,) = restore_jobs(az, w)
    assert job.properties.status == "Completed"


def test_a_nics_subnet_join_is_refused_without_the_join_action(az, world):
    from azure.mgmt.resource.resources import ResourceManagementClient

    w = world
    resources = az.client(ResourceManagementClient, w["sub"], credential=StaticCredential(OPERATOR), polling_interval=0)
    az.role_assignments([{"principal": OPERATOR, "scope": f"/subscriptions/{w['sub']}",
                          "actions": ["Microsoft.Network/networkInterfaces/write", "*/read"]}])
    with pytest.raises(HttpResponseError) as err:
        make_nic(resources, w["sub"], "rg-vm-00", "nic-refused")
    status, code, message = refused(err)
    assert (status, code) == (403, "LinkedAuthorizationFailed") and f"'{SUBNET_JOIN}'" in message


@pytest.mark.parametrize(("body", "field"), [
    ({"value": [{"scope": "/", "actions": ["*"]}]}, "value[0].principal"),
    ({"value": [{"principal": "p", "scope": "subscriptions/x", "actions": ["*"]}]}, "value[0].scope"),
    ({"value": [{"principal": "p", "scope": "/", "actions": []}]}, "value[0].actions"),
    ({"value": [{"principal": "p", "scope": "/", "actions": ["*"], "condition": "x"}]}, "value[0]: unknown"),
    ({"value": {"principal": "p"}}, "value: required"),
])
def test_a_bad_assignment_is_refused_naming_the_field_and_nothing_changes(az, body, field):
    az.role_assignments([{"principal": "kept", "scope": "/", "actions": ["*/read"]}])
    with pytest.raises(RuntimeError) as err:
        az.admin("PUT", "roleAssignments", body)
    assert "400" in str(err.value) and field in str(err.value)
    assert [a["principal"] for a in az.admin("GET", "roleAssignments")["value"]] == ["kept"]


def test_a_reset_makes_everyone_unrestricted_again(az):
    az.role_assignments([{"principal": "p", "scope": "/", "actions": ["*/read"], "role": "reader"}])
    assert json.dumps(az.admin("GET", "roleAssignments")["value"]) == json.dumps(
        [{"principal": "p", "scope": "/", "actions": ["*/read"], "notActions": [], "role": "reader"}])
    az.reset()
    assert az.admin("GET", "roleAssignments")["value"] == []
