"""Isolated copies (issue 24), the pure parts: the settings (all or none, the backup subscription not a protected
one), the policy's ``isolated`` opt-in and its immutability kind, and the planner handing both to the worker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.policy.document import ImmutabilitySpec, PolicyError, load_policies
from shared.schedule.planner import DiskRef, VmRecord, plan
from shared.schedule.service import job_message
from shared.settings import IsolatedSettings, SettingError

FLEET = "11111111-1111-4111-8111-111111111111"
BACKUP = "22222222-2222-4222-8222-222222222222"
CLIENT = "33333333-3333-4333-8333-333333333333"


def env(**changes: str) -> dict[str, str]:
    base = {"VMKEEPER_SUBSCRIPTIONS": FLEET, "VMKEEPER_ISOLATED_SUBSCRIPTION": BACKUP,
            "VMKEEPER_ISOLATED_RESOURCE_GROUP": "rg-isolated", "VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID": CLIENT}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def test_settings_all_or_none():
    assert IsolatedSettings.from_env({"VMKEEPER_SUBSCRIPTIONS": FLEET}) is None
    assert IsolatedSettings.from_env(env()) == IsolatedSettings(BACKUP, "rg-isolated", CLIENT)


@pytest.mark.parametrize("changes, named", [
    ({"VMKEEPER_ISOLATED_SUBSCRIPTION": None}, "VMKEEPER_ISOLATED_SUBSCRIPTION"),
    ({"VMKEEPER_ISOLATED_RESOURCE_GROUP": None}, "VMKEEPER_ISOLATED_RESOURCE_GROUP"),
    ({"VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID": "not-a-guid"}, "VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID"),
    ({"VMKEEPER_ISOLATED_SUBSCRIPTION": FLEET}, "must not be one of VMKEEPER_SUBSCRIPTIONS"),
])
def test_a_bad_setting_is_refused_naming_it(changes, named):
    with pytest.raises(SettingError, match=named):
        IsolatedSettings.from_env(env(**changes))


def document(gold: dict) -> str:
    return json.dumps({"version": 1, "default": "gold", "policies": {"gold": {"schedule": {"every_hours": 4}, **gold}}})


def test_the_opt_in_and_its_immutability_kind():
    gold = load_policies(document({"snapshots": {}, "isolated": True, "immutability": {"days": 9}})).get("gold")
    assert gold.isolated and gold.immutability == ImmutabilitySpec(9, False, ("snapshot_sets", "isolated_copies"))
    assert load_policies(document({"snapshots": {}})).get("gold").isolated is False


@pytest.mark.parametrize("gold, expected", [
    ({"restore_point": {}, "isolated": True}, "policies.gold.isolated: the policy takes no snapshot sets"),
    ({"snapshots": {}, "immutability": {"days": 1, "kinds": ["isolated_copies"]}},
     "policies.gold.immutability.kinds: 'isolated_copies' needs the policy's isolated: true"),
    ({"snapshots": {}, "isolated": "yes"}, "policies.gold.isolated"),
])
def test_mistakes_name_the_field(gold, expected):
    with pytest.raises(PolicyError) as err:
        load_policies(document(gold))
    assert any(e.startswith(expected) for e in err.value.errors), err.value.errors


def test_the_planner_hands_the_opt_in_to_the_worker():
    policies = load_policies(document({"snapshots": {}, "isolated": True}))
    vm_id = f"/subscriptions/{FLEET}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    vm = VmRecord(vm_id, "vm", FLEET, "rg", "westeurope", {}, DiskRef(f"{vm_id}-os", "os", None))
    job = plan([vm], policies, datetime(2026, 11, 25, 6, tzinfo=UTC)).jobs[0]
    assert job.isolated and job_message(job)["job"]["isolated"] is True
    plain = plan([vm], load_policies(document({"snapshots": {}})), datetime(2026, 11, 25, 6, tzinfo=UTC)).jobs[0]
    assert "isolated" not in job_message(plain)["job"]


def test_a_running_isolated_job_stays_pinned_at_least_until_the_planner_would_send_it_again():
    """Copied into the backup subscription too, a set copies each disk twice: its enqueue says so, and its pin
    lasts as long as the planner waits before taking it for lost (else retention could delete a source mid-copy)."""
    from datetime import timedelta

    from shared.points import pins as P
    from shared.schedule.planner import overdue_after
    from shared.schedule.service import _copies
    from shared.schedule.steps import CHECK_TIMEOUT, COPY_CHECK_CEILING, COPY_TIMEOUT

    bounds = {"step_timeout": timedelta(seconds=CHECK_TIMEOUT), "copy_timeout": timedelta(seconds=COPY_TIMEOUT),
              "look": timedelta(seconds=COPY_CHECK_CEILING)}
    policies = load_policies(document({"snapshots": {}, "isolated": True, "copy": {"region": "northeurope"}}))
    vm_id = f"/subscriptions/{FLEET}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    sent = datetime(2026, 11, 29, 3, 5, tzinfo=UTC)
    for disks in range(1, 5):
        vm = VmRecord(vm_id, "vm", FLEET, "rg", "westeurope", {}, DiskRef(f"{vm_id}-os", "os", None),
                      tuple(DiskRef(f"{vm_id}-d{i}", f"d{i}", i) for i in range(disks - 1)))
        job = plan([vm], policies, sent).jobs[0]
        copies = _copies(job_message(job)["job"])["copies"]
        assert copies == 2 * disks
        running = P.Job(job.vm_id, job.kind, job.slot, sent, disks=disks, copies=copies)
        assert P.job_bound(running) >= sent + overdue_after(job, **bounds), disks


def test_a_bad_isolated_setting_fails_the_isolated_step_only_and_is_logged(caplog):
    from shared.wiring import Wiring

    with caplog.at_level("ERROR", logger="vmkeeper.isolated"):
        target = Wiring(env(VMKEEPER_ISOLATED_SUBSCRIPTION=FLEET)).isolated_target()
    assert target is None  # the worker's isolated step then fails naming the settings; the sets are still made
    assert "must not be one of VMKEEPER_SUBSCRIPTIONS" in caplog.text
