"""Event Grid custom topics through the real SDKs: azure-mgmt-eventgrid 10.4.0 sets up topics and event
subscriptions (ARM 2025-02-15), azure-eventgrid 4.22.1's EventGridPublisherClient publishes to the topic's
endpoint (data plane 2018-01-01), and a local WebHook subscriber receives what Event Grid delivers.
The official examples of both planes are replayed.

azure-eventgrid 4.22's client (no ``namespace_topic``) drops its constructor's keyword arguments, so the
emulator's CA goes with each ``send(..., connection_verify=…)``.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.core.rest import HttpRequest
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.eventgrid.models import (
    EventSubscription,
    EventSubscriptionFilter,
    RetryPolicy,
    StorageQueueEventSubscriptionDestination,
    Topic,
    WebHookEventSubscriptionDestination,
)
from azure.mgmt.resource.resources import ResourceManagementClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.eventgrid.subscriber import WebHookSubscriber
from tests.conftest import SHARED

SUB = "6c1f2d4e-8a3b-4c5d-9e0f-1a2b3c4d5e6f"
RG = "rg-alerts"
REGION = "westeurope"
EXAMPLES = SHARED / "examples" / "Microsoft.EventGrid"
MB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------------------------
@pytest.fixture
def eg(az) -> EventGridManagementClient:
    az.admin("POST", "subscriptions", {"id": SUB})
    az.client(ResourceManagementClient, SUB).resource_groups.create_or_update(RG, {"location": REGION})
    return az.client(EventGridManagementClient, SUB, polling_interval=0)


@pytest.fixture
def hook():
    with WebHookSubscriber() as subscriber:
        yield subscriber


def make_topic(eg, name: str = "vmkeeper-alerts", **properties) -> Topic:
    return eg.topics.begin_create_or_update(RG, name, Topic(location=REGION, **properties)).result()


def subscribe(eg, topic: Topic, name: str, url: str, **properties) -> EventSubscription:
    info = EventSubscription(destination=WebHookEventSubscriptionDestination(endpoint_url=url), **properties)
    return eg.event_subscriptions.begin_create_or_update(topic.id, name, info).result()


def send(az, endpoint: str, events, credential=None, **kwargs) -> None:
    client = EventGridPublisherClient(endpoint, credential or az.credential)
    client.send(events, connection_verify=az.ca_path, **kwargs)


def post(az, url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"):
    """A raw request (what the SDK can't be made to send): (status, parsed body or None)."""
    headers = {"Authorization": "Bearer local", "Content-Type": "application/cloudevents-batch+json; charset=utf-8",
               **(headers or {})}
    request = urllib.request.Request(url, data=body, method=method, headers={k: v for k, v in headers.items() if v})
    try:
        with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=az.ca_path)) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw else None


def alert(i: int, **overrides) -> CloudEvent:
    fields = dict(source="/vmkeeper/alerts", type="vmkeeper.backup.failed", subject=f"vms/vm-{i:02d}",
                  data={"vm": f"vm-{i:02d}", "reason": "snapshot quota", "n": i}, id=f"alert-{i:04d}")
    fields.update(overrides)
    return CloudEvent(**fields)


def cloud_event_dict(i: int, **overrides) -> dict:
    event = {"id": f"e-{i}", "source": "/vmkeeper/alerts", "specversion": "1.0", "type": "vmkeeper.alert",
             "subject": f"vms/vm-{i}", "data": {"i": i}}
    event.update(overrides)
    return event


# --- ARM: topics --------------------------------------------------------------------------------------------
def test_topic_lifecycle_through_azure_mgmt_eventgrid(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0", disable_local_auth=True)
    assert topic.provisioning_state == "Succeeded"
    assert topic.input_schema == "CloudEventSchemaV1_0" and topic.disable_local_auth is True
    assert topic.public_network_access == "Enabled"
    assert topic.endpoint == f"{az.base_url}/eventgrid/{SUB}/{RG}/vmkeeper-alerts/api/events"
    assert topic.id == f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/topics/vmkeeper-alerts"

    plain = make_topic(eg, "plain-topic")  # Azure's default input schema
    assert plain.input_schema == "EventGridSchema" and plain.disable_local_auth is False
    assert sorted(t.name for t in eg.topics.list_by_resource_group(RG)) == ["plain-topic", "vmkeeper-alerts"]
    assert {t.name for t in eg.topics.list_by_subscription()} == {"plain-topic", "vmkeeper-alerts"}

    keys = eg.topics.list_shared_access_keys(RG, "vmkeeper-alerts")
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", keys.key1) and re.fullmatch(r"[A-Za-z0-9+/]{43}=", keys.key2)
    assert keys.key1 != keys.key2
    assert eg.topics.list_shared_access_keys(RG, "vmkeeper-alerts").key1 == keys.key1  # deterministic per topic
    assert eg.topics.list_shared_access_keys(RG, "plain-topic").key1 != keys.key1

    updated = make_topic(eg, input_schema="CloudEventSchemaV1_0", disable_local_auth=False, tags={"env": "test"})
    assert updated.disable_local_auth is False and updated.tags == {"env": "test"}

    eg.topics.begin_delete(RG, "vmkeeper-alerts").result()
    with pytest.raises(ResourceNotFoundError):
        eg.topics.get(RG, "vmkeeper-alerts")
    eg.topics.begin_delete(RG, "vmkeeper-alerts").result()  # already gone: 204


def test_topic_and_its_event_subscriptions_are_not_listed_as_resources(az, eg, hook):
    topic = make_topic(eg)
    subscribe(eg, topic, "hook", hook.url)
    listed = [r.type for r in az.client(ResourceManagementClient, SUB).resources.list_by_resource_group(RG)]
    assert listed == ["Microsoft.EventGrid/topics"]  # an event subscription is an extension resource


@pytest.mark.parametrize("name, body, target", [
    ("ab", {"location": REGION}, "topicName"),
    ("Microsoft-alerts", {"location": REGION}, "topicName"),
    ("alerts", {"location": REGION, "properties": {"inputSchema": "Avro"}}, "properties.inputSchema"),
    ("alerts", {"location": REGION, "properties": {"disableLocalAuth": "yes"}}, "properties.disableLocalAuth"),
    ("alerts", {"location": REGION, "properties": {"publicNetworkAccess": "Open"}}, "properties.publicNetworkAccess"),
])
def test_topic_bad_input_names_the_field(az, eg, name, body, target):
    url = f"{az.base_url}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/topics/{name}"
    resp = eg._client.send_request(HttpRequest("PUT", url, params={"api-version": "2025-02-15"}, json=body))
    assert resp.status_code == 400, resp.text()
    assert resp.json()["error"]["target"] == target


def test_a_topics_input_schema_cannot_change(eg):
    make_topic(eg, input_schema="CloudEventSchemaV1_0")
    with pytest.raises(HttpResponseError) as err:
        make_topic(eg, input_schema="EventGridSchema")
    assert err.value.status_code == 400 and "inputSchema" in str(err.value)


# --- ARM: event subscriptions -----------------------------------------------------------------------------------
def test_event_subscription_crud(eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    created = subscribe(eg, topic, "alerts-hook", hook.url + "?code=secret", event_delivery_schema="CloudEventSchemaV1_0",
                        filter=EventSubscriptionFilter(included_event_types=["vmkeeper.alert"], subject_begins_with="vms/"))
    assert created.provisioning_state == "Succeeded" and created.topic == topic.id
    assert created.type == "Microsoft.EventGrid/eventSubscriptions"
    assert created.destination.endpoint_url is None  # write-only: it may carry a secret
    assert created.destination.endpoint_base_url == hook.url
    assert eg.event_subscriptions.get_full_url(topic.id, "alerts-hook").endpoint_url == hook.url + "?code=secret"
    assert created.filter.included_event_types == ["vmkeeper.alert"] and created.filter.subject_begins_with == "vms/"
    assert created.retry_policy.max_delivery_attempts == 30  # Azure's default, shown

    default = subscribe(eg, topic, "default-schema", hook.url)
    assert default.event_delivery_schema == "CloudEventSchemaV1_0"  # the topic's own schema
    names = [s.name for s in eg.event_subscriptions.list_by_resource(RG, "Microsoft.EventGrid", "topics", topic.name)]
    assert names == ["alerts-hook", "default-schema"]

    eg.event_subscriptions.begin_delete(topic.id, "alerts-hook").result()
    with pytest.raises(ResourceNotFoundError):
        eg.event_subscriptions.get(topic.id, "alerts-hook")
    eg.topics.begin_delete(RG, topic.name).result()  # takes its event subscriptions with it
    with pytest.raises(ResourceNotFoundError):
        eg.event_subscriptions.get(topic.id, "default-schema")


@pytest.mark.parametrize("properties, target", [
    ({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "https://example.com/api"}}},
     "properties.destination.properties.endpointUrl"),
    ({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "ftp://127.0.0.1/x"}}},
     "properties.destination.properties.endpointUrl"),
    ({"destination": {"endpointType": "Carrier", "properties": {}}}, "properties.destination.endpointType"),
    ({"destination": {"endpointType": "StorageQueue", "properties": {"resourceId": "/subscriptions/x"}}},
     "properties.destination.properties.resourceId"),
    ({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9/x"}},
      "eventDeliverySchema": "EventGridSchema"}, "properties.eventDeliverySchema"),
    ({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9/x"}},
      "filter": {"advancedFilters": [{"operatorType": "StringIn", "key": "data.vm", "values": ["a"]}]}},
     "properties.filter.advancedFilters"),
    ({"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://127.0.0.1:9/x"}},
      "retryPolicy": {"maxDeliveryAttempts": 0}}, "properties.retryPolicy.maxDeliveryAttempts"),
])
def test_event_subscription_bad_input_names_the_field(az, eg, properties, target):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    url = az.base_url + topic.id + "/providers/Microsoft.EventGrid/eventSubscriptions/bad-one"
    resp = eg._client.send_request(HttpRequest("PUT", url, params={"api-version": "2025-02-15"},
                                               json={"properties": properties}))
    assert resp.status_code == 400, resp.text()
    assert resp.json()["error"]["target"] == target


def test_event_subscription_of_an_unknown_topic_is_404(eg, hook):
    scope = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.EventGrid/topics/nowhere"
    with pytest.raises(ResourceNotFoundError):
        eg.event_subscriptions.begin_create_or_update(scope, "hook", EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=hook.url))).result()


# --- publish and delivery ----------------------------------------------------------------------------------------
def test_published_cloud_events_reach_the_subscriber_exactly(az, eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0", disable_local_auth=True)
    subscribe(eg, topic, "alerts-hook", hook.url, event_delivery_schema="CloudEventSchemaV1_0")
    sent = [alert(i) for i in range(3)]
    before = len(az.calls())

    send(az, topic.endpoint, sent)

    assert az.wait_for_topic_deliveries()["delivered"] == 3
    got = hook.wait_for(3)
    assert [(e["id"], e["type"], e["subject"], e["data"], e["source"]) for e in got] == \
        [(e.id, e.type, e.subject, e.data, e.source) for e in sent]
    assert all(e["specversion"] == "1.0" for e in got)
    assert len(hook.deliveries) == 3  # one CloudEvent per request
    assert {d.headers["content-type"] for d in hook.deliveries} == {"application/cloudevents+json; charset=utf-8"}
    assert [d.headers["aeg-delivery-count"] for d in hook.deliveries] == ["0", "0", "0"]
    assert hook.handshakes == 1  # the abuse-protection handshake, once per endpoint
    publish = [c for c in az.calls(before) if c["method"] == "POST" and "/api/events" in c["path"]]
    assert [(c["operation"], c["status"]) for c in publish] == [("Microsoft.EventGrid/events/send/action", 200)]


def test_events_keep_their_order_per_subscription(az, eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    subscribe(eg, topic, "alerts-hook", hook.url)
    for batch in range(4):
        send(az, topic.endpoint, [alert(batch * 5 + i) for i in range(5)])
    assert [e["id"] for e in hook.wait_for(20)] == [f"alert-{i:04d}" for i in range(20)]


def test_filters_by_event_type_and_subject(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    with WebHookSubscriber() as by_type, WebHookSubscriber() as by_prefix, WebHookSubscriber() as by_suffix:
        subscribe(eg, topic, "by-type", by_type.url,
                  filter=EventSubscriptionFilter(included_event_types=["VMKEEPER.backup.failed"]))  # case-insensitive
        subscribe(eg, topic, "by-prefix", by_prefix.url, filter=EventSubscriptionFilter(subject_begins_with="vms/prod-"))
        subscribe(eg, topic, "by-suffix", by_suffix.url,
                  filter=EventSubscriptionFilter(subject_ends_with="-DB", is_subject_case_sensitive=True))
        send(az, topic.endpoint, [
            alert(1, subject="vms/prod-web"),
            alert(2, type="vmkeeper.backup.succeeded", subject="vms/prod-DB"),
            alert(3, subject="vms/test-db"),
            alert(4, type="vmkeeper.retention.failed", subject="vms/test-DB"),
        ])
        az.wait_for_topic_deliveries()
        assert [e["id"] for e in by_type.events] == ["alert-0001", "alert-0003"]
        assert [e["id"] for e in by_prefix.events] == ["alert-0001", "alert-0002"]
        assert [e["id"] for e in by_suffix.events] == ["alert-0002", "alert-0004"]


def test_event_grid_schema_topic_delivers_either_schema(az, eg):
    topic = make_topic(eg, "grid-topic")  # EventGridSchema
    with WebHookSubscriber() as grid, WebHookSubscriber() as cloud:
        subscribe(eg, topic, "as-grid", grid.url)
        subscribe(eg, topic, "as-cloud", cloud.url, event_delivery_schema="CloudEventSchemaV1_0")
        event = EventGridEvent(subject="vms/vm-01", event_type="vmkeeper.alert", data={"vm": "vm-01"}, data_version="1.0")
        send(az, topic.endpoint, [event])
        az.wait_for_topic_deliveries()
        [delivered] = grid.wait_for(1)
        assert grid.validations == 1 and grid.handshakes == 0  # Event Grid schema: the validation event
        assert isinstance(grid.deliveries[0].body, list)  # an array, even of one
        assert delivered["id"] == str(event.id) and delivered["eventType"] == "vmkeeper.alert"
        assert delivered["topic"] == topic.id and delivered["metadataVersion"] == "1"  # stamped by Event Grid
        [converted] = cloud.wait_for(1)
        assert cloud.handshakes == 1
        assert (converted["id"], converted["type"], converted["source"], converted["subject"], converted["data"]) == \
            (str(event.id), "vmkeeper.alert", topic.id, "vms/vm-01", {"vm": "vm-01"})


def test_a_failing_subscriber_gets_the_event_on_a_retry(az, eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    subscribe(eg, topic, "alerts-hook", hook.url)
    hook.fail_next(2, status=503)
    send(az, topic.endpoint, [alert(1)])
    with pytest.raises(TimeoutError):  # two retries take 0.4 s at least
        az.wait_for_topic_deliveries(timeout=0.05)
    stats = az.wait_for_topic_deliveries()
    assert [e["id"] for e in hook.events] == ["alert-0001"]
    assert stats["delivered"] == 1 and stats["failed"] == 0
    [counts] = stats["eventSubscriptions"].values()
    assert counts["attempts"] == 3


def test_an_endpoint_refusing_the_handshake_gets_nothing(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    with WebHookSubscriber(allowed_origin=None) as refusing:
        subscribe(eg, topic, "refusing", refusing.url, retry_policy=RetryPolicy(max_delivery_attempts=2))
        send(az, topic.endpoint, [alert(1)])
        stats = az.wait_for_topic_deliveries()
        assert refusing.events == [] and refusing.handshakes == 2
        assert stats["failed"] == 1 and stats["delivered"] == 0
        assert "handshake" in stats["dropped"][0]["reason"] and stats["dropped"][0]["eventId"] == "alert-0001"


def test_storage_queue_destinations_are_kept_but_not_delivered(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    account = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/alerts"
    queue = eg.event_subscriptions.begin_create_or_update(topic.id, "to-queue", EventSubscription(
        destination=StorageQueueEventSubscriptionDestination(resource_id=account, queue_name="alerts"))).result()
    assert queue.destination.queue_name == "alerts"
    send(az, topic.endpoint, [alert(1)])
    stats = az.wait_for_topic_deliveries()
    assert stats["notDelivered"] == 1 and "StorageQueue" in stats["dropped"][0]["reason"]


# --- publish: who may ----------------------------------------------------------------------------------------------
def test_keys_and_sas_tokens_work_unless_local_auth_is_disabled(az, eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    subscribe(eg, topic, "alerts-hook", hook.url)
    keys = eg.topics.list_shared_access_keys(RG, topic.name)
    now = datetime.fromisoformat(az.admin("GET", "clock")["now"])  # expiry is the emulator's time (earlier tests move it)
    send(az, topic.endpoint, [alert(1)], AzureKeyCredential(keys.key1))
    send(az, topic.endpoint, [alert(2)], AzureKeyCredential(keys.key2))
    send(az, topic.endpoint, [alert(3)], AzureSasCredential(
        generate_sas(topic.endpoint, keys.key2, now + timedelta(hours=1))))
    assert [e["id"] for e in hook.wait_for(3)] == ["alert-0001", "alert-0002", "alert-0003"]

    with pytest.raises(ClientAuthenticationError) as wrong_key:
        send(az, topic.endpoint, [alert(4)], AzureKeyCredential(keys.key1[:-4] + "AAA="))
    assert wrong_key.value.status_code == 401 and "aeg-sas-key" in wrong_key.value.message
    with pytest.raises(ClientAuthenticationError):  # signed with a key of another topic
        other = eg.topics.list_shared_access_keys(RG, make_topic(eg, "other-topic").name)
        send(az, topic.endpoint, [alert(5)], AzureSasCredential(
            generate_sas(topic.endpoint, other.key1, now + timedelta(hours=1))))
    with pytest.raises(ClientAuthenticationError) as expired:
        send(az, topic.endpoint, [alert(6)], AzureSasCredential(
            generate_sas(topic.endpoint, keys.key1, now - timedelta(minutes=1))))
    assert "expired" in expired.value.message

    make_topic(eg, input_schema="CloudEventSchemaV1_0", disable_local_auth=True)
    with pytest.raises(ClientAuthenticationError) as disabled:
        send(az, topic.endpoint, [alert(7)], AzureKeyCredential(keys.key1))
    assert "disableLocalAuth" in disabled.value.message
    send(az, topic.endpoint, [alert(8)])  # Microsoft Entra ID still works
    assert [e["id"] for e in hook.wait_for(4)][-1] == "alert-0008"


def test_no_credential_is_401_and_unknown_topic_is_404(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0", disable_local_auth=True)
    body = json.dumps([cloud_event_dict(1)]).encode()
    status, answer = post(az, topic.endpoint + "?api-version=2018-01-01", body, {"Authorization": ""})
    assert status == 401 and answer["error"]["code"] == "Unauthorized"
    assert answer["error"]["details"][0]["message"] == answer["error"]["message"]
    status, _ = post(az, topic.endpoint + "?api-version=2018-01-01", body, {"Authorization": "Bearer "})
    assert status == 401

    unknown = topic.endpoint.replace("/vmkeeper-alerts/", "/no-such-topic/")
    with pytest.raises(ResourceNotFoundError):  # azure-eventgrid 4.22 re-raises the 404 with a message of its own
        send(az, unknown, [alert(1)])
    status, answer = post(az, unknown + "?api-version=2018-01-01", body)
    assert status == 404 and answer["error"]["code"] == "NotFound" and "no-such-topic" in answer["error"]["message"]


def test_public_network_access_disabled_is_403(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0", public_network_access="Disabled")
    with pytest.raises(HttpResponseError) as err:
        send(az, topic.endpoint, [alert(1)])
    assert err.value.status_code == 403 and "publicNetworkAccess" in err.value.message


# --- publish: what is accepted -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, content_type, says", [
    (b"{not json", None, "not valid JSON"),
    (json.dumps(cloud_event_dict(0)).encode(), None, "must be a JSON array"),
    (b"[]", None, "empty array"),
    (b"[1]", None, "index 0 is not a JSON object"),
    *[(json.dumps([cloud_event_dict(0), {k: v for k, v in cloud_event_dict(1).items() if k != field}]).encode(), None,
       f"property '{field}' of the event at index 1 is missing") for field in ("id", "source", "type", "specversion")],
    (json.dumps([cloud_event_dict(0, specversion="0.3")]).encode(), None, "specversion '0.3'"),
    (json.dumps([cloud_event_dict(0, data_base64="AA==")]).encode(), None, "both 'data' and 'data_base64'"),
    (json.dumps([cloud_event_dict(0)]).encode(), "application/xml", "Content-Type 'application/xml'"),
    (json.dumps(cloud_event_dict(0)).encode(), "application/cloudevents+json", "structured mode"),
])
def test_malformed_batches_are_400_naming_the_problem(az, eg, body, content_type, says):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0", disable_local_auth=True)
    status, answer = post(az, topic.endpoint + "?api-version=2018-01-01", body,
                          {"Content-Type": content_type} if content_type else None)
    assert status == 400, answer
    error = answer["error"]
    assert error["code"] == "BadRequest" and error["details"][0]["code"] == "InputJsonInvalid"
    assert says in error["message"]


def test_a_schema_other_than_the_topics_is_400_through_the_sdk(az, eg):
    cloud_topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    grid_topic = make_topic(eg, "grid-topic")
    grid_event = EventGridEvent(subject="vms/a", event_type="vmkeeper.alert", data={}, data_version="1.0")
    with pytest.raises(HttpResponseError) as to_cloud:
        send(az, cloud_topic.endpoint, [grid_event])
    assert to_cloud.value.status_code == 400 and "'CloudEventV10'" in to_cloud.value.message
    assert "'source' of the event at index 0" in to_cloud.value.message
    with pytest.raises(HttpResponseError) as to_grid:
        send(az, grid_topic.endpoint, [alert(1)])
    assert to_grid.value.status_code == 400 and "'EventGridEvent'" in to_grid.value.message
    with pytest.raises(HttpResponseError) as foreign_topic:
        send(az, grid_topic.endpoint, [{"id": "1", "subject": "s", "data": {}, "eventType": "t", "dataVersion": "1",
                                        "eventTime": "2026-01-01T00:00:00Z", "topic": cloud_topic.id}])
    assert "names topic" in foreign_topic.value.message


def test_api_version_is_required(az, eg):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    body = json.dumps([cloud_event_dict(1)]).encode()
    assert post(az, topic.endpoint, body)[0] == 400
    status, answer = post(az, topic.endpoint + "?api-version=2024-06-01", body)
    assert status == 400 and "2018-01-01" in answer["error"]["message"]
    status, answer = post(az, topic.endpoint + "?api-version=2018-01-01", b"", method="GET")
    assert status == 405 and answer["error"]["details"][0]["code"] == "MethodNotAllowed"


def test_oversize_batches_and_events_are_413(az, eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    subscribe(eg, topic, "alerts-hook", hook.url)
    with pytest.raises(HttpResponseError) as batch:
        send(az, topic.endpoint, [alert(i, data={"pad": "x" * (110 * 1024)}) for i in range(10)])
    assert batch.value.status_code == 413 and "batch" in batch.value.message
    with pytest.raises(HttpResponseError) as event:
        send(az, topic.endpoint, [alert(0), alert(1, data={"pad": "x" * MB})])
    assert event.value.status_code == 413 and "index 1" in event.value.message
    send(az, topic.endpoint, [alert(i, data={"pad": "x" * (90 * 1024)}) for i in range(10)])  # just under 1 MB
    assert len(hook.wait_for(10)) == 10


def test_injected_faults_reach_the_data_plane(az, eg, hook):
    topic = make_topic(eg, input_schema="CloudEventSchemaV1_0")
    subscribe(eg, topic, "alerts-hook", hook.url)
    az.faults([{"kind": "503", "path": "/api/events$", "count": 1}])
    send(az, topic.endpoint, [alert(1)])  # azure-core retries a POST answered 503
    assert [e["id"] for e in hook.wait_for(1)] == ["alert-0001"]
    assert [c["status"] for c in az.calls() if c["path"].endswith("/api/events")] == [503, 200]


# --- the official examples ----------------------------------------------------------------------------------------
DATA_PLANE = {"PublishEventsToEventGridTopic.json": "EventGridSchema",
              "PublishEventsToEventGridTopicAsCloudEvents.json": "CloudEventSchemaV1_0",
              "PublishEventsToEventGridTopicAsCustomSchemaEvents.json": "CustomEventSchema"}


@pytest.mark.parametrize("file", sorted(DATA_PLANE))
def test_data_plane_example_replays(az, eg, hook, file):
    example = json.loads((EXAMPLES / "2018-01-01" / file).read_text())
    schema = DATA_PLANE[file]
    mapping = {"inputSchemaMappingType": "Json", "properties": {
        "subject": {"sourceField": "sub"}, "eventType": {"sourceField": "type"}, "dataVersion": {"sourceField": "ver"}}}
    topic = make_topic(eg, "example-topic", input_schema=schema,
                       input_schema_mapping=mapping if schema == "CustomEventSchema" else None)
    subscribe(eg, topic, "example-hook", hook.url,
              filter=EventSubscriptionFilter(included_event_types=["Microsoft.Contoso.TestEvent"]))
    events = example["parameters"]["events"]
    assert example["parameters"]["api-version"] == "2018-01-01"
    send(az, topic.endpoint, events)  # 200: send returns, else it raises
    assert "200" in example["responses"]
    [got] = hook.wait_for(1)
    stamped = {"topic": topic.id, "metadataVersion": "1"} if schema == "EventGridSchema" else {}
    assert got == dict(events[0], **stamped)


ARM = {  # operation → (method, path template) as azure-mgmt-eventgrid 10.4.0 builds them
    "Topics_CreateOrUpdate": ("PUT", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
                                     "Microsoft.EventGrid/topics/{topicName}"),
    "Topics_ListSharedAccessKeys": ("POST", "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/"
                                            "providers/Microsoft.EventGrid/topics/{topicName}/listKeys"),
    "EventSubscriptions_CreateOrUpdate": ("PUT", "/{scope}/providers/Microsoft.EventGrid/eventSubscriptions/"
                                                 "{eventSubscriptionName}"),
    "EventSubscriptions_Get": ("GET", "/{scope}/providers/Microsoft.EventGrid/eventSubscriptions/{eventSubscriptionName}"),
}


def _shape(obj, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            path = f"{prefix}.{k}" if prefix else k
            keys.add(path)
            if k != "tags":  # tag names are user data, not shape
                keys |= _shape(v, path)
    elif isinstance(obj, list):
        for v in obj:
            keys |= _shape(v, prefix + "[]")
    return keys


@pytest.mark.parametrize("path", sorted((EXAMPLES / "2025-02-15").glob("*.json")), ids=lambda p: p.stem)
def test_arm_example_replays(az, path: Path):
    example = json.loads(path.read_text())
    params = example["parameters"]
    operation = path.stem.split("For")[0]  # EventSubscriptions_GetForCustomTopic_… → EventSubscriptions_Get
    method, template = ARM[operation]
    scope = params.get("scope") or ""
    sub = params.get("subscriptionId") or scope.split("/")[1]
    group = params.get("resourceGroupName") or scope.split("/")[3]
    topic = params.get("topicName") or scope.rsplit("/", 1)[1]
    az.admin("POST", "subscriptions", {"id": sub})
    az.client(ResourceManagementClient, sub).resource_groups.create_or_update(group, {"location": "westus2"})
    eg = az.client(EventGridManagementClient, sub, polling_interval=0)
    expected_code, expected = next(iter(example["responses"].items()))
    if operation != "Topics_CreateOrUpdate":  # the topic the example acts on
        eg.topics.begin_create_or_update(group, topic, Topic(location="westus2")).result()
    if operation == "EventSubscriptions_Get":  # the event subscription it reads, PUT from the example's own answer
        shown = expected["body"]["properties"]
        put = eg._client.send_request(HttpRequest(
            "PUT", f"{az.base_url}/{scope}/providers/Microsoft.EventGrid/eventSubscriptions/{params['eventSubscriptionName']}",
            params={"api-version": params["api-version"]},
            json={"properties": {k: shown[k] for k in ("destination", "filter", "labels")}}))
        assert put.status_code == 201, put.text()
        az.advance(1)
    url = re.sub(r"\{(\w+)\}", lambda mt: params[mt.group(1)], template).replace("//", "/")
    body = next((v for v in params.values() if isinstance(v, dict)), None)
    resp = eg._client.send_request(HttpRequest(method, az.base_url + url, params={"api-version": params["api-version"]},
                                               json=body))
    assert str(resp.status_code) in example["responses"], resp.text()
    actual = resp.json()
    if method == "PUT":  # long-running: the example shows the finished resource
        az.advance(1)
        actual = eg._client.send_request(HttpRequest("GET", az.base_url + url,
                                                     params={"api-version": params["api-version"]})).json()
        assert actual["properties"]["provisioningState"] == "Succeeded"
    missing = _shape(expected["body"]) - _shape(actual)
    assert not missing, f"{path.name}: keys the emulator doesn't return: {sorted(missing)}"
    assert actual.get("type", expected["body"].get("type")) == expected["body"].get("type")


# --- no input makes a 500 ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bare_topic():
    from emulator.core.app import Emulator
    from emulator.eventgrid import models as m

    emulator = Emulator()
    emulator.store.add_subscription(SUB)
    emulator.store.put_resource_group(SUB, RG, REGION)
    for name, schema in (("cloud", "CloudEventSchemaV1_0"), ("grid", "EventGridSchema"), ("custom", "CustomEventSchema")):
        topic = emulator.store.put(m.new_topic(SUB, RG, name, REGION, None, m.topic_properties(
            {"inputSchema": schema}, None), 0.0))
        topic.properties["provisioningState"] = "Succeeded"
    return emulator


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(
                               st.sampled_from(["id", "source", "type", "specversion", "subject", "data", "eventType",
                                                "eventTime", "dataVersion", "topic", "data_base64", "x"]), c, max_size=6),
                           max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=st.sampled_from(["cloud", "grid", "custom", "none"]),
       body=st.one_of(st.binary(max_size=64), st.builds(lambda v: json.dumps(v).encode(), json_values)),
       content_type=st.sampled_from(["application/json", "application/cloudevents-batch+json; charset=utf-8", "", "x/y"]),
       auth=st.sampled_from([{"Authorization": "Bearer t"}, {"aeg-sas-key": "k"}, {"aeg-sas-token": "r=a&e=b&s=c"},
                             {"aeg-sas-token": "garbage"}, {}]),
       version=st.sampled_from(["2018-01-01", "", "x"]))
def test_no_publish_makes_a_500(bare_topic, topic, body, content_type, auth, version):
    path = f"/eventgrid/{SUB}/{RG}/{topic}/api/events" + (f"?api-version={version}" if version else "")
    resp = bare_topic.handle("POST", path, {"Content-Type": content_type, **auth}, body).response
    assert resp.status in (200, 400, 401, 404, 413), (resp.status, resp.body)
    if resp.status != 200:
        error = resp.body["error"]
        assert error["code"] and error["message"] and error["details"][0]["code"]
