"""Replica drills' pure decisions (shared/drill/replica_choice.py) over Site Recovery's JSON, and the policy's
``drill.point: replica``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.drill import replica_choice as choice
from shared.policy.document import PolicyError, load_policies

VM = "/subscriptions/s1/resourceGroups/rg-vm/providers/Microsoft.Compute/virtualMachines/web-1"
TARGET = "/subscriptions/s2/resourceGroups/rg-dr-target"


def item(vm: str = VM, **props: object) -> dict:
    details = {"instanceType": "A2A", "fabricObjectId": vm, "primaryFabricLocation": "westeurope",
               "recoveryFabricLocation": "North Europe", "recoveryAzureResourceGroupId": TARGET,
               "tfoAzureVMName": "web-1-test", "vmNics": [{"tfoRecoveryNicName": "web-1-nic-test"}],
               "protectedManagedDisks": [{"tfoDiskName": "web-1-os-test"}, {"tfoDiskName": "web-1-data0-test"}]}
    base = {"protectionState": "Protected", "testFailoverState": "None", "activeLocation": "Primary",
            "allowedOperations": ["PlannedFailover", "UnplannedFailover", "DisableProtection", "TestFailover"],
            "providerSpecificDetails": details}
    return {"id": f"/Subscriptions/s2/resourceGroups/rg-dr/.../replicationProtectedItems/{vm.rsplit('/', 1)[-1]}",
            "properties": {**base, **props}}


def test_the_vms_item_is_found_by_its_source_whatever_the_case_and_only_an_a2a_one():
    other = item(VM.replace("web-1", "web-2"))
    hyperv = item()
    hyperv["properties"]["providerSpecificDetails"] = {"instanceType": "HyperVReplicaAzure", "fabricObjectId": VM}
    mine = item(VM.upper())
    assert choice.item_of([other, hyperv, mine], VM.lower()) is mine
    assert choice.item_of([other, hyperv], VM) is None


def test_a_test_failover_pending_or_a_replication_not_protected_is_not_tested():
    assert choice.not_testable(item()) is None
    pending = choice.not_testable(item(testFailoverState="WaitingForCompletion", allowedOperations=["TestFailoverCleanup"]))
    assert pending and "WaitingForCompletion" in pending and "not this drill's" in pending
    initial = choice.not_testable(item(protectionState="InitialReplicationInProgress", allowedOperations=["DisableProtection"],
                                       protectionStateDescription="Initial replication in progress"))
    assert initial and "InitialReplicationInProgress" in initial


def test_the_target_is_the_recovery_region_and_group_with_the_names_a2a_gives_the_test():
    aim = choice.target(item())
    assert (aim.direction, aim.region, aim.group) == ("PrimaryToRecovery", "northeurope", TARGET)
    assert aim.names == ("web-1-data0-test", "web-1-nic-test", "web-1-os-test", "web-1-test")
    back = choice.target(item(activeLocation="Recovery"))  # reprotected after a failover: tested back home
    assert (back.direction, back.region) == ("RecoveryToPrimary", "westeurope")


def test_the_newest_point_is_chosen_by_its_time_not_its_order():
    def point(name: str, at: str) -> dict:
        return {"id": f"{name}-id", "properties": {"recoveryPointTime": at}}
    points = [point("a", "2026-01-01T10:05:00Z"), point("b", "2026-01-01T10:15:00.1234567Z"),
              point("c", "2026-01-01T10:10:00Z"), {"id": "d", "properties": {}}]
    assert choice.newest_point(points) == ("b-id", datetime(2026, 1, 1, 10, 15, 0, 123456, tzinfo=UTC))
    assert choice.newest_point([]) is None


def test_the_test_vm_is_as_asr_reports_it_else_as_a2a_names_it():
    reported = item()
    reported["properties"]["providerSpecificDetails"]["testFailoverRecoveryFabricObjectId"] = "/x/vm"
    assert choice.test_vm(reported, TARGET) == "/x/vm"
    assert choice.test_vm(item(), TARGET) == f"{TARGET}/providers/Microsoft.Compute/virtualMachines/web-1-test"


def test_leftovers_are_what_is_named_as_the_tests_or_was_made_by_it():
    listed = [("/g/vm/WEB-1-TEST", "WEB-1-TEST"), ("/g/nic/web-1-nic", "web-1-nic"), ("/g/disk/odd", "odd"),
              ("/g/disk/web-1-os-ASRReplica", "web-1-os-ASRReplica")]
    assert choice.leftovers(listed, ["web-1-test", "web-1-nic-test"], ["/G/DISK/ODD"]) == ["/g/disk/odd", "/g/vm/WEB-1-TEST"]
    assert choice.leftovers(listed[1:2] + listed[3:], ["web-1-test"], []) == []  # the replicas are not the test's


def _policies(point: str, **policy: object) -> str:
    return json.dumps({"version": 1, "default": "p", "policies": {"p": {
        "schedule": {"every_hours": 4}, "snapshots": {"luns": "all"}, "drill": {"point": point}, **policy}}})


def test_a_policy_asks_for_replica_drills_with_drill_point_replica():
    assert load_policies(_policies("replica")).policies["p"].drill.point == "replica"  # no copy block needed
    with pytest.raises(PolicyError) as err:
        load_policies(_policies("replicas"))
    assert any("drill.point" in e and "replica" in e for e in err.value.errors), err.value.errors
    with pytest.raises(PolicyError) as err:
        load_policies(_policies("copy"))
    assert any("replica" in e for e in err.value.errors)  # the hint names every kind a drill can take
