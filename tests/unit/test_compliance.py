"""RPO compliance, pure: the policy's expectations, each kind's newest complete point against its RPO,
and the alerts a change raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.alerts import events as A
from shared.compliance import rpo
from shared.compliance.service import _row as _ledger_row
from shared.compliance.service import changes, judge, summarize, vm_from_row
from shared.points.model import FleetPoints, RecoveryPoint
from shared.policy.document import load_policies
from shared.report.model import (
    BREACHED,
    MET,
    MISSING,
    NOT_PROTECTED,
    OPTED_OUT,
    RESTORE_POINT,
    RESTORE_POINT_COPY,
    SNAPSHOT_COPY,
    SNAPSHOT_SET,
    VAULT,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DOC = {
    "version": 1, "default": "daily",
    "policies": {
        "daily": {"schedule": {"daily_at": "02:30", "time_zone": "Europe/Amsterdam"}, "snapshots": {},
                  "backup_policy": "DefaultPolicy"},
        "hourly": {"schedule": {"every_hours": 4}, "snapshots": {}, "restore_point": {"consistency": "CrashConsistent"},
                   "copy": {"region": "northeurope"}},
        "weekly": {"schedule": {"weekly_on": "sunday", "at": "03:00"}, "restore_point": {}, "rpo_hours": 200},
        "tight": {"schedule": {"every_hours": 1}, "snapshots": {}, "rpo_hours": 3, "backup_policy": "P"},
    },
}
POLICIES = load_policies(json.dumps(DOC))
VM = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def point(kind: str, age_h: float, *, complete: bool = True, region: str = "westeurope", copy: bool = False,
          pid: str = "p") -> RecoveryPoint:
    return RecoveryPoint(f"{pid}-{kind}-{age_h}", kind, NOW - timedelta(hours=age_h), region, "CrashConsistent",
                         complete, copy)


def fresh_points(policy_name: str, age_fraction: float) -> list[RecoveryPoint]:
    """A complete point of every kind the policy expects, ``age_fraction`` of the way to its RPO."""
    policy = POLICIES.get(policy_name)
    out = []
    for exp in rpo.expectations(policy):
        age = exp.rpo.total_seconds() / 3600 * age_fraction
        if exp.kind == VAULT:
            out.append(point("vault", age))
        elif exp.kind == SNAPSHOT_SET:
            out.append(point("snapshot_set", age))
        elif exp.kind == RESTORE_POINT:
            out.append(point("restore_point", age))
        elif exp.kind == SNAPSHOT_COPY:
            out.append(point("snapshot_set", age, region=policy.copy_region, copy=True))
        else:
            out.append(point("restore_point", age, region=policy.copy_region, copy=True))
    return out


def test_expectations_follow_the_policy():
    daily = {e.kind: e.rpo for e in rpo.expectations(POLICIES.get("daily"))}
    assert daily == {VAULT: timedelta(hours=25), SNAPSHOT_SET: timedelta(hours=26)}  # a DST day is 25 h
    hourly = {e.kind: e.rpo for e in rpo.expectations(POLICIES.get("hourly"))}
    assert hourly == {SNAPSHOT_SET: timedelta(hours=5), RESTORE_POINT: timedelta(hours=5),
                      SNAPSHOT_COPY: timedelta(hours=5), RESTORE_POINT_COPY: timedelta(hours=5)}
    assert {e.kind: e.rpo for e in rpo.expectations(POLICIES.get("weekly"))} == {RESTORE_POINT: timedelta(hours=200)}
    # rpo_hours overrides every kind, the vault's too
    assert {e.rpo for e in rpo.expectations(POLICIES.get("tight"))} == {timedelta(hours=3)}


def test_rpo_hours_is_checked_by_the_schema():
    bad = json.loads(json.dumps(DOC))
    bad["policies"]["daily"]["rpo_hours"] = 0
    with pytest.raises(ValueError, match=r"policies\.daily\.rpo_hours"):
        load_policies(json.dumps(bad))


@given(st.sampled_from(sorted(DOC["policies"])), st.floats(0, 1))
def test_fresh_complete_points_are_never_breached(name, fraction):
    result = rpo.evaluate(POLICIES.for_vm({"vmkeeper-policy": name}), fresh_points(name, fraction), NOW)
    assert result.state == MET, result.reason
    assert all(k.state == MET and k.age_hours <= k.rpo_hours for k in result.kinds)


@given(st.sampled_from(sorted(DOC["policies"])), st.floats(1.001, 50), st.integers(0, 3))
def test_one_stale_kind_breaches_the_vm(name, factor, which):
    points = fresh_points(name, 0.5)
    stale = points[which % len(points)]
    points[which % len(points)] = RecoveryPoint(stale.id, stale.kind, NOW - (NOW - stale.time) * 2 * factor,
                                                stale.region, stale.consistency, True, stale.copy)
    result = rpo.evaluate(POLICIES.for_vm({"vmkeeper-policy": name}), points, NOW)
    assert result.state == BREACHED
    assert [k.state for k in result.kinds].count(BREACHED) == 1


@given(st.sampled_from(sorted(DOC["policies"])), st.lists(st.floats(0, 1000), max_size=6), st.floats(0, 2))
def test_incomplete_points_never_count(name, incomplete_ages, fraction):
    """An incomplete set (or restore point, or copy) changes nothing, however new."""
    base = fresh_points(name, fraction)
    noise = [RecoveryPoint(f"x{i}", p.kind, NOW - timedelta(hours=age), p.region, "", False, p.copy)
             for i, age in enumerate(incomplete_ages) for p in base]
    resolution = POLICIES.for_vm({"vmkeeper-policy": name})
    assert rpo.evaluate(resolution, base + noise, NOW) == rpo.evaluate(resolution, base, NOW)
    assert rpo.evaluate(resolution, noise, NOW).state == NOT_PROTECTED


def test_a_copy_counts_only_as_its_own_kind_of_copy_and_only_in_the_second_region():
    resolution = POLICIES.for_vm({"vmkeeper-policy": "hourly"})
    points = [point("snapshot_set", 1), point("restore_point", 1)]
    kinds = {k.kind: k.state for k in rpo.evaluate(resolution, points, NOW).kinds}
    assert kinds[SNAPSHOT_COPY] == kinds[RESTORE_POINT_COPY] == MISSING
    elsewhere = points + [point("snapshot_set", 1, region="eastus", copy=True)]
    assert {k.kind: k.state for k in rpo.evaluate(resolution, elsewhere, NOW).kinds}[SNAPSHOT_COPY] == MISSING
    there = points + [point("restore_point", 1, region="northeurope", copy=True),
                      point("snapshot_set", 1, region="northeurope", copy=True)]
    result = rpo.evaluate(resolution, there, NOW)
    assert result.state == MET and result.missing == ()
    # a copy is not the source region's point
    only_copy = [point("snapshot_set", 1, region="northeurope", copy=True)]
    assert {k.kind: k.state for k in rpo.evaluate(resolution, only_copy, NOW).kinds}[SNAPSHOT_SET] == MISSING


def test_days_of_failed_snapshot_set_copies_are_not_met_by_one_restore_point_copy():
    """Defect 8 of issue 19: each source kind's copies are judged on their own."""
    resolution = POLICIES.for_vm({"vmkeeper-policy": "hourly"})
    sources = [point("snapshot_set", 1), point("restore_point", 1)]
    failed = [point("snapshot_set", h, region="northeurope", copy=True, complete=False, pid=f"f{h}")
              for h in range(2, 72, 4)]  # a copy every slot for three days, none complete
    good_rp_copy = point("restore_point", 1, region="northeurope", copy=True)
    last_good_set_copy = point("snapshot_set", 75, region="northeurope", copy=True)
    result = rpo.evaluate(resolution, sources + failed + [good_rp_copy, last_good_set_copy], NOW)
    kinds = {k.kind: k for k in result.kinds}
    assert kinds[RESTORE_POINT_COPY].state == MET and kinds[RESTORE_POINT_COPY].point_id == good_rp_copy.id
    assert kinds[SNAPSHOT_COPY].state == BREACHED and kinds[SNAPSHOT_COPY].age_hours == 75
    assert result.state == BREACHED and "snapshot set copy 75.0 h old" in result.reason
    # and with no complete snapshot set copy at all, that kind is missing (named), not met
    never = rpo.evaluate(resolution, sources + failed + [good_rp_copy], NOW)
    assert never.state == MISSING and never.missing == (SNAPSHOT_COPY,), never
    assert "snapshot set copy" in never.reason and "restore point copy" not in never.reason


def test_a_fresh_snapshot_set_without_a_restore_point_is_missing_that_kind_not_unprotected():
    """Defect 7 of issue 19: the VM's state names the missing kind."""
    resolution = POLICIES.for_vm({"vmkeeper-policy": "hourly"})
    points = [point("snapshot_set", 1), point("snapshot_set", 1, region="northeurope", copy=True)]
    result = rpo.evaluate(resolution, points, NOW)
    assert result.state == MISSING
    assert result.missing == (RESTORE_POINT, RESTORE_POINT_COPY)
    assert {k.kind: k.state for k in result.kinds} == {SNAPSHOT_SET: MET, SNAPSHOT_COPY: MET,
                                                       RESTORE_POINT: MISSING, RESTORE_POINT_COPY: MISSING}
    assert "no complete restore point, second-region restore point copy" in result.reason
    nothing = rpo.evaluate(resolution, [], NOW)
    assert nothing.state == NOT_PROTECTED and len(nothing.missing) == 4


def test_recorded_rows_from_before_kinds_of_copy_and_missing_stay_readable():
    old = {"vmId": VM.lower(), "vm": VM, "name": "vm1", "subscription": "s", "group": "rg", "region": "westeurope",
           "policy": "hourly", "state": "not_protected", "reason": "no complete restore point",
           "evaluated": "2026-11-28T11:30:00Z", "kinds": json.dumps([
               {"kind": "snapshot_set", "state": "met", "rpo_hours": 5, "newest": "2026-11-28T10:00:00Z",
                "age_hours": 1.5, "point_id": "snapshot-set:0123456789abcdef:westeurope"},
               {"kind": "restore_point", "state": "not_protected", "rpo_hours": 5, "newest": None,
                "age_hours": None, "point_id": None},
               {"kind": "copy", "state": "met", "rpo_hours": 5, "newest": "2026-11-28T10:00:00Z",
                "age_hours": 1.5, "point_id": "snapshot-set:0123456789abcdef:northeurope"}])}
    vm = vm_from_row(old)
    assert vm.state == MISSING and vm.missing == (RESTORE_POINT,)
    assert [(k.kind, k.state) for k in vm.kinds] == [(SNAPSHOT_SET, MET), (RESTORE_POINT, MISSING),
                                                     (SNAPSHOT_COPY, MET)]
    # the old row's gap was never alerted (rows of that time raised none): it is, once; then not again
    result = rpo.evaluate(POLICIES.for_vm({"vmkeeper-policy": "hourly"}),
                          [point("snapshot_set", 1), point("snapshot_set", 1, region="northeurope", copy=True),
                           point("restore_point", 1, region="northeurope", copy=True)], NOW)
    fleet = FleetPoints(vms=[{**_row("vm1", 0), "tags": {"vmkeeper-policy": "hourly"}}])
    fleet.points[VM.lower()] += [point("snapshot_set", 1), point("snapshot_set", 1, region="northeurope", copy=True),
                                 point("restore_point", 1, region="northeurope", copy=True)]
    (now,) = judge(fleet, POLICIES, NOW).vms
    assert now.missing == result.missing == (RESTORE_POINT,)
    (raised,) = changes({VM.lower(): old}, [now])
    assert (raised.type, raised.data["missing"]) == (A.PROTECTION_MISSING, [RESTORE_POINT])
    assert changes(recorded([now], NOW), [now]) == []


def test_opted_out_bad_tag_and_no_points():
    assert rpo.evaluate(POLICIES.for_vm({"vmkeeper-optout": "true"}), [], NOW).state == OPTED_OUT
    bad = rpo.evaluate(POLICIES.for_vm({"vmkeeper-policy": "nope"}), [], NOW)
    assert bad.state == NOT_PROTECTED and "nope" in bad.reason
    none = rpo.evaluate(POLICIES.for_vm({}), [], NOW)
    assert none.state == NOT_PROTECTED and "no complete vault recovery point, snapshot set" in none.reason
    assert none.missing == (VAULT, SNAPSHOT_SET)


def test_breach_beats_not_protected_and_the_reason_says_why():
    result = rpo.evaluate(POLICIES.for_vm({}), [point("snapshot_set", 30)], NOW)
    assert result.state == BREACHED
    assert "snapshot set 30.0 h old, RPO 26 h" in result.reason and "no complete vault" in result.reason
    assert result.missing == (VAULT,)  # breached, and the missing kind is named too


def recorded(vms, when):
    """The ledger rows an evaluation at ``when`` records (what ``changes`` reads back as ``previous``)."""
    return {v.vm_id.lower(): _ledger_row(v, when.strftime("%Y-%m-%dT%H:%M:%SZ")) for v in vms}


def _row(name, state_points):
    return {"id": VM.replace("vm1", name), "name": name, "subscriptionId": "00000000-0000-0000-0000-000000000001",
            "resourceGroup": "rg", "location": "West Europe", "tags": {"vmkeeper-policy": "tight"}}


def test_judge_and_changes_raise_once_per_change():
    fleet = FleetPoints(vms=[_row("a", 0), _row("b", 0)])
    fleet.points[VM.replace("vm1", "a").lower()] += [point("snapshot_set", 5), point("vault", 1)]
    fleet.points[VM.replace("vm1", "b").lower()] += [point("snapshot_set", 1), point("vault", 1)]
    evaluation = judge(fleet, POLICIES, NOW)
    states = {v.name: v.state for v in evaluation.vms}
    assert states == {"a": BREACHED, "b": MET}
    assert evaluation.vms[0].region == "westeurope"
    first = changes({}, evaluation.vms)
    assert [(a.type, a.subject.endswith("/a")) for a in first] == [(A.RPO_BREACHED, True)]
    previous = recorded(evaluation.vms, NOW)
    assert changes(previous, evaluation.vms) == []  # still breached: nothing new
    # the same breach judged again makes the same event id (the outbox drops it)
    assert changes({}, judge(fleet, POLICIES, NOW + timedelta(minutes=30)).vms)[0].id == first[0].id
    fleet.points[VM.replace("vm1", "a").lower()].append(point("snapshot_set", 0.5, pid="new"))
    restored = changes(previous, judge(fleet, POLICIES, NOW).vms)
    assert [a.type for a in restored] == [A.RPO_RESTORED]
    summary = summarize(evaluation.vms)
    assert [(s.policy, s.met, s.breached) for s in summary] == [("tight", 1, 1)]
    assert [(d.kind, d.count) for d in evaluation.points_per_day] == [(SNAPSHOT_SET, 2)]


def test_alert_ids_and_cloud_event_shape():
    a = A.Alert(A.JOB_POISONED, VM.lower(), "k", {"reason": "x" * 100_000})
    assert a.id == A.Alert(A.JOB_POISONED, VM.upper(), "k").id != A.Alert(A.JOB_POISONED, VM, "k2").id
    event = A.cloud_event(a, "/vmkeeper/app", NOW)
    assert event["specversion"] == "1.0" and event["subject"] == VM.lower() and event["type"] == A.JOB_POISONED
    assert len(json.dumps(event)) < 64 * 1024
    with pytest.raises(ValueError, match="type"):
        A.Alert("vmkeeper.nope", VM, "k")
    assert A.subject_of({"job": {"vm_id": VM}}, "q") == VM.lower()
    assert A.subject_of({"x": 1}, "queue vmkeeper-jobs") == "queue vmkeeper-jobs"


def test_a_missing_kind_is_one_alert_per_change_and_its_end_another():
    """Defect 7 of issue 19: a VM vmkeeper should protect but cannot is as loud as a breach."""
    a, b, bad = (VM.replace("vm1", n).lower() for n in ("a", "b", "bad"))
    fleet = FleetPoints(vms=[{**_row(n, 0), "tags": tags} for n, tags in (
        ("a", {"vmkeeper-policy": "hourly"}), ("b", {"vmkeeper-policy": "hourly"}),
        ("bad", {"vmkeeper-policy": "nope"}))])
    fleet.points[a] += [point("snapshot_set", 1), point("snapshot_set", 1, region="northeurope", copy=True)]
    fleet.points[b] += fresh_points("hourly", 0.5)
    first = judge(fleet, POLICIES, NOW)
    assert {v.name: (v.state, v.missing) for v in first.vms} == {
        "a": (MISSING, (RESTORE_POINT, RESTORE_POINT_COPY)), "b": (MET, ()), "bad": (NOT_PROTECTED, ())}
    raised = changes({}, first.vms)
    assert sorted((x.type, x.subject) for x in raised) == [(A.PROTECTION_MISSING, a), (A.PROTECTION_MISSING, bad)]
    by_subject = {x.subject: x for x in raised}
    assert by_subject[a].data["missing"] == [RESTORE_POINT, RESTORE_POINT_COPY]
    assert by_subject[bad].data["newly_missing"] == ["policy"] and "nope" in by_subject[bad].data["reason"]
    # the same gap raised again before the rows were written is the same event; judged again, nothing
    assert [x.id for x in changes({}, judge(fleet, POLICIES, NOW + timedelta(minutes=5)).vms)] == [x.id for x in raised]
    previous = recorded(first.vms, NOW)
    assert changes(previous, judge(fleet, POLICIES, NOW + timedelta(minutes=30)).vms) == []

    # b's snapshot set copies stop arriving and are deleted: a new gap, one alert naming it
    fleet.points[b] = [p for p in fleet.points[b] if rpo.kind_of(p) != SNAPSHOT_COPY]
    second = judge(fleet, POLICIES, NOW + timedelta(minutes=30))
    (gone,) = changes(previous, second.vms)
    assert (gone.type, gone.subject, gone.data["missing"]) == (A.PROTECTION_MISSING, b, [SNAPSHOT_COPY])

    # a's restore points arrive: its gap ends (one alert); b's is still open (nothing new)
    previous = recorded(second.vms, NOW + timedelta(minutes=30))
    fleet.points[a] += [point("restore_point", 0.5), point("restore_point", 0.5, region="northeurope", copy=True)]
    third = judge(fleet, POLICIES, NOW + timedelta(hours=1))
    (ended,) = changes(previous, third.vms)
    assert (ended.type, ended.subject, ended.data["state"]) == (A.PROTECTION_RESOLVED, a, MET)

    # the same kind missing again later is a new change: a new event, not one the outbox drops
    previous = recorded(third.vms, NOW + timedelta(hours=1))
    fleet.points[a] = [p for p in fleet.points[a] if p.kind != "restore_point"]
    again = [x for x in changes(previous, judge(fleet, POLICIES, NOW + timedelta(hours=2)).vms) if x.subject == a]
    assert [x.type for x in again] == [A.PROTECTION_MISSING] and again[0].id != by_subject[a].id


def test_a_breach_with_a_kind_missing_raises_both_and_the_breach_ends_on_its_own():
    fleet = FleetPoints(vms=[{**_row("a", 0), "tags": {}}])  # the default policy: vault and snapshot set
    fleet.points[VM.replace("vm1", "a").lower()] += [point("snapshot_set", 30)]
    first = judge(fleet, POLICIES, NOW)
    assert [(v.state, v.missing) for v in first.vms] == [(BREACHED, (VAULT,))]
    assert sorted(x.type for x in changes({}, first.vms)) == [A.PROTECTION_MISSING, A.RPO_BREACHED]
    fleet.points[VM.replace("vm1", "a").lower()].append(point("snapshot_set", 1, pid="new"))
    second = judge(fleet, POLICIES, NOW)
    assert [(v.state, v.missing) for v in second.vms] == [(MISSING, (VAULT,))]
    assert [x.type for x in changes(recorded(first.vms, NOW), second.vms)] == [A.RPO_RESTORED]


def test_only_the_points_of_the_vms_current_instance_count():
    """Issue 19, defect 11: a VM deleted and created again under its name keeps its ARM id; the old
    instance's fresh points say nothing of the new one. Points that do not say their instance (made before
    vmkeeper tagged it) count as before; so do all points of a VM whose instance is not known."""
    from dataclasses import replace

    old, new = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
    fleet = FleetPoints(vms=[{**_row("vm1", 0), "vmId": new.upper()}])
    fleet.points[VM.lower()] += [replace(point("snapshot_set", 1), instance=old), point("vault", 1)]
    (vm,) = judge(fleet, POLICIES, NOW).vms
    assert vm.state == MISSING and vm.missing == (SNAPSHOT_SET,), vm.reason
    fleet.points[VM.lower()].append(replace(point("snapshot_set", 2, pid="n"), instance=new))
    (vm,) = judge(fleet, POLICIES, NOW).vms
    assert vm.state == MET and {k.kind: k.point_id for k in vm.kinds}[SNAPSHOT_SET] == "n-snapshot_set-2"
    # without an instance on the point, or on the VM: today's behaviour
    fleet = FleetPoints(vms=[{**_row("vm1", 0), "vmId": new}])
    fleet.points[VM.lower()] += [point("snapshot_set", 1), point("vault", 1)]
    assert judge(fleet, POLICIES, NOW).vms[0].state == MET
    fleet = FleetPoints(vms=[_row("vm1", 0)])
    fleet.points[VM.lower()] += [replace(point("snapshot_set", 1), instance=old), point("vault", 1)]
    assert judge(fleet, POLICIES, NOW).vms[0].state == MET


def test_a_uniform_scale_set_instance_is_not_supported_loudly_until_its_set_is_opted_out():
    """Issue 22: Azure Backup and VM restore points do not cover a Uniform scale set's instances: each is said,
    never skipped — its own state, counted, alerted once, failing the gate — and an opt-out on its set accepts it."""
    from shared.report.model import NOT_SUPPORTED, UNPROTECTED

    vmss = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/batch"
    instance = {"id": f"{vmss}/virtualMachines/0", "name": "batch_0", "subscriptionId": "00000000-0000-0000-0000-000000000001",
                "resourceGroup": "rg", "location": "westeurope", "tags": {"env": "prod"}, "scaleSet": vmss}
    fleet = FleetPoints(vms=[_row("a", 0)], unsupported=[instance])
    fleet.points[VM.replace("vm1", "a").lower()] += [point("snapshot_set", 1), point("vault", 1)]
    evaluation = judge(fleet, POLICIES, NOW)
    row = next(v for v in evaluation.vms if v.name == "batch_0")
    assert row.state == NOT_SUPPORTED and NOT_SUPPORTED in UNPROTECTED and row.kinds == ()
    assert "Uniform scale set 'batch'" in row.reason and "vmkeeper-optout" in row.reason
    assert evaluation.counts()[NOT_SUPPORTED] == 1 and summarize(evaluation.vms)[0].not_supported == 1
    (alert,) = [a for a in changes({}, evaluation.vms) if a.subject == instance["id"].lower()]
    assert alert.type == A.PROTECTION_MISSING and alert.data["state"] == NOT_SUPPORTED
    assert changes(recorded(evaluation.vms, NOW), evaluation.vms) == []  # once per change
    opted = FleetPoints(unsupported=[{**instance, "tags": {"vmkeeper-optout": "true"}}])
    (row,) = judge(opted, POLICIES, NOW).vms
    assert row.state == OPTED_OUT
