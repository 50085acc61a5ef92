"""Pins (shared/points/pins.py): what pins what, until when; and the retention engine's rule ``pinned``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared import names
from shared import tags as T
from shared.points import pins as P
from shared.retention.engine import Artifact, RetentionPolicy, decide

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
SUB = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute"
VM = f"{SUB}/virtualMachines/vm1"


def job(**kw) -> P.Job:
    base = {"vm_id": VM, "kind": P.SNAPSHOT_SET, "slot": NOW - 3 * H, "enqueued_at": NOW - 3 * H}
    return P.Job(**{**base, **kw})


# --- copies -------------------------------------------------------------------------------------------------------
def test_a_copy_in_flight_pins_its_source_for_as_long_as_azure_shows_it_copying():
    copy = P.Copy(f"{SUB}/snapshots/s1-northeurope", f"{SUB}/snapshots/S1", NOW - 2 * H)
    (pin,) = P.pins(NOW, copies=[copy])
    assert pin.ids == {f"{SUB}/snapshots/s1".lower()} and "s1-northeurope" in pin.reason
    assert pin.until == NOW + H and "for as long as Azure shows it" in pin.describe()
    # Past its job's copy timeout Azure's copy still reads its source (the job gave up, the copy did not):
    # seen in flight, it pins, however long it has run.
    for later, timeout in ((NOW + 24 * H, P.COPY_TIMEOUT), (NOW, timedelta(minutes=30))):
        (pin,) = P.pins(later, copies=[copy], copy_timeout=timeout)
        assert P.PinIndex([pin], later).find(f"{SUB}/snapshots/s1") is pin


# --- scheduled jobs -----------------------------------------------------------------------------------------------
def test_a_running_snapshot_set_job_pins_the_whole_set_for_all_its_disks_copies():
    (pin,) = P.pins(NOW, jobs=[job(disks=3)])
    assert pin.sets == {names.set_id(VM, NOW - 3 * H)} and "still running" in pin.reason
    until = NOW - 3 * H + H + P.job_lifetime(3, immutable_steps=P.IMMUTABLE_STEPS)  # the ledger says neither
    assert pin.until == until and until > NOW - 3 * H + 3 * P.COPY_TIMEOUT  # one copy after another
    assert P.pins(until, jobs=[job(disks=3)]) == []


def test_a_running_restore_point_job_pins_its_restore_point_by_name():
    (pin,) = P.pins(NOW, jobs=[job(kind=P.RESTORE_POINT)])
    assert pin.points == {names.restore_point_name(VM, NOW - 3 * H).lower()}


def test_a_job_ends_its_pin_when_done_or_failed_unless_sent_again_since():
    assert P.pins(NOW, jobs=[job(outcome="done", outcome_at=NOW - H)]) == []
    assert P.pins(NOW, jobs=[job(outcome="failed", outcome_at=NOW - H)]) == []
    assert P.pins(NOW, jobs=[job(enqueued_at=None)]) == []
    resent = job(outcome="failed", outcome_at=NOW - 2 * H, enqueued_at=NOW - H)  # re-sent after it failed
    (pin,) = P.pins(NOW, jobs=[resent])
    assert pin.until == NOW - H + H + P.job_lifetime(1, immutable_steps=P.IMMUTABLE_STEPS)


def test_the_ledger_keys_are_the_schedules_own():
    from shared.schedule.service import enqueued_partition, job_key, jobs_partition

    slot = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    text = slot.isoformat()  # as the schedule's job messages carry a slot
    assert P.enqueued_partition(slot) == enqueued_partition(text)
    assert P.jobs_partition(slot) == jobs_partition(text)
    assert P.job_key(VM, P.SNAPSHOT_SET, slot) == job_key({"vm_id": VM, "type": "snapshot_set", "slot": text})
    assert P.job_key(VM, P.RESTORE_POINT, slot) == job_key({"vm_id": VM, "type": "restore_point", "slot": text})


def test_the_bounds_are_the_ones_the_jobs_themselves_give_up_at(tmp_path):
    from shared.restore.service import STEP_TIMEOUT
    from shared.schedule.steps import COPY_TIMEOUT
    from shared.settings import FleetSettings

    assert P.RESTORE_STEP_TIMEOUT.total_seconds() == STEP_TIMEOUT
    assert P.COPY_TIMEOUT.total_seconds() == COPY_TIMEOUT
    policy_file = tmp_path / "policies.json"
    policy_file.write_text("{}")
    base = {"VMKEEPER_SUBSCRIPTIONS": "00000000-0000-0000-0000-000000000001", "VMKEEPER_POLICY_FILE": str(policy_file)}
    settings = FleetSettings.from_env(base)
    assert timedelta(hours=settings.copy_timeout_hours) == P.COPY_TIMEOUT
    assert settings.restore_table == "vmkeeperrestores"
    from shared.settings import RestoreSettings

    for env in ({}, {"VMKEEPER_RESTORE_TABLE": "restoresx"}):  # retention reads the table the restores write
        env = {**base, **env}
        assert FleetSettings.from_env(env).restore_table == RestoreSettings.from_env(env).table


def test_a_running_job_stays_pinned_at_least_until_the_planner_would_send_it_again():
    """A job still running is pinned at least as long as the planner waits before taking it for lost:
    a four-disk set copying disk after disk was unpinned three hours before its re-send (97 h against
    100 h), so retention could delete the source of its last copy while it ran."""
    from shared.schedule.planner import overdue_after, plan
    from shared.schedule.steps import CHECK_TIMEOUT, COPY_CHECK_CEILING, COPY_TIMEOUT
    from tests.unit.test_planner import POLICIES, vm

    bounds = {"step_timeout": timedelta(seconds=CHECK_TIMEOUT), "copy_timeout": timedelta(seconds=COPY_TIMEOUT),
              "look": timedelta(seconds=COPY_CHECK_CEILING)}
    sent = datetime(2026, 11, 29, 3, 5, tzinfo=UTC)
    for disks in range(0, 6):
        for job in plan([vm("g", disks=disks)], POLICIES, sent).jobs:
            ledger_job = P.Job(job.vm_id, job.kind, job.slot, sent, disks=len(job.snapshots) or 1)
            assert P.job_bound(ledger_job) >= sent + overdue_after(job, **bounds), (disks, job.kind)


def test_the_immutability_steps_count_in_a_jobs_lifetime_and_its_pin():
    """A set job whose policy makes its set and its copies immutable takes two more steps (``immutable``,
    ``copy_immutable``), each up to the step timeout: the planner waits that much longer before taking it for lost,
    and its pin lasts at least as long (on main neither counted them: a four-disk immutable set was re-sent, and
    unpinned, an hour before its copies' immutability step had to give up)."""
    import json

    from shared.policy.document import load_policies
    from shared.schedule.planner import overdue_after, plan
    from shared.schedule.steps import CHECK_TIMEOUT, COPY_CHECK_CEILING, COPY_TIMEOUT
    from tests.unit.test_planner import vm

    step = timedelta(seconds=CHECK_TIMEOUT)
    bounds = {"step_timeout": step, "copy_timeout": timedelta(seconds=COPY_TIMEOUT),
              "look": timedelta(seconds=COPY_CHECK_CEILING)}
    base = {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"}, "copy": {"region": "westus"}}
    policies = load_policies(json.dumps({"version": 1, "policies": {
        "plain": base, "sets": {**base, "immutability": {"days": 7, "kinds": ["snapshot_sets"]}},
        "both": {**base, "immutability": {"days": 7, "locked": True, "kinds": ["snapshot_sets", "copies"]}}}}))
    sent = datetime(2026, 11, 29, 3, 5, tzinfo=UTC)
    lifetime = {}
    for name in ("plain", "sets", "both"):
        (job,) = [j for j in plan([vm("g", disks=3, tags={"vmkeeper-policy": name})], policies, sent).jobs]
        lifetime[name] = overdue_after(job, **bounds)
        ledger_job = P.Job(job.vm_id, job.kind, job.slot, sent, disks=len(job.snapshots))
        assert P.job_bound(ledger_job) >= sent + lifetime[name], name
    assert lifetime["sets"] - lifetime["plain"] == step and lifetime["both"] - lifetime["plain"] == 2 * step
    bound = P.job_bound(P.Job(VM, P.SNAPSHOT_SET, sent, sent, disks=4))  # the ledger does not say: every step counted
    assert bound == sent + P.MARGIN + P.job_lifetime(4, immutable_steps=P.IMMUTABLE_STEPS) >= sent + lifetime["both"]


# --- restores -----------------------------------------------------------------------------------------------------
def _restore_entity(state: str, point: str, sources: list[str], created: datetime, started: datetime | None = None):
    """A row as the restores' own writer makes it (shared/restore/records.py)."""
    from shared.instants import format_instant
    from shared.restore.records import Record

    record = Record("r1", state, {"vm": VM, "recovery_point": point, "target": {"type": "disks"}},
                    {"disks": [{"source_id": s} for s in sources]}, "ops", format_instant(created))
    if started:
        record.steps.append({"name": "create_disks", "started_at": format_instant(started), "finished_at": None})
    return record.to_entity()


def test_a_restore_pending_or_running_pins_its_point_and_every_source_its_plan_reads():
    snap = f"{SUB}/snapshots/vmk-vm1-0-202611250600-0a0b0c0d"
    entity = _restore_entity("pending", "snapshot-set:0123456789abcdef:westeurope", [snap], NOW - H)
    (pin,) = P.pins(NOW, restores=[P.restore_from_entity(entity)])
    assert pin.sets == {"0123456789abcdef"} and pin.ids == {snap.lower()} and "restore r1 is pending" in pin.reason
    assert pin.until == NOW - H + P.RESTORE_STEP_TIMEOUT + H

    rp = f"{SUB}/restorePointCollections/rpc/restorePoints/vmk-rp-202611250600-0a0b0c0d"
    entity = _restore_entity("running", rp, [f"{rp}/diskRestorePoints/os"], NOW - 40 * H, started=NOW - 2 * H)
    (pin,) = P.pins(NOW, restores=[P.restore_from_entity(entity)])
    assert rp.lower() in pin.ids and pin.until == NOW - 2 * H + P.RESTORE_STEP_TIMEOUT + H  # from its last step


def test_an_ended_or_crashed_restore_pins_nothing():
    for state in ("succeeded", "failed", "cancelled"):
        entity = _restore_entity(state, "snapshot-set:0123456789abcdef:westeurope", [], NOW - H)
        assert P.pins(NOW, restores=[P.restore_from_entity(entity)]) == []
    crashed = _restore_entity("running", "snapshot-set:0123456789abcdef:westeurope", [], NOW - 40 * H, NOW - 30 * H)
    assert P.pins(NOW, restores=[P.restore_from_entity(crashed)]) == []


def test_a_restore_row_that_does_not_parse_pins_what_parses():
    entity = {"RowKey": "r2", "state": "running", "request": "{not json", "plan": '{"disks": [{"source_id": "/X"}]}',
              "created_at": "2026-11-25T11:00:00Z", "steps": "null"}
    (pin,) = P.pins(NOW, restores=[P.restore_from_entity(entity)])
    assert pin.ids == {"/x"} and pin.sets == frozenset()


# --- the engine's rule pinned -------------------------------------------------------------------------------------
def _snap(name: str, set_id: str, hours: float, **extra: str) -> Artifact:
    tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: VM.lower(), T.ARTIFACT_POLICY: "gold", T.SET: set_id, **extra}
    return Artifact(id=f"{SUB}/snapshots/{name}", kind="snapshot", tags=tags, created=NOW - hours * H,
                    region="westeurope", good=True)


def _decided(artifacts, pins=()) -> dict[str, tuple[str, str]]:
    decisions = decide(artifacts, {"gold": RetentionPolicy(keep_last=1, deferral=H)}, {VM}, NOW, pins=pins)
    return {d.artifact_id.rsplit("/", 1)[-1]: (d.action, d.rule) for d in decisions}


def test_a_pinned_set_is_kept_whole_and_a_pin_past_its_bound_pins_nothing():
    artifacts = [_snap("old-0", "old", 5), _snap("old-1", "old", 5), _snap("new-0", "new", 1)]
    assert _decided(artifacts)["old-0"] == ("mark", "not_selected")
    pin = P.Pin("its copy c is in flight", NOW + H, ids=frozenset({f"{SUB}/snapshots/old-1".lower()}))
    assert _decided(artifacts, [pin]) == {"old-0": ("keep", "pinned"), "old-1": ("keep", "pinned"),
                                          "new-0": ("keep", "newest_good")}
    assert _decided(artifacts, [P.Pin("over", NOW, ids=pin.ids)])["old-1"] == ("mark", "not_selected")


def test_a_pinned_set_keeps_its_mark_for_when_the_pin_ends():
    mark = "2026-11-25T10:00:00Z"  # passed: without the pin it is deleted now
    artifacts = [_snap("old-0", "old", 5, **{T.EXPIRING: mark}), _snap("new-0", "new", 1)]
    assert _decided(artifacts)["old-0"] == ("delete", "not_selected")
    decisions = decide(artifacts, {"gold": RetentionPolicy(keep_last=1)}, {VM}, NOW,
                       pins=[P.Pin("restore r1 is running from it", NOW + H, sets=frozenset({"old"}))])
    kept = decisions[0]
    assert (kept.action, kept.rule) == ("keep", "pinned") and "restore r1" in kept.reason
    assert kept.delete_after == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # not unmarked: no "unmark" rule


def test_a_pin_does_not_open_a_hold_or_a_lock():
    artifacts = [_snap("old-0", "old", 5, **{T.HOLD: "case-1"}), _snap("new-0", "new", 1)]
    pin = P.Pin("restore r1 is running from it", NOW + H, sets=frozenset({"old"}))
    assert _decided(artifacts, [pin])["old-0"] == ("skip", "hold")


def test_a_file_recovery_pins_its_point_while_ready_or_ending_until_past_its_expiry():
    """A file recovery ready for three days (longer than any restore step) pins its set until it has ended: while
    ready and while ending, bounded by its expiry; ended, nothing."""
    from shared.instants import format_instant

    point = "snapshot-set:0123456789abcdef:westeurope"
    for state in ("ready", "ending"):
        entity = _restore_entity(state, point, [], NOW - 50 * H, started=NOW - 49 * H)
        entity["plan"] = entity["plan"][:-1] + f', "lease": {{"expires_at": "{format_instant(NOW + 22 * H)}"}}}}'
        (pin,) = P.pins(NOW, restores=[P.restore_from_entity(entity)])
        assert pin.sets == {"0123456789abcdef"} and pin.until == NOW + 22 * H + P.RESTORE_STEP_TIMEOUT + H
    entity = _restore_entity("succeeded", point, [], NOW - 50 * H)
    assert P.pins(NOW, restores=[P.restore_from_entity(entity)]) == []
