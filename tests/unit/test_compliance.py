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
from shared.compliance.reads import FleetPoints
from shared.compliance.service import changes, judge, summarize
from shared.policy.document import load_policies
from shared.report.model import (
    BREACHED,
    COPY,
    MET,
    NOT_PROTECTED,
    OPTED_OUT,
    RESTORE_POINT,
    SNAPSHOT_SET,
    VAULT,
)
from shared.restore.catalogue import RecoveryPoint

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
        else:
            out.append(point("snapshot_set", age, region=policy.copy_region, copy=True))
    return out


def test_expectations_follow_the_policy():
    daily = {e.kind: e.rpo for e in rpo.expectations(POLICIES.get("daily"))}
    assert daily == {VAULT: timedelta(hours=25), SNAPSHOT_SET: timedelta(hours=26)}  # a DST day is 25 h
    hourly = {e.kind: e.rpo for e in rpo.expectations(POLICIES.get("hourly"))}
    assert hourly == {SNAPSHOT_SET: timedelta(hours=5), RESTORE_POINT: timedelta(hours=5), COPY: timedelta(hours=5)}
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


def test_a_copy_counts_only_as_a_copy_and_only_in_the_second_region():
    resolution = POLICIES.for_vm({"vmkeeper-policy": "hourly"})
    points = [point("snapshot_set", 1), point("restore_point", 1)]
    kinds = {k.kind: k.state for k in rpo.evaluate(resolution, points, NOW).kinds}
    assert kinds[COPY] == NOT_PROTECTED
    elsewhere = points + [point("snapshot_set", 1, region="eastus", copy=True)]
    assert {k.kind: k.state for k in rpo.evaluate(resolution, elsewhere, NOW).kinds}[COPY] == NOT_PROTECTED
    there = points + [point("restore_point", 1, region="northeurope", copy=True)]
    result = rpo.evaluate(resolution, there, NOW)
    assert result.state == MET
    # a copy is not the source region's point
    only_copy = [point("snapshot_set", 1, region="northeurope", copy=True)]
    assert {k.kind: k.state for k in rpo.evaluate(resolution, only_copy, NOW).kinds}[SNAPSHOT_SET] == NOT_PROTECTED


def test_opted_out_bad_tag_and_no_points():
    assert rpo.evaluate(POLICIES.for_vm({"vmkeeper-optout": "true"}), [], NOW).state == OPTED_OUT
    bad = rpo.evaluate(POLICIES.for_vm({"vmkeeper-policy": "nope"}), [], NOW)
    assert bad.state == NOT_PROTECTED and "nope" in bad.reason
    none = rpo.evaluate(POLICIES.for_vm({}), [], NOW)
    assert none.state == NOT_PROTECTED and "no complete snapshot set" in none.reason


def test_breach_beats_not_protected_and_the_reason_says_why():
    result = rpo.evaluate(POLICIES.for_vm({}), [point("snapshot_set", 30)], NOW)
    assert result.state == BREACHED
    assert "snapshot set 30.0 h old, RPO 26 h" in result.reason and "no complete vault" in result.reason


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
    previous = {v.vm_id.lower(): v.state for v in evaluation.vms}
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
