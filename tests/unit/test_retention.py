"""shared.retention: one example per rule, then properties over random artifact histories."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import tags as T
from shared.retention.engine import (
    Artifact,
    Decision,
    Instance,
    RetentionPolicy,
    decide,
    format_instant,
    parse_instant,
    plan_summary,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute"
VM1 = f"{SUB}/virtualMachines/vm1".lower()
VM2 = f"{SUB}/virtualMachines/vm2".lower()
GOLD = RetentionPolicy(keep_last=2)
POLICIES = {"gold": GOLD}


def tags_for(vm=VM1, policy="gold", set_id=None, **extra) -> dict[str, str]:
    tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm}
    if policy is not None:
        tags[T.ARTIFACT_POLICY] = policy
    if set_id is not None:
        tags[T.SET] = set_id
    tags.update({k: v for k, v in extra.items() if v is not None})
    return tags


def snap(name, age, *, vm=VM1, set_id=None, region="westeurope", good=True, tags=None, **kw) -> Artifact:
    set_id = set_id or name
    return Artifact(
        id=f"{SUB}/snapshots/{name}",
        kind="snapshot",
        tags=tags if tags is not None else tags_for(vm=vm, set_id=set_id),
        created=NOW - age,
        region=region,
        good=good,
        **kw,
    )


def rpc(name, age, *, vm=VM1, tags=None, **kw) -> Artifact:
    return Artifact(
        id=f"{SUB}/restorePointCollections/{name}",
        kind="restore_point_collection",
        tags=tags if tags is not None else tags_for(vm=vm),
        created=NOW - age,
        region="westeurope",
        good=True,
        **kw,
    )


def rp(collection: Artifact, name, age, *, vm=VM1, tags=None, good=True, **kw) -> Artifact:
    return Artifact(
        id=f"{collection.id}/restorePoints/{name}",
        kind="restore_point",
        tags=tags if tags is not None else tags_for(vm=vm),
        created=NOW - age,
        region="westeurope",
        good=good,
        **kw,
    )


def run(artifacts, policies=None, live=(VM1,), now=NOW, **kw) -> dict[str, Decision]:
    decisions = decide(artifacts, POLICIES if policies is None else policies, set(live), now, **kw)
    assert [d.artifact_id for d in decisions] == [a.id for a in artifacts]
    return {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}


def outcome(d: Decision) -> tuple[str, str]:
    return d.action, d.rule


def apply(artifacts: list[Artifact], decisions: list[Decision]) -> list[Artifact]:
    """What the caller does: delete, write marks, remove marks."""
    after = []
    for a, d in zip(artifacts, decisions, strict=True):
        if d.action == "delete":
            continue
        tags = dict(a.tags)
        if d.action == "mark":
            tags[T.EXPIRING] = format_instant(d.delete_after)
        elif d.rule == "unmark":
            del tags[T.EXPIRING]
        after.append(replace(a, tags=tags))
    return after


def assert_second_run_changes_nothing(artifacts, policies, live, now, last_seen=None, instances=None) -> None:
    """Rule 7's idempotence: after applying a run, the same `now` deletes nothing and marks nothing new."""
    first = decide(artifacts, policies, live, now, last_seen, instances=instances)
    marks = {d.artifact_id: d.delete_after for d in first if d.action == "mark"}
    second = decide(apply(artifacts, first), policies, live, now, last_seen, instances=instances)
    assert [d for d in second if d.action == "delete"] == []
    for d in second:
        if d.action == "mark":
            assert marks.get(d.artifact_id) == d.delete_after, d  # nothing newly marked, no instant moved


# ----------------------------------------------------------------------------------------- rule 1: gate


def test_not_owned_held_and_locked_are_skipped_even_when_expired():
    old = 400 * DAY
    artifacts = [
        snap("new", DAY),
        snap("mine", old),
        snap("theirs", old, tags={T.VM: VM1, T.ARTIFACT_POLICY: "gold", T.SET: "theirs"}),
        snap("held", old, tags=tags_for(set_id="held", **{T.HOLD: "case-42"})),
        snap("locked", old, locked=True),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["mine"]) == ("mark", "not_selected")
    assert outcome(d["theirs"]) == ("skip", "not_owned")
    assert outcome(d["held"]) == ("skip", "hold")
    assert outcome(d["locked"]) == ("skip", "locked")


def test_tag_names_are_case_insensitive_and_hold_false_still_holds():
    tags = {"Managed-By": "VMKeeper", "VMKeeper-VM": VM1, "VMKEEPER-POLICY": "gold", "vmkeeper-set": "s"}
    d = run([snap("new", DAY), snap("s", 9 * DAY, tags={**tags, "VMKeeper-Hold": "false"})], {"gold": GOLD})
    assert outcome(d["s"]) == ("skip", "hold")


@pytest.mark.parametrize("value", ["", "  ", "false", "case-42"])
def test_a_hold_tag_holds_whatever_its_value_even_empty(value):
    # Azure allows empty tag values: the tag's presence is the hold (as the README promises).
    due = {T.EXPIRING: format_instant(NOW - DAY)}
    coll = rpc("rpc1", 90 * DAY, tags=tags_for(**{"VMKeeper-Hold": value}))
    artifacts = [
        snap("new", DAY),
        snap("held", 400 * DAY, tags=tags_for(set_id="held", **{"VMKeeper-Hold": value}, **due)),
        coll,
        rp(coll, "rp-new", DAY),
        rp(coll, "rp-old", 60 * DAY, tags=tags_for(**due)),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["held"]) == ("skip", "hold")
    assert outcome(d["rpc1"]) == ("skip", "hold")
    assert outcome(d["rp-old"]) == ("skip", "hold")


def test_our_expired_lock_is_released_and_delete_asks_to_unlock():
    past = format_instant(NOW - DAY)
    lock_tags = tags_for(set_id="old", **{T.LOCK_UNTIL: past, T.EXPIRING: past})
    artifacts = [
        snap("new", DAY),
        snap("old", 30 * DAY, tags=lock_tags, locked=True, lock_is_ours_and_expired=True),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["old"]) == ("delete", "not_selected")
    assert d["old"].unlock is True


@pytest.mark.parametrize("lock_until", [None, "soon", format_instant(NOW + DAY)])
def test_our_lock_is_not_released_without_a_passed_lock_until(lock_until):
    extra = {T.LOCK_UNTIL: lock_until} if lock_until else {}
    old = snap(
        "old", 30 * DAY, tags=tags_for(set_id="old", **extra), locked=True, lock_is_ours_and_expired=True
    )
    d = run([snap("new", DAY), old], {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["old"]) == ("skip", "locked")


def test_hold_on_a_collection_covers_its_restore_points():
    coll = rpc("rpc1", 90 * DAY, tags=tags_for(**{T.HOLD: "audit"}))
    artifacts = [coll, rp(coll, "rp-new", DAY), rp(coll, "rp-old", 60 * DAY)]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["rpc1"]) == ("skip", "hold")
    assert outcome(d["rp-old"]) == ("skip", "hold")


# ---------------------------------------------------------------------------------------- rule 2: doubt


@pytest.mark.parametrize(
    ("tags", "rule"),
    [
        (tags_for(policy=None, set_id="x"), "unknown_policy"),
        (tags_for(policy="platinum", set_id="x"), "unknown_policy"),
        (tags_for(set_id="x", **{T.EXPIRING: "next tuesday"}), "bad_tag"),
        (tags_for(set_id="x", **{T.SLOT: "2026-11-25T06:00:00"}), "bad_tag"),  # no offset: not UTC
        (tags_for(set_id="x", **{T.EXPIRES: ""}), "bad_tag"),
        (tags_for(set_id=None), "bad_tag"),
        ({T.MANAGED_BY: "vmkeeper", T.ARTIFACT_POLICY: "gold", T.SET: "x"}, "bad_tag"),  # no VM tag
    ],
)
def test_doubt_keeps(tags, rule):
    d = run([snap("new", DAY), replace(snap("x", 500 * DAY), tags=tags)])
    assert outcome(d["x"]) == ("keep", rule)


def test_set_members_naming_different_policies_are_kept():
    silver = {"gold": RetentionPolicy(keep_last=1), "silver": RetentionPolicy(keep_last=1)}
    artifacts = [
        snap("new", DAY),
        snap("a", 50 * DAY, set_id="s"),
        snap("b", 50 * DAY, set_id="s", tags=tags_for(policy="silver", set_id="s")),
    ]
    d = run(artifacts, silver)
    assert outcome(d["a"]) == outcome(d["b"]) == ("keep", "bad_tag")


# ------------------------------------------------------------------------------------------ rule 3: sets


def test_a_set_goes_whole_or_not_at_all():
    artifacts = [
        snap("new-os", DAY, set_id="new"),
        snap("old-os", 50 * DAY, set_id="old"),
        snap("old-data", 50 * DAY, set_id="old"),
        snap("older-os", 60 * DAY, set_id="older"),
        snap("older-data", 60 * DAY, set_id="older", tags=tags_for(set_id="older", **{T.HOLD: "x"})),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["old-os"]) == outcome(d["old-data"]) == ("mark", "not_selected")
    assert d["old-os"].delete_after == d["old-data"].delete_after == NOW + DAY
    assert outcome(d["older-data"]) == ("skip", "hold")
    assert outcome(d["older-os"]) == ("keep", "set_member_kept")


def test_set_waits_for_the_latest_mark_of_its_members():
    past, later = format_instant(NOW - DAY), format_instant(NOW + 3 * DAY)
    artifacts = [
        snap("new", DAY, set_id="new"),
        snap("a", 50 * DAY, set_id="old", tags=tags_for(set_id="old", **{T.EXPIRING: past})),
        snap("b", 50 * DAY, set_id="old", tags=tags_for(set_id="old", **{T.EXPIRING: later})),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["a"]) == outcome(d["b"]) == ("mark", "not_selected")
    assert d["a"].delete_after == d["b"].delete_after == NOW + 3 * DAY


def test_set_time_is_its_newest_member():
    artifacts = [snap("a", 31 * DAY, set_id="s"), snap("b", 29 * DAY, set_id="s")]
    d = run(artifacts, {"gold": RetentionPolicy(max_age=30 * DAY)}, live=())
    assert outcome(d["a"]) == ("keep", "max_age_not_reached")


# ------------------------------------------------------------------------ rule 3: incomplete sets


def disks(set_id, age, *, size=2, luns=None, vm=VM1, region="westeurope", is_copy=False, good=True, **extra):
    """A snapshot set as the workers write it now: SET_SIZE on every member, and each member's disk
    (its LUN on a source snapshot, the source's id on a copy). ``luns``: the members present."""
    members = []
    for lun in range(size) if luns is None else luns:
        name = f"{set_id}-{lun}{'-copy' if is_copy else ''}"
        member = {T.COPY_OF: f"{SUB}/snapshots/{set_id}-{lun}"} if is_copy else {T.LUN: str(lun)}
        tags = tags_for(vm=vm, set_id=set_id, **{T.SET_SIZE: str(size)}, **member, **extra)
        members.append(
            snap(name, age, vm=vm, set_id=set_id, region=region, good=good, tags=tags, is_copy=is_copy)
        )
    return members


def test_an_incomplete_set_is_never_the_newest_good_point():
    # The newer run's second disk failed to be created: only disk 0 exists, and it is good.
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    artifacts = disks("full", 3 * DAY) + disks("part", 2 * DAY, luns=[0])
    d = run(artifacts, policy)
    assert outcome(d["full-0"]) == outcome(d["full-1"]) == ("keep", "newest_good")
    assert outcome(d["part-0"]) == ("keep", "incomplete_no_newer_complete")
    assert "1 of 2" in d["part-0"].reason


def test_an_incomplete_set_is_in_progress_while_younger_than_orphan_grace():
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    d = run(disks("full", 3 * DAY) + disks("part", timedelta(hours=2), size=3, luns=[0, 2]), policy)
    assert outcome(d["part-0"]) == outcome(d["part-2"]) == ("keep", "in_progress")
    assert outcome(d["full-0"]) == ("keep", "newest_good")


def test_an_incomplete_set_goes_once_a_newer_complete_set_exists():
    policy = {"gold": RetentionPolicy(keep_last=3, orphan_grace=DAY)}
    artifacts = disks("new", DAY) + disks("part", 2 * DAY, luns=[1]) + disks("old", 3 * DAY)
    d = run(artifacts, policy)
    assert outcome(d["new-0"]) == ("keep", "newest_good")
    assert outcome(d["part-1"]) == ("mark", "not_selected")  # keep_last counts complete sets only
    assert outcome(d["old-0"]) == outcome(d["old-1"]) == ("keep", "keep_last")


def test_an_incomplete_set_is_never_selected_by_gfs_or_max_age_alone():
    policy = {"gold": RetentionPolicy(keep_daily=5, max_age=10 * DAY, orphan_grace=DAY)}
    artifacts = disks("new", DAY) + disks("part", 2 * DAY, luns=[0]) + disks("old-part", 40 * DAY, luns=[1])
    d = run(artifacts, policy)
    assert outcome(d["part-0"]) == ("keep", "max_age_not_reached")  # not keep_daily: not good
    assert outcome(d["old-part-1"]) == ("mark", "max_age")
    # Without the newer complete set, both stay: they are the best the VM has.
    d = run(artifacts[2:], policy)
    assert outcome(d["part-0"]) == outcome(d["old-part-1"]) == ("keep", "incomplete_no_newer_complete")


def test_a_copy_stopped_half_way_is_incomplete_in_its_own_lineage():
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    artifacts = [
        *disks("s1", 2 * DAY),
        *disks("s1", 2 * DAY, luns=[0], region="northeurope", is_copy=True),
        *disks("s0", 3 * DAY, region="northeurope", is_copy=True),
    ]
    d = run(artifacts, policy)
    assert outcome(d["s1-0"]) == ("keep", "newest_good")
    assert outcome(d["s1-0-copy"]) == ("keep", "incomplete_no_newer_complete")
    assert outcome(d["s0-0-copy"]) == outcome(d["s0-1-copy"]) == ("keep", "newest_good")


def test_members_of_one_disk_count_once():
    # Two snapshots of disk 0 do not make up for the missing disk 1.
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    part = disks("part", 2 * DAY, luns=[0])
    twin = replace(part[0], id=f"{SUB}/snapshots/part-0-again")
    d = run([*disks("full", 3 * DAY), *part, twin], policy)
    assert outcome(d["full-0"]) == ("keep", "newest_good")
    assert outcome(d["part-0"]) == outcome(d["part-0-again"]) == ("keep", "incomplete_no_newer_complete")


def test_a_set_without_a_size_tag_is_judged_as_before():
    # Made before SET_SIZE: good if every member present is good (its missing disks can't be known).
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    legacy = [
        replace(a, tags={k: v for k, v in a.tags.items() if k != T.SET_SIZE}) for a in disks("old", 2 * DAY)
    ]
    d = run([*disks("older", 3 * DAY), legacy[0]], policy)
    assert outcome(d["old-0"]) == ("keep", "newest_good")
    assert outcome(d["older-0"]) == ("mark", "not_selected")


def test_an_incomplete_set_of_a_gone_vm_goes_after_its_grace_like_the_rest():
    policy = {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=7 * DAY)}
    artifacts = disks("full", 50 * DAY) + disks("part", 40 * DAY, luns=[0])
    within = run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 6 * DAY})
    assert outcome(within["full-0"]) == ("keep", "newest_good")
    assert outcome(within["part-0"]) == ("keep", "orphan_grace")
    past = run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 8 * DAY})
    assert outcome(past["full-0"]) == outcome(past["part-0"]) == ("mark", "max_age")
    assert_second_run_changes_nothing(artifacts, policy, set(), NOW, {VM1: NOW - 8 * DAY})


@pytest.mark.parametrize("size", ["", " ", "two", "0", "-1", "+2", "2.0", "0x2", "²"])
def test_a_malformed_set_size_keeps_the_set_on_doubt(size):
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    odd = [replace(a, tags={**a.tags, T.SET_SIZE: size}) for a in disks("odd", 30 * DAY)]
    d = run([*disks("new", DAY), *odd], policy)
    assert outcome(d["odd-0"]) == outcome(d["odd-1"]) == ("keep", "bad_tag")
    d = run([*disks("new", DAY), odd[0], disks("odd", 30 * DAY)[1]], policy)  # one member's tag only
    assert outcome(d["odd-0"]) == ("keep", "bad_tag")
    assert outcome(d["odd-1"]) == ("keep", "set_member_kept")


@pytest.mark.parametrize(
    "sizes", [("2", "3"), ("2", None), ("1", "1")], ids=["disagree", "one_without", "more_than_size"]
)
def test_members_contradicting_the_set_size_keep_the_set_on_doubt(sizes):
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    odd = disks("odd", 30 * DAY)
    odd = [
        replace(a, tags={k: v for k, v in a.tags.items() if k != T.SET_SIZE} | ({T.SET_SIZE: n} if n else {}))
        for a, n in zip(odd, sizes, strict=True)
    ]
    d = run([*disks("new", DAY), *odd], policy)
    assert outcome(d["odd-0"]) == outcome(d["odd-1"]) == ("keep", "bad_tag")


def test_set_size_counts_the_members_in_one_region_and_copy_lineage():
    # The source set is complete even though its copy has only one member yet, and vice versa.
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=DAY)}
    artifacts = [
        *disks("s1", 2 * DAY, luns=[1]),
        *disks("s1", 2 * DAY, region="northeurope", is_copy=True),
        *disks("s0", 3 * DAY),
    ]
    d = run(artifacts, policy)
    assert outcome(d["s1-0-copy"]) == outcome(d["s1-1-copy"]) == ("keep", "newest_good")
    assert outcome(d["s1-1"]) == ("keep", "incomplete_no_newer_complete")
    assert outcome(d["s0-0"]) == ("keep", "newest_good")


# ------------------------------------------------------------------------------- rule 4: keep rules


def test_keep_last_counts_good_sets_only():
    artifacts = [
        snap("failed", DAY, good=False),
        snap("s2", 2 * DAY),
        snap("s3", 3 * DAY),
        snap("s4", 4 * DAY),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=2, orphan_grace=timedelta(0))})
    assert outcome(d["s2"]) == ("keep", "newest_good")
    assert outcome(d["s3"]) == ("keep", "keep_last")
    assert outcome(d["s4"]) == ("mark", "not_selected")
    assert outcome(d["failed"]) == ("mark", "not_selected")


def test_in_progress_sets_are_kept_for_orphan_grace():
    artifacts = [snap("copying", timedelta(hours=3), good=False), snap("s1", DAY)]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["copying"]) == ("keep", "in_progress")


def test_keep_daily_counts_days_that_have_a_point():
    # Points on days -1 (two), -2, -5 and -9: keep_daily=3 keeps the newest of -1, -2 and -5.
    artifacts = [
        snap("d1-late", DAY + timedelta(hours=1)),
        snap("d1-early", DAY + timedelta(hours=6)),
        snap("d2", 2 * DAY),
        snap("d5", 5 * DAY),
        snap("d9", 9 * DAY),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_daily=3)})
    assert outcome(d["d1-late"]) == ("keep", "newest_good")
    assert outcome(d["d1-early"]) == ("mark", "not_selected")
    assert outcome(d["d2"]) == ("keep", "keep_daily")
    assert outcome(d["d5"]) == ("keep", "keep_daily")
    assert outcome(d["d9"]) == ("mark", "not_selected")


def test_weekly_monthly_yearly_buckets():
    def at(name, when):
        return snap(name, NOW - when)

    artifacts = [
        at("now", NOW - timedelta(hours=1)),
        at("w-mon", datetime(2026, 11, 16, tzinfo=UTC)),  # ISO week 47: Monday...
        at("w-sun", datetime(2026, 11, 22, tzinfo=UTC)),  # ...and Sunday: the newest of week 47
        at("m-oct", datetime(2026, 10, 3, tzinfo=UTC)),
        at("m-oct-late", datetime(2026, 10, 30, tzinfo=UTC)),
        at("y-2025", datetime(2025, 6, 1, tzinfo=UTC)),
        at("y-2024", datetime(2024, 12, 31, 23, tzinfo=UTC)),
        at("y-2023", datetime(2023, 1, 1, tzinfo=UTC)),
    ]
    policy = RetentionPolicy(keep_weekly=2, keep_monthly=2, keep_yearly=3)
    d = run(artifacts, {"gold": policy})
    assert outcome(d["w-sun"]) == ("keep", "keep_weekly")
    assert outcome(d["w-mon"]) == ("mark", "not_selected")
    assert outcome(d["m-oct-late"]) == ("keep", "keep_monthly")
    assert outcome(d["m-oct"]) == ("mark", "not_selected")
    assert outcome(d["y-2025"]) == ("keep", "keep_yearly")
    assert outcome(d["y-2024"]) == ("keep", "keep_yearly")
    assert outcome(d["y-2023"]) == ("mark", "not_selected")  # 2026, 2025, 2024 fill keep_yearly=3


def test_max_age():
    artifacts = [snap("young", 10 * DAY), snap("old", 40 * DAY)]
    d = run(artifacts, {"gold": RetentionPolicy(max_age=30 * DAY)}, live=())
    assert outcome(d["young"]) == ("keep", "max_age_not_reached")
    assert outcome(d["old"]) == ("mark", "max_age")


def test_keep_rules_win_over_max_age():
    artifacts = [snap("s1", 40 * DAY), snap("s2", 41 * DAY), snap("s3", 42 * DAY)]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=2, max_age=30 * DAY)})
    assert [outcome(d[n]) for n in ("s1", "s2", "s3")] == [
        ("keep", "newest_good"),
        ("keep", "keep_last"),
        ("mark", "max_age"),
    ]


def test_policy_without_rules_keeps_everything():
    d = run([snap("s1", DAY), snap("s2", 900 * DAY)], {"gold": RetentionPolicy()})
    assert outcome(d["s2"]) == ("keep", "no_rule")


def test_expires_tag_is_a_floor():
    tags = tags_for(set_id="s2", **{T.EXPIRES: format_instant(NOW + DAY)})
    d = run([snap("s1", DAY), snap("s2", 90 * DAY, tags=tags)], {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["s2"]) == ("keep", "expires_not_reached")


def test_each_set_is_judged_by_its_own_policy_across_the_lineage():
    policies = {"gold": RetentionPolicy(keep_last=3), "bronze": RetentionPolicy(keep_last=1)}
    artifacts = [
        snap("b1", DAY, tags=tags_for(policy="bronze", set_id="b1")),
        snap("g2", 2 * DAY),
        snap("b3", 3 * DAY, tags=tags_for(policy="bronze", set_id="b3")),
        snap("g4", 4 * DAY),
    ]
    d = run(artifacts, policies)
    assert outcome(d["g2"]) == ("keep", "keep_last")
    assert outcome(d["b3"]) == ("mark", "not_selected")
    assert outcome(d["g4"]) == ("mark", "not_selected")  # 4th newest of the lineage


# --------------------------------------------------------------------------- rule 5: newest good point


def test_live_vm_keeps_its_newest_good_set_even_past_max_age():
    artifacts = [snap("failed", DAY * 40, good=False), snap("good", 50 * DAY), snap("older", 60 * DAY)]
    d = run(artifacts, {"gold": RetentionPolicy(max_age=30 * DAY)})
    assert outcome(d["good"]) == ("keep", "newest_good")
    assert outcome(d["older"]) == ("mark", "max_age")
    assert outcome(d["failed"]) == ("mark", "max_age")


def test_each_vm_is_its_own_lineage():
    policy = {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=7 * DAY)}
    artifacts = [
        snap("vm1-last", 40 * DAY),
        snap("vm2-last", 35 * DAY, vm=VM2),
        snap("vm2-older", 36 * DAY, vm=VM2),
    ]
    d = run(artifacts, policy, live=(VM1.upper(),))  # ids compare case-insensitively
    assert outcome(d["vm1-last"]) == ("keep", "newest_good")
    assert outcome(d["vm2-last"]) == ("mark", "max_age")  # VM2 gone 35 days: grace over
    assert outcome(d["vm2-older"]) == ("mark", "max_age")


# --- issue 19, defect 11: each instance of a VM (its vmId) is its own lineage -----------------------------------------
OLD = "5d1a4f2e-0c1b-4e6a-9f3d-2b7c8a9e0f11"  # the VM's vmId before it was deleted and created again under its name
NEW = "c3e8a1b0-7f64-4d2a-8e15-90ab4c6d2f37"  # the vmId of the VM created again: same ARM id (vmkeeper-vm)


def of(instance: str | None, set_id: str, **extra) -> dict[str, str]:
    """A set's tags naming the VM instance it was made of (None: made before vmkeeper said it)."""
    return tags_for(set_id=set_id, **({T.VM_INSTANCE: instance} if instance else {}), **extra)


def instance_sets(*spec: tuple[str, str | None, timedelta]) -> list[Artifact]:
    """(name, instance, age) → a two-disk set each, named {name}-os and {name}-data."""
    return [snap(f"{name}-{disk}", age, set_id=name, tags=of(instance, name))
            for name, instance, age in spec for disk in ("os", "data")]


def test_the_old_instances_newest_complete_point_is_kept_when_the_vm_is_created_again():
    """Issue 19, defect 11: a VM deleted and created again under its name keeps its ARM id (vmkeeper-vm), not its
    vmId (vmkeeper-vm-instance). keep_last 1: on main both instances were one lineage, so the new instance's newer
    set pushed the old instance's last good set out (marked, then deleted): a deleted VM's last good copy is what an
    operator needs. Each instance is its own lineage, with its own newest good set."""
    artifacts = instance_sets(("old-1", OLD, 10 * DAY), ("old-2", OLD, 9 * DAY), ("new-1", NEW, 2 * DAY),
                              ("new-2", NEW, DAY))
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    for disk in ("os", "data"):
        assert outcome(d[f"old-2-{disk}"]) == ("keep", "newest_good"), d[f"old-2-{disk}"]
        assert outcome(d[f"new-2-{disk}"]) == ("keep", "newest_good")
        assert outcome(d[f"old-1-{disk}"]) == outcome(d[f"new-1-{disk}"]) == ("mark", "not_selected")
    assert f"newest good point of snapshot sets of vm1 (instance {OLD}) in westeurope" in d["old-2-os"].reason
    assert f"(instance {NEW})" in d["new-2-os"].reason


def test_restore_points_of_each_instance_are_lineages_of_their_own():
    """A restore point can't carry tags: its instance is its source metadata's vmId (the listing passes it)."""
    coll = rpc("rpc1", 30 * DAY)
    artifacts = [coll, rp(coll, "rp-old-1", 10 * DAY, instance=OLD), rp(coll, "rp-old-2", 9 * DAY, instance=OLD),
                 rp(coll, "rp-new", DAY, instance=NEW.upper())]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["rp-old-2"]) == outcome(d["rp-new"]) == ("keep", "newest_good")
    assert f"restore points of vm1 (instance {OLD})" in d["rp-old-2"].reason
    assert outcome(d["rp-old-1"]) == ("mark", "not_selected")
    assert outcome(d["rpc1"]) == ("keep", "collection_not_empty")


def test_an_instance_no_longer_current_is_judged_as_a_gone_vm():
    """Once the listing says which instance is the VM's now (its vmId and creation time), an old instance is a
    gone VM's: its newest good set is kept through orphan_grace from when the new instance was created, then by the
    keep rules, counted in its own lineage; with no keep rule, it goes by max_age after its grace, like any gone VM's."""
    artifacts = instance_sets(("old-1", OLD, 10 * DAY), ("old-2", OLD, 9 * DAY), ("new-1", NEW, 2 * DAY),
                              ("new-2", NEW, DAY))
    current = {VM1: Instance(NEW, NOW - 3 * DAY)}
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=7 * DAY)}
    within = run(artifacts, policy, instances=current)
    assert outcome(within["old-2-os"]) == ("keep", "newest_good")
    assert f"instance {OLD} gone since {format_instant(NOW - 3 * DAY)}" in within["old-2-os"].reason
    assert f"grace until {format_instant(NOW + 4 * DAY)}" in within["old-2-os"].reason
    assert outcome(within["old-1-os"]) == ("mark", "not_selected")
    assert outcome(within["new-2-os"]) == ("keep", "newest_good") and "(live VM)" in within["new-2-os"].reason
    later = run(artifacts, policy, instances=current, now=NOW + 5 * DAY)  # grace over: keep_last 1 of its own
    assert outcome(later["old-2-os"]) == ("keep", "keep_last")
    assert f"keep_last = 1 selects it in snapshot sets of vm1 (instance {OLD})" in later["old-2-os"].reason
    aged = {"gold": RetentionPolicy(max_age=5 * DAY, orphan_grace=7 * DAY)}
    assert outcome(run(artifacts, aged, instances=current)["old-2-os"]) == ("keep", "newest_good")
    assert outcome(run(artifacts, aged, instances=current, now=NOW + 5 * DAY)["old-2-os"]) == ("mark", "max_age")
    assert_second_run_changes_nothing(artifacts, policy, {VM1}, NOW, instances=current)
    assert_second_run_changes_nothing(artifacts, aged, {VM1}, NOW + 5 * DAY, instances=current)


def test_points_that_do_not_say_their_instance_are_kept_conservatively():
    """Sets made before vmkeeper tagged the instance. Without the VM's creation time, they are a lineage of their
    own ("instance not recorded"), judged as a live VM's: its newest good set is kept. With it, a set made after the
    VM was created is that instance's (it joins its lineage: no extra set kept after an upgrade), one made before is
    an earlier instance's (a lineage of their own, judged as a gone VM's)."""
    artifacts = instance_sets(("pre-1", None, 12 * DAY), ("pre-2", None, 10 * DAY), ("pre-3", None, 4 * DAY),
                              ("new-1", NEW, 2 * DAY), ("new-2", NEW, DAY))
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=7 * DAY)}
    unknown = run(artifacts, policy)
    assert outcome(unknown["pre-3-os"]) == ("keep", "newest_good")
    assert "snapshot sets of vm1 (instance not recorded)" in unknown["pre-3-os"].reason
    assert outcome(unknown["pre-2-os"]) == outcome(unknown["pre-1-os"]) == ("mark", "not_selected")
    assert outcome(unknown["new-2-os"]) == ("keep", "newest_good")

    created = {VM1: Instance(NEW.upper(), NOW - 5 * DAY)}  # made 5 days ago: pre-3 is its, pre-1 and pre-2 not
    known = run(artifacts, policy, live=(VM1,), instances=created)
    assert outcome(known["new-2-os"]) == ("keep", "newest_good")
    assert outcome(known["pre-3-os"]) == outcome(known["new-1-os"]) == ("mark", "not_selected")
    assert outcome(known["pre-2-os"]) == ("keep", "newest_good")
    assert "snapshot sets of vm1 (an earlier instance, not recorded)" in known["pre-2-os"].reason
    assert outcome(known["pre-1-os"]) == ("mark", "not_selected")
    assert_second_run_changes_nothing(artifacts, policy, {VM1}, NOW, instances=created)


def test_set_members_naming_different_instances_are_kept():
    artifacts = [*instance_sets(("new", NEW, DAY)),
                 snap("a", 50 * DAY, set_id="s", tags=of(OLD, "s")),
                 snap("b", 50 * DAY, set_id="s", tags=of(NEW, "s")),
                 snap("c", 60 * DAY, set_id="t", tags=of(OLD, "t")),
                 snap("d", 60 * DAY, set_id="t", tags=of(None, "t"))]
    d = run(artifacts, {"gold": RetentionPolicy(keep_last=1)})
    assert outcome(d["a"]) == outcome(d["b"]) == outcome(d["c"]) == outcome(d["d"]) == ("keep", "bad_tag")
    assert "name different VM instances" in d["a"].reason


def test_a_gone_vms_instances_share_its_grace():
    """A VM gone altogether: each of its instances keeps its own newest good set through the VM's grace (from its
    newest artifact, whichever instance made it), then by the keep rules."""
    artifacts = instance_sets(("old-1", OLD, 20 * DAY), ("old-2", OLD, 19 * DAY), ("new-1", NEW, 3 * DAY))
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=7 * DAY)}
    d = run(artifacts, policy, live=())
    assert outcome(d["old-2-os"]) == outcome(d["new-1-os"]) == ("keep", "newest_good")
    assert f"VM gone since {format_instant(NOW - 3 * DAY)}" in d["old-2-os"].reason
    assert outcome(d["old-1-os"]) == ("mark", "not_selected")
    later = run(artifacts, policy, live=(), now=NOW + 5 * DAY)
    assert outcome(later["old-2-os"]) == outcome(later["new-1-os"]) == ("keep", "keep_last")


def test_each_kind_is_its_own_lineage():
    # A policy taking both kinds: each day a snapshot set, then a restore point a few minutes later.
    # Ranked together, every day's newest point is the restore point and every snapshot set would go.
    coll = rpc("rpc1", 10 * DAY)
    artifacts = [coll]
    for day in range(1, 4):
        artifacts += [
            snap(f"os-{day}", day * DAY, set_id=f"s{day}"),
            snap(f"data-{day}", day * DAY, set_id=f"s{day}"),
            rp(coll, f"rp-{day}", day * DAY - timedelta(minutes=5)),
        ]
    d = run(artifacts, {"gold": RetentionPolicy(keep_daily=7)})
    for kind in ("os", "data", "rp"):
        assert outcome(d[f"{kind}-1"]) == ("keep", "newest_good")
        assert outcome(d[f"{kind}-2"]) == outcome(d[f"{kind}-3"]) == ("keep", "keep_daily")


def test_each_kind_keeps_its_own_newest_good_point():
    policy = {"gold": RetentionPolicy(keep_last=1, max_age=30 * DAY)}
    coll = rpc("rpc1", 90 * DAY)
    artifacts = [coll, snap("s-old", 60 * DAY), rp(coll, "rp-new", DAY), rp(coll, "rp-old", 50 * DAY)]
    d = run(artifacts, policy)
    assert outcome(d["s-old"]) == (
        "keep",
        "newest_good",
    )  # the only snapshot set: newer restore points or not
    assert outcome(d["rp-new"]) == ("keep", "newest_good")
    assert outcome(d["rp-old"]) == ("mark", "max_age")


def test_copies_are_their_own_lineage():
    artifacts = [
        snap("src", 50 * DAY),
        snap("copy-new", 50 * DAY, region="northeurope", is_copy=True),
        snap("copy-old", 60 * DAY, region="northeurope", is_copy=True),
        snap("copy-busy", DAY, region="northeurope", is_copy=True, good=False),
    ]
    d = run(artifacts, {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=timedelta(hours=1))})
    assert outcome(d["src"]) == ("keep", "newest_good")
    assert outcome(d["copy-new"]) == ("keep", "newest_good")
    assert outcome(d["copy-old"]) == ("mark", "max_age")
    assert outcome(d["copy-busy"]) == ("keep", "max_age_not_reached")


def test_gone_vm_keeps_its_newest_good_set_for_orphan_grace_after_last_seen():
    policy = {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=7 * DAY)}
    artifacts = [snap("last", 50 * DAY), snap("older", 60 * DAY)]
    within = run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 6 * DAY})
    assert outcome(within["last"]) == ("keep", "newest_good")
    assert outcome(within["older"]) == ("mark", "max_age")
    past = run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 8 * DAY})
    assert outcome(past["last"]) == ("mark", "max_age")


def test_gone_vm_with_unknown_last_seen_counts_from_its_newest_artifact():
    policy = {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=7 * DAY)}
    artifacts = [
        snap("good", 50 * DAY),
        snap("failed", 5 * DAY, good=False),  # newest artifact: the VM was there 5 days ago
    ]
    d = run(artifacts, policy, live=())
    assert outcome(d["good"]) == ("keep", "newest_good")
    assert outcome(d["failed"]) == ("keep", "orphan_grace")
    # last_seen older than the newest artifact does not shorten the grace
    assert outcome(run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 40 * DAY})["good"]) == (
        "keep",
        "newest_good",
    )
    later = run(artifacts, policy, live=(), now=NOW + 3 * DAY)
    assert outcome(later["good"]) == ("mark", "max_age")


def test_gone_vm_sets_are_still_subject_to_keep_rules():
    d = run([snap("s1", 50 * DAY), snap("s2", 60 * DAY)], {"gold": RetentionPolicy(keep_last=1)}, live=())
    assert outcome(d["s1"]) == ("keep", "keep_last")
    assert outcome(d["s2"]) == ("mark", "not_selected")


def test_gone_vm_grace_does_not_shrink_when_its_newest_artifact_goes():
    # The failed run 15 days ago is the VM's newest artifact: it sets `since`. Were it deleted while the
    # grace runs, `since` would fall back to 40 days and the next run would drop the newest good set.
    policies = {
        "gold": RetentionPolicy(max_age=10 * DAY, orphan_grace=20 * DAY),
        "silver": RetentionPolicy(max_age=10 * DAY, orphan_grace=DAY),
    }
    due = tags_for(policy="silver", set_id="failed", **{T.EXPIRING: format_instant(NOW - DAY)})
    artifacts = [snap("good", 40 * DAY), snap("failed", 15 * DAY, good=False, tags=due)]
    d = run(artifacts, policies, live=())
    assert outcome(d["failed"]) == ("keep", "unmark")
    assert d["failed"].reason.startswith("orphan_grace")
    assert outcome(d["good"]) == ("keep", "newest_good")
    assert_second_run_changes_nothing(artifacts, policies, set(), NOW)
    later = run(artifacts, policies, live=(), now=NOW + 6 * DAY)  # grace over: both may go
    assert outcome(later["failed"]) == ("delete", "max_age")
    assert outcome(later["good"]) == ("mark", "max_age")


def test_gone_vm_grace_comes_from_what_it_protects():
    # Only the newest good set's policy counts: the older silver set may go during the grace, and its
    # longer orphan_grace must not have been lending the newest set a protection it loses next run.
    policies = {
        "gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=3 * DAY),
        "silver": RetentionPolicy(max_age=30 * DAY, orphan_grace=30 * DAY),
    }
    due = tags_for(policy="silver", set_id="old", **{T.EXPIRING: format_instant(NOW - DAY)})
    artifacts = [snap("new", 40 * DAY), snap("old", 50 * DAY, tags=due)]
    last_seen = {VM1: NOW - 5 * DAY}
    d = run(artifacts, policies, live=(), vm_last_seen=last_seen)
    assert outcome(d["new"]) == ("mark", "max_age")
    assert outcome(d["old"]) == ("delete", "max_age")
    assert_second_run_changes_nothing(artifacts, policies, set(), NOW, last_seen)


# ------------------------------------------------------------------------------ deferral: mark/delete


def test_mark_then_delete_then_unmark():
    policy = {"gold": RetentionPolicy(keep_last=1, deferral=timedelta(hours=24))}
    s2 = snap("s2", 10 * DAY)
    d = run([snap("s1", DAY), s2], policy)["s2"]
    assert (d.action, d.delete_after) == ("mark", NOW + DAY)

    marked = replace(s2, tags={**s2.tags, T.EXPIRING: format_instant(d.delete_after)})
    assert run([snap("s1", DAY), marked], policy)["s2"].action == "mark"  # same instant, repeated
    due = run([snap("s1", DAY), marked], policy, now=NOW + DAY + timedelta(seconds=1))["s2"]
    assert (due.action, due.rule, due.delete_after) == ("delete", "not_selected", NOW + DAY)

    # the operator raises keep_last: the pending deletion is called off
    relaxed = {"gold": RetentionPolicy(keep_last=2)}
    kept = run([snap("s1", DAY), marked], relaxed, now=NOW + 2 * DAY)["s2"]
    assert outcome(kept) == ("keep", "unmark")
    assert "keep_last" in kept.reason


def test_delete_after_is_a_whole_second():
    now = NOW + timedelta(microseconds=300)
    d = run(
        [snap("s1", DAY), snap("s2", 10 * DAY)],
        {"gold": RetentionPolicy(keep_last=1, deferral=timedelta(0))},
        now=now,
    )
    assert d["s2"].action == "mark"
    assert d["s2"].delete_after == NOW + timedelta(seconds=1)


# ------------------------------------------------------------------------- rule 6: restore point colls


def test_collection_of_gone_vm_goes_with_its_last_restore_points():
    policy = {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=7 * DAY)}
    coll = rpc("rpc1", 90 * DAY)
    past = format_instant(NOW - timedelta(minutes=1))
    due = tags_for(**{T.EXPIRING: past})
    artifacts = [coll, rp(coll, "rp1", 60 * DAY, tags=due), rp(coll, "rp2", 50 * DAY, tags=due)]
    d = run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 20 * DAY})
    assert [d[n].action for n in ("rp1", "rp2")] == ["delete", "delete"]
    assert outcome(d["rpc1"]) == ("mark", "empty_collection")

    d = run(artifacts, policy, live=(), vm_last_seen={VM1: NOW - 3 * DAY})
    assert outcome(d["rp2"]) == ("keep", "unmark")  # newest good again, during grace
    assert outcome(d["rpc1"]) == ("keep", "collection_not_empty")


def test_collection_kept_while_a_point_remains_or_is_only_marked():
    coll = rpc("rpc1", 90 * DAY)
    artifacts = [coll, rp(coll, "rp1", 60 * DAY)]
    d = run(artifacts, {"gold": RetentionPolicy(max_age=30 * DAY, orphan_grace=DAY)}, live=())
    assert outcome(d["rp1"]) == ("mark", "max_age")
    assert outcome(d["rpc1"]) == ("keep", "collection_not_empty")


def test_empty_collection_of_live_vm():
    policy = {"gold": RetentionPolicy(keep_last=1, orphan_grace=7 * DAY)}
    d = run([rpc("fresh", DAY), rpc("stale", 30 * DAY)], policy)
    assert outcome(d["fresh"]) == ("keep", "in_progress")
    assert outcome(d["stale"]) == ("mark", "empty_collection")


def test_collection_not_ours_or_unknown_policy():
    d = run(
        [rpc("theirs", 90 * DAY, tags={T.VM: VM1}), rpc("odd", 90 * DAY, tags=tags_for(policy="x"))], live=()
    )
    assert outcome(d["theirs"]) == ("skip", "not_owned")
    assert outcome(d["odd"]) == ("keep", "unknown_policy")


# ------------------------------------------------------------------------------------ policy parsing


def test_policy_from_dict():
    policy = RetentionPolicy.from_dict(
        {"keep_last": 3, "keep_daily": 7, "max_age": "P90D", "orphan_grace": "14d", "deferral": "PT12H"}
    )
    assert policy == RetentionPolicy(
        keep_last=3, keep_daily=7, max_age=90 * DAY, orphan_grace=14 * DAY, deferral=timedelta(hours=12)
    )
    assert RetentionPolicy.from_dict({}) == RetentionPolicy()
    assert RetentionPolicy.from_dict({"max_age": None, "deferral": "P1DT6H"}).deferral == timedelta(hours=30)
    assert RetentionPolicy.from_dict({"orphan_grace": "P2W"}).orphan_grace == 14 * DAY


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keep_daily": -1}, "retention.keep_daily: must be a non-negative integer"),
        ({"keep_daily": "7"}, "retention.keep_daily: must be a non-negative integer"),
        ({"keep_daily": True}, "retention.keep_daily: must be a non-negative integer"),
        ({"keep_last": 1.5}, "retention.keep_last: must be a non-negative integer"),
        ({"keep_dayly": 7}, "retention.keep_dayly: unknown setting"),
        ({"max_age": "P1M"}, "retention.max_age: must be a duration"),
        ({"max_age": "0d"}, "retention.max_age: must be a positive duration"),
        ({"max_age": 30}, "retention.max_age: must be a duration"),
        ({"deferral": "PT"}, "retention.deferral: must be a duration"),
        ({"orphan_grace": -DAY}, "retention.orphan_grace: must be a non-negative duration"),
        ([1], "retention: must be a mapping"),
    ],
)
def test_policy_from_dict_names_the_bad_field(data, message):
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.")):
        RetentionPolicy.from_dict(data)


def test_policy_validates_on_construction_too():
    with pytest.raises(ValueError, match="retention.keep_weekly"):
        RetentionPolicy(keep_weekly=-2)


def test_instants_round_trip():
    when = datetime(2026, 11, 25, 6, 0, 0, 500, tzinfo=UTC)
    assert parse_instant(format_instant(when)) == when
    assert format_instant(NOW) == "2026-11-25T12:00:00Z"
    assert parse_instant("2026-11-25T07:00:00+01:00") == datetime(2026, 11, 25, 6, tzinfo=UTC)
    assert parse_instant("2026-11-25") is None


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="now"):
        decide([], POLICIES, set(), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="listed twice"):
        decide([snap("a", DAY), snap("a", DAY)], POLICIES, set(), NOW)
    with pytest.raises(ValueError, match="unknown kind"):
        decide([replace(snap("a", DAY), kind="disk")], POLICIES, set(), NOW)


def test_the_garbage_collector_is_left_as_it_was():
    # decide pauses the cyclic collector while it works (speed); it must restore it, errors included.
    import gc

    assert gc.isenabled()
    decide([snap("a", DAY)], POLICIES, {VM1}, NOW)
    assert gc.isenabled()
    with pytest.raises(ValueError, match="listed twice"):
        decide([snap("a", DAY), snap("a", DAY)], POLICIES, set(), NOW)
    assert gc.isenabled()
    gc.disable()
    try:
        decide([snap("a", DAY)], POLICIES, {VM1}, NOW)
        assert not gc.isenabled()  # the caller's choice stands
    finally:
        gc.enable()


def test_plan_summary():
    decisions = decide(
        [snap("s1", DAY), snap("s2", 9 * DAY), snap("s3", 9 * DAY)],
        {"gold": RetentionPolicy(keep_last=1)},
        {VM1},
        NOW,
    )
    assert plan_summary(decisions) == {
        "keep": {"newest_good": 1},
        "mark": {"not_selected": 2},
        "delete": {},
        "skip": {},
    }


# ============================================================================ properties (hypothesis)

BASE = datetime(2025, 10, 1, tzinfo=UTC)  # histories span a new year, for keep_yearly
VMS = [f"{SUB}/virtualMachines/vm{i}".lower() for i in range(2)]
INSTANCES = ["i0", "i1"]  # each VM's vmIds: deleted and created again once (the same two for both: ids never meet)
REGIONS = ["westeurope", "northeurope"]
NAMES = ["gold", "silver"]
# Per-member tag trouble (a quarter of the members have one).
TROUBLE = [
    "unmanaged",
    "hold",
    "hold_empty",
    "locked",
    "our_lock_expired",
    "our_lock_running",
    "expiring_past",
    "expiring_future",
    "expiring_bad",
    "expires_future",
    "slot_bad",
    "no_policy",
    "unknown_policy",
    "no_vm",
]


@st.composite
def policies_st(draw):
    counted = draw(st.booleans())  # else an age-only policy, where newest_good does the protecting

    def count():
        return draw(st.integers(0, 3)) if counted else 0

    return RetentionPolicy(
        keep_last=count(),
        keep_daily=count(),
        keep_weekly=count(),
        keep_monthly=count(),
        keep_yearly=count(),
        max_age=draw(st.none() | st.integers(1, 60).map(lambda d: timedelta(days=d))),
        orphan_grace=timedelta(hours=draw(st.integers(0, 24 * 10))),
        deferral=timedelta(hours=draw(st.integers(0, 48))),
    )


class History:
    """Builds one random artifact history. The details come from a seeded Random rather than from
    hypothesis draws: a draw per tag made the properties too slow, and the seed still reproduces."""

    def __init__(self, rnd: random.Random, policies: list[str], now: datetime):
        self.rnd, self.policies, self.now = rnd, policies, now
        self.artifacts: list[Artifact] = []
        self.collections: dict[str, tuple] = {}

    def instant(self) -> datetime:
        return BASE + timedelta(hours=self.rnd.randint(0, 24 * 200))

    def offset(self) -> timedelta:
        return timedelta(hours=self.rnd.randint(1, 72))

    def add_run(self, i: int) -> None:
        rnd = self.rnd
        # Copies mostly land in the second region; few lineages, so that they hold many sets.
        vm, is_copy = rnd.choice(VMS), rnd.random() < 0.3
        region = REGIONS[1] if is_copy or rnd.random() < 0.1 else REGIONS[0]
        created, policy, good = self.instant(), rnd.choice(self.policies), rnd.random() < 0.8
        # The VM's instance the run says (a third were made before vmkeeper said it).
        instance = rnd.choice([None, *INSTANCES, *INSTANCES])
        # An earlier pass may have marked the whole run; a member's own trouble can still override it.
        mark = rnd.choice([None, None, self.now - self.offset(), self.now + self.offset()])
        if rnd.random() < 0.5:  # a multi-disk snapshot set; set ids repeat, to make odd merges too
            set_id = f"run{rnd.randint(0, 9) if rnd.random() < 0.1 else i}"
            size = rnd.randint(1, 3)
            # Most sets carry SET_SIZE as the workers write it now; some predate it; a few are garbled.
            size_tag = rnd.choice([None, str(size), str(size), str(size), str(size), "x"])
            # A quarter lose members: later disks failed, a copy stopped half-way, disks were deleted.
            present = (
                range(size) if rnd.random() < 0.75 else rnd.sample(range(size), rnd.randint(0, size - 1))
            )
            for disk in present:
                if is_copy:
                    member = {T.COPY_OF: f"{SUB}/snapshots/s{i}-{disk}"}
                else:  # a twin of disk 0 sometimes: one disk counts once
                    member = {T.LUN: str(0 if rnd.random() < 0.05 else disk)}
                if size_tag is not None:
                    member[T.SET_SIZE] = size_tag
                said = instance if rnd.random() < 0.97 else rnd.choice([None, *INSTANCES])  # a few disagree
                if said:
                    member[T.VM_INSTANCE] = said.upper() if rnd.random() < 0.1 else said
                self.add(
                    f"{SUB}/snapshots/s{i}-{disk}{'-copy' if is_copy else ''}",
                    "snapshot",
                    vm,
                    region,
                    is_copy,
                    created + timedelta(seconds=rnd.randint(0, 90)),
                    good and rnd.random() < 0.9,
                    policy,
                    set_id,
                    mark,
                    member,
                )
        else:
            coll_id = (
                f"{SUB}/restorePointCollections/rpc-{VMS.index(vm)}-{region}-{is_copy}-{rnd.randint(0, 1)}"
            )
            self.collections.setdefault(coll_id, (vm, region, is_copy, created, policy))
            self.add(
                f"{coll_id}/restorePoints/rp{i}",
                "restore_point",
                vm,
                region,
                is_copy,
                created,
                good,
                policy,
                None,
                mark,
                instance=instance or "",  # a restore point's: its source metadata's vmId ("": none said)
            )

    def add_collections(self) -> None:
        for _ in range(self.rnd.randint(0, 2)):  # collections nothing points into
            vm, region = self.rnd.choice(VMS), self.rnd.choice(REGIONS)
            entry = (vm, region, False, self.instant(), self.rnd.choice(self.policies))
            self.collections.setdefault(
                f"{SUB}/restorePointCollections/empty-{VMS.index(vm)}-{region}", entry
            )
        for coll_id, (vm, region, is_copy, created, policy) in self.collections.items():
            mark = self.rnd.choice([None, None, self.now - self.offset(), self.now + self.offset()])
            born = created - timedelta(hours=self.rnd.randint(0, 48))
            self.add(coll_id, "restore_point_collection", vm, region, is_copy, born, True, policy, None, mark)

    def add(self, art_id, kind, vm, region, is_copy, created, good, policy, set_id, mark, extra=None,
            instance=None) -> None:
        tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm, T.ARTIFACT_POLICY: policy, **(extra or {})}
        if set_id:
            tags[T.SET] = set_id
        if mark:
            tags[T.EXPIRING] = format_instant(mark)
        locked = ours = False
        trouble = self.rnd.choice(TROUBLE) if self.rnd.random() < 0.25 else "ok"
        offset = self.offset()
        if trouble == "unmanaged":
            del tags[T.MANAGED_BY]
        elif trouble == "hold":
            tags[T.HOLD] = "yes"
        elif trouble == "hold_empty":
            tags[T.HOLD] = ""
        elif trouble == "locked":
            locked = True
        elif trouble in ("our_lock_expired", "our_lock_running"):
            locked = ours = True
            until = self.now - offset if trouble == "our_lock_expired" else self.now + offset
            tags[T.LOCK_UNTIL] = format_instant(until)
        elif trouble.startswith("expiring"):
            when = {"expiring_past": self.now - offset, "expiring_future": self.now + offset}.get(trouble)
            tags[T.EXPIRING] = format_instant(when) if when else "garbage"
        elif trouble == "expires_future":
            tags[T.EXPIRES] = format_instant(self.now + offset)
        elif trouble == "slot_bad":
            tags[T.SLOT] = "yesterday"
        elif trouble == "no_policy":
            del tags[T.ARTIFACT_POLICY]
        elif trouble == "unknown_policy":
            tags[T.ARTIFACT_POLICY] = "platinum"
        elif trouble == "no_vm":
            del tags[T.VM]
        artifact = Artifact(
            id=art_id,
            kind=kind,
            tags=tags,
            created=created,
            region=region,
            good=good,
            is_copy=is_copy,
            locked=locked,
            lock_is_ours_and_expired=ours,
            instance=instance,
        )
        self.artifacts.append(artifact)


SHOW_VM = f"{SUB}/virtualMachines/showcase".lower()
SHOW_POLICY = RetentionPolicy(keep_last=1, orphan_grace=timedelta(hours=1), deferral=timedelta(hours=1))


def showcase(now: datetime) -> list[Artifact]:
    """A fixed history of one more, live VM (its own policy, sets and collections, so nothing random
    touches its lineages) that yields every action on every kind: worlds carrying it can't be vacuous."""
    hours = timedelta(hours=1)
    due = {T.EXPIRING: format_instant(now - hours)}
    tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: SHOW_VM, T.ARTIFACT_POLICY: "showcase"}

    def snaps(name, age, luns=(0, 1), locked=False, **extra):
        return [
            Artifact(
                id=f"{SUB}/snapshots/{name}-{lun}",
                kind="snapshot",
                tags={**tags, T.SET: name, T.SET_SIZE: "2", T.LUN: str(lun), **extra},
                created=now - age,
                region="westeurope",
                good=True,
                locked=locked,
            )
            for lun in luns
        ]

    def collection(name, age, points=(), **extra):
        coll_id = f"{SUB}/restorePointCollections/{name}"
        out = [
            Artifact(
                id=coll_id,
                kind="restore_point_collection",
                tags={**tags, **extra},
                created=now - age,
                region="westeurope",
                good=True,
            )
        ]
        for point, point_age, point_tags in points:
            out.append(
                Artifact(
                    id=f"{coll_id}/restorePoints/{point}",
                    kind="restore_point",
                    tags={**tags, **point_tags},
                    created=now - point_age,
                    region="westeurope",
                    good=True,
                )
            )
        return out

    return [
        *snaps("show-new", 24 * hours),  # keep: newest_good
        *snaps("show-part", 12 * hours, luns=(1,)),  # keep: incomplete_no_newer_complete
        *snaps("show-due", 72 * hours, **due),  # delete: not_selected, its mark passed
        *snaps("show-old", 96 * hours),  # mark: not_selected
        *snaps("show-held", 120 * hours, **{T.HOLD: ""}),  # skip: hold (an empty value holds)
        *snaps("show-locked", 144 * hours, locked=True),  # skip: locked
        *collection(
            "show-rpc",
            240 * hours,
            [("rp-new", 24 * hours, {}), ("rp-due", 72 * hours, due), ("rp-old", 96 * hours, {})],
        ),  # keep, delete, mark
        *collection("show-held-rpc", 240 * hours, [("rp-held", 96 * hours, {})], **{T.HOLD: "x"}),  # skip
        *collection("show-empty", 240 * hours),  # mark: empty_collection
        *collection("show-empty-due", 240 * hours, **due),  # delete: empty_collection
    ]


@st.composite
def worlds(draw, with_showcase=None):
    policies = draw(st.dictionaries(st.sampled_from(NAMES), policies_st(), min_size=1))
    now = BASE + timedelta(hours=draw(st.integers(0, 24 * 200)))
    history = History(random.Random(draw(st.integers(0, 2**32))), sorted(policies), now)
    for i in range(draw(st.integers(0, 30))):
        history.add_run(i)
    history.add_collections()
    rnd = history.rnd
    artifacts = history.artifacts
    live = {vm for vm in VMS if rnd.random() < 0.5}
    last_seen = {
        vm: now - timedelta(hours=rnd.randint(0, 24 * 30))
        for vm in VMS
        if vm not in live and rnd.random() < 0.5
    }
    # Each live VM's current instance, where the listing knows it (and when it was created, where it knows that).
    instances = {vm: Instance(rnd.choice(INSTANCES), rnd.choice([None, history.instant()]))
                 for vm in live if rnd.random() < 0.7}
    if draw(st.booleans() if with_showcase is None else with_showcase):
        artifacts += showcase(now)
        policies = {**policies, "showcase": SHOW_POLICY}
        live.add(SHOW_VM)
    rnd.shuffle(artifacts)
    return artifacts, policies, live, now, last_seen, instances


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DELETING = {"delete", "mark"}


def lowered(tags):
    return {k.lower(): v for k, v in tags.items()}


def test_example_world_is_not_trivial():
    """Worlds with the showcase produce every action on every kind, whatever the random rest (guards
    against a vacuous property; no chance involved: an earlier version relied on 300 random worlds
    happening to produce a snapshot delete, and once none did)."""
    every = {
        (kind, action)
        for kind in ("snapshot", "restore_point", "restore_point_collection")
        for action in ("keep", "mark", "delete", "skip")
    }
    show_rules = {
        "newest_good",
        "incomplete_no_newer_complete",
        "not_selected",
        "hold",
        "locked",
        "collection_not_empty",
        "empty_collection",
    }

    @settings(max_examples=50, deadline=None, database=None)
    @given(worlds(with_showcase=st.just(True)))
    def each(world):
        artifacts, policies, live, now, last_seen, instances = world
        decided = list(zip(artifacts, decide(artifacts, policies, live, now, last_seen, instances=instances), strict=True))
        assert {(a.kind, d.action) for a, d in decided} == every
        shown = {d.rule for a, d in decided if lowered(a.tags).get(T.VM) == SHOW_VM}
        assert shown == show_rules

    each()


@PROPERTY
@given(worlds())
def test_never_touches_what_is_not_ours_held_or_locked(world):
    artifacts, policies, live, now, last_seen, instances = world
    for a, d in zip(artifacts, decide(artifacts, policies, live, now, last_seen, instances=instances), strict=True):
        tags = lowered(a.tags)
        lock_until = parse_instant(tags.get(T.LOCK_UNTIL))
        lock_released = a.lock_is_ours_and_expired and lock_until is not None and lock_until <= now
        if not T.is_managed(tags) or T.HOLD in tags or (a.locked and not lock_released):
            assert d.action == "skip", (a, d)
        if d.action in DELETING:
            assert tags.get(T.ARTIFACT_POLICY) in policies  # never on doubt
        if d.action == "delete":
            assert parse_instant(tags[T.EXPIRING]) < now  # only after a passed mark
            assert d.unlock == a.locked


def set_key(a: Artifact) -> tuple:
    set_id = lowered(a.tags).get(T.SET)
    if a.kind == "snapshot" and set_id:
        return (set_id, a.region, a.is_copy)
    return (a.id,)


@PROPERTY
@given(worlds())
def test_sets_are_never_split(world):
    artifacts, policies, live, now, last_seen, instances = world
    outcomes = defaultdict(set)
    for a, d in zip(artifacts, decide(artifacts, policies, live, now, last_seen, instances=instances), strict=True):
        outcomes[set_key(a)].add(d.action if d.action in DELETING else "stays")
    for key, actions in outcomes.items():
        assert len(actions) == 1, (key, actions)


def incomplete(members: list[Artifact]) -> bool:
    """Fewer distinct disks than the SET_SIZE all members agree on (garbled or mixed tags: not known)."""
    sizes = {lowered(a.tags).get(T.SET_SIZE) for a in members}
    size = sizes.pop() if len(sizes) == 1 else None
    if members[0].kind != "snapshot" or size is None or not size.isdigit():
        return False
    disks = set()
    for a in members:
        tags = lowered(a.tags)
        disks.add(tags.get(T.LUN) or tags.get(T.COPY_OF) or a.id.lower())
    return len(disks) < int(size)


def said_instance(a: Artifact) -> str:
    said = a.instance if a.instance is not None else lowered(a.tags).get(T.VM_INSTANCE)
    return (said or "").lower()


def instance_of(vm: str, said: str, time: datetime, instances) -> str:
    """The instance whose lineage a set is in: the one it says; else, as the VM's current instance's creation
    tells, that instance or an earlier one; else not known ("")."""
    current = (instances or {}).get(vm)
    if said or current is None or current.created is None:
        return said
    return current.id.lower() if time >= current.created else "(earlier)"


def by_lineage(artifacts, decisions, instances=None) -> dict[tuple, list[list[tuple[Artifact, Decision]]]]:
    """Sets of one VM, grouped by (VM, instance, kind, region, is_copy)."""
    sets = defaultdict(list)
    for a, d in zip(artifacts, decisions, strict=True):
        if a.kind != "restore_point_collection":
            sets[set_key(a)].append((a, d))
    lineages = defaultdict(list)
    for members in sets.values():
        vms = {lowered(a.tags).get(T.VM) for a, _ in members}
        said = {said_instance(a) for a, _ in members}
        if len(vms) == 1 and len(said) == 1:
            a, vm = members[0][0], vms.pop()
            instance = instance_of(vm, said.pop(), set_time(members), instances)
            lineages[(vm, instance, a.kind, a.region, a.is_copy)].append(members)
    return lineages


def current_lineage(lineage: tuple, live, instances) -> bool:
    """A lineage judged as a live VM's: of a live VM, and of its current instance (or one not known)."""
    vm, instance = lineage[:2]
    current = instances.get(vm)
    return vm in live and (current is None or instance in ("", current.id.lower()))


def good(members) -> bool:
    return all(a.good for a, _ in members) and not incomplete([a for a, _ in members])


def set_time(members) -> datetime:
    return max(a.created for a, _ in members)


@PROPERTY
@given(worlds())
def test_live_vms_keep_their_newest_good_set_in_every_lineage(world):
    artifacts, policies, live, now, last_seen, instances = world
    decisions = decide(artifacts, policies, live, now, last_seen, instances=instances)
    for lineage, sets in by_lineage(artifacts, decisions, instances).items():
        good_sets = [m for m in sets if good(m)]
        if not current_lineage(lineage, live, instances) or not good_sets:
            continue
        newest = max(set_time(m) for m in good_sets)
        newest_sets = [m for m in good_sets if set_time(m) == newest]
        assert any(all(d.action not in DELETING for _, d in m) for m in newest_sets), lineage


@PROPERTY
@given(worlds())
def test_incomplete_sets_are_never_chosen_and_stay_until_a_newer_complete_one(world):
    artifacts, policies, live, now, last_seen, instances = world
    choosing = {"newest_good", "keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"}
    decisions = decide(artifacts, policies, live, now, last_seen, instances=instances)
    for lineage, sets in by_lineage(artifacts, decisions, instances).items():
        for members in sets:
            rules = {d.reason.split(":", 1)[0] if d.rule == "unmark" else d.rule for _, d in members}
            if rules & choosing:
                assert good(members), (lineage, rules)
            if current_lineage(lineage, live, instances) and incomplete([a for a, _ in members]):
                if any(d.action in DELETING for _, d in members):
                    assert any(good(m) and set_time(m) >= set_time(members) for m in sets), lineage


@PROPERTY
@given(worlds(), st.integers(0, 2**32))
def test_each_instance_of_a_live_vm_is_judged_on_its_own(world, seed):
    """Issue 19, defect 11: the sets of one instance of a live VM are decided alike with or without its other
    instances' sets: another instance's newer points never push this one's out, nor count in its keep rules."""
    artifacts, policies, live, now, last_seen, instances = world
    decisions = decide(artifacts, policies, live, now, last_seen, instances=instances)
    lineages = by_lineage(artifacts, decisions, instances)
    owners = sorted({lineage[:2] for lineage in lineages if lineage[0] in live})
    if not owners:
        return
    vm, instance = random.Random(seed).choice(owners)
    others = {set_key(a) for lineage, sets in lineages.items() if lineage[0] == vm and lineage[1] != instance
              for members in sets for a, _ in members}
    alone = [a for a in artifacts if a.kind == "restore_point_collection" or set_key(a) not in others]
    again = dict(zip([a.id for a in alone], decide(alone, policies, live, now, last_seen, instances=instances),
                     strict=True))
    for lineage, sets in lineages.items():
        if lineage[:2] == (vm, instance):
            for members in sets:
                for a, d in members:
                    assert again[a.id] == d, (lineage, a.id, d, again[a.id])


@PROPERTY
@given(worlds())
def test_running_twice_deletes_nothing_more(world):
    assert_second_run_changes_nothing(*world)


@PROPERTY
@given(worlds(), st.integers(1, 24 * 60))
def test_marks_become_deletes_only_when_due_and_stay_consistent(world, later_hours):
    """Apply a run, then run later: whatever is deleted was marked, and its mark has passed."""
    artifacts, policies, live, now, last_seen, instances = world
    after = apply(artifacts, decide(artifacts, policies, live, now, last_seen, instances=instances))
    later = now + timedelta(hours=later_hours)
    for a, d in zip(after, decide(after, policies, live, later, last_seen, instances=instances), strict=True):
        if d.action == "delete":
            assert parse_instant(lowered(a.tags)[T.EXPIRING]) < later


# --- issue 19, defect 9: GFS buckets are the policy's local days, weeks, months and years --------------------------

def _local_sets(times: dict[str, datetime]) -> list[Artifact]:
    return [snap(name, NOW - when) for name, when in times.items()]


def test_keep_daily_counts_the_schedules_local_days_not_utc_days():
    """``daily_at 01:30`` Europe/Berlin around the spring DST change: the sets of 29 and 30 March (local)
    were taken at 00:30 and 23:30 UTC on 29 March: one UTC day, two Berlin days."""
    from shared.policy.document import load_policies

    doc = load_policies('{"version": 1, "default": "berlin", "policies": {"berlin": {"schedule": {"daily_at": "01:30", '
                        '"time_zone": "Europe/Berlin"}, "snapshots": {"luns": "all"}, "retention": {"keep_daily": 3}}}}')
    policy = doc.policies["berlin"].retention
    assert policy.time_zone == "Europe/Berlin"
    artifacts = [snap(name, NOW - when, tags=tags_for(set_id=name, policy="berlin")) for name, when in {
        "mar31": datetime(2026, 3, 30, 23, 30, tzinfo=UTC),  # 31 March 01:30 CEST
        "mar30": datetime(2026, 3, 29, 23, 30, tzinfo=UTC),  # 30 March 01:30 CEST
        "mar29": datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # 29 March 01:30 CET (the clocks go forward at 02:00)
        "mar28": datetime(2026, 3, 28, 0, 30, tzinfo=UTC),
    }.items()]
    d = run(artifacts, {"berlin": policy})
    assert outcome(d["mar31"]) == ("keep", "newest_good")
    assert outcome(d["mar30"]) == ("keep", "keep_daily")
    assert outcome(d["mar29"]) == ("keep", "keep_daily")  # its own Berlin day (UTC: the same day as mar30)
    assert outcome(d["mar28"]) == ("mark", "not_selected")  # keep_daily = 3: 31, 30 and 29 March
    utc = run(artifacts, {"berlin": replace(policy, time_zone="UTC")})
    assert outcome(utc["mar29"]) == ("mark", "not_selected")  # what UTC days did: one bucket for two days


def test_weekly_monthly_yearly_buckets_are_local_too():
    """Sets at 01:30 local time, hours before midnight UTC: each falls in the local week, month and year."""
    weekly = RetentionPolicy(keep_weekly=3, time_zone="Europe/Berlin")
    artifacts = _local_sets({
        "now": NOW - timedelta(hours=1),  # ISO week 48
        "mon-w45": datetime(2026, 11, 1, 23, 30, tzinfo=UTC),  # Monday 2 November 00:30 CET: ISO week 45
        "sun-w44": datetime(2026, 11, 1, 0, 30, tzinfo=UTC),  # Sunday 1 November: week 44 (UTC: both are)
    })
    assert outcome(run(artifacts, {"gold": weekly})["mon-w45"]) == ("keep", "keep_weekly")
    assert outcome(run(artifacts, {"gold": weekly})["sun-w44"]) == ("keep", "keep_weekly")
    assert outcome(run(artifacts, {"gold": replace(weekly, time_zone="UTC")})["sun-w44"]) == ("mark", "not_selected")

    months = _local_sets({
        "now": NOW - timedelta(hours=1),
        "apr1": datetime(2026, 3, 31, 23, 30, tzinfo=UTC),  # 1 April 01:30 CEST
        "mar31": datetime(2026, 3, 30, 23, 30, tzinfo=UTC),  # 31 March: UTC puts both in March
    })
    monthly = RetentionPolicy(keep_monthly=3, time_zone="Europe/Berlin")
    assert outcome(run(months, {"gold": monthly})["mar31"]) == ("keep", "keep_monthly")
    assert outcome(run(months, {"gold": replace(monthly, time_zone="UTC")})["mar31"]) == ("mark", "not_selected")

    years = _local_sets({
        "now": NOW - timedelta(hours=1),
        "jan1": datetime(2025, 12, 31, 12, 30, tzinfo=UTC),  # 1 January 2026 01:30 in Auckland (UTC+13)
        "dec31": datetime(2025, 12, 30, 12, 30, tzinfo=UTC),  # 31 December 2025
    })
    yearly = RetentionPolicy(keep_yearly=3, time_zone="Pacific/Auckland")
    assert outcome(run(years, {"gold": yearly})["dec31"]) == ("keep", "keep_yearly")
    assert outcome(run(years, {"gold": replace(yearly, time_zone="UTC")})["dec31"]) == ("mark", "not_selected")


def test_an_unknown_retention_time_zone_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="retention.time_zone"):
        RetentionPolicy(keep_daily=1, time_zone="Mars/Olympus_Mons")


# --- issue 19: pins (shared/points/pins.py) -------------------------------------------------------------------------
@PROPERTY
@given(worlds(), st.integers(0, 2**32), st.integers(-48, 48))
def test_a_pinned_set_is_never_marked_or_deleted_and_pins_change_no_other_set(world, seed, bound_hours):
    """Random pins (on artifacts by id, on snapshot sets, on restore points by name; some past their bound):
    every artifact of a set a live pin holds is neither marked nor deleted, sets stay whole, and every other
    artifact but a collection (which keeps a pinned point) is decided as without pins."""
    from shared.points.pins import Pin, PinIndex

    artifacts, policies, live, now, last_seen, instances = world
    rnd = random.Random(seed)
    picked = rnd.sample(artifacts, min(len(artifacts), rnd.randint(0, 6)))
    until = now + timedelta(hours=bound_hours)
    pins = [Pin("in use", until, ids=frozenset({a.id.lower()})) if rnd.random() < 0.5 else
            Pin("in use", until, sets=frozenset({str(lowered(a.tags).get(T.SET) or "").lower()} - {""}),
                points=frozenset({a.id.rsplit("/", 1)[-1].lower()} if a.kind == "restore_point" else ()))
            for a in picked]
    plain = decide(artifacts, policies, live, now, last_seen, instances=instances)
    pinned = decide(artifacts, policies, live, now, last_seen, pins=pins, instances=instances)
    index = PinIndex(pins, now)
    held_sets = {set_key(a) for a in artifacts if index.find(a.id, lowered(a.tags).get(T.SET) if a.kind == "snapshot"
                                                             else None)}
    outcomes = defaultdict(set)
    for a, before, after in zip(artifacts, plain, pinned, strict=True):
        outcomes[set_key(a)].add(after.action if after.action in DELETING else "stays")
        if set_key(a) in held_sets:
            assert after.action not in DELETING, (a, after)
            if before.action in DELETING:
                assert after.rule == "pinned" and after.delete_after == (parse_instant(lowered(a.tags).get(T.EXPIRING)))
        elif a.kind != "restore_point_collection":
            assert after == before
    assert all(len(actions) == 1 for actions in outcomes.values())
    if until <= now:
        assert pinned == plain  # past its bound, a pin pins nothing
