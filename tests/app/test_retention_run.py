"""A retention pass against local Azure: the engine's decisions applied through the real SDK,
with deferred deletion (mark, then delete), holds, locks, dry run and faults on deletes."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import (
    CreationData,
    RestorePoint,
    RestorePointCollection,
    RestorePointCollectionSourceProperties,
    Snapshot,
    SnapshotUpdate,
)
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.locks.models import ManagementLockObject
from azure.mgmt.resource.resources.models import Tags, TagsPatchResource

from emulator.testing import StaticCredential
from shared import tags as T
from shared.azure import pacing
from shared.azure.ledger import Ledger
from shared.instants import parse_instant
from shared.policy.retention import RetentionPolicy
from shared.retention.service import Retention
from shared.schedule.planner import DiskRef, restore_point_name, snapshot_name
from shared.wiring import Wiring


@pytest.fixture
def world(az, emu, sub, compute, azurite):
    from azure.data.tables import TableClient

    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    disks = [DiskRef(vm.storage_profile.os_disk.managed_disk.id, "", None)] + [
        DiskRef(d.managed_disk.id, "", d.lun) for d in vm.storage_profile.data_disks]

    def snapshot_set(slot: str, extra: dict | None = None, owned: bool = True, by_hand: bool = False) -> list[str]:
        """A set as vmkeeper names and tags it (``by_hand``: tags copied, named by hand; not ``owned``: neither)."""
        names = []
        for i, disk in enumerate(disks):
            tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold", T.SLOT: slot,
                    T.SET: f"set-{slot}", T.LUN: str(disk.lun)} if owned else {"owner": "someone-else"}
            tags.update(extra or {})
            name = (snapshot_name(vm.name, disk, parse_instant(slot)) if owned and not by_hand else
                    f"s-{slot[:13].replace(':', '')}-{i}")
            compute.snapshots.begin_create_or_update("rg-vm-00", name, Snapshot(
                location=vm.location, tags=tags, incremental=True,
                creation_data=CreationData(create_option="Copy", source_resource_id=disk.id))).result()
            names.append(name)
            az.advance(61)  # stay under 7 incremental snapshots per disk per 5 minutes
        return names

    table = lambda name: TableClient.from_connection_string(azurite.connection_string, f"{name}{uuid.uuid4().hex[:8]}")  # noqa: E731
    ledger = Ledger(table("ledger"))
    budget = pacing.WriteBudget(table("budget"), rate=50, burst=100)
    arm = Wiring({"VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path},
                 credential=StaticCredential(), arm_options={"retry_backoff_factor": 0.01}).arm
    retention = Retention(arm, ledger, budget, [sub])

    def run(now_offset_hours: float, dry_run: bool = False, policy: RetentionPolicy | None = None):
        now = emu.clock.now() + timedelta(hours=now_offset_hours)
        policies = {"gold": policy or RetentionPolicy(keep_last=1, deferral=timedelta(hours=24))}
        return retention.run(now, policies, dry_run=dry_run)

    def names() -> set[str]:
        az.advance(1)  # deletes are long-running: let the accepted ones finish (the emulator's clock)
        return {s.name for s in compute.snapshots.list_by_resource_group("rg-vm-00")}

    def collection(name: str) -> str:
        """A restore point collection as vmkeeper's worker makes it (its tags, sourced from the VM)."""
        return compute.restore_point_collections.create_or_update("rg-vm-00", name, RestorePointCollection(
            location=vm.location, source=RestorePointCollectionSourceProperties(id=vm.id),
            tags={T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold"})).id

    def point(collection_name: str, name: str) -> str:
        rp = compute.restore_points.begin_create("rg-vm-00", collection_name, name,
                                                 RestorePoint(consistency_mode="CrashConsistent")).result()
        az.advance(60)
        return rp.id

    def points(collection_name: str) -> set[str]:
        az.advance(1)
        rpc = compute.restore_point_collections.get("rg-vm-00", collection_name, expand="restorePoints")
        return {p.name for p in rpc.restore_points or []}

    def at(hours: float):
        return emu.clock.now() + timedelta(hours=hours)

    def gold(policy: RetentionPolicy | None = None) -> dict[str, RetentionPolicy]:
        return {"gold": policy or RetentionPolicy(keep_last=1, deferral=timedelta(hours=24))}

    def retention_with(budget) -> Retention:
        return Retention(arm, ledger, budget, [sub])

    return {"snapshot_set": snapshot_set, "run": run, "names": names, "ledger": ledger, "vm": vm, "arm": arm,
            "retention": retention, "collection": collection, "point": point, "points": points, "at": at,
            "gold": gold, "retention_with": retention_with, "table": table}


def _run_id(now) -> str:
    return "run-" + now.strftime("%Y%m%dT%H%M%S")


def test_mark_then_delete_only_expired_owned_sets(world, compute):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    new = world["snapshot_set"]("2026-11-21T00:00:00Z")
    foreign = world["snapshot_set"]("2026-11-19T00:00:00Z", owned=False)
    _, first = world["run"](0)
    assert first.marked == len(old) and first.deleted == 0
    assert all(T.EXPIRING in compute.snapshots.get("rg-vm-00", n).tags for n in old)
    _, early = world["run"](1)  # within the 24 h deferral: nothing goes
    assert early.deleted == 0 and world["names"]() >= set(old)
    _, second = world["run"](25)
    assert second.deleted == len(old)
    assert world["names"]() == set(new) | set(foreign)
    _, third = world["run"](26)
    assert third.deleted == 0 and third.marked == 0  # running again deletes nothing more


def test_hold_and_lock_stop_a_deletion_and_dry_run_deletes_nothing(world, az, sub, compute):
    held = world["snapshot_set"]("2026-11-18T00:00:00Z", extra={T.HOLD: "case-42"})
    locked = world["snapshot_set"]("2026-11-19T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    snap = compute.snapshots.get("rg-vm-00", locked[0])
    az.client(ManagementLockClient, sub).management_locks.create_or_update_by_scope(
        snap.id, "legal", ManagementLockObject(level="CanNotDelete"))
    decisions, dry = world["run"](0, dry_run=True)
    assert dry.marked == 0 and dry.deleted == 0
    by_id = {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}
    assert {by_id[n].rule for n in held} == {"hold"}
    assert by_id[locked[0]].rule == "locked" and by_id[locked[1]].rule == "set_member_kept"
    world["run"](0)
    world["run"](30)
    assert world["names"]() >= set(held) | set(locked)


def test_faults_on_deletes_delete_nothing_twice_and_nothing_wrong(world, az):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    new = world["snapshot_set"]("2026-11-21T00:00:00Z")
    world["run"](0)
    az.faults([{"kind": "500", "method": "DELETE", "probability": 0.5},
               {"kind": "reset", "method": "DELETE", "probability": 0.2}], seed=3)
    for hours in (25, 26, 27, 28, 29, 30):
        world["run"](hours)
        az.advance(1)  # passes are hours apart: a delete accepted by one has ended before the next (the emulator's clock)
    az.faults([])
    world["run"](31)
    assert world["names"]() == set(new)
    deletes = [c for c in az.calls() if c["method"] == "DELETE" and c["status"] in (200, 202)]
    assert len({c["path"].lower() for c in deletes}) == len(deletes) == len(old)


def test_the_timer_function_runs_a_dry_pass_from_app_settings(world, az, sub, azurite, tmp_path, monkeypatch):
    import importlib
    import json

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from emulator.testing import StaticCredential
    from shared import wiring

    world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps({"version": 1, "default": "gold", "policies": {
        "gold": {"schedule": {"every_hours": 24}, "snapshots": {"luns": "all"}, "retention": {"keep_last": 1}}}}))
    ledger_table = f"ledger{uuid.uuid4().hex[:8]}"
    for name, value in {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                        "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_RETENTION_DRY_RUN": "true",
                        "VMKEEPER_LEDGER_TABLE": ledger_table, "VMKEEPER_RETENTION_SCHEDULE": "0 0 3 * * *",
                        "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path}.items():
        monkeypatch.setenv(name, value)
    wiring.use(wiring.Wiring(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string)
    before = world["names"]()
    host.fire_timer("retention_pass")
    host.close()
    assert world["names"]() == before  # a dry run deletes nothing and marks nothing
    from azure.data.tables import TableClient

    rows = list(TableClient.from_connection_string(azurite.connection_string, ledger_table).list_entities())
    assert len(rows) == len(before) and all(r["dryRun"] for r in rows)


def test_retention_lifts_only_its_own_expired_locks(world, az, sub, compute):
    own = world["snapshot_set"]("2026-11-18T00:00:00Z", extra={T.LOCK_UNTIL: "2026-11-19T00:00:00Z"})
    foreign = world["snapshot_set"]("2026-11-19T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    locks = az.client(ManagementLockClient, sub).management_locks
    for name in own:
        locks.create_or_update_by_scope(compute.snapshots.get("rg-vm-00", name).id, T.OWN_LOCK,
                                        ManagementLockObject(level="CanNotDelete"))
    locks.create_or_update_by_scope(compute.snapshots.get("rg-vm-00", foreign[0]).id, "legal",
                                    ManagementLockObject(level="CanNotDelete"))
    world["run"](0)
    world["run"](25)
    names = world["names"]()
    assert not set(own) & names  # expired, ours, lock date passed: lifted and deleted
    assert set(foreign) <= names  # someone else's lock: never lifted
    assert [lk.name for lk in locks.list_at_subscription_level()] == ["legal"]


# --- defect 1: only vmkeeper's own tag is written; a fresh look right before each delete -------------------------
def test_marks_and_unmarks_write_only_vmkeepers_tag_so_tags_added_since_the_listing_stay(world, compute, resources):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    retention, now = world["retention"], world["at"](0)
    listing = retention.listing(now)
    snap = compute.snapshots.get("rg-vm-00", old[0])  # an operator tags it after the pass listed it
    compute.snapshots.begin_update("rg-vm-00", old[0], SnapshotUpdate(tags={**snap.tags, "ticket": "INC-7"})).result()
    applied = retention.apply(retention.decide(listing, now, world["gold"]()), listing, now)
    assert applied.marked == len(old)
    tags = compute.snapshots.get("rg-vm-00", old[0]).tags
    assert tags["ticket"] == "INC-7" and T.EXPIRING in tags

    later = world["at"](1)  # the policy changes: the set is retained again, its mark removed
    listing = retention.listing(later)
    resources.tags.begin_update_at_scope(snap.id, TagsPatchResource(operation="Merge", properties=Tags(
        tags={"owner": "db-team"}))).result()
    applied = retention.apply(retention.decide(listing, later, world["gold"](RetentionPolicy(keep_last=2))), listing, later)
    assert applied.unmarked == len(old)
    tags = compute.snapshots.get("rg-vm-00", old[0]).tags
    assert tags["ticket"] == "INC-7" and tags["owner"] == "db-team" and T.EXPIRING not in tags
    assert all(T.EXPIRING not in compute.snapshots.get("rg-vm-00", n).tags for n in old)


def test_a_fresh_look_before_each_delete_keeps_what_was_held_locked_or_unmarked_since_the_listing(
        world, az, sub, compute, resources):
    held = world["snapshot_set"]("2026-11-17T00:00:00Z")
    locked = world["snapshot_set"]("2026-11-18T00:00:00Z")
    unmarked = world["snapshot_set"]("2026-11-19T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    world["run"](0)  # marks the three older sets
    retention, now = world["retention"], world["at"](25)
    listing = retention.listing(now)
    decisions = retention.decide(listing, now, world["gold"]())
    doomed = {d.artifact_id.rsplit("/", 1)[-1] for d in decisions if d.action == "delete"}
    assert doomed == set(held) | set(locked) | set(unmarked)
    # Since the listing: a hold with an empty value, someone else's lock, the mark taken off.
    ids = {n: compute.snapshots.get("rg-vm-00", n).id for n in held + locked + unmarked}
    resources.tags.begin_update_at_scope(ids[held[0]], TagsPatchResource(operation="Merge", properties=Tags(
        tags={T.HOLD: ""}))).result()
    az.client(ManagementLockClient, sub).management_locks.create_or_update_by_scope(
        ids[locked[1]], "legal", ManagementLockObject(level="CanNotDelete"))
    expiring = compute.snapshots.get("rg-vm-00", unmarked[0]).tags[T.EXPIRING]
    resources.tags.begin_update_at_scope(ids[unmarked[0]], TagsPatchResource(operation="Delete", properties=Tags(
        tags={T.EXPIRING: expiring}))).result()

    applied = retention.apply(decisions, listing, now)
    assert applied.deleted == 0 and not applied.errors
    assert applied.fresh_kept == len(held) + len(locked) + len(unmarked)  # sets are kept whole
    assert world["names"]() >= set(doomed)
    rule = lambda name: world["ledger"].get(_run_id(now), ids[name])["rule"]  # noqa: E731
    assert (rule(held[0]), rule(locked[1]), rule(unmarked[0])) == (
        "fresh_look_hold", "fresh_look_locked", "fresh_look_unmarked")
    assert rule(held[1]) == "fresh_look_set_member_kept"


def test_a_fresh_look_sees_a_hold_put_on_a_restore_points_collection_since_the_listing(world, compute, resources):
    rpc_id = world["collection"]("vmk-rpc-fresh")
    vm_id = world["vm"].id
    old = restore_point_name(vm_id, datetime(2026, 11, 20, tzinfo=UTC))
    new = restore_point_name(vm_id, datetime(2026, 11, 21, tzinfo=UTC))
    world["point"]("vmk-rpc-fresh", old)
    world["point"]("vmk-rpc-fresh", new)
    world["run"](0)  # marks the older point (in the ledger)
    retention, now = world["retention"], world["at"](25)
    listing = retention.listing(now)
    decisions = retention.decide(listing, now, world["gold"]())
    assert [d.artifact_id.rsplit("/", 1)[-1] for d in decisions if d.action == "delete"] == [old]
    resources.tags.begin_update_at_scope(rpc_id, TagsPatchResource(operation="Merge", properties=Tags(
        tags={T.HOLD: "case-9"}))).result()
    applied = retention.apply(decisions, listing, now)
    assert applied.deleted == 0 and applied.fresh_kept == 1
    assert world["points"]("vmk-rpc-fresh") == {old, new}
    assert world["ledger"].get(_run_id(now), f"{rpc_id}/restorePoints/{old}")["rule"] == "fresh_look_hold"


# --- defect 2: a collection Resource Graph still lists but that is gone ------------------------------------------
def test_a_collection_deleted_after_resource_graph_listed_it_is_skipped_and_the_pass_goes_on(world, az, compute):
    world["collection"]("vmk-rpc-gone")
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    graph_calls = lambda: [c for c in az.calls() if c["method"] == "POST" and "resourcegraph" in c["path"].lower()]  # noqa: E731
    before = len(graph_calls())
    # Resource Graph answers slowly; while its third query's (the collections') answer is on its way, the
    # collection is deleted: the pass then reads a collection that is gone (as with Resource Graph's lag).
    az.faults([{"kind": "slow", "method": "POST", "path": "(?i)resourcegraph", "delay_ms": 1500, "probability": 1}])

    def delete_once_listed() -> None:
        deadline = time.monotonic() + 30
        while len(graph_calls()) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        compute.restore_point_collections.begin_delete("rg-vm-00", "vmk-rpc-gone").result()

    deleter = threading.Thread(target=delete_once_listed)
    deleter.start()
    try:
        decisions, applied = world["run"](0)
    finally:
        deleter.join()
        az.faults([])
    with pytest.raises(ResourceNotFoundError):
        compute.restore_point_collections.get("rg-vm-00", "vmk-rpc-gone")
    assert applied.marked == len(old) and not applied.errors
    assert not [d for d in decisions if "vmk-rpc-gone" in d.artifact_id]


# --- defect 3: an empty collection has its own creation time -----------------------------------------------------
def test_a_gone_vms_empty_collection_and_last_set_go_after_orphan_grace_and_deferral(world, compute):
    last = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["collection"]("vmk-rpc-empty")
    compute.virtual_machines.begin_delete("rg-vm-00", world["vm"].name).result()
    policy = RetentionPolicy(max_age=timedelta(days=2), orphan_grace=timedelta(days=1), deferral=timedelta(hours=24))
    _, within = world["run"](20, policy=policy)  # within the grace: all kept
    assert within.marked == 0 and within.deleted == 0
    _, marked = world["run"](49, policy=policy)  # grace and max_age passed: marked
    assert marked.marked == len(last) + 1
    _, early = world["run"](60, policy=policy)  # the mark holds, nothing moves
    assert early.deleted == 0 and early.unmarked == 0
    _, done = world["run"](74, policy=policy)  # deferral passed: deleted
    assert done.deleted == len(last) + 1
    assert not set(last) & world["names"]()
    with pytest.raises(ResourceNotFoundError):
        compute.restore_point_collections.get("rg-vm-00", "vmk-rpc-empty")


# --- defect 4: only points vmkeeper named are vmkeeper's ---------------------------------------------------------
def test_a_restore_point_made_by_hand_in_vmkeepers_collection_is_not_vmkeepers(world):
    world["collection"]("vmk-rpc-mixed")
    vm_id = world["vm"].id
    world["point"]("vmk-rpc-mixed", "before-patch-tuesday")  # by hand, and the oldest
    forged = "vmk-rp-202611190000-00000000"  # vmkeeper's form, but not a name vmkeeper derives
    world["point"]("vmk-rpc-mixed", forged)
    old = restore_point_name(vm_id, datetime(2026, 11, 20, tzinfo=UTC))
    new = restore_point_name(vm_id, datetime(2026, 11, 21, tzinfo=UTC))
    world["point"]("vmk-rpc-mixed", old)
    world["point"]("vmk-rpc-mixed", new)
    decisions, _ = world["run"](0)
    rules = {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule) for d in decisions}
    assert rules["before-patch-tuesday"] == rules[forged] == ("skip", "not_owned")
    assert rules[old][0] == "mark" and rules[new] == ("keep", "newest_good")
    for hours in (25, 26):
        world["run"](hours)
    assert world["points"]("vmk-rpc-mixed") == {"before-patch-tuesday", forged, new}  # the collection stays too


def test_a_snapshot_made_by_hand_with_vmkeepers_tags_copied_joins_no_set_and_survives_its_lookalikes_deletion(
        world, compute):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    # An operator's snapshot of the OS disk, every tag of vmkeeper's set copied onto it (its set id, slot, LUN).
    source = compute.snapshots.get("rg-vm-00", old[0])
    compute.snapshots.begin_create_or_update("rg-vm-00", "before-upgrade", Snapshot(
        location=source.location, tags=dict(source.tags), incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=source.creation_data.source_resource_id))
    ).result()
    decisions, first = world["run"](0)
    rules = {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule) for d in decisions}
    assert rules["before-upgrade"] == ("skip", "not_owned")
    assert {rules[n] for n in old} == {("mark", "not_selected")} and first.marked == len(old)
    assert T.EXPIRING not in compute.snapshots.get("rg-vm-00", "before-upgrade").tags
    _, second = world["run"](25)
    assert second.deleted == len(old)
    left = world["names"]()
    assert "before-upgrade" in left and not set(old) & left


# --- defect 5: every ARM write takes from the budget -------------------------------------------------------------
def test_marks_take_from_the_budget_and_wait_for_the_next_pass_when_it_is_spent(world, compute):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    clock = [1_000_000.0]
    budget = pacing.WriteBudget(world["table"]("budget"), rate=1, burst=len(old) - 1, clock=lambda: clock[0])
    retention, now = world["retention_with"](budget), world["at"](0)
    _, first = retention.run(now, world["gold"]())
    assert first.marked == len(old) - 1 and first.deferred == 1
    assert sum(T.EXPIRING in compute.snapshots.get("rg-vm-00", n).tags for n in old) == len(old) - 1
    clock[0] += 100  # the bucket refills
    _, second = retention.run(now, world["gold"]())
    assert second.marked == 1 and second.deferred == 0  # a mark already in place is not written again
    assert all(T.EXPIRING in compute.snapshots.get("rg-vm-00", n).tags for n in old)


def test_without_system_data_a_collections_time_is_the_one_first_recorded(world):
    from azure.mgmt.compute.models import RestorePointCollection as Rpc

    from shared.retention.service import _collection_created

    rpc = Rpc(location="westeurope")  # as a service that sends no systemData answers
    rpc.id = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Compute/restorePointCollections/no-system-data"
    t0, t1 = world["at"](0), world["at"](5)
    point = t0 - timedelta(hours=3)
    assert _collection_created(rpc, [point, t0], world["ledger"], t0) == point  # its oldest point, recorded
    assert _collection_created(rpc, [], world["ledger"], t1) == point  # empty later: the time does not move


def test_lifting_vmkeepers_own_lock_takes_from_the_budget_with_the_delete(world, az, sub, compute):
    own = world["snapshot_set"]("2026-11-18T00:00:00Z", extra={T.LOCK_UNTIL: "2026-11-19T00:00:00Z"})
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    locks = az.client(ManagementLockClient, sub).management_locks
    for name in own:
        locks.create_or_update_by_scope(compute.snapshots.get("rg-vm-00", name).id, T.OWN_LOCK,
                                        ManagementLockObject(level="CanNotDelete"))
    clock = [1_000_000.0]
    # Room for every member's two writes (its lock, then itself) but the last member's.
    budget = pacing.WriteBudget(world["table"]("budget"), rate=1, burst=2 * len(own) - 1, clock=lambda: clock[0])
    retention = world["retention_with"](budget)
    retention.run(world["at"](0), world["gold"]())  # marks (writes: a bucket of their own here)
    clock[0] += 1000
    _, spent = retention.run(world["at"](25), world["gold"]())
    assert spent.deleted == len(own) - 1 and spent.deferred == 1
    assert len(set(own) & world["names"]()) == 1
    assert len([lk for lk in locks.list_at_subscription_level() if lk.name == T.OWN_LOCK]) == 1  # its lock stands
    clock[0] += 1000
    _, rest = retention.run(world["at"](26), world["gold"]())
    assert rest.deleted == 1 and not set(own) & world["names"]()


def test_deletions_raise_one_retention_alert_per_deleted_set(world, sub):
    """vmkeeper.retention.deleted: one event per set deleted, about its VM, listing each point with its rule;
    a pass that deletes nothing raises nothing."""
    import json

    from shared.alerts import events as A
    from shared.alerts.outbox import Alerts

    outbox = world["table"]("alerts")
    outbox.create_table()  # so "no alert yet" can be read as an empty table
    ledger, budget = world["ledger"], pacing.WriteBudget(world["table"]("budget"), rate=50, burst=100)
    retention = Retention(world["arm"], ledger, budget, [sub], alerts=Alerts(outbox, None, "/vmkeeper/test"))
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")

    def run(hours: float):
        return retention.run(world["at"](hours), world["gold"]())[1]

    assert run(0).deleted == 0 and list(outbox.list_entities()) == []  # marks only: nothing deleted, nothing said
    assert run(25).deleted == len(old)
    run(26)  # nothing more to delete
    (row,) = outbox.list_entities()
    event = json.loads(row["event"])
    assert event["type"] == A.RETENTION_DELETED and event["subject"] == world["vm"].id.lower()
    deleted = event["data"]["deleted"]
    assert sorted(d["id"].rsplit("/", 1)[-1] for d in deleted) == sorted(old)
    assert all(d["rule"] and d["reason"] and d["kind"] == "snapshot" for d in deleted)


# --- issue 19, defect 10: two passes at once raise one alert per deletion -------------------------------------------
def test_two_retention_passes_at_once_raise_one_alert_per_deleted_set(world, sub, compute):
    """Two passes a second apart (a slow pass still running when the timer fires again) list the same expired
    sets and apply at once, in two threads: one deletes a set, the other deletes it too or finds it gone.
    Each deletion is said once, whichever pass says it."""
    import json

    from shared.alerts import events as A
    from shared.alerts.outbox import Alerts

    outbox = world["table"]("alerts")
    outbox.create_table()
    alerts = Alerts(outbox, None, "/vmkeeper/test")
    old = world["snapshot_set"]("2026-11-19T00:00:00Z")
    older = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    world["run"](0)  # marks both older sets
    passes = [Retention(world["arm"], world["ledger"], pacing.WriteBudget(world["table"]("budget"), rate=50, burst=100),
                        [sub], alerts=alerts) for _ in range(2)]
    nows = [world["at"](25), world["at"](25) + timedelta(seconds=1)]
    listings = [p.listing(now) for p, now in zip(passes, nows, strict=True)]
    decisions = [p.decide(listing, now, world["gold"]()) for p, listing, now in zip(passes, listings, nows, strict=True)]
    assert all(sum(d.action == "delete" for d in ds) == len(old) + len(older) for ds in decisions)
    start, results, errors = threading.Barrier(2), [None, None], []

    def apply(i: int) -> None:
        try:
            start.wait(timeout=30)
            results[i] = passes[i].apply(decisions[i], listings[i], nows[i])
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not (set(old) | set(older)) & world["names"]()
    assert all(set(r.gone) for r in results)  # each pass deleted, or found gone, what it listed
    events = [json.loads(row["event"]) for row in outbox.list_entities()]
    assert [e["type"] for e in events] == [A.RETENTION_DELETED] * 2  # two sets deleted: two events, not four
    said = sorted(d["id"].rsplit("/", 1)[-1] for e in events for d in e["data"]["deleted"])
    assert said == sorted(old + older)  # each deletion listed once


# --- issue 19, defect 2: a restore (or a drill's) pending or running pins the point it reads -------------------------
def test_a_restore_pending_or_running_pins_its_point_until_it_ends_or_its_bound(world, sub, compute):
    """A restore accepted from an expired set keeps it (rule pinned), even one already marked and past its
    deferral: the mark stays, and the set goes once the restore has ended. A restore that crashed (running,
    its last step begun longer ago than a step may take) pins nothing."""
    from shared.instants import format_instant
    from shared.restore.records import PENDING, RUNNING, SUCCEEDED, Record, Records

    marked = world["snapshot_set"]("2026-11-18T00:00:00Z", extra={T.SET: "a1a1a1a1a1a1a1a1"})
    pending = world["snapshot_set"]("2026-11-19T00:00:00Z", extra={T.SET: "b2b2b2b2b2b2b2b2"})
    crashed = world["snapshot_set"]("2026-11-20T00:00:00Z", extra={T.SET: "c3c3c3c3c3c3c3c3"})
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    restores_table = world["table"]("restores")
    records = Records(restores_table)
    retention = Retention(world["arm"], world["ledger"], pacing.WriteBudget(world["table"]("budget"), rate=50, burst=100),
                          [sub], restores=restores_table)
    vm = world["vm"]

    def restore(restore_id: str, set_id: str, names: list[str], state: str, began) -> None:
        ids = [compute.snapshots.get("rg-vm-00", n).id for n in names]
        record = Record(restore_id, PENDING, {"vm": vm.id, "recovery_point": f"snapshot-set:{set_id}:{vm.location}",
                                              "target": {"type": "disks", "resource_group": "rg-restore"}},
                        {"disks": [{"source_id": i} for i in ids]}, "ops", format_instant(began))
        records.insert(record)
        if state != PENDING:
            records.change(restore_id, lambda r: setattr(r, "state", state) or r.steps.append(
                {"name": "create_disks", "started_at": format_instant(began), "finished_at": None}) or True)

    def run(hours: float) -> dict[str, tuple[str, str]]:
        decisions, applied = retention.run(world["at"](hours), world["gold"]())
        assert not applied.errors
        return {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule) for d in decisions}

    run(-30)  # the three older sets are marked, a day and more ago
    restore("r-marked", "a1a1a1a1a1a1a1a1", marked, RUNNING, world["at"](-1))
    restore("r-pending", "b2b2b2b2b2b2b2b2", pending, PENDING, world["at"](0))
    restore("r-crashed", "c3c3c3c3c3c3c3c3", crashed, RUNNING, world["at"](-30))  # longer than a step may take
    decided = run(0)  # every mark has passed: on main all three sets were deleted here
    assert {decided[n] for n in marked + pending} == {("keep", "pinned")}
    assert {decided[n] for n in crashed} == {("delete", "not_selected")}  # a crashed restore holds nothing for ever
    names = world["names"]()
    assert set(marked) | set(pending) <= names and not set(crashed) & names
    assert all(T.EXPIRING in compute.snapshots.get("rg-vm-00", n).tags for n in marked + pending)  # marks stay

    for restore_id in ("r-marked", "r-pending"):
        records.change(restore_id, lambda r: setattr(r, "state", SUCCEEDED) or True)
    decided = run(1)
    assert {decided[n] for n in marked + pending} == {("delete", "not_selected")}  # the pins ended: they go
    assert not (set(marked) | set(pending)) & world["names"]()


def test_a_restore_accepted_after_the_listing_is_seen_right_before_the_delete(world, sub, compute):
    """The pins are read again right before each set's delete: a restore accepted between the pass's listing
    and its delete keeps the set (rule pinned in the ledger), and the next pass after it ends deletes it."""
    from shared.instants import format_instant
    from shared.restore.records import PENDING, SUCCEEDED, Record, Records

    old = world["snapshot_set"]("2026-11-20T00:00:00Z", extra={T.SET: "d4d4d4d4d4d4d4d4"})
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    restores_table = world["table"]("restores")
    retention = Retention(world["arm"], world["ledger"], pacing.WriteBudget(world["table"]("budget"), rate=50, burst=100),
                          [sub], restores=restores_table)
    retention.run(world["at"](0), world["gold"]())  # marks the older set
    now = world["at"](25)
    listing = retention.listing(now)
    decisions = retention.decide(listing, now, world["gold"]())
    assert {d.action for d in decisions if d.artifact_id.rsplit("/", 1)[-1] in old} == {"delete"}
    records = Records(restores_table)
    records.insert(Record("r-late", PENDING, {"vm": world["vm"].id, "recovery_point": f"snapshot-set:d4d4d4d4d4d4d4d4:"
                                              f"{world['vm'].location}", "target": {"type": "disks"}},
                          {"disks": []}, "ops", format_instant(now)))
    applied = retention.apply(decisions, listing, now)
    assert applied.deleted == 0 and applied.fresh_kept == len(old) and not applied.errors
    assert set(old) <= world["names"]()
    row = world["ledger"].get(_run_id(now), compute.snapshots.get("rg-vm-00", old[0]).id)
    assert row["rule"] == "pinned" and "restore r-late is pending" in row["reason"]
    records.change("r-late", lambda r: setattr(r, "state", SUCCEEDED) or True)
    _, after = retention.run(world["at"](26), world["gold"]())
    assert after.deleted == len(old) and not set(old) & world["names"]()


def test_the_report_reads_deletions_from_the_ledger_when_no_alert_said_them(world, sub):
    """Issue 23: a pass without an alerts outbox (or whose alert was lost) still records each delete in its run's
    ledger rows; the report's "Deleted by retention" reads them: each snapshot, its VM, rule and the pass's time."""
    from shared.alerts.outbox import Alerts
    from shared.compliance.service import ComplianceService
    from shared.report.service import Reports
    from shared.restore.records import Records
    from shared.settings import ComplianceSettings

    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    world["run"](0)
    before = world["at"](25).replace(microsecond=0)
    _, applied = world["run"](25)  # the world's retention has no outbox: no alert says it
    assert applied.deleted == len(old)
    outbox = world["table"]("alerts")
    outbox.create_table()
    compliance = ComplianceService(ComplianceSettings((sub,), "", {}, "unused"), world["arm"], world["ledger"])
    reports = Reports(compliance, world["ledger"], Alerts(outbox, None, "/vmkeeper/test"),
                      Records(world["table"]("restores")))
    now = world["at"](25)
    shown = reports.data(now).deletions
    assert sorted(d.resource_id.rsplit("/", 1)[-1] for d in shown) == sorted(old)
    assert {d.vm_id for d in shown} == {world["vm"].id.lower()} and all(d.rule and d.reason for d in shown)
    (when,) = {parse_instant(d.time) for d in shown}  # the pass's time
    assert before <= when <= now
    assert reports.data(now + timedelta(days=31)).deletions == ()  # the report's 30 days
