"""Auto-protect's pure parts: which events matter (with the official samples), job messages, and
settings that fail naming the setting."""

from __future__ import annotations

import copy
import json

import pytest

from shared.autoprotect.events import BadEvent, parse
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


def test_protect_settings_fail_naming_the_setting():
    vault = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v1"
    ok = ProtectSettings.from_env({"VMKEEPER_VAULTS": json.dumps({"West Europe": vault})})
    assert ok.vaults == {"westeurope": vault} and ok.default_backup_policy == "DefaultPolicy"
    for env, name in [({"VMKEEPER_VAULTS": "{"}, "VMKEEPER_VAULTS"),
                      ({"VMKEEPER_VAULTS": json.dumps({"westeurope": "/not/a/vault"})}, "VMKEEPER_VAULTS.westeurope"),
                      ({"VMKEEPER_PROTECT_MAX_ATTEMPTS": "0"}, "VMKEEPER_PROTECT_MAX_ATTEMPTS"),
                      ({"VMKEEPER_BACKUP_NOW": "maybe"}, "VMKEEPER_BACKUP_NOW")]:
        with pytest.raises(SettingError) as err:
            ProtectSettings.from_env(env)
        assert str(err.value).startswith(name)
