"""Auto-protect's pure parts: which events matter (with the official samples), job messages, and
settings that fail naming the setting."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from shared.autoprotect.events import BadEvent, parse
from shared.autoprotect.steps import decide_existing, decide_policy, new_message
from shared.policy.document import load_policy_file
from shared.queue import messages as jobs
from shared.settings import ProtectSettings, SettingError
from tests.conftest import SHARED

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"


def sample(path: str) -> dict:
    text = (SHARED / "events" / path).read_text().replace("{subscription-id}", SUB)
    text = text.replace("{resource-group}", "rg1").replace("{vm-name}", "vm1")
    data = json.loads(text)
    return data[0] if isinstance(data, list) else data


@pytest.mark.parametrize("path", ["derived/vm_write_success.subscription-topic.eventgrid.derived.json",
                                  "derived/vm_write_success.subscription-topic.cloudevent.derived.json"])
def test_vm_write_in_both_schemas(path):
    event = parse(sample(path))
    assert event.action == "protect"
    assert event.vm_id == f"/subscriptions/{SUB}/resourcegroups/rg1/providers/microsoft.compute/virtualmachines/vm1"
    assert (event.subscription_id, event.resource_group, event.vm_name) == (SUB, "rg1", "vm1")


@pytest.mark.parametrize("path", ["event-grid-schema/resource_write_success.json", "event-grid-schema/resource_delete_success.json",
                                  "cloud-events-schema/resource_write_success.json", "event-grid-schema/resource_action_success.json",
                                  "cloud-events-schema/resource_delete_success.json"])
def test_official_samples_for_other_resources_are_ignored(path):
    assert parse(sample(path)) is None


def test_delete_of_a_vm_unprotects():
    event = sample("derived/vm_write_success.subscription-topic.eventgrid.derived.json")
    event["eventType"] = "Microsoft.Resources.ResourceDeleteSuccess"
    event["data"]["operationName"] = "Microsoft.Compute/virtualMachines/delete"
    assert parse(event).action == "unprotect"


def test_our_own_tag_writes_do_not_loop():
    event = sample("derived/vm_write_success.subscription-topic.eventgrid.derived.json")
    tags_uri = event["subject"] + "/providers/Microsoft.Resources/tags/default"
    event["subject"] = event["data"]["resourceUri"] = tags_uri
    event["data"]["operationName"] = "Microsoft.Resources/tags/write"
    assert parse(event) is None


@pytest.mark.parametrize("mutate, field", [
    (lambda e: e.pop("id"), "id"),
    (lambda e: e.pop("data"), "data"),
    (lambda e: e["data"].update(resourceUri=42, **{}) or e.pop("subject"), "data.resourceUri"),
    (lambda e: e.pop("eventType"), "eventType"),
    (lambda e: e["data"].update(subscriptionId="00000000-0000-0000-0000-000000000000"), "data.subscriptionId"),
])
def test_malformed_events_name_the_field(mutate, field):
    event = copy.deepcopy(sample("derived/vm_write_success.subscription-topic.eventgrid.derived.json"))
    mutate(event)
    with pytest.raises(BadEvent) as err:
        parse(event)
    assert str(err.value).startswith(field)


def vm_write(rg: str = "rg1", name: str = "vm1") -> dict:
    event = copy.deepcopy(sample("derived/vm_write_success.subscription-topic.eventgrid.derived.json"))
    uri = f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"
    event["subject"] = event["data"]["resourceUri"] = uri
    return event


@pytest.mark.parametrize("rg, name", [("g" * 90, "v" * 64), ("rg1", "v")])
def test_the_longest_names_azure_allows_are_taken(rg, name):
    event = parse(vm_write(rg, name))
    assert (event.resource_group, event.vm_name) == (rg, name)
    assert len(jobs.encode(new_message(event.action, event.vm_id, event.event_id, event.event_time))) < 1024


@pytest.mark.parametrize("rg, name, why", [
    ("rg1", "v" * 65, "virtual machine name"),  # the resource name limit (Windows' computer name is 15, not this)
    ("g" * 91, "vm1", "resource group name"),
    ("rg1", "v" * 60_000, "longer than"),  # far beyond any VM's id, and beyond a queue message
])
def test_names_beyond_azures_limits_are_rejected_naming_the_resource_uri(rg, name, why):
    with pytest.raises(BadEvent) as err:
        parse(vm_write(rg, name))
    assert str(err.value).startswith("data.resourceUri") and why in str(err.value)
    assert len(str(err.value)) < 500  # the error names the field without repeating the whole value


def test_an_oversized_event_id_is_rejected_naming_it():
    event = vm_write()
    event["id"] = "x" * 60_000
    with pytest.raises(BadEvent) as err:
        parse(event)
    assert str(err.value).startswith("id:")


def test_job_messages_round_trip_and_bad_ones_name_the_field():
    body = jobs.encode({"v": 1, "kind": "protect", "vm_id": "/x", "attempt": 2})
    assert jobs.decode(body, "protect", ("vm_id",))["attempt"] == 2
    for raw, field in [(b"not json", "message"), (b"[]", "message"), (b'{"v":1,"kind":"other"}', "message.kind"),
                       (b'{"v":2,"kind":"protect"}', "message.v"), (b'{"v":1,"kind":"protect"}', "message.vm_id"),
                       (b'{"v":1,"kind":"protect","vm_id":"/x","attempt":-1}', "message.attempt")]:
        with pytest.raises(jobs.BadMessage) as err:
            jobs.decode(raw, "protect", ("vm_id",))
        assert str(err.value).startswith(field)
    assert [jobs.backoff(a, 10, 300) for a in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert json.loads(jobs.poison_body(b"\xff", "why"))["reason"] == "why"


POLICIES = {"version": 1, "default": "silver", "policies": {
    "gold": {"schedule": {"every_hours": 4}, "snapshots": {}, "backup_policy": "EnhancedPolicy"},
    "silver": {"schedule": {"every_hours": 12}, "snapshots": {}, "backup_policy": "DefaultPolicy"},
    "scratch": {"schedule": {"daily_at": "03:00"}, "snapshots": {}},
}}


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(POLICIES))
    return str(path)


def test_protect_settings_fail_naming_the_setting(policy_file):
    vault = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1"
    ok = ProtectSettings.from_env({"VMKEEPER_VAULTS": json.dumps({"West Europe": vault}), "VMKEEPER_POLICY_FILE": policy_file})
    assert ok.vaults == {"westeurope": vault} and ok.policy_file == policy_file
    for env, name in [({"VMKEEPER_VAULTS": "{"}, "VMKEEPER_VAULTS"),
                      ({"VMKEEPER_VAULTS": json.dumps({"westeurope": "/not/a/vault"})}, "VMKEEPER_VAULTS.westeurope"),
                      ({"VMKEEPER_PROTECT_MAX_ATTEMPTS": "0"}, "VMKEEPER_PROTECT_MAX_ATTEMPTS"),
                      ({"VMKEEPER_BACKUP_NOW": "maybe"}, "VMKEEPER_BACKUP_NOW"),
                      ({"VMKEEPER_POLICY_FILE": ""}, "VMKEEPER_POLICY_FILE"),
                      ({"VMKEEPER_POLICY_FILE": policy_file + ".missing"}, "VMKEEPER_POLICY_FILE")]:
        with pytest.raises(SettingError) as err:
            ProtectSettings.from_env({"VMKEEPER_POLICY_FILE": policy_file, **env})
        assert str(err.value).startswith(name)


def test_retired_backup_policy_settings_are_ignored_with_a_warning(policy_file, caplog):
    env = {"VMKEEPER_POLICY_FILE": policy_file, "VMKEEPER_BACKUP_POLICIES": json.dumps({"gold": "Other"}),
           "VMKEEPER_DEFAULT_BACKUP_POLICY": "Other"}
    with caplog.at_level(logging.WARNING, logger="vmkeeper.settings"):
        settings = ProtectSettings.from_env(env)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "VMKEEPER_BACKUP_POLICIES: no longer read" in warned and "VMKEEPER_DEFAULT_BACKUP_POLICY: no longer read" in warned
    assert not hasattr(settings, "backup_policies")


@pytest.mark.parametrize("tags, backup_policy, skip", [
    ({"vmkeeper-policy": "gold"}, "EnhancedPolicy", None),
    ({"VMKEEPER-POLICY": " Gold "}, "EnhancedPolicy", None),  # tag names and policy names are case-insensitive
    ({}, "DefaultPolicy", None),  # the document's default
    ({"vmkeeper-policy": "scratch"}, None, "no_backup_policy"),
    ({"vmkeeper-policy": "gold", "vmkeeper-optout": "true"}, None, "opted_out"),
    ({"vmkeeper-policy": "platinum"}, None, "bad_tag"),
])
def test_the_policy_document_decides_the_azure_backup_policy(policy_file, tags, backup_policy, skip):
    choice = decide_policy(tags, load_policy_file(policy_file))
    assert (choice.backup_policy, choice.skip) == (backup_policy, skip)
    if skip == "bad_tag":
        assert "platinum" in choice.error
    if skip == "no_backup_policy":
        assert choice.policy == "scratch" and "names no backup_policy" in choice.reason


def test_without_a_default_an_untagged_vm_has_no_policy(tmp_path):
    path = tmp_path / "policies.json"
    path.write_text(json.dumps({k: v for k, v in POLICIES.items() if k != "default"}))
    choice = decide_policy({}, load_policy_file(path))
    assert (choice.backup_policy, choice.skip) == (None, "no_policy")


VM = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
POLICY = "/subscriptions/s/resourceGroups/r/providers/Microsoft.RecoveryServices/vaults/v/backupPolicies/Gold"


@pytest.mark.parametrize("item, expected", [
    (None, "create"),
    ({"sourceResourceId": VM, "protectionState": "ProtectionStopped", "policyId": ""}, "resume"),
    ({"sourceResourceId": VM.upper(), "protectionState": "Protected", "policyId": POLICY.lower()}, "protected"),
    ({"sourceResourceId": VM, "protectionState": "IRPending", "policyId": POLICY}, "protected"),
    ({"sourceResourceId": VM, "protectionState": "Protected", "policyId": POLICY.replace("Gold", "Silver")}, "other_policy"),
    ({"sourceResourceId": VM.replace("0001", "0002"), "protectionState": "ProtectionStopped"}, "other_vm"),
    ({"protectionState": "Protected", "policyId": POLICY}, "other_vm"),  # names no VM: not provably ours
    ({"sourceResourceId": VM, "protectionState": "ProtectionError", "policyId": POLICY}, "left_alone"),
    ({"sourceResourceId": VM, "protectionState": "BackupsSuspended", "policyId": POLICY}, "left_alone"),
])
def test_an_existing_item_is_created_resumed_or_left_alone(item, expected):
    """Create-only: only a missing item is created and only the VM's own stopped item is written over (resumed)."""
    assert decide_existing(item, VM, POLICY) == expected


VAULT = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/v-we"


def _row(outcome="protected", **detail):
    base = {"vault": VAULT, "policy": "EnhancedPolicy", "vm_instance": "1111-aaaa"}
    return {"vmId": "/subscriptions/x/vm", "outcome": outcome, "detail": json.dumps({**base, **detail})}


@pytest.mark.parametrize("row,expected", [
    (_row(), True),
    (_row("already_protected"), True),
    (_row(vm_instance="1111-AAAA", policy="enhancedpolicy", vault=VAULT.upper()), True),  # ARM's names: any case
    (None, False),  # never recorded
    (_row("failed"), False),
    (_row("no_backup_policy"), False),  # the VM's policy changed since
    (_row(vm_instance="2222-bbbb"), False),  # another instance: the VM was deleted and created again
    (_row(policy="DefaultPolicy"), False),  # the document names another policy now
    (_row(vault=VAULT + "x"), False),  # VMKEEPER_VAULTS names another vault now
    (_row("already_protected", policy="DefaultPolicy", document_policy="EnhancedPolicy"), False),
    (_row(vm_instance=None), False),
    ({"outcome": "protected", "detail": "not json"}, False),
    ({"outcome": "protected", "detail": "[]"}, False),
])
def test_the_sweep_skips_only_a_vm_the_ledger_records_protected_as_it_should_be(row, expected):
    from shared.autoprotect.sweep import recorded_protected

    assert recorded_protected(row, "1111-aaaa", "EnhancedPolicy", VAULT) is expected


def test_a_vm_without_an_instance_id_is_never_taken_for_done():
    from shared.autoprotect.sweep import recorded_protected

    assert recorded_protected(_row(vm_instance=""), "", "EnhancedPolicy", VAULT) is False


def test_the_sweeps_subscriptions_are_optional_and_checked(policy_file):
    env = {"VMKEEPER_VAULTS": "{}", "VMKEEPER_POLICY_FILE": str(policy_file)}
    assert ProtectSettings.from_env(env).subscriptions == ()
    subs = ProtectSettings.from_env({**env, "VMKEEPER_SUBSCRIPTIONS": " 6513270E-269E-4D37-B2A7-4DE452E6B438 ,"})
    assert subs.subscriptions == ("6513270e-269e-4d37-b2a7-4de452e6b438",)
    with pytest.raises(SettingError, match="VMKEEPER_SUBSCRIPTIONS"):
        ProtectSettings.from_env({**env, "VMKEEPER_SUBSCRIPTIONS": "not-a-guid"})
