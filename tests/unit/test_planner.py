"""The pure planner: slots (DST-correct), deterministic names, skips with reasons, Azure's limits."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import tags as T
from shared.policy.document import MIN_RESTORE_POINT_HOURS, load_policies
from shared.schedule.planner import (
    NAME_OK,
    DiskRef,
    History,
    Plan,
    TakenRestorePoint,
    TakenSnapshot,
    VmRecord,
    plan,
    set_id,
    slot_for,
)

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"
BASE = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute"
POLICIES = load_policies(
    json.dumps(
        {
            "version": 1,
            "default": "bronze",
            "policies": {
                "gold": {
                    "schedule": {"every_hours": 4},
                    "snapshots": {"luns": "all"},
                    "restore_point": {"consistency": "ApplicationConsistent", "exclude_luns": [1]},
                    "copy": {"region": "westus"},
                    "retention": {"keep_last": 6, "max_age_days": 30},
                    "lock_days": 7,
                },
                "bronze": {
                    "schedule": {"daily_at": "02:30", "time_zone": "Europe/Amsterdam"},
                    "snapshots": {"luns": [0]},
                },
                "weekly": {
                    "schedule": {"weekly_on": "sunday", "at": "03:00"},
                    "snapshots": {"luns": [0, 2], "include_os_disk": False},
                },
                "crash": {
                    "schedule": {"every_hours": 1},
                    "restore_point": {"consistency": "CrashConsistent"},
                },
                "app": {"schedule": {"every_hours": 3}, "restore_point": {}},
                "Hourly": {
                    "schedule": {"every_hours": 1},
                    "snapshots": {"luns": "all", "include_os_disk": False},
                },
            },
        }
    )
)
NOW = datetime(2026, 11, 25, 9, 17, tzinfo=UTC)
AMS = "Europe/Amsterdam"


def vm(
    name: str, disks: int = 2, tags: dict | None = None, location: str = "westeurope", rg: str = "rg"
) -> VmRecord:
    base = BASE.replace("/rg/", f"/{rg}/")
    return VmRecord(
        f"{base}/virtualMachines/{name}",
        name,
        SUB,
        rg,
        location,
        {"vmkeeper-policy": "gold"} if tags is None else tags,
        DiskRef(f"{base}/disks/{name}-os", f"{name}-os", None),
        tuple(DiskRef(f"{base}/disks/{name}-d{i}", f"{name}-d{i}", i) for i in range(disks)),
    )


def schedule(name: str):
    return POLICIES.policies[name].schedule


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def names(p: Plan) -> list[str]:
    return [t.snapshot_name for j in p.jobs for t in j.snapshots] + [
        j.restore_point_name for j in p.jobs if j.restore_point_name
    ]


# --- slots ----------------------------------------------------------------------------------------
def test_hourly_slots_count_from_the_epoch():
    assert slot_for(schedule("gold"), NOW) == utc(2026, 11, 25, 8)
    assert slot_for(schedule("gold"), utc(2026, 11, 25, 8)) == utc(
        2026, 11, 25, 8
    )  # a slot starts at its instant
    assert slot_for(schedule("gold"), utc(2026, 11, 25, 7, 59, 59)) == utc(2026, 11, 25, 4)
    five = load_policies(
        json.dumps({"version": 1, "policies": {"p": {"schedule": {"every_hours": 5}, "snapshots": {}}}})
    )
    slot = slot_for(five.policies["p"].schedule, NOW)
    assert int(slot.timestamp()) % (5 * 3600) == 0 and slot <= NOW < slot + timedelta(hours=5)


def test_hourly_slots_ignore_the_zone_of_now():
    from zoneinfo import ZoneInfo

    assert slot_for(schedule("gold"), NOW.astimezone(ZoneInfo("Asia/Kolkata"))) == utc(2026, 11, 25, 8)


@pytest.mark.parametrize(
    "now, slot",
    [
        (utc(2026, 11, 25, 9, 17), utc(2026, 11, 25, 1, 30)),  # winter, CET: 02:30 local = 01:30 UTC
        (utc(2026, 11, 25, 1, 29), utc(2026, 11, 24, 1, 30)),  # before today's slot: yesterday's
        (utc(2026, 7, 1, 12), utc(2026, 7, 1, 0, 30)),  # summer, CEST: 02:30 local = 00:30 UTC
        # Spring forward, Sunday 29 March 2026: 02:00 → 03:00, so 02:30 does not exist; the slot starts at
        # 01:30 UTC (03:30 CEST), the instant 02:30 would have been.
        (utc(2026, 3, 28, 12), utc(2026, 3, 28, 1, 30)),
        (utc(2026, 3, 29, 1, 29), utc(2026, 3, 28, 1, 30)),
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 30)),
        (utc(2026, 3, 30, 12), utc(2026, 3, 30, 0, 30)),
        # Fall back, Sunday 25 October 2026: 03:00 → 02:00, so 02:30 happens twice; one slot, the first.
        (utc(2026, 10, 25, 0, 29), utc(2026, 10, 24, 0, 30)),
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 30)),
        (
            utc(2026, 10, 25, 1, 45),
            utc(2026, 10, 25, 0, 30),
        ),  # 02:45 CET, after the second 02:30: no second slot
        (utc(2026, 10, 26, 2), utc(2026, 10, 26, 1, 30)),
    ],
)
def test_daily_slots_across_dst(now, slot):
    assert slot_for(schedule("bronze"), now) == slot


def test_daily_slots_are_one_a_day_through_a_year_of_dst():
    seen = set()
    for hour in range(0, 366 * 24):
        slot = slot_for(schedule("bronze"), utc(2026, 1, 1) + timedelta(hours=hour))
        assert slot <= utc(2026, 1, 1) + timedelta(hours=hour)
        seen.add(slot)
    gaps = sorted({b - a for a, b in zip(sorted(seen), sorted(seen)[1:], strict=False)})
    assert gaps == [timedelta(hours=23), timedelta(hours=24), timedelta(hours=25)]


def test_weekly_slots():
    sunday_3 = utc(2026, 11, 29, 3)
    assert slot_for(schedule("weekly"), sunday_3) == sunday_3
    assert slot_for(schedule("weekly"), sunday_3 - timedelta(seconds=1)) == sunday_3 - timedelta(days=7)
    assert slot_for(schedule("weekly"), NOW) == utc(2026, 11, 22, 3)  # Wednesday: last Sunday's
    local = (
        load_policies(
            json.dumps(
                {
                    "version": 1,
                    "policies": {
                        "w": {
                            "schedule": {"weekly_on": "monday", "at": "00:15", "time_zone": AMS},
                            "snapshots": {},
                        }
                    },
                }
            )
        )
        .policies["w"]
        .schedule
    )
    assert slot_for(local, utc(2026, 3, 30, 12)) == utc(2026, 3, 29, 22, 15)  # Monday 00:15 CEST
    assert slot_for(local, utc(2026, 3, 29, 22, 14)) == utc(2026, 3, 22, 23, 15)  # the Monday before, CET


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([vm("a")], POLICIES, datetime(2026, 11, 25, 9))


# --- jobs -----------------------------------------------------------------------------------------
def test_a_plan_for_a_gold_vm():
    app = vm("app1", disks=3)
    result = plan([app], POLICIES, NOW)
    assert result.skipped == []
    snaps, rp = result.jobs
    slot = utc(2026, 11, 25, 8)
    assert snaps.kind == "snapshot_set" and snaps.slot == slot and snaps.policy == "gold"
    assert [t.lun for t in snaps.snapshots] == [None, 0, 1, 2]
    assert [t.disk_id for t in snaps.snapshots] == [app.os_disk.id] + [d.id for d in app.data_disks]
    assert snaps.snapshots[0].snapshot_name.startswith("vmk-app1-os-202611250800-")
    assert snaps.snapshots[3].snapshot_name.startswith("vmk-app1-2-202611250800-")
    assert snaps.copy_region == "westus" and snaps.lock_days == 7
    assert snaps.expires == slot + timedelta(days=30)
    assert snaps.vm_id == app.id.lower() and snaps.subscription_id == SUB and snaps.location == "westeurope"
    assert snaps.tags == {
        T.MANAGED_BY: "vmkeeper",
        T.VM: app.id.lower(),
        T.ARTIFACT_POLICY: "gold",
        T.SLOT: "2026-11-25T08:00:00Z",
        T.SET: snaps.set_id,
        T.SET_SIZE: "4",
        T.EXPIRES: "2026-12-25T08:00:00Z",
    }
    assert len(snaps.set_id) == 16 and snaps.set_id == rp.set_id == set_id(app.id, slot)
    assert rp.kind == "restore_point" and rp.consistency == "ApplicationConsistent"
    assert rp.restore_point_collection_name.startswith("vmk-rpc-app1-")
    assert rp.restore_point_name.startswith("vmk-rp-202611250800-")
    assert rp.excluded_disk_ids == (app.data_disks[1].id,) and rp.snapshots == ()


def test_the_collection_is_the_same_for_every_slot_and_names_change_with_the_slot():
    a, b = plan([vm("app1")], POLICIES, NOW), plan([vm("app1")], POLICIES, NOW + timedelta(hours=4))
    assert a.jobs[1].restore_point_collection_name == b.jobs[1].restore_point_collection_name
    assert not set(names(a)) & set(names(b))


def test_no_copy_into_the_vms_own_region():
    result = plan([vm("app1", location="westus")], POLICIES, NOW)
    assert [j.copy_region for j in result.jobs] == [None, None]


def test_opt_outs_and_bad_tags_are_reported_and_the_rest_run():
    inventory = [
        vm("a"),
        vm("b", tags={"vmkeeper-policy": "platnum"}),
        vm("c", tags={"VMKeeper-OptOut": "yes"}),
        vm("d", tags={"VMKEEPER-POLICY": "GOLD"}),
    ]
    result = plan(inventory, POLICIES, NOW)
    assert sorted({j.vm_id.rsplit("/", 1)[-1] for j in result.jobs}) == ["a", "d"]
    skips = {s.vm_id.rsplit("/", 1)[-1]: s for s in result.skipped}
    assert (
        skips["b"].reason
        == "tag 'vmkeeper-policy' = 'platnum' names no policy (known: app, bronze, crash, gold, Hourly, weekly)"
    )
    assert skips["b"].problem and skips["b"].kind is None
    assert skips["c"].reason == "opted out: tag 'vmkeeper-optout' = 'yes'" and not skips["c"].problem


def test_untagged_vms_get_the_default():
    result = plan([vm("plain", tags={})], POLICIES, NOW)
    (job,) = result.jobs
    assert job.policy == "bronze" and [t.lun for t in job.snapshots] == [None, 0]


def test_lun_selection():
    weekly = {"vmkeeper-policy": "weekly"}  # luns [0, 2], no OS disk
    (job,) = plan([vm("w", disks=4, tags=weekly)], POLICIES, NOW).jobs
    assert [t.lun for t in job.snapshots] == [0, 2]
    (job,) = plan([vm("w", disks=1, tags=weekly)], POLICIES, NOW).jobs  # a LUN the VM lacks is no error
    assert [t.lun for t in job.snapshots] == [0]
    result = plan([vm("w", disks=0, tags=weekly)], POLICIES, NOW)
    (skip,) = result.skipped
    assert result.jobs == [] and skip.problem and skip.kind == "snapshot_set"
    assert skip.reason == "policy 'weekly' selects no disk of this VM (luns: 0, 2; include_os_disk: false)"


def test_a_policy_name_in_capitals_is_tagged_in_lower_case():
    (job,) = plan([vm("h", tags={"vmkeeper-policy": "hourly"})], POLICIES, NOW).jobs
    assert (
        job.policy == "hourly" and job.tags[T.ARTIFACT_POLICY] == "hourly"
    )  # retention looks policies up so


def test_the_plan_does_not_depend_on_inventory_order_or_repeats():
    inventory = [
        vm(f"v{i}", disks=i % 3, tags={"vmkeeper-policy": p})
        for i, p in enumerate(["gold", "bronze", "weekly", "crash", "gold", "platnum"])
    ]
    first = plan(inventory, POLICIES, NOW)
    shuffled = inventory[:]
    random.Random(4).shuffle(shuffled)
    assert plan(shuffled + inventory[:2], POLICIES, NOW) == first


def test_from_resource_graph():
    disk = f"{BASE}/disks"
    row = {
        "id": f"{BASE}/virtualMachines/App1",
        "name": "App1",
        "subscriptionId": SUB,
        "resourceGroup": "rg",
        "location": "WestEurope",
        "tags": None,
        "properties": {
            "storageProfile": {
                "osDisk": {"name": "App1_OsDisk", "managedDisk": {"id": f"{disk}/App1_OsDisk"}},
                "dataDisks": [
                    {"lun": 3, "name": "d3", "managedDisk": {"id": f"{disk}/d3"}},
                    {"lun": 1, "managedDisk": {"id": f"{disk}/d1"}},
                    {"lun": 2, "name": "vhd", "vhd": {"uri": "https://x/y.vhd"}},
                ],
            },
            "extended": {"instanceView": {"powerState": {"code": "PowerState/deallocated"}}},
        },
    }
    record = VmRecord.from_resource_graph(row)
    assert (
        record.key == f"{BASE}/virtualMachines/App1".lower()
        and record.tags == {}
        and record.location == "westeurope"
    )
    assert record.os_disk == DiskRef(f"{disk}/App1_OsDisk", "App1_OsDisk", None)
    assert record.data_disks == (
        DiskRef(f"{disk}/d1", "d1", 1),
        DiskRef(f"{disk}/d3", "d3", 3),
    )  # no unmanaged disk
    assert record.power_state == "deallocated"
    assert record.instance is None  # no vmId listed
    bare = VmRecord.from_resource_graph(
        {"id": f"{BASE}/virtualMachines/x", "location": "westeurope", "properties": {}}
    )
    assert (bare.name, bare.subscription_id, bare.resource_group, bare.os_disk) == ("x", SUB, "rg", None)


# --- limits ---------------------------------------------------------------------------------------
def test_a_count_alone_enforces_the_500_snapshot_limit():
    app = vm("app1")
    nearly = plan([app], POLICIES, NOW, History(snapshot_counts_by_disk={app.os_disk.id.upper(): 499}))
    assert sorted(j.kind for j in nearly.jobs) == ["restore_point", "snapshot_set"]
    full = plan([app], POLICIES, NOW, History.of({"snapshot_counts_by_disk": {app.os_disk.id: 500}}))
    assert [j.kind for j in full.jobs] == ["restore_point"]
    assert full.skipped[0].reason == "disk has 500 incremental snapshots (Azure's limit): app1-os"


def test_a_disk_with_500_snapshots_is_skipped():
    app = vm("app1")
    full = {app.os_disk.id.upper(): [NOW - timedelta(days=i) for i in range(1, 501)]}  # ids in any case
    result = plan([app], POLICIES, NOW, History(snapshots_by_disk=full))
    assert [j.kind for j in result.jobs] == ["restore_point"]  # the other kind still runs
    (skip,) = result.skipped
    assert (
        skip.reason == "disk has 500 incremental snapshots (Azure's limit): app1-os"
        and skip.kind == "snapshot_set"
    )
    assert not skip.problem


def test_seven_snapshots_in_five_minutes_hold_the_set_back_until_the_window_passes():
    app = vm("app1")
    burst = {app.data_disks[0].id: [NOW - timedelta(seconds=30 * i) for i in range(1, 8)]}
    held = plan([app], POLICIES, NOW, History(snapshots_by_disk=burst))
    assert any("7 incremental snapshots in 5 minutes" in s.reason for s in held.skipped)
    assert [j.kind for j in held.jobs] == ["restore_point"]
    later = plan([app], POLICIES, NOW + timedelta(minutes=5), History(snapshots_by_disk=burst))
    assert [j.kind for j in later.jobs] == ["snapshot_set", "restore_point"]  # same slot, now allowed


def test_a_disk_shared_by_many_vms_gets_at_most_seven_snapshots_from_one_plan():
    shared = DiskRef(f"{BASE}/disks/shared", "shared", 0)
    inventory = [
        VmRecord(
            f"{BASE}/virtualMachines/n{i}",
            f"n{i}",
            SUB,
            "rg",
            "westeurope",
            {"vmkeeper-policy": "hourly"},
            None,
            (shared,),
        )
        for i in range(10)
    ]
    result = plan(inventory, POLICIES, NOW)
    assert len(result.jobs) == 7 and len(result.skipped) == 3
    assert all("in 5 minutes" in s.reason for s in result.skipped)


def test_a_slot_already_taken_is_planned_again_identically_when_history_names_it():
    app = vm("app1")
    first = plan([app], POLICIES, NOW)
    snaps, rp = first.jobs
    # Its snapshots and restore point exist; a burst of other snapshots just happened on every disk.
    taken = {
        t.disk_id: [TakenSnapshot(NOW, t.snapshot_name)] + [NOW - timedelta(seconds=i) for i in range(1, 7)]
        for t in snaps.snapshots
    }
    points = {app.id: [TakenRestorePoint(NOW, "ApplicationConsistent", True, rp.restore_point_name)]}
    again = plan(
        [app],
        POLICIES,
        NOW + timedelta(minutes=1),
        {"snapshots_by_disk": taken, "restore_points_by_vm": points},
    )
    assert again == first  # plain mappings work as history too


def test_one_restore_point_creation_in_flight_per_vm():
    app = vm("app1")
    busy = {app.id: [(NOW - timedelta(hours=10), "CrashConsistent", True)]}
    result = plan([app], POLICIES, NOW, History(restore_points_by_vm=busy))
    assert [j.kind for j in result.jobs] == ["snapshot_set"]
    assert result.skipped[0].reason.startswith("a restore point of this VM is being created")


@pytest.mark.parametrize(
    "policy, consistency, hours", [("crash", "CrashConsistent", 1), ("app", "ApplicationConsistent", 3)]
)
def test_minimum_interval_between_restore_points(policy, consistency, hours):
    app = vm("r", tags={"vmkeeper-policy": policy})
    slot = slot_for(schedule(policy), NOW)
    last = slot - timedelta(hours=hours) + timedelta(minutes=2)  # the previous slot's, made 2 minutes late
    history = History(restore_points_by_vm={app.id: [(last, consistency, False)]})
    early = plan([app], POLICIES, slot + timedelta(minutes=1), history)
    assert early.jobs == [] and early.skipped[0].reason.startswith(
        f"{consistency} restore points need {hours} h after"
    )
    on_time = plan([app], POLICIES, slot + timedelta(minutes=2), history)  # a later run of the same slot
    assert [j.slot for j in on_time.jobs] == [slot]


def test_naive_history_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        plan([vm("a")], POLICIES, NOW, History(snapshots_by_disk={"x": [datetime(2026, 1, 1)]}))


# --- properties -----------------------------------------------------------------------------------
vm_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=1, max_size=64
)
policy_tags = st.sampled_from(
    [{"vmkeeper-policy": p} for p in ("gold", "bronze", "weekly", "crash", "app", "Hourly")]
    + [{}, {"vmkeeper-policy": "platnum"}, {"vmkeeper-optout": "true"}]
)
fleets = st.lists(
    st.tuples(vm_names, st.integers(0, 8), policy_tags),
    min_size=1,
    max_size=6,
    unique_by=lambda t: t[0].lower(),
)
instants = st.integers(0, 3 * 366 * 24 * 60).map(
    lambda m: utc(2025, 1, 1) + timedelta(minutes=m, seconds=m % 59)
)


@settings(max_examples=150, deadline=None)
@given(fleets, instants)
def test_plans_are_deterministic_with_valid_distinct_names(fleet, now):
    inventory = [vm(name, disks, tags) for name, disks, tags in fleet]
    first = plan(inventory, POLICIES, now)
    assert plan(inventory, POLICIES, now) == first
    assert plan(list(reversed(inventory)), POLICIES, now) == first
    all_names = names(first) + [
        j.restore_point_collection_name for j in first.jobs if j.restore_point_collection_name
    ]
    for name in all_names:
        assert NAME_OK.match(name) and len(name) <= 80, name
    assert len(set(names(first))) == len(names(first))
    # A week and a day later every policy is in another slot: no name comes back.
    later = plan(inventory, POLICIES, now + timedelta(days=8))
    assert not set(names(first)) & set(names(later))
    # One job per VM per kind; every VM is either planned or skipped, with a reason.
    kinds = [(j.vm_id, j.kind) for j in first.jobs]
    assert len(kinds) == len(set(kinds))
    assert {j.vm_id for j in first.jobs} | {s.vm_id for s in first.skipped} == {v.key for v in inventory}
    assert all(s.reason for s in first.skipped)


@settings(max_examples=150, deadline=None)
@given(
    vms=st.integers(1, 12),
    before=st.lists(st.integers(0, 900), max_size=12),
    old=st.integers(0, 500) | st.integers(495, 500),
    steps=st.lists(st.integers(0, 400), min_size=1, max_size=25),
)
def test_applied_plans_never_break_the_snapshot_limits(vms, before, old, steps):
    """VMs sharing one disk, plans at consecutive nows, each plan applied (a name already taken makes
    nothing): no snapshot is ever created as an 8th in 5 minutes or a 501st."""
    shared = DiskRef(f"{BASE}/disks/shared", "shared", 0)
    inventory = [
        VmRecord(
            f"{BASE}/virtualMachines/n{i}",
            f"n{i}",
            SUB,
            "rg",
            "westeurope",
            {"vmkeeper-policy": "hourly"},
            None,
            (shared,),
        )
        for i in range(vms)
    ]
    start = utc(2026, 11, 25, 8, 58)
    taken = [TakenSnapshot(start - timedelta(days=1, seconds=i)) for i in range(old)]
    taken += [TakenSnapshot(start - timedelta(seconds=s)) for s in before]
    now = start
    for step in steps:
        now += timedelta(seconds=step)
        result = plan(inventory, POLICIES, now, History(snapshots_by_disk={shared.id: list(taken)}))
        for job in result.jobs:
            (target,) = job.snapshots
            if any(t.name == target.snapshot_name for t in taken):
                continue
            assert len(taken) < 500
            assert sum(1 for t in taken if now - timedelta(minutes=5) < t.created <= now) < 7
            taken.append(TakenSnapshot(now, target.snapshot_name))


@settings(max_examples=150, deadline=None)
@given(
    policy=st.sampled_from(["crash", "app", "gold"]),
    before=st.lists(
        st.tuples(
            st.integers(0, 400), st.sampled_from(["CrashConsistent", "ApplicationConsistent"]), st.booleans()
        ),
        max_size=3,
    ),
    steps=st.lists(st.tuples(st.integers(0, 100), st.booleans()), min_size=1, max_size=40),
)
def test_applied_plans_never_break_the_restore_point_limits(policy, before, steps):
    """Plans at consecutive nows, each new restore point created in flight and finished at random:
    never two in flight, never closer to the VM's last one than its consistency allows."""
    app = vm("r", tags={"vmkeeper-policy": policy})
    now = utc(2026, 11, 25, 5, 50)
    points = [TakenRestorePoint(now - timedelta(minutes=m), c, busy) for m, c, busy in before]
    made: set[str] = set()
    for minutes, finish in steps:
        now += timedelta(minutes=minutes)
        if finish:
            points = [p._replace(in_flight=False) for p in points]
        result = plan([app], POLICIES, now, History(restore_points_by_vm={app.id: list(points)}))
        for job in (j for j in result.jobs if j.kind == "restore_point"):
            if job.restore_point_name in made:
                continue  # that slot's restore point exists: the PUT makes nothing
            assert not any(p.in_flight for p in points)
            need = timedelta(hours=MIN_RESTORE_POINT_HOURS[job.consistency])
            assert all(now - p.created >= need for p in points)
            points.append(TakenRestorePoint(now, job.consistency, True, job.restore_point_name))
            made.add(job.restore_point_name)
    assert len(made) <= len(
        {
            slot_for(schedule(policy), now - timedelta(minutes=m))
            for m in range(0, sum(s for s, _ in steps) + 1)
        }
    )


def test_a_snapshot_set_records_how_many_members_it_has_when_complete():
    """Retention can tell an incomplete set (a later disk failed, a copy stopped) from a complete one
    only if the set says how big it is: every snapshot of the job carries the count."""
    jobs = plan([vm("g", disks=3), vm("w", disks=3, tags={"vmkeeper-policy": "weekly"})], POLICIES,
                datetime(2026, 11, 29, 3, 5, tzinfo=UTC)).jobs
    sizes = {(j.vm_id.rsplit("/", 1)[-1], j.kind): (j.tags.get(T.SET_SIZE), len(j.snapshots)) for j in jobs}
    assert sizes[("g", "snapshot_set")] == ("4", 4)  # the OS disk and three data disks
    assert sizes[("w", "snapshot_set")] == ("2", 2)  # LUNs 0 and 2 only
    assert T.SET_SIZE not in next(j for j in jobs if j.kind == "restore_point").tags


def test_every_artifact_names_the_instance_of_its_vm():
    """A VM deleted and created again keeps its ARM id (vmkeeper-vm): vmkeeper-vm-instance (its vmId) says which
    instance an artifact is of, so the two instances' points can be told apart (issue 19, 11)."""
    row = {"id": f"{BASE}/virtualMachines/app1", "location": "westeurope", "tags": {"vmkeeper-policy": "gold"},
           "properties": {"vmId": "5D1A4F2E-0C1B-4E6A-9F3D-2B7C8A9E0F11", "storageProfile": {"osDisk": {
               "name": "os", "managedDisk": {"id": f"{BASE}/disks/os"}}}}}
    record = VmRecord.from_resource_graph(row)
    assert record.instance == "5d1a4f2e-0c1b-4e6a-9f3d-2b7c8a9e0f11"
    jobs = plan([record], POLICIES, NOW).jobs
    assert jobs and all(j.tags[T.VM_INSTANCE] == record.instance and j.tags[T.VM] == record.key for j in jobs)
