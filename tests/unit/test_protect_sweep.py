"""The protect sweep's pure decision (shared/autoprotect/sweep.py): which fleet VMs get a protection job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.autoprotect.sweep import decide, inputs_key, lasting_failure, recheck_due
from shared.instants import format_instant

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
VAULT = "/subscriptions/s/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault-westeurope"
KEY = inputs_key("inst-1", "westeurope", {"vmkeeper-policy": "silver"}, "", "doc-1")


def row(outcome: str, detail: dict, age: timedelta) -> dict:
    return {"outcome": outcome, "detail": json.dumps(detail), "updated": format_instant(NOW - age)}


def protected(age: timedelta) -> dict:
    return row("protected", {"vm_instance": "inst-1", "policy": "DefaultPolicy", "vault": VAULT}, age)


def failed(age: timedelta, inputs: str | None = KEY) -> dict:
    return row("failed", {"reason": "no Recovery Services vault configured for region 'westeurope'", "inputs": inputs}, age)


def sweep(r: dict | None, inputs: str = KEY, vault: str = VAULT, now: datetime = NOW) -> str:
    return decide(r, "inst-1", "DefaultPolicy", vault, inputs, now, DAY, DAY)


def test_a_failure_with_the_same_inputs_is_held_until_the_retry_interval_passes():
    assert sweep(failed(timedelta(minutes=30)), vault="") == "held"
    assert sweep(failed(timedelta(hours=23, minutes=59)), vault="") == "held"
    assert sweep(failed(DAY), vault="") == "send"  # the interval passed: tried again (and poisoned, never silent)


def test_any_change_of_inputs_sends_at_once():
    recent = failed(timedelta(minutes=30))
    assert sweep(recent, inputs_key("inst-1", "westeurope", {"vmkeeper-policy": "gold"}, "", "doc-1")) == "send"
    assert sweep(recent, inputs_key("inst-1", "westeurope", {"vmkeeper-policy": "silver"}, VAULT, "doc-1")) == "send"
    assert sweep(recent, inputs_key("inst-1", "westeurope", {"vmkeeper-policy": "silver"}, "", "doc-2")) == "send"
    assert sweep(recent, inputs_key("inst-2", "westeurope", {"vmkeeper-policy": "silver"}, "", "doc-1")) == "send"
    assert sweep(recent, inputs_key("inst-1", "northeurope", {"vmkeeper-policy": "silver"}, "", "doc-1")) == "send"


def test_inputs_key_is_stable_and_ignores_case_and_order():
    assert inputs_key("INST-1", "West Europe", {"b": "2", "a": "1"}, VAULT.upper(), "d") == \
        inputs_key("inst-1", "westeurope", {"a": "1", "b": "2"}, VAULT, "d")
    assert inputs_key("inst-1", "westeurope", {"a": ""}, "", "d") != inputs_key("inst-1", "westeurope", {}, "", "d")


def test_doubt_sends():
    assert sweep(None) == "send"
    assert sweep(failed(timedelta(minutes=5), inputs=None)) == "send"  # an event's job: its inputs unknown
    assert sweep({**failed(timedelta(minutes=5)), "updated": ""}) == "send"  # no time
    assert sweep({**failed(timedelta(minutes=5)), "detail": "{not json"}) == "send"
    assert sweep(failed(-timedelta(hours=1))) == "send"  # a time ahead of the clock
    assert sweep(row("vm_gone", {"inputs": KEY}, timedelta(minutes=5))) == "send"  # not a failure to hold
    assert sweep(row("bad_tag", {"error": "x", "inputs": KEY}, timedelta(minutes=5))) == "held"


def test_a_protected_row_is_looked_at_again_once_a_day():
    assert sweep(protected(timedelta(hours=1))) == "protected"
    assert sweep(protected(DAY / 2 - timedelta(seconds=1))) == "protected"
    assert sweep(protected(DAY)) == "send"  # protection stopped outside vmkeeper is found within a day
    assert sweep({**protected(timedelta(hours=1)), "updated": "yesterday"}) == "send"
    assert sweep(protected(timedelta(hours=1)), vault=VAULT.replace("westeurope", "other")) == "send"  # another vault


def test_the_re_check_of_rows_written_together_is_spread_over_the_second_half_of_the_interval():
    instances = [f"inst-{i}" for i in range(1000)]
    due = {hours: sum(recheck_due(timedelta(hours=hours), DAY, i) for i in instances) for hours in (11.9, 15, 18, 21, 24)}
    assert due[11.9] == 0 and due[24] == 1000  # never before half the interval, all by its end
    assert 150 < due[15] < 350 and 400 < due[18] < 600 and 650 < due[21] < 850  # about evenly between
    assert recheck_due(timedelta(hours=20), DAY, "INST-7") == recheck_due(timedelta(hours=20), DAY, "inst-7")


def test_only_a_failure_at_the_first_look_is_held():
    assert lasting_failure({"vm_id": "x", "action": "protect"})  # no vault for its region: the same again
    assert not lasting_failure({"vm_id": "x", "attempt": 11})  # gave up after tries (an outage, throttling)
    assert not lasting_failure({"vm_id": "x", "errors": 5})  # gave up after errors
