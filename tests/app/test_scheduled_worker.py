"""The scheduled worker's steps against the emulator (real SDK, real pacing table in Azurite):
a snapshot set with an ordered cross-region copy, a restore point, idempotent replays, pacing."""

from __future__ import annotations

import uuid

import pytest

from emulator.testing import StaticCredential
from shared import tags as T
from shared.azure import pacing
from shared.queue import messages as jobs
from shared.schedule.steps import ScheduledWorker, copy_name, new_message
from shared.wiring import Wiring


def arm(az):
    """The app's own ARM clients (shared/wiring.py), pointed at the emulator."""
    return Wiring({"VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path},
                  credential=StaticCredential()).arm


@pytest.fixture
def worker(az, azurite):
    from azure.data.tables import TableClient

    budget = pacing.WriteBudget(TableClient.from_connection_string(azurite.connection_string, f"b{uuid.uuid4().hex[:10]}"),
                                rate=50, burst=100)
    return ScheduledWorker(arm(az), budget)


def run(worker, az, message, limit=200):
    """Drive a job as the queue would: each Retry comes back after its delay (the emulator's clock moves)."""
    steps = []
    for _ in range(limit):
        outcome = worker.handle(message)
        steps.append(message.get("step"))
        if not isinstance(outcome, jobs.Retry):
            return outcome, steps
        az.advance(outcome.delay)
        message = {**message, **outcome.changes}
    raise AssertionError("job never finished")


def snapshot_job(vm, sub, slot="2026-11-25T06:00:00+00:00", copy_region=None):
    disks = [(None, vm.storage_profile.os_disk.managed_disk.id)] + [(d.lun, d.managed_disk.id) for d in vm.storage_profile.data_disks]
    set_id = uuid.uuid4().hex[:16]
    return {"type": "snapshot_set", "vm_id": vm.id.lower(), "subscription_id": sub, "resource_group": "rg-vm-00",
            "location": vm.location, "policy": "gold", "slot": slot, "set_id": set_id, "copy_region": copy_region,
            "tags": {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold", T.SLOT: slot, T.SET: set_id},
            "snapshots": [{"disk_id": d, "name": f"vmk-{vm.name}-{'os' if lun is None else lun}-{set_id[:8]}", "lun": lun}
                          for lun, d in disks]}


def test_a_snapshot_set_with_its_copies_in_order(az, worker, compute, sub):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    job = snapshot_job(vm, sub, copy_region="northeurope")
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 0.5}})
    outcome, steps = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Done), outcome
    names = [t["name"] for t in job["snapshots"]]
    for name in names:
        snap = compute.snapshots.get("rg-vm-00", name)
        assert snap.incremental and snap.tags[T.SET] == job["set_id"] and snap.provisioning_state == "Succeeded"
        copy = compute.snapshots.get("rg-vm-00", copy_name(name, "northeurope"))
        assert copy.location == "northeurope" and copy.completion_percent == 100
    copies = [c for c in az.calls() if c["method"] == "PUT" and "-northeurope" in c["path"]]
    assert [c["path"].rsplit("/", 1)[-1] for c in copies] == [copy_name(n, "northeurope") for n in names]  # one at a time, in order
    assert "copy_check" in steps


def test_replaying_a_finished_job_creates_nothing_new(az, worker, compute, sub):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")
    job = snapshot_job(vm, sub)
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    before = {s.name: s.unique_id for s in compute.snapshots.list_by_resource_group("rg-vm-00")}
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)  # a duplicate message
    after = {s.name: s.unique_id for s in compute.snapshots.list_by_resource_group("rg-vm-00")}
    assert after == before


def test_a_restore_point_job(az, worker, compute, sub):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    job = {"type": "restore_point", "vm_id": vm.id.lower(), "subscription_id": sub, "resource_group": "rg-vm-00",
           "location": vm.location, "policy": "gold", "slot": "2026-11-25T06:00:00+00:00", "set_id": "rp1",
           "copy_region": None, "tags": {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold"},
           "rpc_name": "vmk-rpc-vm-00000", "rp_name": "vmk-rp-202611250600", "consistency": "CrashConsistent",
           "exclude_disk_ids": [vm.storage_profile.data_disks[0].managed_disk.id]}
    outcome, _ = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Done), outcome
    rp = compute.restore_points.get("rg-vm-00", "vmk-rpc-vm-00000", "vmk-rp-202611250600")
    assert rp.consistency_mode == "CrashConsistent" and len(rp.exclude_disks) == 1
    rpc = compute.restore_point_collections.get("rg-vm-00", "vmk-rpc-vm-00000")
    assert rpc.tags[T.MANAGED_BY] == T.MANAGED_BY_VALUE
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)  # replay: "already exists" → checked, done


def test_a_restore_point_copied_to_a_second_region(az, worker, compute, sub):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    region = "northeurope" if vm.location != "northeurope" else "westeurope"
    job = {"type": "restore_point", "vm_id": vm.id.lower(), "subscription_id": sub, "resource_group": "rg-vm-00",
           "location": vm.location, "policy": "gold", "slot": "2026-11-25T07:00:00+00:00", "set_id": "rp2",
           "copy_region": region, "tags": {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold"},
           "rpc_name": "vmk-rpc-vm-00000", "rp_name": "vmk-rp-202611250700", "consistency": "CrashConsistent",
           "exclude_disk_ids": []}
    outcome, steps = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Done), outcome
    assert steps.index("copy") < steps.index("copy_check")  # the copy starts only once the restore point exists
    copy_rpc = compute.restore_point_collections.get("rg-vm-00", copy_name("vmk-rpc-vm-00000", region), expand="restorePoints")
    source = compute.restore_points.get("rg-vm-00", "vmk-rpc-vm-00000", "vmk-rp-202611250700")
    assert copy_rpc.location == region and copy_rpc.tags[T.MANAGED_BY] == T.MANAGED_BY_VALUE
    assert [(p.name, p.source_restore_point.id.lower(), p.provisioning_state) for p in copy_rpc.restore_points] == [
        ("vmk-rp-202611250700", source.id.lower(), "Succeeded")]
    again, _ = run(worker, az, new_message(job))  # a replay finds both in place and makes no second copy
    assert isinstance(again, jobs.Done), again
    assert len(compute.restore_point_collections.get("rg-vm-00", copy_name("vmk-rpc-vm-00000", region),
                                                     expand="restorePoints").restore_points) == 1


def test_without_budget_the_job_waits_in_the_queue_with_a_promise(az, compute, sub, azurite):
    from azure.data.tables import TableClient

    now = [1_000_000.0]
    budget = pacing.WriteBudget(TableClient.from_connection_string(azurite.connection_string, f"b{uuid.uuid4().hex[:10]}"),
                                rate=1, burst=1, clock=lambda: now[0])
    worker = ScheduledWorker(arm(az), budget)
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    job = snapshot_job(vm, sub)
    assert len(job["snapshots"]) == 4
    outcome = worker.handle(new_message(job))
    assert isinstance(outcome, jobs.Retry) and outcome.reason == "write budget"
    assert outcome.delay == 3 and outcome.changes["index"] == 0  # the set waits whole: 4 writes, 1 in hand, 1/s
    assert not [s for s in compute.snapshots.list_by_resource_group("rg-vm-00") if s.name in
                {t["name"] for t in job["snapshots"]}]
    message = {**new_message(job), **outcome.changes}
    assert message["grant"]["at"] == now[0] + 3
    assert budget.reserve(sub, 1) == (now[0] + 4, True)  # the promise is held in the table: the next is later
    early = worker.handle(message)
    assert isinstance(early, jobs.Retry) and early.reason == "write budget"  # back too soon: waits again
    now[0] += 3
    accepted = worker.handle(message)  # spends its promise without asking again
    assert isinstance(accepted, jobs.Retry) and accepted.changes["step"] == "check" and accepted.changes["grant"] is None
    assert budget.reserve(sub, 1) == (now[0] + 2, True)  # nothing more was taken for the set


def test_a_policy_lock_guards_new_snapshots_until_its_date(az, worker, compute, sub):
    from azure.core.exceptions import HttpResponseError

    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    job = dict(snapshot_job(vm, sub), lock_days=7)
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    name = job["snapshots"][0]["name"]
    assert compute.snapshots.get("rg-vm-00", name).tags[T.LOCK_UNTIL] == "2026-12-02T06:00:00Z"
    with pytest.raises(HttpResponseError) as err:
        compute.snapshots.begin_delete("rg-vm-00", name)
    assert err.value.error.code == "ScopeLocked"


def test_a_new_restore_point_leaves_its_collections_tags_alone(az, worker, compute, sub):
    """Defect: every restore point job re-PUT the collection with only vmkeeper's tags, erasing an
    operator's hold and rewriting the policy its old points follow. The collection is created once."""
    from azure.mgmt.compute.models import RestorePointCollectionUpdate

    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")

    def job(slot: str, policy: str) -> dict:
        return {"type": "restore_point", "vm_id": vm.id.lower(), "subscription_id": sub, "resource_group": "rg-vm-00",
                "location": vm.location, "policy": policy, "slot": slot, "set_id": slot[:13],
                "copy_region": None, "tags": {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: policy},
                "rpc_name": "vmk-rpc-vm-00002", "rp_name": f"vmk-rp-{slot[:13].replace('-', '').replace('T', '')}",
                "consistency": "CrashConsistent", "exclude_disk_ids": []}

    assert isinstance(run(worker, az, new_message(job("2026-11-25T06:00:00+00:00", "gold")))[0], jobs.Done)
    tags = dict(compute.restore_point_collections.get("rg-vm-00", "vmk-rpc-vm-00002").tags)
    compute.restore_point_collections.update("rg-vm-00", "vmk-rpc-vm-00002", RestorePointCollectionUpdate(
        tags={**tags, T.HOLD: "case-4711", "cost-center": "42"}))
    az.advance(4 * 3600)
    # The VM has moved to another policy since: the next point must not relabel the collection.
    assert isinstance(run(worker, az, new_message(job("2026-11-25T10:00:00+00:00", "silver")))[0], jobs.Done)
    after = compute.restore_point_collections.get("rg-vm-00", "vmk-rpc-vm-00002", expand="restorePoints")
    assert after.tags == {**tags, T.HOLD: "case-4711", "cost-center": "42"}
    assert after.tags[T.ARTIFACT_POLICY] == "gold"
    assert len(after.restore_points) == 2


def test_a_copy_that_takes_hours_is_looked_at_less_often_and_not_given_up(az, worker, compute, sub):
    """Defect: copy checks gave up after 40 looks at the operation's interval (a minute or so), far
    shorter than real copies (hours): long copies were poisoned."""
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 1800}})  # each copy: 5 emulated hours
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")
    job = snapshot_job(vm, sub, copy_region="northeurope")
    job["snapshots"] = job["snapshots"][:1]
    outcome, steps = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Done), outcome
    looks = steps.count("copy_check")
    assert 5 < looks < 60  # backed off to a ceiling rather than looking every few seconds for 5 hours


def test_a_copy_gives_up_on_the_time_it_has_taken_not_on_a_count(az, compute, sub, azurite):
    from azure.data.tables import TableClient

    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 36000}})  # 100 emulated hours
    now = [2_000_000.0]
    budget = pacing.WriteBudget(TableClient.from_connection_string(azurite.connection_string, f"b{uuid.uuid4().hex[:10]}"),
                                rate=50, burst=100)
    worker = ScheduledWorker(arm(az), budget, copy_timeout=24 * 3600, clock=lambda: now[0])
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")
    job = snapshot_job(vm, sub, copy_region="northeurope")
    job["snapshots"] = job["snapshots"][:1]
    message = new_message(job)
    for _ in range(200):
        outcome = worker.handle(message)
        if not isinstance(outcome, jobs.Retry):
            break
        az.advance(outcome.delay)
        now[0] += outcome.delay
        message = {**message, **outcome.changes}
    assert isinstance(outcome, jobs.Failed) and "not complete after 24 h" in outcome.reason
    assert 24 * 3600 < now[0] - message["since"] <= 24 * 3600 + 900


def test_a_copy_that_ends_failed_fails_its_job_at_once(az, worker, compute, sub):
    """Found by the fault soak: a CopyStart whose operation ended Failed stays at 0% for good; its
    job looked again for a day instead of failing with the reason."""
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")
    job = snapshot_job(vm, sub, copy_region="northeurope")
    job["snapshots"] = job["snapshots"][:1]
    az.faults([{"kind": "lro_failed", "method": "PUT", "path": "-northeurope", "count": 1}])
    outcome, steps = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Failed) and outcome.reason.endswith("ended Failed"), outcome
    assert steps.count("copy_check") == 1


def test_a_replayed_job_writes_over_nothing_and_leaves_an_operators_lock(az, worker, compute, sub):
    """Defect: a replay (a re-sent job, a redelivery) PUT every snapshot, copy, restore point and lock
    of the job again: a PUT replaces every tag, and the lock step replaced an operator's lock of the
    same name. Every write is create-only: what exists is read and checked, never written again."""
    from azure.mgmt.resource.locks import ManagementLockClient
    from azure.mgmt.resource.locks.models import ManagementLockObject

    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    job = dict(snapshot_job(vm, sub, copy_region="northeurope"), lock_days=7)
    job["snapshots"] = job["snapshots"][:2]
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    locks = az.client(ManagementLockClient, sub).management_locks
    first = compute.snapshots.get("rg-vm-00", job["snapshots"][0]["name"])
    locks.delete_by_scope(first.id, T.OWN_LOCK)  # an operator's own lock, by the same name, in its place
    locks.create_or_update_by_scope(first.id, T.OWN_LOCK, ManagementLockObject(level="CanNotDelete", notes="legal-42"))
    since = len(az.calls())
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    assert [(c["method"], c["path"]) for c in az.calls(since) if c["method"] not in ("GET", "HEAD")] == []
    assert locks.get_by_scope(first.id, T.OWN_LOCK).notes == "legal-42"


def test_a_replayed_restore_point_job_puts_nothing_again(az, worker, compute, sub):
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")
    region = "northeurope" if vm.location != "northeurope" else "westeurope"
    job = {"type": "restore_point", "vm_id": vm.id.lower(), "subscription_id": sub, "resource_group": "rg-vm-00",
           "location": vm.location, "policy": "gold", "slot": "2026-11-26T07:00:00+00:00", "set_id": "rp3",
           "copy_region": region, "tags": {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold"},
           "rpc_name": "vmk-rpc-vm-00002", "rp_name": "vmk-rp-202611260700", "consistency": "CrashConsistent",
           "exclude_disk_ids": []}
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    since = len(az.calls())
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    assert [(c["method"], c["path"]) for c in az.calls(since) if c["method"] not in ("GET", "HEAD")] == []


def test_a_snapshot_by_a_set_name_that_is_not_the_sets_fails_the_job_and_is_left_alone(az, worker, compute, sub):
    """Membership is the name and vmkeeper's tags: a snapshot someone made under the name the set
    would use (other tags) is neither adopted nor written over; the job fails saying why."""
    from azure.mgmt.compute.models import CreationData, Snapshot

    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    job = snapshot_job(vm, sub)
    target = job["snapshots"][1]
    compute.snapshots.begin_create_or_update("rg-vm-00", target["name"], Snapshot(
        location=vm.location, tags={"owner": "ops"}, incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=target["disk_id"]))).result()
    az.advance(61)
    since = len(az.calls())
    outcome, _ = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Failed) and f"snapshot {target['name']} exists" in outcome.reason, outcome
    assert compute.snapshots.get("rg-vm-00", target["name"]).tags == {"owner": "ops"}
    assert not [c for c in az.calls(since) if c["method"] == "PUT" and c["path"].split("?")[0].endswith(target["name"])]


def test_a_snapshot_being_created_is_looked_at_for_a_time_not_a_count_of_looks(az, compute, sub, azurite):
    """Defect: the create check gave up after 40 looks (a few minutes at ARM's pace) whatever the time
    taken. It gives up on elapsed time: a snapshot slow to finish is waited for, a stuck one fails."""
    from azure.data.tables import TableClient

    now = [3_000_000.0]
    budget = pacing.WriteBudget(TableClient.from_connection_string(azurite.connection_string, f"b{uuid.uuid4().hex[:10]}"),
                                rate=50, burst=100)
    vm = compute.virtual_machines.get("rg-vm-00", "vm-00002")

    def drive(worker, job):
        message, looks = new_message(job), 0
        for _ in range(400):
            outcome = worker.handle(message)
            if not isinstance(outcome, jobs.Retry):
                return outcome, looks
            looks += message.get("step") == "check"
            az.advance(outcome.delay)
            now[0] += outcome.delay
            message = {**message, **outcome.changes}
        raise AssertionError("job never finished")

    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots": 90}})  # looked at every second: over 40 looks
    outcome, looks = drive(ScheduledWorker(arm(az), budget, clock=lambda: now[0]),
                           snapshot_job(vm, sub, slot="2026-11-27T06:00:00+00:00"))
    assert isinstance(outcome, jobs.Done) and looks > 40, (outcome, looks)
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots": 3 * 3600}})  # stuck for longer than the bound
    az.advance(3600)
    started = now[0]
    outcome, looks = drive(ScheduledWorker(arm(az), budget, check_timeout=150, clock=lambda: now[0]),
                           snapshot_job(vm, sub, slot="2026-11-27T12:00:00+00:00"))
    assert isinstance(outcome, jobs.Failed) and "still creating" in outcome.reason, outcome
    assert 150 < now[0] - started <= 150 + 5
