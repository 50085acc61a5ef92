"""Isolated copies (issue 24) against local Azure, through the app's own wiring (shared/wiring.py: the worker, the
fleet's retention pass and the isolated copies' pass), real SDK clients and real tables in Azurite, with the role
assignments infra/ makes: the app's identity holds infra/vmkeeper-role.json at the fleet's subscription and nothing
in the backup subscription; the second identity holds infra/vmkeeper-isolated-role.json at the backup group and
infra/vmkeeper-isolated-source-role.json at the fleet's subscription.

A completed set is copied into the backup subscription by the second identity (and made immutable there); the app's
identity cannot delete a copy (403), nor can anyone while its Locked policy holds (409); the fleet's retention never
touches the backup subscription, the isolated pass deletes a copy once retention and its policy let it go, and a
source is not deleted while its isolated copy is in flight."""

from __future__ import annotations

import json
import uuid
from datetime import UTC

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from emulator.testing import StaticCredential
from shared.queue import messages as jobs
from shared.schedule import isolated as I
from shared.schedule.steps import new_message
from shared.wiring import Wiring
from tests.app.deployed_roles import assignments, isolated_assignments, isolated_reader_assignments
from tests.app.test_immutable_points import immutable_job
from tests.app.test_scheduled_worker import run

RG = "rg-vm-00"
BACKUP_SUB = "0b0b0b0b-0000-4000-8000-0000000000b1"
BACKUP_RG = "rg-isolated-copies"
APP, SECOND, OPERATOR = "vmkeeper-app", "vmkeeper-isolated", "operator"
DAY = 86400
POLICIES = {"version": 1, "policies": {"gold": {
    "schedule": {"daily_at": "06:00", "time_zone": "UTC"}, "snapshots": {"luns": "all"}, "isolated": True,
    "retention": {"keep_last": 1, "deferral": "PT1H", "orphan_grace": "PT1H"}}}}


@pytest.fixture
def backup(az):
    """The backup subscription and its group (arranged with the emulator's unrestricted client)."""
    az.admin("POST", "subscriptions", {"id": BACKUP_SUB, "displayName": "backup"})
    az.client(ResourceManagementClient, BACKUP_SUB).resource_groups.create_or_update(BACKUP_RG, {"location": "westeurope"})
    return f"/subscriptions/{BACKUP_SUB}/resourceGroups/{BACKUP_RG}"


@pytest.fixture
def wiring(az, azurite, sub, backup, tmp_path):
    """The app as deployed with isolated copies: its settings, its identity and the second one, their roles."""
    return isolated_wiring(az, azurite, sub, backup, tmp_path)


def isolated_wiring(az, azurite, sub: str, backup_group: str, tmp_path, **settings: str) -> Wiring:
    """The app's wiring with isolated copies set up (and ``settings`` besides), its tables made and infra's role
    assignments given; ``{suffix}`` in a setting's value names this world's own queue or table."""
    from azure.data.tables import TableClient

    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(POLICIES))
    suffix = uuid.uuid4().hex[:8]
    env = {"VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
           "AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
           "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
           "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_RESTORE_TABLE": f"restores{suffix}",
           "VMKEEPER_ALERTS_TABLE": f"alerts{suffix}", "VMKEEPER_WRITES_PER_SECOND": "50",
           "VMKEEPER_ISOLATED_SUBSCRIPTION": BACKUP_SUB, "VMKEEPER_ISOLATED_RESOURCE_GROUP": BACKUP_RG,
           "VMKEEPER_ISOLATED_IDENTITY_CLIENT_ID": "11111111-2222-4333-8444-555555555555",
           **{k: v.format(suffix=suffix) for k, v in settings.items()}}
    az.role_assignments(deployed(sub, backup_group))
    for name in ("ledger", "budget", "restores", "alerts"):
        TableClient.from_connection_string(azurite.connection_string, f"{name}{suffix}").create_table()
    return Wiring(env, credential=StaticCredential(APP), isolated_credential=StaticCredential(SECOND))


def until_isolated_copy_under_way(az, wiring, message: dict) -> dict:
    """The job driven through the worker until its first isolated copy is under way; its message then."""
    for _ in range(200):
        outcome = wiring.schedule.worker.handle(message)
        assert isinstance(outcome, jobs.Retry), outcome
        message = {**message, **outcome.changes}
        if message["step"] == "isolated_check":
            return message
        az.advance(outcome.delay)
    raise AssertionError(f"no isolated copy under way after 200 steps: {message['step']}")


def deployed(sub: str, backup_group: str) -> list[dict]:
    """The role assignments infra makes: the app's role in production and its reader role at the backup group, the
    second identity's at the backup group and its source role in production."""
    return (assignments(APP, [sub], []) + isolated_reader_assignments(APP, backup_group)
            + isolated_assignments(SECOND, [sub], backup_group))


def isolated_job(vm, sub, slot, *, locked=True, days=2):
    job = immutable_job(vm, sub, slot, days=days, locked=locked, kinds=("snapshot_sets", "isolated_copies"))
    job["isolated"] = True
    return job


def copies_of(job) -> list[str]:
    return [I.isolated_name(job, t) for t in job["snapshots"]]


def backup_client(az, principal: str | None = None):
    credential = StaticCredential(principal) if principal else None
    return az.client(ComputeManagementClient, BACKUP_SUB, credential=credential, polling_interval=0)


def calls_into_backup(az, since: int, agent: str) -> list[dict]:
    return [c for c in az.calls(since) if f"/subscriptions/{BACKUP_SUB}".lower() in c["path"].lower()
            and agent in (c.get("userAgent") or "")]


def test_a_completed_set_is_copied_into_the_backup_subscription_by_the_second_identity(az, wiring, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00000")
    job = isolated_job(vm, sub, "2026-11-25T06:00:00+00:00")
    since = len(az.calls())
    outcome, steps = run(wiring.schedule.worker, az, new_message(job))
    assert isinstance(outcome, jobs.Done), outcome
    assert steps.index("isolated") > max(i for i, s in enumerate(steps) if s == "immutable")  # once the set is done
    backup = backup_client(az)
    for target, name in zip(job["snapshots"], copies_of(job), strict=True):
        copy = backup.snapshots.get(BACKUP_RG, name)
        source = compute.snapshots.get(RG, target["name"])
        assert copy.creation_data.create_option == "Copy" and copy.creation_data.source_resource_id.lower() == source.id.lower()
        assert copy.tags["vmkeeper-set"] == job["set_id"] and copy.tags["vmkeeper-copy-of"] == source.id[-256:]
        policy = copy.properties.immutability_policy
        assert (policy.type, policy.immutability_duration_days) == ("Locked", 2)
    # Every write into the backup subscription is the second identity's (its own user agent); none is the app's.
    writes = [c for c in calls_into_backup(az, since, "vmkeeper") if c["method"] in ("PUT", "POST", "PATCH", "DELETE")]
    assert writes and all("vmkeeper-isolated/" in c["userAgent"] for c in writes)
    # ARM checked the second identity's access to each source (its role at the fleet's subscription grants it).
    linked = [c for c in az.calls(since) if c["method"] == "LINKED" and "vmkeeper-isolated/" in (c["userAgent"] or "")]
    assert {(c["operation"], c["status"]) for c in linked} == {("Microsoft.Compute/snapshots/beginGetAccess/action", 200)}
    assert len(linked) == len(job["snapshots"])


def test_the_production_identity_cannot_delete_an_isolated_copy_nor_anyone_before_expiry(az, wiring, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00002")
    job = isolated_job(vm, sub, "2026-11-25T06:00:00+00:00")
    assert isinstance(run(wiring.schedule.worker, az, new_message(job))[0], jobs.Done)
    name = copies_of(job)[0]
    # The app's own identity, through its own clients: it may read a copy there (restores), and nothing more.
    mine = wiring.arm.compute(BACKUP_SUB)
    assert mine.snapshots.get(BACKUP_RG, name).name == name
    with pytest.raises(HttpResponseError) as err:
        mine.snapshots.begin_delete(BACKUP_RG, name).result()
    assert (err.value.status_code, err.value.error.code) == (403, "AuthorizationFailed")
    # Nor can it lift the policy's lock, shorten it, or rewrite the copy's tags.
    for attempt in (lambda: mine.snapshots.begin_update(BACKUP_RG, name, {"tags": {}}).result(),
                    lambda: mine.snapshots.begin_update_immutability_policy(
                        BACKUP_RG, name, {"immutabilityDurationDays": 1, "type": "Unlocked"}).result()):
        with pytest.raises(HttpResponseError) as err:
            attempt()
        assert (err.value.status_code, err.value.error.code) == (403, "AuthorizationFailed")
    # With the policy Locked, not even an Owner of the backup subscription, nor the second identity, until it expires.
    az.role_assignments(deployed(sub, f"/subscriptions/{BACKUP_SUB}/resourceGroups/{BACKUP_RG}")
                        + [{"principal": OPERATOR, "scope": f"/subscriptions/{BACKUP_SUB}", "actions": ["*"]}])
    for client in (backup_client(az, OPERATOR), wiring.isolated_arm.compute(BACKUP_SUB)):
        with pytest.raises(HttpResponseError) as err:
            client.snapshots.begin_delete(BACKUP_RG, name).result()
        assert err.value.status_code == 409
    assert backup_client(az).snapshots.get(BACKUP_RG, name).name == name


def test_retention_the_fleets_pass_never_touches_the_copies_the_second_identitys_deletes_them_after_expiry(
        az, emu, wiring, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00000")
    old = isolated_job(vm, sub, "2026-11-24T06:00:00+00:00", days=1)
    assert isinstance(run(wiring.schedule.worker, az, new_message(old))[0], jobs.Done)
    az.advance(3600)
    new = isolated_job(vm, sub, "2026-11-25T06:00:00+00:00", days=1)
    assert isinstance(run(wiring.schedule.worker, az, new_message(new))[0], jobs.Done)
    old_copies, new_copies = set(copies_of(old)), set(copies_of(new))

    def passes(shift: float) -> dict:
        az.advance(shift)
        now = emu.clock.now().astimezone(UTC)
        since = len(az.calls())
        wiring.retention.run(now)  # the fleet's, with the app's identity
        assert not calls_into_backup(az, since, "vmkeeper/"), "the app's identity called into the backup subscription"
        decisions, applied = wiring.isolated_retention.run(now)
        assert not applied.errors, applied.errors
        az.advance(1)  # deletes are long-running: let the accepted ones finish
        return {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}

    first = passes(0)  # the old copies' Locked policy (a day) holds: marked to go once it expires, no delete sent
    assert {(first[n].action, first[n].rule) for n in old_copies} == {("mark", "not_selected")}
    assert {first[n].rule for n in new_copies} == {"newest_good"}  # the fleet's VM is live: its newest set is kept
    assert not [c for c in az.calls() if c["method"] == "DELETE" and f"/subscriptions/{BACKUP_SUB}" in c["path"]]
    gone = passes(DAY + 3601)  # the first pass after the policy and the mark's deferral
    assert {gone[n].action for n in old_copies} == {"delete"}
    left = {s.name for s in backup_client(az).snapshots.list_by_resource_group(BACKUP_RG)}
    assert not old_copies & left and new_copies <= left
    deletes = [c for c in az.calls() if c["method"] == "DELETE" and f"/subscriptions/{BACKUP_SUB}" in c["path"]]
    assert deletes and all("vmkeeper-isolated/" in c["userAgent"] and c["status"] == 202 for c in deletes)
    # Each deletion said: the old set's and its isolated copies', in two alerts (the copies carry the set's id).
    from datetime import timedelta

    from shared.alerts import events as A

    said = [a["data"] for a in wiring.alerts.recent(emu.clock.now().astimezone(UTC) - timedelta(days=30),
                                                    (A.RETENTION_DELETED,))]
    copies_said = [{d["id"].rsplit("/", 1)[-1] for d in data["deleted"]} for data in said
                   if all(f"/subscriptions/{BACKUP_SUB}".lower() in d["id"].lower() for d in data["deleted"])]
    assert copies_said == [old_copies]


def test_a_source_is_not_deleted_while_its_isolated_copy_is_in_flight(az, emu, wiring, compute, sub):
    vm = compute.virtual_machines.get(RG, "vm-00000")
    new = isolated_job(vm, sub, "2026-11-25T06:00:00+00:00", days=1)
    new.pop("immutability"), new.pop("isolated")
    old = isolated_job(vm, sub, "2026-11-24T06:00:00+00:00", days=1)
    old.pop("immutability")
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 30 * DAY}})  # the copy takes long
    until_isolated_copy_under_way(az, wiring, new_message(old))
    az.advance(3600)
    assert isinstance(run(wiring.schedule.worker, az, new_message(new))[0], jobs.Done)  # a newer set: the old one expires
    in_flight = backup_client(az).snapshots.get(BACKUP_RG, copies_of(old)[0])
    assert in_flight.provisioning_state != "Succeeded"
    sources = [t["name"] for t in old["snapshots"]]
    for shift in (0, 2 * 3600, 2 * 3600):  # marked and deleted by now, were it not pinned
        az.advance(shift)
        decisions, _ = wiring.retention.run(emu.clock.now().astimezone(UTC))
        by_name = {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}
        assert {(by_name[n].action, by_name[n].rule) for n in sources} == {("keep", "pinned")}, by_name[sources[0]]
        az.advance(1)
    assert {t["name"] for t in old["snapshots"]} <= {s.name for s in compute.snapshots.list_by_resource_group(RG)}
    assert backup_client(az).snapshots.get(BACKUP_RG, copies_of(old)[0]).provisioning_state != "Failed"
