"""The policy document: valid documents load; every error names its field, all at once; VMs resolve
by tag (names and values in any case)."""

from __future__ import annotations

import copy
import json
import zoneinfo
from datetime import time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.policy.document import (
    CopySpec,
    PolicyError,
    RestorePointSpec,
    Schedule,
    SnapshotSpec,
    load_policies,
    load_policy_file,
)
from shared.policy.retention import RetentionPolicy

GOOD = {
    "version": 1,
    "default": "bronze",
    "policies": {
        "gold": {
            "schedule": {"every_hours": 4},
            "snapshots": {"luns": "all", "include_os_disk": True},
            "restore_point": {"consistency": "ApplicationConsistent", "exclude_luns": [2]},
            "copy": {"region": "westus"},
            "retention": {
                "keep_last": 6,
                "keep_daily": 7,
                "keep_weekly": 4,
                "keep_monthly": 12,
                "max_age_days": 400,
            },
            "lock_days": 7,
            "backup_policy": "DefaultPolicy",
        },
        "bronze": {
            "schedule": {"daily_at": "02:30", "time_zone": "Europe/Amsterdam"},
            "snapshots": {"luns": [0, 1]},
            "retention": {"keep_last": 7},
        },
        "weekly": {
            "schedule": {"weekly_on": "sunday", "at": "03:00", "time_zone": "UTC"},
            "restore_point": {"consistency": "CrashConsistent"},
        },
    },
}


def doc(*changes: tuple[str, object]) -> str:
    """GOOD with changes: ("policies.gold.schedule", {...}) sets a value; a value of DELETE removes it."""
    d = copy.deepcopy(GOOD)
    for path, value in changes:
        *parents, last = path.split(".")
        node = d
        for key in parents:
            node = node[key]
        if value is DELETE:
            node.pop(last)
        else:
            node[last] = value
    return json.dumps(d)


DELETE = object()


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    return err.value.errors


def test_the_documented_example_loads():
    policies = load_policies(doc())
    gold, bronze, weekly = (policies.policies[n] for n in ("gold", "bronze", "weekly"))
    assert gold.schedule == Schedule("hourly", every_hours=4)
    assert gold.snapshots == SnapshotSpec("all", True)
    assert gold.restore_point == RestorePointSpec("ApplicationConsistent", (2,))
    assert gold.copy == CopySpec("westus") and gold.copy_region == "westus"
    assert gold.lock_days == 7 and gold.backup_policy == "DefaultPolicy"
    # Parsed once, into the engine's typed rules (max_age_days is a max_age).
    assert gold.retention == RetentionPolicy(keep_last=6, keep_daily=7, keep_weekly=4, keep_monthly=12,
                                             max_age=timedelta(days=400))
    assert bronze.schedule == Schedule("daily", at=time(2, 30), tz="Europe/Amsterdam")
    assert (
        bronze.snapshots == SnapshotSpec((0, 1), True)
        and bronze.restore_point is None
        and bronze.copy is None
    )
    assert weekly.schedule == Schedule("weekly", at=time(3, 0), weekday=6, tz="UTC")
    assert weekly.snapshots is None and weekly.restore_point.consistency == "CrashConsistent"
    assert policies.version == 1 and policies.default == "bronze"


def test_defaults_of_optional_fields():
    text = json.dumps(
        {
            "version": 1,
            "policies": {"p": {"schedule": {"daily_at": "00:00"}, "snapshots": {}, "restore_point": {}}},
        }
    )
    p = load_policies(text).policies["p"]
    assert p.schedule.tz == "UTC" and p.snapshots == SnapshotSpec("all", True)
    assert p.restore_point == RestorePointSpec("ApplicationConsistent", ())
    assert p.retention == RetentionPolicy() and not p.retention.has_rules
    assert p.lock_days is None and p.copy is None


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            ("policies.gold.schedule", {"every_hours": 0}),
            "policies.gold.schedule.every_hours: must be between 1 and 168 (got 0)",
        ),
        (
            ("policies.gold.schedule", {"every_hours": 169}),
            "policies.gold.schedule.every_hours: must be between 1 and 168 (got 169)",
        ),
        (
            (
                "policies.gold.schedule",
                {"every_hours": 2},
            ),  # application-consistent restore points: 3 h apart at least
            "policies.gold.schedule.every_hours: ApplicationConsistent restore points need at least 3 h between them (got 2)",
        ),
        (
            ("policies.gold.schedule", {"every_hours": "4"}),
            "policies.gold.schedule.every_hours: must be an integer",
        ),
        (
            ("policies.gold.schedule", {"every_hours": 4, "time_zone": "UTC"}),
            "policies.gold.schedule.time_zone: applies to",
        ),
        (
            ("policies.gold.schedule", {"every_hours": 4, "daily_at": "01:00"}),
            "policies.gold.schedule: needs exactly one of",
        ),
        (("policies.gold.schedule", {}), "policies.gold.schedule: needs exactly one of"),
        (("policies.gold.schedule", {"every_hour": 4}), "policies.gold.schedule.every_hour: unknown field"),
        (("policies.gold.schedule", DELETE), "policies.gold.schedule: is required"),
        (
            ("policies.bronze.schedule.time_zone", "Mars/Base"),
            "policies.bronze.schedule.time_zone: unknown time zone 'Mars/Base'",
        ),
        (
            ("policies.bronze.schedule.daily_at", "25:00"),
            "policies.bronze.schedule.daily_at: must be a 24-hour time HH:MM",
        ),
        (
            ("policies.bronze.schedule.daily_at", "2:30"),
            "policies.bronze.schedule.daily_at: must be a 24-hour time HH:MM",
        ),
        (
            ("policies.weekly.schedule.weekly_on", "Sun"),
            "policies.weekly.schedule.weekly_on: must be one of monday",
        ),
        (("policies.weekly.schedule.at", DELETE), "policies.weekly.schedule.at: is required with weekly_on"),
        (
            ("policies.bronze.snapshots.luns", [99]),
            "policies.bronze.snapshots.luns[0]: must be at most 63 (got 99)",
        ),
        (
            ("policies.bronze.snapshots.luns", [0, -1]),
            "policies.bronze.snapshots.luns[1]: must be at least 0 (got -1)",
        ),
        (
            ("policies.bronze.snapshots.luns", "some"),
            'policies.bronze.snapshots.luns: must be "all" or a list',
        ),
        (
            ("policies.bronze.snapshots.luns", [1, 1]),
            'policies.bronze.snapshots.luns: must be "all" or a list',
        ),
        (
            ("policies.bronze.snapshots", {"luns": [], "include_os_disk": False}),
            "policies.bronze.snapshots: selects no disk",
        ),
        (
            ("policies.bronze.snapshots.include_os_disk", "yes"),
            "policies.bronze.snapshots.include_os_disk: must be true or false",
        ),
        (
            ("policies.weekly.restore_point.consistency", "Sometimes"),
            'policies.weekly.restore_point.consistency: must be one of CrashConsistent, ApplicationConsistent (got "Sometimes")',
        ),
        (
            ("policies.gold.restore_point.exclude_luns", [64]),
            "policies.gold.restore_point.exclude_luns[0]: must be at most 63",
        ),
        (
            ("policies.gold.copy", {"region": "West US"}),
            "policies.gold.copy.region: must be an Azure region name in lower case",
        ),
        (
            ("policies.gold.copy", {"region": ""}),
            "policies.gold.copy.region: must be an Azure region name in lower case",
        ),
        (("policies.gold.copy", {}), "policies.gold.copy.region: is required"),
        (
            ("policies.gold.retention", {"keep_dayly": 3}),
            "policies.gold.retention.keep_dayly: unknown setting",
        ),
        (
            ("policies.gold.retention", {"max_age_days": 0}),
            "policies.gold.retention.max_age_days: must be a positive integer",
        ),
        (  # passed validation, then broke planning (OverflowError: a slot plus 3,000,000 days)
            ("policies.gold.retention", {"max_age": "P3000000D"}),
            "policies.gold.retention.max_age: must be at most 36500 days (got 3000000 days)",
        ),
        (
            ("policies.gold.retention", {"max_age": "P999999999999D"}),
            "policies.gold.retention: a duration is out of range",
        ),
        (
            ("policies.gold.retention", {"max_age_days": 3, "max_age": "P3D"}),
            "policies.gold.retention.max_age_days: give max_age",
        ),
        (("policies.gold.retention", {"max_age": "soon"}), "policies.gold.retention.max_age:"),
        (("policies.gold.lock_days", 0), "policies.gold.lock_days: must be at least 1 (got 0)"),
        (("policies.gold.backup_policy", ""), "policies.gold.backup_policy: must not be empty"),
        (("policies.gold.snapshotz", {}), "policies.gold.snapshotz: unknown field"),
        (
            ("policies.weekly.restore_point", DELETE),
            "policies.weekly: takes nothing: give snapshots and/or restore_point",
        ),
        (
            ("policies.gold v2", {"schedule": {"every_hours": 4}, "snapshots": {}}),
            'policies["gold v2"]: policy names are',
        ),
        (
            ("policies.Gold", {"schedule": {"every_hours": 4}, "snapshots": {}}),
            "policies.Gold: same name as 'gold'",
        ),
        (("policies", {}), "policies: must not be empty"),
        (("default", "platinum"), "default: 'platinum' names no policy (known: bronze, gold, weekly)"),
        (("version", 2), "version: must be 1"),
        (("versions", 1), "versions: unknown field"),
    ],
)
def test_each_error_names_its_field(change, expected):
    errors = errors_of(doc(change))
    assert any(e.startswith(expected) for e in errors), errors


def test_all_errors_are_reported_at_once_in_document_order():
    errors = errors_of(
        doc(
            ("default", "nope"),
            ("policies.gold.schedule", {"every_hours": 0}),
            ("policies.gold.snapshots.luns", [99]),  # a schema error does not hide gold's other error
            ("policies.bronze.schedule.time_zone", "Nowhere/City"),
            ("policies.weekly.restore_point.consistency", "Sometimes"),
        )
    )
    fields = [e.split(":", 1)[0] for e in errors]
    assert fields == [
        "policies.gold.snapshots.luns[0]",
        "policies.gold.schedule.every_hours",
        "policies.bronze.schedule.time_zone",
        "policies.weekly.restore_point.consistency",
        "default",
    ]
    with pytest.raises(
        PolicyError, match=r"^5 errors in the policy document: policies\.gold\.snapshots\.luns\[0\]"
    ):
        load_policies(
            doc(
                ("default", "nope"),
                ("policies.gold.schedule", {"every_hours": 0}),
                ("policies.gold.snapshots.luns", [99]),
                ("policies.bronze.schedule.time_zone", "Nowhere/City"),
                ("policies.weekly.restore_point.consistency", "Sometimes"),
            )
        )


def test_restore_point_intervals_accepted_at_the_limits():
    load_policies(doc(("policies.gold.schedule", {"every_hours": 3})))
    load_policies(doc(("policies.weekly.schedule", {"every_hours": 1})))  # crash-consistent: 1 h
    errors = errors_of(doc(("policies.gold.schedule", {"every_hours": 1})))
    assert errors == [
        "policies.gold.schedule.every_hours: ApplicationConsistent restore points need at least 3 h "
        "between them (got 1)"
    ]


def test_not_json_and_not_an_object():
    assert errors_of("{nope")[0].startswith("(document): not valid JSON: ")
    assert errors_of("[]") == ["(document): must be an object (got [])"]


def test_a_file_names_itself_in_the_message(tmp_path):
    path = tmp_path / "policies.json"
    path.write_text(doc(("default", "nope")))
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value).startswith(f"{path}: default: 'nope' names no policy")
    assert err.value.source == str(path)
    path.write_text(doc())
    assert load_policy_file(path).policies["gold"].name == "gold"


def test_utc_needs_no_time_zone_database(monkeypatch):
    def no_database(key):
        raise zoneinfo.ZoneInfoNotFoundError(key)

    monkeypatch.setattr(zoneinfo, "ZoneInfo", no_database)
    monkeypatch.setattr(zoneinfo, "available_timezones", set)
    policies = load_policies(doc(("policies.bronze.schedule.time_zone", "UTC")))
    assert policies.policies["weekly"].schedule.tz == "UTC"
    errors = errors_of(doc())
    assert errors == [
        "policies.bronze.schedule.time_zone: unknown time zone 'Europe/Amsterdam': this host has no "
        "time zone database (install the tzdata package)"
    ]


def test_vm_resolution_by_tag():
    policies = load_policies(doc())
    # Tag names and values: any case.
    assert policies.for_vm({"VMKeeper-Policy": " GOLD "}).policy.name == "gold"
    assert policies.for_vm({"vmkeeper-policy": "Weekly"}).reason == "tag 'vmkeeper-policy' = 'Weekly'"
    default = policies.for_vm({"env": "prod"})
    assert default.policy.name == "bronze" and default.reason == "default policy 'bronze'"
    assert policies.for_vm({"vmkeeper-policy": ""}).policy.name == "bronze"  # an empty value chooses nothing
    assert policies.for_vm(None).policy.name == "bronze"


def test_opt_out_wins_over_any_policy_tag():
    policies = load_policies(doc())
    for value in ("true", "True", "yes", "1", "on"):
        out = policies.for_vm({"VMKEEPER-OPTOUT": value, "vmkeeper-policy": "platnum"})
        assert out.policy is None and out.opted_out and out.error is None and value in out.reason
    assert policies.for_vm({"vmkeeper-optout": "false"}).policy.name == "bronze"


def test_a_bad_tag_value_names_the_tag_and_the_known_policies():
    bad = load_policies(doc()).for_vm({"vmkeeper-policy": "platnum"})
    assert bad.policy is None and not bad.opted_out
    assert bad.error == "tag 'vmkeeper-policy' = 'platnum' names no policy (known: bronze, gold, weekly)"


def test_no_tag_and_no_default_is_no_error():
    policies = load_policies(doc(("default", DELETE)))
    none = policies.for_vm({})
    assert none.policy is None and none.error is None and not none.opted_out and "no default" in none.reason


def test_policy_names_are_case_insensitive():
    policies = load_policies(
        doc(("policies.Silver", {"schedule": {"every_hours": 12}, "snapshots": {}}), ("default", "SILVER"))
    )
    assert policies.for_vm({}).policy.name == "Silver"
    assert policies.for_vm({"vmkeeper-policy": "silver"}).policy.name == "Silver"
    assert policies.get("SILVER").name == "Silver" and "silver" in policies.policies


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=-5, max_value=200))
def test_every_hours_bounds(hours):
    text = doc(("policies.gold.schedule", {"every_hours": hours}), ("policies.gold.restore_point", DELETE))
    if 1 <= hours <= 168:
        assert load_policies(text).policies["gold"].schedule.every_hours == hours
    else:
        assert errors_of(text) == [
            f"policies.gold.schedule.every_hours: must be between 1 and 168 (got {hours})"
        ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 200)
    | st.sampled_from(["all", "02:30", "UTC", "x", "", "westus"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["every_hours", "daily_at", "luns", "region", "schedule", "snapshots", "keep_last", "x"]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_damage_is_a_policy_error_never_a_crash(data):
    """Meaning is checked only where the schema holds, so no damage makes the checks themselves fail."""
    d = copy.deepcopy(GOOD)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in _paths(d) if p]))
        node = d
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = data.draw(json_values)
    try:
        load_policies(json.dumps(d))
    except PolicyError as exc:
        assert exc.errors and all(": " in e for e in exc.errors)
