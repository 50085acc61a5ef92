"""The pure planner: slots, deterministic names, skips with reasons, and Azure's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.planner import NAME_OK, DiskRef, History, VmRecord, plan, slot_for
from shared.policy import load_policies

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"
POLICIES = load_policies(json.dumps({"version": 1, "default": "bronze", "policies": {
    "gold": {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"},
             "restore_point": {"consistency": "ApplicationConsistent", "exclude_luns": [1]}, "copy": {"region": "westus"},
             "retention": {"keep_last": 6, "max_age": "P30D"}, "lock_days": 7},
    "bronze": {"schedule": {"daily_at": "02:30", "time_zone": "Europe/Amsterdam"}, "snapshots": {"luns": [0]}},
    "crash": {"schedule": {"every_hours": 1}, "restore_point": {"consistency": "CrashConsistent"}},
}}))
NOW = datetime(2026, 11, 25, 9, 17, tzinfo=UTC)


def vm(name: str, disks: int = 2, tags: dict | None = None) -> VmRecord:
    base = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute"
    return VmRecord(f"{base}/virtualMachines/{name}", name, SUB, "rg", "westeurope", tags or {"vmkeeper-policy": "gold"},
                    DiskRef(f"{base}/disks/{name}-os", f"{name}-os", None),
                    tuple(DiskRef(f"{base}/disks/{name}-d{i}", f"{name}-d{i}", i) for i in range(disks)))


def test_slots():
    assert slot_for(POLICIES.policies["gold"].schedule, NOW) == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    daily = slot_for(POLICIES.policies["bronze"].schedule, NOW)
    assert daily.astimezone(ZoneInfo("Europe/Amsterdam")).strftime("%H:%M") == "02:30" and daily <= NOW
    # Across the spring DST change the local time stays 02:30 where it exists and the slot never moves past now.
    spring = datetime(2026, 3, 30, 12, tzinfo=UTC)
    assert slot_for(POLICIES.policies["bronze"].schedule, spring) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_a_plan_for_a_gold_vm():
    result = plan([vm("app1")], POLICIES, NOW)
    rp, snaps = sorted(result.jobs, key=lambda j: j.kind)
    assert snaps.kind == "snapshot_set" and [t.lun for t in snaps.snapshots] == [None, 0, 1]
    assert snaps.copy_region == "westus" and snaps.lock_days == 7
    assert snaps.expires == snaps.slot + timedelta(days=30)
    assert snaps.tags["managed-by"] == "vmkeeper" and snaps.tags["vmkeeper-set"] == snaps.set_id
    assert rp.kind == "restore_point" and rp.consistency == "ApplicationConsistent"
    assert rp.excluded_disk_ids == (vm("app1").data_disks[1].id,)


def test_bad_tags_and_opt_outs_are_reported_and_the_rest_run():
    result = plan([vm("a"), vm("b", tags={"vmkeeper-policy": "platnum"}), vm("c", tags={"vmkeeper-optout": "yes"})],
                  POLICIES, NOW)
    assert {j.vm_id.rsplit("/", 1)[-1] for j in result.jobs} == {"a"}
    reasons = {s.vm_id.rsplit("/", 1)[-1]: s.reason for s in result.skipped}
    assert "'platnum' names no policy" in reasons["b"] and "opts the VM out" in reasons["c"]


def test_azure_limits_are_respected():
    app = vm("app1")
    slot = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    busy = {app.os_disk.id.lower(): [slot - timedelta(seconds=30 * i) for i in range(1, 8)]}
    result = plan([app], POLICIES, NOW, History(snapshots_by_disk=busy))
    assert not [j for j in result.jobs if j.kind == "snapshot_set"]
    assert any("7 snapshots in 5 minutes" in s.reason for s in result.skipped)
    full = {app.os_disk.id.lower(): [slot - timedelta(days=i) for i in range(1, 501)]}
    assert any("500 incremental snapshots" in s.reason for s in plan([app], POLICIES, NOW, History(full)).skipped)
    in_flight = {app.id.lower(): [(slot - timedelta(hours=10), "ApplicationConsistent", True)]}
    assert any("in flight" in s.reason for s in plan([app], POLICIES, NOW, History(restore_points_by_vm=in_flight)).skipped)
    crash = vm("c1", tags={"vmkeeper-policy": "crash"})
    recent = {crash.id.lower(): [(datetime(2026, 11, 25, 8, 30, tzinfo=UTC), "CrashConsistent", False)]}
    assert plan([crash], POLICIES, NOW, History(restore_points_by_vm=recent)).jobs == []


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=64)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(names, st.integers(0, 6)), min_size=1, max_size=6, unique_by=lambda t: t[0].lower()),
       st.integers(0, 10_000))
def test_determinism_and_valid_distinct_names(vms, minutes):
    inventory = [vm(name, disks) for name, disks in vms]
    now = NOW + timedelta(minutes=minutes)
    first, again = plan(inventory, POLICIES, now), plan(inventory, POLICIES, now)
    assert first == again
    later = plan(inventory, POLICIES, now + timedelta(hours=4))
    def all_names(p):
        return [t.snapshot_name for j in p.jobs for t in j.snapshots] + [j.restore_point_name for j in p.jobs if j.restore_point_name]
    for name in all_names(first):
        assert NAME_OK.match(name) and len(name) <= 80
    assert len(set(all_names(first))) == len(all_names(first))
    assert not set(all_names(first)) & set(all_names(later))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 600), min_size=1, max_size=40))
def test_applied_plans_never_break_the_snapshot_rate_limit(offsets):
    app = vm("rate", tags={"vmkeeper-policy": "gold"})
    taken: dict[str, list[datetime]] = {}
    for minute in sorted(offsets):
        now = NOW + timedelta(minutes=minute)
        for job in plan([app], POLICIES, now, History(snapshots_by_disk=taken)).jobs:
            for t in job.snapshots:
                seen = taken.setdefault(t.disk_id.lower(), [])
                if job.slot not in seen:
                    seen.append(job.slot)
    for times in taken.values():
        times.sort()
        for i, t in enumerate(times):
            assert sum(1 for u in times[i:] if u < t + timedelta(minutes=5)) <= 7
