"""The fleet membership rule (shared/membership.py): what a restore or a drill made is no fleet VM unless an
operator opts it in; every listing (scheduler, auto-protect, drill planner, compliance) applies the same rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared import membership
from shared import tags as T
from shared.autoprotect.steps import decide_policy
from shared.drill import planner
from shared.policy.document import load_policies

POLICIES = load_policies(json.dumps({"version": 1, "default": "gold", "policies": {"gold": {
    "schedule": {"every_hours": 4}, "snapshots": {"luns": "all"}, "backup_policy": "DefaultPolicy",
    "drill": {"all_vms": True, "point": "snapshot_set"}}}}))


def test_a_vm_a_restore_made_is_no_member_until_an_operator_opts_it_in():
    assert membership.is_member({}) and membership.is_member(None) and membership.is_member({"owner": "db"})
    made = {T.RESTORE: "0123456789abcdef"}
    assert not membership.is_member(made)
    assert "0123456789abcdef" in membership.not_member_reason(made) and T.FLEET in membership.not_member_reason(made)
    assert not membership.is_member({"VMKeeper-Restore": "0123456789abcdef"})  # tag names are case-insensitive
    assert not membership.is_member({**made, T.FLEET: "false"})
    assert membership.is_member({**made, T.FLEET: "true"}) and membership.is_member({**made, "VMKEEPER-FLEET": " Yes "})
    assert membership.is_member({T.RESTORE: ""})  # an empty value names no restore
    rows = [{"id": "a", "tags": made}, {"id": "b", "tags": None}, {"id": "c"}]
    assert [r["id"] for r in membership.members(rows)] == ["b", "c"]


def test_auto_protect_and_the_drill_planner_leave_out_what_a_restore_made():
    made = {T.RESTORE: "0123456789abcdef"}
    choice = decide_policy(made, POLICIES)
    assert choice.backup_policy is None and choice.skip == "not_fleet" and T.RESTORE in choice.reason
    assert decide_policy({**made, T.FLEET: "true"}, POLICIES).backup_policy == "DefaultPolicy"
    vms = [{"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/src", "tags": {}},
           {"id": "/subscriptions/s/resourceGroups/vmkeeper-drill-x/providers/Microsoft.Compute/virtualMachines/src-drill",
            "tags": made}]
    due = planner.due(vms, POLICIES, datetime(2026, 12, 7, tzinfo=UTC))
    assert [d.vm_id.rsplit("/", 1)[-1] for d in due] == ["src"]


SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
SOURCE_VM = f"{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/web"
TEST_VM = f"{SUB}/resourceGroups/rg-dr/providers/Microsoft.Compute/virtualMachines/web-test"


def item(state: str = "InProgress", **a2a: str) -> dict:
    """A replicated item's body as ARM gives it (the SDK's as_dict()), its test failover in ``state``."""
    details = {"instanceType": "A2A", "fabricObjectId": SOURCE_VM, "tfoAzureVMName": "web-test",
               "recoveryAzureResourceGroupId": f"{SUB}/resourceGroups/rg-dr", **a2a}
    return {"id": f"{SUB}/x/replicationProtectedItems/vmk-web-1", "name": "vmk-web-1",
            "properties": {"testFailoverState": state, "providerSpecificDetails": details}}


def test_a_test_failover_vm_is_named_by_its_item_and_is_no_member_whatever_its_tags():
    for state in ("InProgress", "WaitingForCompletion", "Failed", "CleanupInProgress"):
        outside = membership.test_failover_vms([item(state)])
        assert list(outside) == [TEST_VM.lower()] and "vmk-web-1" in outside[TEST_VM.lower()]
    assert membership.test_failover_vms([item("None")]) == {}  # no test failover: a VM of that name is the operator's
    assert list(membership.test_failover_vms([item("None", testFailoverRecoveryFabricObjectId=TEST_VM)])) == [
        TEST_VM.lower()]  # the item names the VM it made
    # Never the item's own VMs: the source, or the VM a real failover made (production).
    assert membership.test_failover_vms([item(tfoAzureVMName="web", recoveryAzureResourceGroupId=f"{SUB}/resourceGroups/rg-app")]) == {}
    assert membership.test_failover_vms([item(recoveryFabricObjectId=TEST_VM)]) == {}
    assert membership.test_failover_vms([{"properties": {"testFailoverState": "InProgress",
                                                         "providerSpecificDetails": {"instanceType": "HyperVReplicaAzure"}}}]) == {}
    outside = membership.test_failover_vms([item()])
    for tags in ({}, {T.FLEET: "true"}, {"vmkeeper-dr": "critical"}):
        assert not membership.is_member(tags, TEST_VM.upper(), outside)
    assert membership.is_member({}, SOURCE_VM, outside)
    inside, excluded = membership.split([{"id": SOURCE_VM, "tags": {}}, {"id": TEST_VM, "tags": None}], outside)
    assert [r["id"] for r in inside] == [SOURCE_VM] and [(r["id"], "test failover" in why) for r, why in excluded] == [
        (TEST_VM, True)]
    choice = decide_policy({}, POLICIES, TEST_VM, outside)
    assert choice.backup_policy is None and choice.skip == "not_fleet"
    due = planner.due([{"id": SOURCE_VM, "tags": {}}, {"id": TEST_VM, "tags": {}}], POLICIES,
                      datetime(2026, 12, 7, tzinfo=UTC), outside)
    assert [d.vm_id for d in due] == [SOURCE_VM.lower()]
