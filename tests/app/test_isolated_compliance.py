"""Isolated copies in compliance (docs/isolated-copies.md) against local Azure, through the app's own wiring (the
worker, the compliance service and its alerts outbox in Azurite), with the roles infra assigns: the app's identity
reads the backup group (infra/vmkeeper-isolated-reader-role.json) to judge a VM whose policy is isolated on its
newest isolated copy. A completed set whose isolated copy has not landed past its job's bound is a finding
(``protection.missing``); it clears once the copy lands (``protection.resolved``)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from shared.alerts import events as A
from shared.instants import parse_instant
from shared.queue import messages as jobs
from shared.schedule.steps import new_message
from tests.app.test_isolated_copies import POLICIES, RG, isolated_job, until_isolated_copy_under_way
from tests.app.test_isolated_restore import backup, wiring  # noqa: F401 (fixtures)

HOUR = 3600


def judged(evaluation, vm_id: str):
    (row,) = [v for v in evaluation.vms if v.vm_id.lower() == vm_id.lower()]
    return row, {k.kind: k for k in row.kinds}


def test_compliance_reports_a_missing_isolated_copy_and_clears_when_it_lands(az, wiring, compute, sub):  # noqa: F811
    # A long RPO: only the isolated copy is judged here, not the slot's age.
    gold = {**POLICIES["policies"]["gold"], "rpo_hours": 1000}
    with open(wiring.fleet_settings.policy_file, "w") as f:
        json.dump({**POLICIES, "policies": {"gold": gold}}, f)
    vm = compute.virtual_machines.get(RG, "vm-00000")
    job = isolated_job(vm, sub, "2026-11-25T06:00:00+00:00")
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 2 * HOUR}})  # each copy takes two hours
    message = until_isolated_copy_under_way(az, wiring, new_message(job))  # the set made, its first copy under way
    slot = parse_instant(job["slot"])
    later = slot + timedelta(days=10)  # past the job's bound (one day's copy timeout per copy, and more)
    since = datetime.now().astimezone() - timedelta(minutes=5)

    wiring.compliance.run(later)
    row, kinds = judged(wiring.compliance.recorded(), vm.id)
    assert kinds["snapshot_set"].state == "met"
    assert kinds["isolated_copy"].state == "missing" and kinds["isolated_copy"].newest is None
    assert (row.state, row.missing) == ("missing", ("isolated_copy",))
    assert "newest snapshot set (2026-11-25T06:00:00Z) has no isolated copy in the backup subscription" in row.reason
    missing = [a for a in wiring.alerts.recent(since, (A.PROTECTION_MISSING,)) if a["subject"] == vm.id.lower()]
    assert len(missing) == 1 and missing[0]["data"]["newly_missing"] == ["isolated_copy"]

    az.advance(2 * HOUR + 1)  # the copies land, one after another
    for _ in range(200):
        outcome = wiring.schedule.worker.handle(message)
        if isinstance(outcome, jobs.Done):
            break
        assert isinstance(outcome, jobs.Retry), outcome
        message = {**message, **outcome.changes}
        az.advance(max(outcome.delay, 2 * HOUR + 1) if message["step"] == "isolated_check" else outcome.delay)
    assert isinstance(outcome, jobs.Done), outcome

    wiring.compliance.run(later + timedelta(minutes=30))
    row, kinds = judged(wiring.compliance.recorded(), vm.id)
    copy = kinds["isolated_copy"]
    assert (copy.state, copy.newest, copy.point_id) == ("met", "2026-11-25T06:00:00Z",
                                                      f"snapshot-set:{job['set_id']}:westeurope:isolated")
    assert copy.immutability_policy["type"] == "Locked" and copy.immutable_points == 1  # the copies, Locked two days
    assert copy.age_hours == round((later + timedelta(minutes=30) - slot).total_seconds() / 3600, 2)
    assert (row.state, row.missing) == ("met", ())
    resolved = [a for a in wiring.alerts.recent(since, (A.PROTECTION_RESOLVED,)) if a["subject"] == vm.id.lower()]
    assert len(resolved) == 1
