"""The replica kind, pure: a Site Recovery replicated item read from its REST body, judged against the policy's RPO
target (health, RPO, initial replication and its allowance), joined to the VM's compliance, and the alerts its
changes raise (``replication.unhealthy`` / ``.restored`` once per change; a missing replica is a gap)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.alerts import events as A
from shared.compliance import replica as R
from shared.compliance.service import _row as ledger_row
from shared.compliance.service import changes, judge, vm_from_row
from shared.points.model import FleetPoints, RecoveryPoint
from shared.points.replicas import HealthError, ReplicatedItem, replicated_item
from shared.policy.document import load_policies
from shared.report.model import BREACHED, INITIAL_REPLICATION, MET, MISSING, NOT_PROTECTED, REPLICA

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
OS_DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/vm1-osdisk"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.RecoveryServices/vaults/vault-dr"
ITEM = (f"{VAULT}/replicationFabrics/asr-a2a-default-westeurope/replicationProtectionContainers/"
        "asr-a2a-default-westeurope-container/replicationProtectedItems/vm1")
POLICIES = load_policies(json.dumps({"version": 1, "default": "hourly", "policies": {
    "hourly": {"schedule": {"every_hours": 1}, "snapshots": {}}}}))
CRITICAL = {"vmkeeper-policy": "hourly", "vmkeeper-dr": "critical"}


def body(*, state="Protected", health="Normal", errors=(), rpo=120, calculated=NOW, progress=None,
         disks=(OS_DISK,), instance_type="A2A", vm=VM) -> dict:
    """A replicationProtectedItem as ARM answers it (the emulator's and the recorded A2A shape)."""
    return {"id": ITEM, "name": "vm1", "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/"
            "replicationProtectionContainers/replicationProtectedItems", "properties": {
                "friendlyName": "vm1", "protectionState": state, "replicationHealth": health,
                "healthErrors": [{"errorCode": c, "summaryMessage": f"{c} happened", "errorMessage": "long",
                                  "recommendedAction": "do something"} for c in errors],
                "providerSpecificDetails": {
                    "instanceType": instance_type, "fabricObjectId": vm, "rpoInSeconds": rpo,
                    "lastRpoCalculatedTime": calculated.strftime("%Y-%m-%dT%H:%M:%SZ") if calculated else None,
                    "monitoringPercentageCompletion": progress,
                    "monitoringJobType": "InitialReplication" if progress is not None else None,
                    "primaryFabricLocation": "westeurope", "recoveryFabricLocation": "northeurope",
                    "protectedManagedDisks": [{"diskId": d} for d in disks]}}}


def item(**kw) -> ReplicatedItem:
    parsed = replicated_item(body(**kw), VAULT)
    assert parsed is not None
    return parsed


def test_an_item_is_read_from_its_rest_body():
    it = item(errors=("RpoThresholdExceeded",), health="Warning", rpo=4000)
    assert (it.id, it.vault_id, it.vm_id) == (ITEM, VAULT, VM.lower())
    assert (it.protection_state, it.health, it.rpo_seconds, it.rpo_calculated) == ("Protected", "Warning", 4000, NOW)
    assert [(e.code, e.message, e.recommended_action) for e in it.errors] == [
        ("RpoThresholdExceeded", "RpoThresholdExceeded happened", "do something")]
    assert it.disks == {OS_DISK.lower()} and it.target_region == "northeurope" and not it.initial
    assert item(state="InitialReplicationInProgress", rpo=None, calculated=None, progress=40).progress == 40
    assert item(state="InitialReplicationInProgress", rpo=None, calculated=None, progress=40).initial
    # Not Azure-to-Azure, or no VM named: not a replica vmkeeper judges.
    assert replicated_item(body(instance_type="HyperVReplicaAzure"), VAULT) is None
    assert replicated_item(body(vm=""), VAULT) is None


REPLICATION = {"target_region": "northeurope", "target_resource_group": f"/subscriptions/{SUB}/resourceGroups/rg-dr",
               "network": {"isolated": True}, "cache_storage_accounts": {
                   "westeurope": f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Storage/storageAccounts/cache"}}


def replicating(**block) -> object:
    """A policy with a replication block, read by the policy document's own parser."""
    return load_policies(json.dumps({"version": 1, "default": "dr", "policies": {"dr": {
        "schedule": {"every_hours": 1}, "snapshots": {}, "replication": {**REPLICATION, **block}}}})).get("dr")


def test_the_rpo_target_is_the_policys_replication_rpo_minutes_else_an_hour():
    assert R.rpo_target(POLICIES.get("hourly")) == R.DEFAULT_RPO == timedelta(minutes=60)
    assert R.rpo_target(replicating()) == timedelta(minutes=60)
    assert R.rpo_target(replicating(rpo_minutes=15)) == timedelta(minutes=15)
    for bad in (0, -5, True, "15", None):
        with pytest.raises(Exception, match="rpo_minutes"):
            replicating(rpo_minutes=bad)


def test_a_replica_is_expected_of_a_critical_vm_or_every_vm_of_a_policy_replicating_all_outside_its_target():
    assert R.expected(CRITICAL, POLICIES.get("hourly"), "westeurope")  # tagged: whatever its policy says
    assert not R.expected({}, POLICIES.get("hourly"), "westeurope")
    assert not R.expected({}, replicating(), "westeurope")  # only tagged VMs
    assert R.expected({}, replicating(all_vms=True), "westeurope")
    assert not R.expected({}, replicating(all_vms=True), "northeurope")  # already in the target region


def test_critical_is_the_dr_tag_whatever_its_case():
    assert R.critical({"vmkeeper-dr": "critical"}) and R.critical({"VMKeeper-DR": " Critical "})
    assert not R.critical({"vmkeeper-dr": "standard"}) and not R.critical({}) and not R.critical(None)


def test_a_healthy_replica_is_met_and_its_age_counts_since_azure_last_calculated_it():
    j = R.judge(item(rpo=120, calculated=NOW - timedelta(minutes=3)), True, R.DEFAULT_RPO, NOW)
    assert j.status.state == MET and j.status.kind == REPLICA and j.status.point_id == ITEM
    assert j.status.age_hours == pytest.approx(5 / 60, abs=1e-3)  # 2 min old, calculated 3 min ago
    assert j.status.newest == "2026-11-28T11:55:00Z" and j.status.rpo_hours == 1
    assert j.status.replication["health"] == "Normal" and j.status.replication["rpo_seconds"] == 120
    assert "replica RPO 5 min, target 60 min" == j.words
    # ASR's clock a little ahead of ours is no younger replica
    assert R.judge(item(rpo=120, calculated=NOW + timedelta(minutes=2)), True, R.DEFAULT_RPO, NOW).status.age_hours \
        == pytest.approx(2 / 60, abs=1e-3)


@given(st.integers(0, 10_000), st.integers(1, 240))
def test_the_rpo_breaches_exactly_when_older_than_the_target(rpo_seconds, target_minutes):
    target = timedelta(minutes=target_minutes)
    j = R.judge(item(rpo=rpo_seconds), False, target, NOW)
    assert j.status.state == (BREACHED if rpo_seconds > target.total_seconds() else MET)


def test_an_unhealthy_replica_is_breached_whatever_its_rpo_and_says_azures_errors():
    j = R.judge(item(health="Warning", errors=("AgentExpiry",), rpo=60), True, R.DEFAULT_RPO, NOW)
    assert j.status.state == BREACHED and "replication health Warning (AgentExpiry: AgentExpiry happened)" in j.words
    assert j.status.replication["errors"] == [{"code": "AgentExpiry", "message": "AgentExpiry happened",
                                               "recommended_action": "do something"}]
    late = R.judge(item(rpo=4000, health="Warning", errors=("RpoThresholdExceeded",)), True, R.DEFAULT_RPO, NOW)
    assert late.status.state == BREACHED and "RpoThresholdExceeded" in late.words
    # failed over (or committed, or being disabled): it replicates nothing now
    over = R.judge(item(state="FailoverCommitted", rpo=None, calculated=None), True, R.DEFAULT_RPO, NOW)
    assert over.status.state == BREACHED and "FailoverCommitted" in over.words


def test_initial_replication_is_its_own_state_until_its_allowance_passes():
    ir = item(state="InitialReplicationInProgress", rpo=None, calculated=None, progress=37)
    first = R.judge(ir, True, R.DEFAULT_RPO, NOW)
    assert first.status.state == INITIAL_REPLICATION and first.status.age_hours is None
    assert first.status.replication["since"] == "2026-11-28T12:00:00Z" and "initial replication 37 %" in first.words
    within = R.judge(ir, True, R.DEFAULT_RPO, NOW + R.INITIAL_ALLOWANCE, since=NOW)
    assert within.status.state == INITIAL_REPLICATION
    overdue = R.judge(ir, True, R.DEFAULT_RPO, NOW + R.INITIAL_ALLOWANCE + timedelta(minutes=1), since=NOW)
    assert overdue.status.state == BREACHED and "not done 24.0 h after it was first seen (allowance 24 h)" in overdue.words
    assert overdue.status.replication["since"] == "2026-11-28T12:00:00Z"  # kept: the next evaluation counts on
    sick = R.judge(replace(ir, health="Critical"), True, R.DEFAULT_RPO, NOW)
    assert sick.status.state == BREACHED  # unhealthy while copying: no allowance for that


def test_no_item_is_missing_only_for_a_critical_vm_and_an_earlier_instances_item_is_none():
    assert R.judge(None, False, R.DEFAULT_RPO, NOW) is None
    missing = R.judge(None, True, R.DEFAULT_RPO, NOW)
    assert missing.status.state == MISSING and missing.status.age_hours is None and "vmkeeper-dr" in missing.words
    other = item(disks=("/subscriptions/x/resourcegroups/rg/providers/microsoft.compute/disks/old-os",))
    assert R.of_instance([other], OS_DISK) == (None, "replicated item vm1 replicates other disks (an earlier "
                                                     "instance of the VM)")
    assert R.of_instance([other], None)[0] is other  # the VM's OS disk not known: its id is enough
    assert R.of_instance([item()], OS_DISK.upper())[0] == item()
    assert R.of_instance([], OS_DISK) == (None, "")


# --- joined to the VM's compliance, and the alerts -----------------------------------------------------------
def fleet_of(items=(), tags=CRITICAL, at=NOW) -> FleetPoints:
    """One VM with a fresh snapshot set at ``at`` (its policy's only kind) and the replicated ``items``."""
    fleet = FleetPoints(vms=[{"id": VM, "name": "vm1", "subscriptionId": SUB, "resourceGroup": "rg",
                              "location": "westeurope", "tags": dict(tags), "osDisk": OS_DISK}])
    fleet.points[VM.lower()].append(RecoveryPoint("s", "snapshot_set", at - timedelta(minutes=30), "westeurope",
                                                  "CrashConsistent", True))
    for it in items:
        fleet.replicas[it.vm_id].append(it)
    return fleet


def recorded(vms, when):
    return {v.vm_id.lower(): ledger_row(v, when.strftime("%Y-%m-%dT%H:%M:%SZ")) for v in vms}


def test_a_critical_vm_without_a_replica_is_missing_it_loudly_once():
    (vm,) = judge(fleet_of(), POLICIES, NOW).vms
    assert (vm.state, vm.missing) == (MISSING, (REPLICA,)) and "not replicated" in vm.reason
    (gap,) = changes({}, [vm])
    assert (gap.type, gap.data["missing"]) == (A.PROTECTION_MISSING, [REPLICA])
    assert changes(recorded([vm], NOW), judge(fleet_of(), POLICIES, NOW + timedelta(minutes=30)).vms) == []
    # not tagged and not replicated: no replica kind at all, today's behaviour
    (plain,) = judge(fleet_of(tags={"vmkeeper-policy": "hourly"}), POLICIES, NOW).vms
    assert plain.state == MET and [k.kind for k in plain.kinds] == ["snapshot_set"]
    # opted out or no policy: the replica is not judged either
    assert judge(fleet_of(tags={"vmkeeper-optout": "true", "vmkeeper-dr": "critical"}), POLICIES, NOW).vms[0].kinds == ()
    assert judge(fleet_of(tags={"vmkeeper-policy": "nope", "vmkeeper-dr": "critical"}), POLICIES,
                 NOW).vms[0].state == NOT_PROTECTED


def test_unhealthy_and_restored_are_each_one_alert_and_no_rpo_breach():
    healthy = fleet_of([item()])
    (vm,) = judge(healthy, POLICIES, NOW).vms
    assert vm.state == MET and {k.kind: k.state for k in vm.kinds}[REPLICA] == MET
    assert "replica RPO 2 min, target 60 min" in vm.reason
    previous = recorded([vm], NOW)
    assert changes({}, [vm]) == []

    stalled = fleet_of([item(rpo=3700, health="Warning", errors=("RpoThresholdExceeded",))], at=NOW + timedelta(hours=1))
    (bad,) = judge(stalled, POLICIES, NOW + timedelta(minutes=30)).vms
    assert bad.state == BREACHED and "replica RPO 62 min, target 60 min" not in bad.reason  # health says it
    (unhealthy,) = changes(previous, [bad])
    assert (unhealthy.type, unhealthy.subject) == (A.REPLICATION_UNHEALTHY, VM.lower())
    assert unhealthy.data["replica"]["replication"]["errors"][0]["code"] == "RpoThresholdExceeded"
    # the same change raised again (a crash before the rows were written) is the same event; judged again, nothing
    assert changes(previous, judge(stalled, POLICIES, NOW + timedelta(minutes=35)).vms)[0].id == unhealthy.id
    previous = recorded([bad], NOW + timedelta(minutes=30))
    assert changes(previous, judge(stalled, POLICIES, NOW + timedelta(hours=1)).vms) == []

    (good,) = judge(fleet_of([item(calculated=NOW + timedelta(hours=1))]), POLICIES, NOW + timedelta(hours=1)).vms
    (restored,) = changes(previous, [good])
    assert restored.type == A.REPLICATION_RESTORED and restored.data["state"] == MET
    # later unhealthy again: a new change, a new event
    again = changes(recorded([good], NOW + timedelta(hours=1)), judge(stalled, POLICIES, NOW + timedelta(hours=2)).vms)
    assert [a.type for a in again] == [A.REPLICATION_UNHEALTHY] and again[0].id != unhealthy.id


def test_the_initial_replication_allowance_counts_from_the_first_evaluation_that_saw_it():
    from shared.compliance.replica import initial_since

    copying = item(state="InitialReplicationInProgress", rpo=None, calculated=None, progress=10)
    (first,) = judge(fleet_of([copying]), POLICIES, NOW).vms
    assert first.state == MET and "initial replication 10 %" in first.reason  # no gap and no breach
    assert changes({}, [first]) == []
    since = initial_since(recorded([first], NOW))
    assert since == {VM.lower(): (ITEM.lower(), NOW)}
    ir = fleet_of([copying], at=NOW + timedelta(hours=25))
    (later,) = judge(ir, POLICIES, NOW + timedelta(hours=25), since).vms
    assert later.state == BREACHED and "initial replication 10 % not done 25.0 h" in later.reason
    (alert,) = changes(recorded([first], NOW), [later])
    assert alert.type == A.REPLICATION_UNHEALTHY
    # still overdue at the next evaluation: the since is carried on from the breached row too
    assert initial_since(recorded([later], NOW + timedelta(hours=25))) == since
    # another item (re-enabled): its own allowance
    other = fleet_of([replace(copying, id=ITEM + "-2")], at=NOW + timedelta(hours=25))
    assert judge(other, POLICIES, NOW + timedelta(hours=25), since).vms[0].state == MET


def test_a_row_keeps_a_bounded_share_of_azures_health_errors():
    many = replace(item(health="Critical"), errors=tuple(
        HealthError(f"E{n}", "m" * 5000, "a" * 5000) for n in range(50)))
    detail = R.judge(many, True, R.DEFAULT_RPO, NOW).status.replication
    assert [e["code"] for e in detail["errors"]] == ["E0", "E1", "E2", "E3", "E4"]
    assert all(len(e["message"]) == len(e["recommended_action"]) == R.MAX_TEXT for e in detail["errors"])
    (vm,) = judge(fleet_of([many]), POLICIES, NOW).vms
    row = ledger_row(vm, "2026-11-28T12:00:00Z")
    assert len(row["kinds"]) < 16_000 and "E4" in vm.reason and "E5" not in vm.reason


def test_a_replica_row_reads_back_whole():
    (vm,) = judge(fleet_of([item(health="Warning", errors=("X",))]), POLICIES, NOW).vms
    back = vm_from_row(recorded([vm], NOW)[VM.lower()])
    assert back.kinds == vm.kinds and back.state == BREACHED
