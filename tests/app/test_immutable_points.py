"""Immutable points (issue 24) against local Azure, through the app's own worker and retention pass (real SDK,
real tables in Azurite): a completed set's snapshots get an immutability policy, Unlocked first, then Locked;
the set survives deletes by vmkeeper's identity and an operator's; retention keeps it (rule ``immutable``)
without sending a delete that must fail, and deletes it after the policy expires."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient

from emulator.testing import StaticCredential
from shared import tags as T
from shared.azure import pacing
from shared.azure.ledger import Ledger
from shared.policy.retention import RetentionPolicy
from shared.queue import messages as jobs
from shared.retention.service import Retention
from shared.schedule.planner import DiskRef, snapshot_name
from shared.schedule.steps import ScheduledWorker, copy_name, new_message
from tests.app.test_scheduled_worker import arm, run

RG = "rg-vm-00"
DAY = 86400


@pytest.fixture
def tables(azurite):
    from azure.data.tables import TableClient

    return lambda name: TableClient.from_connection_string(azurite.connection_string, f"{name}{uuid.uuid4().hex[:8]}")


@pytest.fixture
def worker(az, tables):
    return ScheduledWorker(arm(az), pacing.WriteBudget(tables("budget"), rate=50, burst=100))


def immutable_job(vm, sub, slot: str, *, days=2, locked=True, kinds=("snapshot_sets",), copy_region=None) -> dict:
    """A snapshot set job as the planner sends it (shared/schedule/service.py job_message), with vmkeeper's names."""
    when = datetime.fromisoformat(slot)
    disks = [DiskRef(vm.storage_profile.os_disk.managed_disk.id, "", None)] + [
        DiskRef(d.managed_disk.id, "", d.lun) for d in vm.storage_profile.data_disks]
    set_id = uuid.uuid4().hex[:16]
    return {"type": "snapshot_set", "vm_id": vm.id.lower(), "subscription_id": sub, "resource_group": RG,
            "location": vm.location, "policy": "gold", "slot": slot, "set_id": set_id, "copy_region": copy_region,
            "tags": {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold", T.SLOT: slot,
                     T.SET: set_id, T.SET_SIZE: str(len(disks))},
            "snapshots": [{"disk_id": d.id, "name": snapshot_name(vm.name, d, when), "lun": d.lun} for d in disks],
            "immutability": {"days": days, "locked": locked, "kinds": list(kinds)},
            "expires": (when + timedelta(hours=1)).isoformat()}  # a horizon shorter than days: days win


def posts(az, since: int) -> list[tuple[str, int]]:
    return [(c["path"].rsplit("/", 1)[-1], c["status"]) for c in az.calls(since) if c["method"] == "POST"
            and "ImmutabilityPolicy" in c["path"]]


def snapshot_deletes(az, since: int) -> list[int]:
    return [c["status"] for c in az.calls(since) if c["method"] == "DELETE" and "/snapshots/" in c["path"]]


def test_a_set_is_made_immutable_unlocked_first_then_locked_and_survives_deletes(az, worker, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00000")
    job = immutable_job(vm, sub, "2026-11-25T06:00:00+00:00")
    since = len(az.calls())
    outcome, steps = run(worker, az, new_message(job))
    assert isinstance(outcome, jobs.Done), outcome
    n = len(job["snapshots"])
    # In rounds, one wait each: every snapshot Unlocked (the first round right after the check), then every one
    # Locked, then a round that finds all held.
    assert posts(az, since) == [("updateImmutabilityPolicy", 202)] * n + [("updateImmutabilityPolicyLock", 202)] * n
    assert steps.count("immutable") == 2
    for target in job["snapshots"]:
        policy = compute.snapshots.get(RG, target["name"]).properties.immutability_policy
        assert (policy.type, policy.immutability_duration_days, policy.is_policy_expired) == ("Locked", 2, False)
    # A re-sent job sends nothing: every policy already holds.
    since = len(az.calls())
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    assert posts(az, since) == []
    # vmkeeper's own identity and an operator with every permission are refused alike.
    operator = az.client(ComputeManagementClient, sub, credential=StaticCredential("operator"), polling_interval=0)
    az.role_assignments([{"principal": "operator", "scope": f"/subscriptions/{sub}", "actions": ["*"]}])
    for client in (arm(az).compute(sub), operator):
        with pytest.raises(HttpResponseError) as err:
            client.snapshots.begin_delete(RG, job["snapshots"][0]["name"]).result()
        assert err.value.status_code == 409
    assert compute.snapshots.get(RG, job["snapshots"][0]["name"]).name == job["snapshots"][0]["name"]


def test_unlocked_when_the_policy_says_so_and_copies_too(az, worker, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00002")
    job = immutable_job(vm, sub, "2026-11-25T06:00:00+00:00", days=3, locked=False,
                        kinds=("snapshot_sets", "copies"), copy_region="northeurope")
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 0.5}})
    outcome, _ = run(worker, az, new_message(job), limit=400)
    assert isinstance(outcome, jobs.Done), outcome
    for target in job["snapshots"]:
        for name in (target["name"], copy_name(target["name"], "northeurope")):
            policy = compute.snapshots.get(RG, name).properties.immutability_policy
            assert (policy.type, policy.immutability_duration_days) == ("Unlocked", 3), name


def test_retention_keeps_an_immutable_set_without_a_delete_and_deletes_it_after_expiry(az, emu, worker, compute,
                                                                                       sub, tables):
    vm = compute.virtual_machines.get(RG, "vm-00000")
    old = immutable_job(vm, sub, "2026-11-24T06:00:00+00:00", days=1)
    assert isinstance(run(worker, az, new_message(old))[0], jobs.Done)
    az.advance(3600)
    new = immutable_job(vm, sub, "2026-11-25T06:00:00+00:00", days=1)
    new.pop("immutability")
    assert isinstance(run(worker, az, new_message(new))[0], jobs.Done)
    retention = Retention(arm(az), Ledger(tables("ledger")), pacing.WriteBudget(tables("rb"), rate=50, burst=100),
                          [sub])
    policies = {"gold": RetentionPolicy(keep_last=1, deferral=timedelta(hours=1))}
    old_names = {t["name"] for t in old["snapshots"]}
    since = len(az.calls())

    def pass_(now_shift: float = 0):
        az.advance(now_shift)
        decisions, _ = retention.run(emu.clock.now().astimezone(UTC), policies)
        az.advance(1)  # deletes are long-running: let the accepted ones finish
        return {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}

    first = pass_()  # expired by retention, immutable for a day: marked to go at its expiry, no delete sent
    assert {(first[n].action, first[n].rule) for n in old_names} == {("mark", "not_selected")}
    assert {first[n].delete_after for n in old_names} == {max(first[n].delete_after for n in old_names)}
    assert not snapshot_deletes(az, since)
    kept = pass_(3600)  # marked and still immutable: kept whole
    assert {(kept[n].action, kept[n].rule) for n in old_names} == {("keep", "immutable")}
    assert not snapshot_deletes(az, since)
    gone = pass_(DAY)  # the first pass after the policy (a day from its start) expired
    assert {gone[n].action for n in old_names} == {"delete"}
    left = {s.name for s in compute.snapshots.list_by_resource_group(RG)}
    assert not old_names & left and {t["name"] for t in new["snapshots"]} <= left
    deletes = snapshot_deletes(az, since)
    assert len(deletes) == len(old_names) and set(deletes) == {202}  # no delete refused: none was sent that must fail


def test_a_longer_policy_someone_set_is_locked_as_it_is_never_shortened(az, worker, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00000")
    job = immutable_job(vm, sub, "2026-11-25T06:00:00+00:00", days=2)
    plain = {k: v for k, v in job.items() if k != "immutability"}
    assert isinstance(run(worker, az, new_message(plain))[0], jobs.Done)  # an earlier delivery, without the step
    first = job["snapshots"][0]["name"]
    compute.snapshots.begin_update_immutability_policy(  # an operator's longer Unlocked policy meanwhile
        RG, first, {"immutabilityDurationDays": 30, "type": "Unlocked"}).result()
    assert isinstance(run(worker, az, new_message(job))[0], jobs.Done)
    kept = compute.snapshots.get(RG, first).properties.immutability_policy
    assert (kept.type, kept.immutability_duration_days) == ("Locked", 30)
    other = compute.snapshots.get(RG, job["snapshots"][1]["name"]).properties.immutability_policy
    assert (other.type, other.immutability_duration_days) == ("Locked", 2)


def test_retention_sends_no_delete_to_an_immutable_set_or_its_copies_before_expiry_and_deletes_each_after(
        az, emu, worker, compute, sub, tables):
    """A set and its second-region copies, each immutable (Locked, 1 day from its own policy's start: the copies'
    start later, once copied), and a newer set with its copies: keep_last 1, no deferral. The emulator's call log
    shows no DELETE to any of the old set's snapshots or copies while its policy holds (a pass a second before each
    expiry included); the first pass past the sources' expiry marks them (the copies still kept), the next deletes
    them; the copies likewise past theirs; no delete refused."""
    vm = compute.virtual_machines.get(RG, "vm-00002")
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 120}})  # the copies' expiries minutes after
    old = immutable_job(vm, sub, "2026-11-24T06:00:00+00:00", days=1, kinds=("snapshot_sets", "copies"),
                        copy_region="northeurope")
    assert isinstance(run(worker, az, new_message(old), limit=400)[0], jobs.Done)
    new = immutable_job(vm, sub, "2026-11-25T06:00:00+00:00", days=1, copy_region="northeurope")
    new.pop("immutability")
    assert isinstance(run(worker, az, new_message(new), limit=400)[0], jobs.Done)
    sources = {t["name"] for t in old["snapshots"]}
    copies = {copy_name(n, "northeurope") for n in sources}

    def expiry(name: str) -> datetime:
        return compute.snapshots.get(RG, name).properties.immutability_policy.policy_expiration_time

    source_until, copy_until = max(map(expiry, sources)), max(map(expiry, copies))
    assert source_until + timedelta(minutes=5) < min(map(expiry, copies))  # the copies' began once they were copied
    retention = Retention(arm(az), Ledger(tables("ledger")), pacing.WriteBudget(tables("rb"), rate=50, burst=100),
                          [sub])
    policies = {"gold": RetentionPolicy(keep_last=1, deferral=timedelta(0))}
    since = len(az.calls())

    def deleted() -> list[tuple[str, int]]:
        return [(c["path"].rsplit("/", 1)[-1].split("?", 1)[0].lower(), c["status"]) for c in az.calls(since)
                if c["method"] == "DELETE" and "/snapshots/" in c["path"].lower()]

    def pass_at(when: datetime) -> dict[str, tuple[str, str]]:
        az.advance(max(0.0, (when - emu.clock.now()).total_seconds()))
        decisions, applied = retention.run(emu.clock.now().astimezone(UTC), policies)
        assert not applied.errors
        az.advance(1)  # deletes are long-running: let the accepted ones finish
        return {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule) for d in decisions}

    decided = pass_at(emu.clock.now())  # expired by retention, immutable: marked to go at each one's expiry
    assert {decided[n] for n in sources | copies} == {("mark", "not_selected")}, decided
    assert deleted() == []
    decided = pass_at(source_until - timedelta(seconds=1))  # marked, still immutable: kept whole, nothing sent
    assert {decided[n] for n in sources | copies} == {("keep", "immutable")}, decided
    assert deleted() == []
    # The first pass past the sources' expiry (not the copies') deletes them: their marks are due.
    decided = pass_at(source_until + timedelta(seconds=1))
    assert {decided[n] for n in sources} == {("delete", "not_selected")}
    assert {decided[n] for n in copies} == {("keep", "immutable")}
    assert sorted(deleted()) == sorted((n.lower(), 202) for n in sources)
    decided = pass_at(copy_until - timedelta(seconds=1))
    assert {decided[n] for n in copies} == {("keep", "immutable")}
    assert {n for n, _ in deleted()} == {n.lower() for n in sources}
    decided = pass_at(copy_until + timedelta(seconds=1))  # and the copies at the first pass past theirs
    assert {decided[n] for n in copies} == {("delete", "not_selected")}
    assert sorted(deleted()) == sorted((n.lower(), 202) for n in sources | copies)  # each sent once, none refused
    left = {s.name for s in compute.snapshots.list()}
    assert not (sources | copies) & left
    assert {t["name"] for t in new["snapshots"]} | {copy_name(t["name"], "northeurope") for t in new["snapshots"]} <= left


def test_compliance_the_report_and_the_points_listing_show_which_points_are_immutable_and_until_when(
        az, emu, worker, compute, sub, capsys):
    """Read back from local Azure through the inventory's Resource Graph query: a Locked set shows as such (its
    policyExpirationTime) in the points listing, compliance's snapshot kind and the report; a VM whose policy asks for
    immutability and whose set, long past its job's bound, has none is a finding (reason, not_immutable), alerted
    once, shown in the report and `vmkeeper status`."""
    import json

    from shared.cli import output
    from shared.compliance.service import changes, judge
    from shared.points.inventory import Inventory
    from shared.policy.document import load_policies
    from shared.report.model import ReportData
    from shared.report.render import render

    locked_vm, bare_vm = (compute.virtual_machines.get(RG, n) for n in ("vm-00000", "vm-00002"))
    locked = immutable_job(locked_vm, sub, "2026-11-25T06:00:00+00:00", days=2)
    assert isinstance(run(worker, az, new_message(locked))[0], jobs.Done)
    bare = immutable_job(bare_vm, sub, "2026-11-25T06:00:00+00:00")
    bare.pop("immutability")  # made before the policy asked for immutability (or its step never ran)
    assert isinstance(run(worker, az, new_message(bare))[0], jobs.Done)
    until = min(compute.snapshots.get(RG, t["name"]).properties.immutability_policy.policy_expiration_time
                for t in locked["snapshots"]).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

    (point,) = [p for p in Inventory(arm(az), {}).of_vm(locked_vm.id) if p.kind == "snapshot_set"]
    assert point.to_json()["immutabilityPolicy"]["type"] == "Locked"
    assert point.to_json()["immutabilityPolicy"]["policyExpirationTime"].startswith(until)
    output.points({"vm": {"id": locked_vm.id, "exists": True}, "value": [point.to_json()]})
    assert "Locked until" in capsys.readouterr().out

    doc = {"schedule": {"daily_at": "06:00"}, "snapshots": {}, "rpo_hours": 8760,
           "immutability": {"days": 2, "locked": True}}
    policies = load_policies(json.dumps({"version": 1, "default": "gold", "policies": {
        name: doc for name in ("gold", "silver", "bronze")}}))
    now = emu.clock.now().astimezone(UTC)
    evaluation = judge(Inventory(arm(az), {}).fleet([sub]), policies, now)
    by_name = {v.name: v for v in evaluation.vms}
    kinds = {k.kind: k for k in by_name["vm-00000"].kinds}
    assert kinds["snapshot_set"].immutability_policy["type"] == "Locked"
    assert kinds["snapshot_set"].immutability_policy["policyExpirationTime"].startswith(until)
    assert kinds["snapshot_set"].immutable_points == 1 and by_name["vm-00000"].not_immutable == ()
    flagged = by_name["vm-00002"]
    assert flagged.not_immutable == ("snapshot_set",) and "has no immutabilityPolicy" in flagged.reason
    assert [(a.type, a.subject) for a in changes({}, evaluation.vms) if "immutability" in a.type] == [
        ("vmkeeper.immutability.missing", bare_vm.id.lower())]

    for inline in (1000, 0):  # the table as HTML rows, and a big fleet's as data drawn by the page's script
        page = render(ReportData(generated=now.strftime("%Y-%m-%dT%H:%M:%SZ"), evaluated=None,
                                 vms=tuple(evaluation.vms)), inline_rows=inline)
        assert f"immutabilityPolicy Locked until {until}" in page
        assert "not immutable: snapshot set" in page
    output.status({"source": "live", "evaluated": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "counts": evaluation.counts(),
                   "vms": [asdict(v) for v in evaluation.vms], "filter": None, "notes": []})
    shown = capsys.readouterr().out
    assert "not immutable: snapshot set" in shown and "Locked" in shown
