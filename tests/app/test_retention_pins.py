"""Pins against local Azure: what is in use is never deleted (issue 19, defect 2). The scheduled job runs
through the app's own Schedule (planner, queue runner, worker, ledger) on an Azurite queue and the
emulator; retention passes run with the wiring's parts (the fleet ledger, the restores table).

The queue's visibility delays become the emulator's clock: a message the runner sends with a delay is
visible at once and the test moves the emulator's clock by that delay, so hours of copying take seconds."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest

from emulator.testing import StaticCredential
from shared import tags as T
from shared.names import copy_name
from shared.points import pins as P
from shared.wiring import Wiring

SECOND = "northeurope"
COPY_HOURS = 2  # each disk's copy to the second region takes two emulated hours


class ClockQueue:
    """The jobs queue with its visibility delays kept aside: a message is visible at once, and its delay
    is what the test advances the emulator's clock by."""

    def __init__(self, queue):
        self.queue, self.delays = queue, []

    def send_message(self, content, visibility_timeout=None, **kwargs):
        self.delays.append(visibility_timeout or 0)
        return self.queue.send_message(content, **kwargs)

    def __getattr__(self, name):
        return getattr(self.queue, name)


@pytest.fixture
def world(az, emu, azurite, tmp_path):
    return make_world(az, azurite, tmp_path)


def make_world(az, azurite, tmp_path, copy_hours: float = COPY_HOURS, clock=None, policy: dict | None = None,
               **extra_env: str) -> dict:
    """``clock``: the jobs' clock (epoch seconds; real time unless given): their bounds count on it.
    ``policy``: policy "gold" (else snapshots of every data disk, copied, keep_last 1, a 10 minute deferral)."""
    import time

    from shared.azure.ledger import Ledger
    from shared.azure.pacing import WriteBudget
    from shared.schedule.service import Schedule
    from shared.settings import FleetSettings

    sub = az.seed(subscriptions=1, resource_groups=1, vms=1, data_disks=[1, 1], regions=["westeurope", SECOND],
                  tag_sets=[{}], seed=3)["subscriptions"][0]
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": copy_hours * 360}})  # copy span: 10x
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps({"version": 1, "default": "gold", "policies": {"gold": policy or {
        "schedule": {"every_hours": 1}, "snapshots": {"luns": "all"}, "copy": {"region": SECOND},
        "retention": {"keep_last": 1, "deferral": "PT10M"}}}}))
    suffix = uuid.uuid4().hex[:8]
    env = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
           "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
           "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}", "VMKEEPER_BUDGET_TABLE": f"budget{suffix}",
           "VMKEEPER_RESTORE_TABLE": f"restores{suffix}", "VMKEEPER_WRITES_PER_SECOND": "100",
           "VMKEEPER_WRITE_BURST": "1000", "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path, **extra_env}
    app = Wiring(env, credential=StaticCredential(), arm_options={"retry_backoff_factor": 0.01})
    settings = FleetSettings.from_env(env)
    queue = ClockQueue(app.storage.queue(settings.jobs_queue))
    queue.create_queue()
    poison = app.storage.queue(f"{settings.jobs_queue}-poison")
    poison.create_queue()
    ledger = Ledger(app.storage.table(settings.ledger_table))
    budget = WriteBudget(app.storage.table(settings.budget_table), rate=100, burst=1000, clock=clock or time.time)
    schedule = Schedule(settings, app.arm, queue, poison, ledger, budget)
    retention = app.retention  # as shared/wiring.py builds it: the fleet ledger (the jobs), the restores table
    from azure.mgmt.compute import ComputeManagementClient

    return {"sub": sub, "schedule": schedule, "queue": queue, "poison": poison, "retention": retention,
            "ledger": ledger, "app": app, "compute": az.client(ComputeManagementClient, sub)}


def drive(fleet, az, hold=lambda entry: False, limit=200) -> list[dict]:
    """Run the jobs queue until it is empty, moving the emulator's clock by each delay asked; a message
    whose job ``hold`` picks is taken off the queue and returned (its job still running, its step not yet
    run): send it again to go on."""
    queue, held = fleet["queue"], []
    for _ in range(limit):
        message = next(iter(queue.receive_messages(max_messages=1, visibility_timeout=300)), None)
        if message is None:
            return held
        queue.delete_message(message)
        body = json.loads(message.content)
        if any(hold(entry) for entry in body.get("batch") or [body]):
            held.append(body)
            continue
        queue.delays.clear()
        fleet["schedule"].handle_message(message.content)
        if queue.delays:
            az.advance(max(queue.delays))
    raise AssertionError("the jobs queue never emptied")


def resend(fleet, body: dict) -> None:
    from shared.queue import messages

    fleet["queue"].send_message(messages.encode(body))


def at_step(slot: datetime, step: str, index: int = 0):
    text = slot.isoformat()
    return lambda entry: entry["job"]["slot"] == text and entry.get("step") == step and entry.get("index", 0) == index


def sources(compute, slot: datetime) -> dict[str, dict]:
    """The slot's source snapshots (not the copies), by name, with their tags."""
    slot_tag = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {s.name: s.tags for s in compute.snapshots.list()
            if s.tags.get(T.SLOT) == slot_tag and T.COPY_OF not in s.tags}


def test_a_set_whose_copy_is_still_running_is_kept_pinned_and_goes_once_the_copy_is_done(world, az, emu):
    """keep_last 1, a 10 minute deferral, copies of two hours per disk: the older set is neither marked nor
    deleted while its disks are copied one after another (a copy in flight, and between two disks' copies
    its job still running, pin it); once its job is done, it is marked, then deleted, and its copies are whole."""
    from shared.policy.document import load_policy_file
    from shared.schedule.planner import slot_for
    from shared.schedule.service import job_key, jobs_partition

    fleet, compute = world, world["compute"]
    schedule, retention = fleet["schedule"], fleet["retention"]
    gold = load_policy_file(schedule.settings.policy_file).policies["gold"]
    policies = {"gold": gold.retention}
    now = emu.clock.now
    first = slot_for(gold.schedule, now())
    schedule.plan_and_enqueue(now())
    (copying,) = drive(fleet, az, hold=at_step(first, "copy_check"))  # its snapshots taken, disk 0 copying
    az.advance(3600)
    second = slot_for(gold.schedule, now())
    assert second > first
    schedule.plan_and_enqueue(now())  # the next slot's job: its set is the newest good one
    assert len(drive(fleet, az, hold=at_step(second, "copy_check"))) == 1  # its copy runs on (held)
    old = sources(compute, first)
    assert len(old) == 2 and len(sources(compute, second)) == 2

    def pass_at(minutes: float) -> dict[str, tuple[str, str, str]]:
        decisions, applied = retention.run(now() + timedelta(minutes=minutes), policies)
        assert not applied.errors
        return {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule, d.reason) for d in decisions}

    for minutes in (0, 15):  # past the deferral: on main the set was marked, then deleted here
        decided = pass_at(minutes)
        assert {decided[n][:2] for n in old} == {("keep", "pinned")}, decided
        assert all("in flight" in decided[n][2] or "still running" in decided[n][2] for n in old)
    assert set(sources(compute, first)) == set(old)
    assert not any(T.EXPIRING in tags for tags in sources(compute, first).values())

    # Disk 0's copy completes; disk 1's has not begun: no copy is in flight, the job still pins the set.
    resend(fleet, copying)
    az.advance(COPY_HOURS * 3600)
    (between,) = drive(fleet, az, hold=at_step(first, "copy", 1))
    decided = pass_at(15)
    assert {decided[n][:2] for n in old} == {("keep", "pinned")}
    assert all("job of slot" in decided[n][2] for n in old)

    resend(fleet, between)
    assert drive(fleet, az) == []  # disk 1's copy: two more hours, then the job is done
    vm_id = f"/subscriptions/{fleet['sub']}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    row = fleet["ledger"].get(jobs_partition(first.isoformat()),
                              job_key({"vm_id": vm_id, "type": "snapshot_set", "slot": first.isoformat()}))
    assert row and row["outcome"] == "done", row
    for name in old:
        copy = compute.snapshots.get("rg-vm-00", copy_name(name, SECOND))
        assert copy.completion_percent == 100 and copy.copy_completion_error is None

    decided = pass_at(0)  # the pin has ended: the set expires as keep_last 1 says
    assert {decided[n][:2] for n in old} == {("mark", "not_selected")}
    assert all(T.EXPIRING in tags for tags in sources(compute, first).values())
    pass_at(11)
    az.advance(1)
    assert sources(compute, first) == {}
    assert len(sources(compute, second)) == 2  # the newest set, still copying, stays


def test_a_copy_that_outruns_its_jobs_copy_timeout_still_pins_its_source(az, emu, azurite, tmp_path):
    """A copy timeout of 1 h, a copy of 10 h: the job gives up on the copy (failed), Azure's copy runs on.
    keep_last 1 and a newer set; past the job's own bound (so no job pin, whatever the ledger says): the older
    set is kept pinned while Azure shows its copy in flight (on main the copy's pin ended at its creation + the
    copy timeout + 1 h: the set was marked, then deleted, and the copy ended CopySourceNotFound); once the copy
    is done, the set expires as keep_last 1 says."""
    from shared.policy.document import load_policy_file
    from shared.schedule.planner import slot_for
    from shared.schedule.service import job_key, jobs_partition

    fleet = make_world(az, azurite, tmp_path, copy_hours=10, clock=lambda: emu.clock.now().timestamp(),
                       VMKEEPER_COPY_TIMEOUT_HOURS="1")
    compute, schedule, retention = fleet["compute"], fleet["schedule"], fleet["retention"]
    gold = load_policy_file(schedule.settings.policy_file).policies["gold"]
    policies = {"gold": gold.retention}
    now = emu.clock.now
    first, sent = slot_for(gold.schedule, now()), now()
    schedule.plan_and_enqueue(sent)
    assert drive(fleet, az) == []  # disk 0's copy: looked at until the job gives up after 1 h
    vm_id = f"/subscriptions/{fleet['sub']}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    row = fleet["ledger"].get(jobs_partition(first.isoformat()),
                              job_key({"vm_id": vm_id, "type": "snapshot_set", "slot": first.isoformat()}))
    assert row and row["outcome"] == "failed", row
    az.advance(3600)
    second = slot_for(gold.schedule, now())
    assert second > first
    schedule.plan_and_enqueue(now())
    assert len(drive(fleet, az, hold=at_step(second, "copy_check"))) == 1  # the newest set, its copy held
    old = sources(compute, first)
    assert len(old) == 2
    (copy,) = [s for s in compute.snapshots.list() if s.name in {copy_name(n, SECOND) for n in old}]  # disk 0's
    az.advance(5 * 3600)  # past the first job's bound (enqueued + 1 h + its lifetime), not planning again
    # Past the job's pin as the ledger bounds it (both immutability steps counted, whether or not it takes them).
    assert now() > P.job_bound(P.Job(vm_id, P.SNAPSHOT_SET, first, sent, disks=2), timedelta(hours=1))
    copy = compute.snapshots.get("rg-vm-00", copy.name)
    assert copy.completion_percent < 100 and copy.copy_completion_error is None  # Azure's copy runs on
    assert now() - copy.time_created > timedelta(hours=2)  # past creation + copy timeout + 1 h

    def pass_at(minutes: float) -> dict[str, tuple[str, str, str]]:
        decisions, applied = retention.run(now() + timedelta(minutes=minutes), policies)
        assert not applied.errors
        return {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule, d.reason) for d in decisions}

    for minutes in (0, 15, 30):
        decided = pass_at(minutes)
        assert {decided[n][:2] for n in old} == {("keep", "pinned")}, decided
        assert all("in flight" in decided[n][2] for n in old), decided
    assert set(sources(compute, first)) == set(old)
    assert not any(T.EXPIRING in tags for tags in sources(compute, first).values())

    az.advance(5 * 3600)  # the copy completes, whole
    copy = compute.snapshots.get("rg-vm-00", copy.name)
    assert copy.completion_percent == 100 and copy.copy_completion_error is None
    decided = pass_at(0)  # nothing copies from it any more: it expires as keep_last 1 says
    assert {decided[n][:2] for n in old} == {("mark", "not_selected")}, decided
