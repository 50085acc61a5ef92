"""The policy document: valid documents load; every error names its field; VMs resolve by tag."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.policy import PolicyError, load_policies

GOOD = {
    "version": 1,
    "default": "bronze",
    "policies": {
        "gold": {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"},
                 "restore_point": {"consistency": "ApplicationConsistent", "exclude_luns": [2]},
                 "copy": {"region": "westus"}, "retention": {"keep_last": 6, "keep_daily": 7, "max_age": "P400D"},
                 "lock_days": 7, "backup_policy": "EnhancedPolicy"},
        "bronze": {"schedule": {"daily_at": "02:30", "time_zone": "Europe/Amsterdam"}, "snapshots": {"luns": [0, 1]},
                   "retention": {"keep_last": 7}},
        "weekly": {"schedule": {"weekly_on": "sunday", "at": "03:00"}, "restore_point": {"consistency": "CrashConsistent"}},
    },
}


def doc(**changes) -> str:
    d = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        node = d
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        if value is None:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    return json.dumps(d)


def test_a_valid_document_loads():
    policies = load_policies(doc())
    gold = policies.policies["gold"]
    assert gold.schedule.kind == "hourly" and gold.schedule.every_hours == 4
    assert gold.copy_region == "westus" and gold.lock_days == 7 and gold.restore_point.exclude_luns == (2,)
    assert policies.policies["bronze"].schedule.tz == "Europe/Amsterdam"
    assert policies.policies["weekly"].schedule.weekday == 6


@pytest.mark.parametrize("changes, field", [
    ({"policies__gold__schedule": {"every_hours": 0}}, "policies.gold.schedule.every_hours"),
    ({"policies__gold__schedule": {"every_hours": 2}}, "policies.gold.schedule.every_hours"),  # app-consistent needs 3 h
    ({"policies__gold__schedule": {"every_hours": "x"}}, "policies.gold.schedule.every_hours"),
    ({"policies__bronze__schedule__time_zone": "Mars/Base"}, "policies.bronze.schedule.time_zone"),
    ({"policies__bronze__schedule__daily_at": "25:00"}, "policies.bronze.schedule.daily_at"),
    ({"policies__bronze__snapshots__luns": [99]}, "policies.bronze.snapshots.luns.0"),
    ({"policies__weekly__restore_point__consistency": "Sometimes"}, "policies.weekly.restore_point.consistency"),
    ({"policies__gold__retention": {"keep_dayly": 3}}, "policies.gold.retention.keep_dayly"),
    ({"policies__gold__copy": {"region": "West US"}}, "policies.gold.copy.region"),
    ({"policies__weekly__restore_point": None}, "policies.weekly"),  # takes nothing
    ({"default": "platinum"}, "default"),
    ({"version": 2}, "version"),
])
def test_errors_name_the_field(changes, field):
    with pytest.raises(PolicyError) as err:
        load_policies(doc(**changes))
    assert any(e.startswith(field + ":") for e in err.value.errors), err.value.errors


def test_all_errors_are_reported_at_once():
    with pytest.raises(PolicyError) as err:
        load_policies(doc(default="nope", policies__bronze__schedule__time_zone="Nowhere/City"))
    assert len(err.value.errors) == 2


def test_vm_resolution_by_tag():
    policies = load_policies(doc())
    assert policies.for_vm({"VMKeeper-Policy": "GOLD"}).policy.name == "gold"  # tag names and values: any case
    assert policies.for_vm({}).policy.name == "bronze"
    assert policies.for_vm({"vmkeeper-optout": "true", "vmkeeper-policy": "gold"}).policy is None
    bad = policies.for_vm({"vmkeeper-policy": "platnum"})
    assert bad.policy is None and "'platnum' names no policy (known: bronze, gold, weekly)" in bad.error


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=-5, max_value=200))
def test_every_hours_bounds(hours):
    text = doc(policies__gold__schedule={"every_hours": hours}, policies__gold__restore_point=None)
    if 1 <= hours <= 168:
        assert load_policies(text).policies["gold"].schedule.every_hours == hours
    else:
        with pytest.raises(PolicyError):
            load_policies(text)
