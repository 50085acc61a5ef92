"""A restore's row: entity round-trip, the next step, progress, and step states as the API shows them."""

from __future__ import annotations

import pytest

from shared.restore import plan as P
from shared.restore.records import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Record

STEPS = [P.DISKS, P.NIC, P.VM]


class Entity(dict):
    """What azure-data-tables hands back: a dict with the ETag in ``metadata``."""

    def __init__(self, *args, etag: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.metadata = {"etag": etag}


def step(name: str, done: bool = True) -> dict:
    return {"name": name, "started_at": "2026-11-25T06:00:00Z", "finished_at": "2026-11-25T06:01:00Z" if done else None,
            "seconds": 60.0 if done else None}


def record(state: str = PENDING, steps: list[dict] | None = None, **kw) -> Record:
    return Record("0123456789abcdef", state, {"vm": "/subscriptions/x", "target": {"type": "vm"}},
                  {"steps": STEPS, "restore_id": "0123456789abcdef"}, "oid-1", "2026-11-25T05:59:00Z",
                  steps=steps or [], **({"updated_at": "2026-11-25T06:01:00Z"} | kw))


def test_entity_round_trip_with_the_etag():
    original = record(RUNNING, [step(P.DISKS), step(P.NIC, done=False)], body_hash="abc", queued=True,
                      context={"nic": {"attempt": 2}}, created=["/subscriptions/x/disks/d1"],
                      error={"code": "X", "message": "y"})
    entity = original.to_entity()
    assert (entity["PartitionKey"], entity["RowKey"]) == ("restore", original.id)
    assert all(isinstance(v, str | bool) for v in entity.values())  # Table properties: JSON in strings
    back = Record.from_entity(Entity(entity, etag='W/"datetime\'2026\'"'))
    assert back.etag == 'W/"datetime\'2026\'"'
    back.etag = None
    assert back == original


def test_a_plain_dict_entity_has_no_etag_and_defaults_fill_in():
    back = Record.from_entity({"RowKey": "0123456789abcdef", "state": PENDING})
    assert (back.etag, back.request, back.plan, back.steps, back.created, back.error, back.queued) == (
        None, {}, {}, [], [], None, False)


def test_to_entity_stamps_updated_at_when_none_was_set():
    entity = record(updated_at="").to_entity()
    assert entity["updated_at"].endswith("Z") and entity["updated_at"] > "2026"


@pytest.mark.parametrize(("done", "next_step", "percent"), [
    ([], P.DISKS, 0), ([P.DISKS], P.NIC, 33), ([P.DISKS, P.NIC], P.VM, 66), (STEPS, None, 100)])
def test_next_step_and_percent(done, next_step, percent):
    r = record(RUNNING, [step(n) for n in done])
    assert (r.next_step, r.percent) == (next_step, percent)


def test_a_started_but_unfinished_step_is_still_next():
    r = record(RUNNING, [step(P.DISKS), step(P.NIC, done=False)])
    assert r.next_step == P.NIC and r.done_names == [P.DISKS]


def test_succeeded_is_100_percent_and_a_plan_without_steps_is_0():
    assert record(SUCCEEDED).percent == 100
    assert Record("r", PENDING, {}, {}, "p", "t").percent == 0


def states(r: Record) -> list[str]:
    return [s["state"] for s in r.to_json()["steps"]]


@pytest.mark.parametrize(("state", "steps", "expected"), [
    (PENDING, [], ["waiting", "waiting", "waiting"]),
    (RUNNING, [step(P.DISKS), step(P.NIC, done=False)], ["done", "running", "waiting"]),
    (SUCCEEDED, [step(n) for n in STEPS], ["done", "done", "done"]),
    (FAILED, [step(P.DISKS), step(P.NIC, done=False)], ["done", "failed", "skipped"]),
    (CANCELLED, [], ["skipped", "skipped", "skipped"]),
])
def test_step_states_as_the_api_shows_them(state, steps, expected):
    r = record(state, steps)
    assert states(r) == expected
    doc = r.to_json()
    assert doc["steps_done"] == expected.count("done") and doc["links"] == {"self": f"/api/restores/{r.id}"}
    assert [s["name"] for s in doc["steps"]] == STEPS


def test_to_json_carries_timings_and_resources():
    r = record(RUNNING, [step(P.DISKS)], created=["/subscriptions/x/disks/d1"])
    doc = r.to_json()
    assert doc["steps"][0] == {"name": P.DISKS, "state": "done", "started_at": "2026-11-25T06:00:00Z",
                                    "finished_at": "2026-11-25T06:01:00Z", "seconds": 60.0}
    assert doc["steps"][1]["started_at"] is None
    assert (doc["resources"], doc["percent"], doc["principal"]) == (["/subscriptions/x/disks/d1"], 33, "oid-1")


def test_the_submits_queued_mark_leaves_a_row_a_worker_has_begun():
    """The mark is written after the message is sent, so a worker may have begun already: a write then would only
    change the row's ETag under the worker's next save (which took it for another delivery and dropped the restore)."""
    from shared.restore.service import mark_queued

    fresh = record()
    assert mark_queued(fresh) is True and fresh.queued is True
    assert mark_queued(fresh) is False  # once
    assert mark_queued(record(RUNNING, [step(P.DISKS, done=False)])) is False
    assert mark_queued(record(PENDING, [step(P.DISKS, done=False)])) is False
    assert mark_queued(record(CANCELLED)) is False


def test_a_failure_being_undone_runs_the_undo_steps_and_shows_them_last():
    os_disk = [P.DISKS, P.DEALLOCATE, P.TAG_OLD, P.SWAP, P.START]
    r = record(RUNNING, [step(P.DISKS), step(P.DEALLOCATE), step(P.TAG_OLD), step(P.SWAP, done=False)],
               context={"was_running": True, "undo": {"steps": [P.PUT_BACK, P.START], "error": {"step": P.SWAP}}})
    r.plan["steps"] = os_disk
    assert r.next_step == P.PUT_BACK
    assert r.step_names == [P.DISKS, P.DEALLOCATE, P.TAG_OLD, P.SWAP, P.PUT_BACK, P.START]
    r.steps += [step(P.PUT_BACK)]
    assert r.next_step == P.START  # the plan's start, run as the undo's
    r.steps += [step(P.START)]
    assert r.next_step is None
    r.state = FAILED
    assert [(s["name"], s["state"]) for s in r.to_json()["steps"]] == [
        (P.DISKS, "done"), (P.DEALLOCATE, "done"), (P.TAG_OLD, "done"), (P.SWAP, "failed"), (P.PUT_BACK, "done"),
        (P.START, "done")]
