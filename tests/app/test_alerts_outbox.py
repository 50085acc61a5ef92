"""The alerts outbox with the real publisher: a publish the topic refuses is kept, not lost, and the next
flush sends it; a change raised twice is one row and one event."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from azure.data.tables import TableClient

from emulator.testing import StaticCredential
from shared.alerts import events as A
from shared.alerts.outbox import Alerts
from shared.alerts.publisher import TopicPublisher


def test_a_refused_publish_is_kept_and_flushed_later_and_a_change_is_raised_once(az, sub, azurite):
    from azure.mgmt.eventgrid import EventGridManagementClient
    from azure.mgmt.eventgrid.models import EventSubscription, Topic, WebHookEventSubscriptionDestination
    from azure.mgmt.resource.resources import ResourceManagementClient

    from emulator.eventgrid.subscriber import WebHookSubscriber

    az.client(ResourceManagementClient, sub).resource_groups.create_or_update("rg-ops", {"location": "westeurope"})
    eg = az.client(EventGridManagementClient, sub, polling_interval=0)
    topic = eg.topics.begin_create_or_update("rg-ops", "alerts", Topic(
        location="westeurope", input_schema="CloudEventSchemaV1_0", disable_local_auth=True)).result()
    table = TableClient.from_connection_string(azurite.connection_string, f"alerts{secrets.token_hex(4)}")
    missing = topic.endpoint.replace("/alerts/api/events", "/no-such-topic/api/events")
    down = Alerts(table, TopicPublisher(missing, StaticCredential, az.ca_path), "/vmkeeper/test")
    alert = A.Alert(A.PROTECTION_FAILED, "/subscriptions/x/vm", "job-1", {"reason": "Azure said no"})
    assert down.raise_(alert) is True  # recorded; the publish (404) failed and is kept
    assert down.raise_(alert) is False  # the same change again: nothing new
    assert [r["sent"] for r in table.list_entities()] == [False]

    with WebHookSubscriber() as hook:
        eg.event_subscriptions.begin_create_or_update(topic.id, "ops", EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=hook.url))).result()
        up = Alerts(table, TopicPublisher(topic.endpoint, StaticCredential, az.ca_path), "/vmkeeper/test")
        assert up.flush() == 1 and up.flush() == 0
        az.wait_for_topic_deliveries(timeout=20)
        (event,) = hook.events
    assert event["id"] == alert.id and event["type"] == A.PROTECTION_FAILED and event["data"]["reason"] == "Azure said no"
    assert [r["sent"] for r in table.list_entities()] == [True]
    recent = up.recent(since=datetime(2000, 1, 1, tzinfo=UTC))
    assert [(r["type"], r["data"]["reason"]) for r in recent] == [(A.PROTECTION_FAILED, "Azure said no")]


def test_a_re_sent_job_that_fails_the_same_way_again_is_the_same_alert():
    """A re-sent scheduled job whose copy ended Failed fails again (the copy is not started again): the
    same change, one alert, whatever state its steps carried; another job or another reason is another."""
    from shared.schedule.steps import new_message

    job = {"vm_id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm",
           "type": "restore_point", "slot": "2026-12-08T00:00:00+00:00", "rp_name": "vmk-rp-1"}
    reason = "restore point vmk-rpc-1-northeurope/vmk-rp-1 ended Failed"
    first = {**new_message(job), "step": "copy_check", "since": 1000.0, "reads": 7, "writes": 2}
    again = {**new_message(job), "resent": True, "step": "copy_check", "index": 0, "since": 99000.0, "reads": 3,
             "writes": 1, "grant": None}
    one = A.for_poisoning("failed", first, reason, "jobs")
    assert A.for_poisoning("failed", again, reason, "jobs").id == one.id
    assert A.for_poisoning("failed", again, reason + " (other)", "jobs").id != one.id
    other = {**new_message({**job, "slot": "2026-12-08T06:00:00+00:00"}), "resent": True}
    assert A.for_poisoning("failed", other, reason, "jobs").id != one.id
