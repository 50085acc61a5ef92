"""Compliance shows which points are immutable and until when, and finds a kind whose policy asks for immutability
and whose newest point, past its job's bound, lacks it (issue 24): pure, from the inventory's Resource Graph rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared import tags as T
from shared.alerts import events as A
from shared.compliance import rpo
from shared.compliance.service import _row as ledger_row
from shared.compliance.service import changes, judge, vm_from_row
from shared.points import model
from shared.points.model import FleetPoints
from shared.policy.document import load_policies
from shared.report.model import MET, SNAPSHOT_COPY, SNAPSHOT_SET

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000001"
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
BASE = {"schedule": {"every_hours": 4}, "snapshots": {}, "copy": {"region": "northeurope"}, "rpo_hours": 100}
POLICIES = load_policies(json.dumps({"version": 1, "default": "locked", "policies": {
    "locked": {**BASE, "immutability": {"days": 7, "locked": True}},  # kinds: snapshot_sets and copies
    "plain": BASE}}))


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_rows(set_id: str, age_h: float, region: str = "westeurope", policy: tuple[str, float] | None = None,
                  disks: int = 2) -> list[dict]:
    """A set's members as the inventory's Resource Graph query projects them; ``policy``: (type, days from the slot)
    of an immutabilityPolicy on each member."""
    slot = NOW - timedelta(hours=age_h)
    out = []
    for lun in range(disks):
        tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.SET: set_id, T.SLOT: iso(slot), T.SET_SIZE: str(disks),
                T.LUN: "None" if lun == 0 else str(lun - 1), T.VM: VM.lower()}
        if region != "westeurope":
            tags[T.COPY_OF] = f"/subscriptions/{SUB}/resourcegroups/rg/providers/microsoft.compute/snapshots/s{lun}"
        row = {"id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/{set_id}-{lun}-"
                     f"{region}", "name": f"{set_id}-{lun}", "location": region, "tags": tags, "state": "Succeeded",
               "completion": 100 if region != "westeurope" else None, "immutableType": "", "immutableUntil": ""}
        if policy:
            row |= {"immutableType": policy[0], "immutableUntil": iso(slot + timedelta(days=policy[1], hours=1))}
        out.append(row)
    return out


def fleet_of(*rows: list[dict], policy: str = "locked") -> FleetPoints:
    fleet = FleetPoints(vms=[{"id": VM, "name": "vm1", "subscriptionId": SUB, "resourceGroup": "rg",
                              "location": "westeurope", "tags": {"vmkeeper-policy": policy}}])
    fleet.points[VM.lower()] += model.snapshot_sets([r for group in rows for r in group])
    return fleet


def test_a_sets_immutability_is_its_members_type_and_earliest_expiry_in_azures_words():
    rows = snapshot_rows("0123456789abcdef", 5, policy=("Locked", 7))
    rows[1]["immutableType"] = "Unlocked"
    rows[1]["immutableUntil"] = iso(NOW + timedelta(days=3))
    (point,) = model.snapshot_sets(rows)
    assert point.immutability == model.Immutability("Unlocked", NOW + timedelta(days=3))
    assert point.to_json()["immutabilityPolicy"] == {"type": "Unlocked", "policyExpirationTime": iso(NOW + timedelta(days=3))}
    rows[1]["immutableUntil"] = ""  # one member without a policy: the set is not immutable
    assert model.snapshot_sets(rows)[0].immutability is None
    assert model.snapshot_sets(rows)[0].to_json()["immutabilityPolicy"] is None


def test_each_snapshot_kind_shows_its_newest_points_policy_and_how_many_points_hold_one():
    fleet = fleet_of(snapshot_rows("00000000000000a1", 50, policy=("Locked", 7)),
                     snapshot_rows("00000000000000a2", 30, policy=("Locked", 7)),
                     snapshot_rows("00000000000000a3", 30, region="northeurope", policy=("Locked", 7)),
                     snapshot_rows("00000000000000a4", 200, policy=("Locked", 8)))  # expired: counts no more
    (vm,) = judge(fleet, POLICIES, NOW).vms
    kinds = {k.kind: k for k in vm.kinds}
    assert kinds[SNAPSHOT_SET].immutability_policy == {
        "type": "Locked", "policyExpirationTime": iso(NOW - timedelta(hours=30) + timedelta(days=7, hours=1))}
    assert (kinds[SNAPSHOT_SET].immutable_points, kinds[SNAPSHOT_COPY].immutable_points) == (2, 1)
    assert (vm.state, vm.not_immutable) == (MET, ())
    back = vm_from_row(ledger_row(vm, iso(NOW)))  # recorded and read back as the report reads it
    assert back.kinds == vm.kinds and back.not_immutable == ()


def test_a_set_past_its_jobs_bound_without_the_policy_asked_is_a_finding_alerted_once_and_its_end():
    policy = POLICIES.get("locked")
    unlocked = fleet_of(snapshot_rows("00000000000000b1", 30, policy=("Unlocked", 7)),
                        snapshot_rows("00000000000000b2", 30, region="northeurope"))
    # Its job's bound: the slot + grace + the job's lifetime with both immutability steps (two disks copied).
    bound = rpo.immutability_bound(policy, unlocked.points[VM.lower()][0])
    assert bound == NOW - timedelta(hours=30) + timedelta(hours=2) + timedelta(hours=51, minutes=30)
    assert bound > NOW  # still within it: the job may yet set the policy
    (within,) = judge(unlocked, POLICIES, NOW).vms
    assert within.not_immutable == ()
    later = NOW + timedelta(hours=30)
    (vm,) = judge(unlocked, POLICIES, later).vms
    assert vm.state == MET and vm.not_immutable == (SNAPSHOT_SET, SNAPSHOT_COPY)
    assert "has an Unlocked immutabilityPolicy (policy 'locked' asks Locked)" in vm.reason
    assert "second-region snapshot set copy past its job's bound" in vm.reason and "has no immutabilityPolicy" in vm.reason
    (alert,) = changes({}, [vm])
    assert alert.type == A.IMMUTABILITY_MISSING and alert.data["not_immutable"] == [SNAPSHOT_SET, SNAPSHOT_COPY]
    previous = {VM.lower(): ledger_row(vm, iso(later))}
    assert changes(previous, judge(unlocked, POLICIES, later + timedelta(hours=1)).vms) == []  # said once
    fixed = fleet_of(snapshot_rows("00000000000000b1", 30, policy=("Locked", 7)),
                     snapshot_rows("00000000000000b2", 30, region="northeurope", policy=("Locked", 7)))
    (ended,) = changes(previous, judge(fixed, POLICIES, later).vms)
    assert ended.type == A.IMMUTABILITY_RESOLVED


def test_a_policy_shorter_than_asked_is_a_finding_and_a_policy_that_asks_none_finds_none():
    short = fleet_of(snapshot_rows("00000000000000c1", 80, policy=("Locked", 2)),
                     snapshot_rows("00000000000000c2", 80, region="northeurope", policy=("Locked", 7)))
    (vm,) = judge(short, POLICIES, NOW).vms
    assert vm.not_immutable == (SNAPSHOT_SET,) and "before the 7 days policy 'locked' asks" in vm.reason
    bare = fleet_of(snapshot_rows("00000000000000c3", 80), snapshot_rows("00000000000000c4", 80, region="northeurope"),
                    policy="plain")
    (vm,) = judge(bare, POLICIES, NOW).vms
    assert vm.not_immutable == () and {k.immutability_policy for k in vm.kinds} == {None}
