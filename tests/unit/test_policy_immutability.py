"""The policy's ``immutability`` block (issue 24): a valid block loads with its defaults; what Azure cannot make
immutable (restore points) and what the policy does not take are errors naming the field, with the others."""

from __future__ import annotations

import json

import pytest

from shared.policy.document import ImmutabilitySpec, PolicyError, load_policies


def document(block: object, *, copy: bool = True, snapshots: bool = True, restore_point: bool = False) -> str:
    gold: dict = {"schedule": {"every_hours": 4}, "immutability": block}
    if snapshots:
        gold["snapshots"] = {}
    if restore_point:
        gold["restore_point"] = {}
    if copy:
        gold["copy"] = {"region": "northeurope"}
    return json.dumps({"version": 1, "default": "gold", "policies": {
        "gold": gold, "silver": {"schedule": {"every_hours": 12}, "snapshots": {}}}})


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as err:
        load_policies(text)
    return err.value.errors


def test_a_block_loads_with_its_defaults():
    policies = load_policies(document({"days": 30}))
    assert policies.get("gold").immutability == ImmutabilitySpec(30, False, ("snapshot_sets", "copies"))
    assert policies.get("silver").immutability is None
    no_copy = load_policies(document({"days": 7, "locked": True}, copy=False)).get("gold")
    assert no_copy.immutability == ImmutabilitySpec(7, True, ("snapshot_sets",))


def test_kinds_are_taken_as_given_in_a_fixed_order():
    gold = load_policies(document({"days": 1, "kinds": ["copies", "snapshot_sets"]})).get("gold")
    assert gold.immutability.kinds == ("snapshot_sets", "copies")
    only_copies = load_policies(document({"days": 1, "kinds": ["copies"]})).get("gold")
    assert only_copies.immutability.kinds == ("copies",)


def test_restore_points_are_refused_naming_the_field_and_why():
    errors = errors_of(document({"days": 30, "kinds": ["snapshot_sets", "restore_points"]}, restore_point=True))
    assert errors == ["policies.gold.immutability.kinds[1]: 'restore_points' cannot be made immutable: Azure offers "
                      "no immutability policy on restore points (only on snapshots); protect them with an immutable "
                      "Azure Backup vault instead"]


def test_a_policy_of_restore_points_only_is_refused():
    errors = errors_of(document({"days": 30}, snapshots=False, copy=False, restore_point=True))
    assert errors == ["policies.gold.immutability: the policy takes no snapshot sets (give snapshots): Azure can "
                      "make only snapshots immutable, not restore points"]


@pytest.mark.parametrize(("block", "expected"), [
    ({"days": 1, "kinds": ["copies"]}, "policies.gold.immutability.kinds: 'copies' needs the policy's copy"),
    ({"days": 1, "kinds": ["forever"]}, "policies.gold.immutability.kinds[0]: must be one of snapshot_sets, copies"),
    ({"days": 1, "kinds": ["vault"]}, "policies.gold.immutability.kinds[0]: 'vault' cannot be made immutable"),
    ({"days": 0}, "policies.gold.immutability.days: must be at least 1"),
    ({"days": 36501}, "policies.gold.immutability.days: must be at most 36500"),
    ({"locked": True}, "policies.gold.immutability.days: is required"),
    ({"days": 3, "locked": "yes"}, "policies.gold.immutability.locked: must be true or false"),
    ({"days": 3, "kinds": []}, "policies.gold.immutability.kinds: must not be empty"),
    ({"days": 3, "until": "2030"}, "policies.gold.immutability.until: unknown field (known: days, locked, kinds)"),
])
def test_each_mistake_names_its_field(block, expected):
    errors = errors_of(document(block, copy=False))
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_mistakes_are_reported_with_the_others():
    text = json.loads(document({"days": 3, "kinds": ["restore_points"]}, restore_point=True))
    text["policies"]["silver"]["schedule"] = {"every_hours": 0}
    errors = errors_of(json.dumps(text))
    assert [e.split(":")[0] for e in errors] == ["policies.gold.immutability.kinds[0]",
                                                 "policies.silver.schedule.every_hours"]


def test_the_planner_hands_the_block_and_the_horizon_to_the_worker():
    """A snapshot set job of a policy with immutability carries it and the set's expiry (the horizon the worker
    makes the policy reach); a restore point job and a policy without the block carry none."""
    from datetime import UTC, datetime, timedelta

    from shared.schedule.planner import plan
    from shared.schedule.service import job_message
    from tests.unit.test_planner import vm

    text = json.loads(document({"days": 10, "locked": True}, restore_point=True))
    text["policies"]["gold"]["retention"] = {"keep_last": 3, "max_age_days": 30}
    policies = load_policies(json.dumps(text))
    now = datetime(2026, 11, 25, 9, 17, tzinfo=UTC)
    snaps, rp = plan([vm("app1")], policies, now).jobs
    body = job_message(snaps)["job"]
    assert body["immutability"] == {"days": 10, "locked": True, "kinds": ["snapshot_sets", "copies"]}
    assert datetime.fromisoformat(body["expires"]) == snaps.slot + timedelta(days=30)
    assert "immutability" not in job_message(rp)["job"]
    silver = plan([vm("app2", tags={"vmkeeper-policy": "silver"})], policies, now).jobs[0]
    assert "immutability" not in job_message(silver)["job"]
