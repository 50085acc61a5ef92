"""Microsoft.EventGrid over HTTP: custom topics and their event subscriptions (ARM, 2025-02-15, as
azure-mgmt-eventgrid 10.4.0 calls them: PUT 201 + long-running operation, DELETE 202/204), each
topic's publish endpoint (data plane, 2018-01-01), served on the emulator's host under
``/eventgrid/{subscriptionId}/{resourceGroupName}/{topicName}/api/events``, and system topics with
their event subscriptions (``system_topics.py``: kept, nothing delivered through them).

Accepted events are routed here to the matching event subscriptions and handed to ``delivery.py``.
Admin: ``GET /_emulator/eventgrid/deliveries`` (counts, dropped events) and ``POST
/_emulator/eventgrid/deliveries/wait`` ``{"timeout_seconds": n}`` (returns once nothing is left to deliver).
"""

from __future__ import annotations

from typing import Any

from ..core.arm import accepted, check_name, check_tags, get_resource, listing, require_location
from ..core.errors import InvalidParameter, NotFound
from ..core.providers import AdminRoute
from ..core.resource import Monitor, add_lists, add_long_running_delete, add_operation_monitors
from ..core.routing import Request, Response, Router
from ..core.state import Resource
from . import models as m
from . import publish
from . import system_topics as st
from .delivery import Deliveries, Target, delivered_form

router = Router()
data_plane = Router()

VERSIONS = ("2025-02-15", "2024-06-01-preview", "2022-06-15", "2021-12-01", "2020-06-01")
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.EventGrid"
SUB = "/subscriptions/{subscriptionId}/providers/Microsoft.EventGrid"
TOPIC = RG + "/topics/{topicName}"
EVENT_SUBSCRIPTIONS = TOPIC + "/providers/Microsoft.EventGrid/eventSubscriptions"
EVENT_SUBSCRIPTION = EVENT_SUBSCRIPTIONS + "/{eventSubscriptionName}"
SYSTEM_TOPIC = RG + "/systemTopics/{systemTopicName}"
SYSTEM_SUBSCRIPTIONS = SYSTEM_TOPIC + "/eventSubscriptions"
SYSTEM_SUBSCRIPTION = SYSTEM_SUBSCRIPTIONS + "/{eventSubscriptionName}"
PUBLISH = m.DATA_PLANE_PREFIX + "/{subscriptionId}/{resourceGroupName}/{topicName}/api/events"


def deliveries(emulator: Any) -> Deliveries:
    """The emulator's delivery lanes (made on first use; a reset starts afresh)."""
    return emulator.transient.setdefault("eventgrid.deliveries", Deliveries())


def _topic_id(req: Request) -> str:
    return m.topic_id(req.params["subscriptionId"], req.params["resourceGroupName"], req.params["topicName"])


def _topic(req: Request) -> Resource:
    return get_resource(req.emulator.store, _topic_id(req), m.TOPIC_TYPE, req.params["topicName"],
                        req.params["resourceGroupName"])


def _existing_topic(req: Request) -> Resource | None:
    req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    return req.emulator.store.get(_topic_id(req))


def _body(req: Request, topic: Resource) -> dict[str, Any]:
    return m.topic_body(topic, req.base_url())


# --- operation status --------------------------------------------------------------------------------------
add_operation_monitors(
    router,
    Monitor(status_id=lambda req, op: f"/subscriptions/{op.subscription_id}/providers/{m.PROVIDER}/locations/"
                                      f"{op.location}/operations/{op.id}"),
    status=(SUB + "/locations/{location}/operations/{operationId}", "Microsoft.EventGrid/locations/operations/read"),
    result_by_query=True, api_versions=VERSIONS)


# --- topics ---------------------------------------------------------------------------------------------------
@router.route("PUT", TOPIC, operation="Microsoft.EventGrid/topics/write", api_versions=VERSIONS)
def put_topic(req: Request) -> Response:
    """201 for a new topic and an update alike (the SDK accepts nothing else), Creating/Updating until the
    operation ends."""
    body = req.json()
    name = req.params["topicName"]
    m.check_topic_name(name)
    store = req.emulator.store
    rg = store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    location = require_location(body)
    tags = check_tags(body)
    existing = store.get(_topic_id(req))
    props = body.get("properties")
    properties = m.topic_properties({} if props is None else props, existing)
    if existing is None:
        topic = store.put(m.new_topic(req.params["subscriptionId"], rg.name, name, location, tags, properties,
                                      req.emulator.clock.timestamp()))
    else:
        topic = existing
        topic.properties = dict(properties, provisioningState="Updating")
        topic.tags = tags  # PUT replaces the resource, tags too

    def done(op) -> None:
        topic.properties["provisioningState"] = "Succeeded"

    def failed(op) -> None:
        topic.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, topic.location or location, on_success=done, on_failure=failed,
                                      result=lambda: Response(200, _body(req, topic)))
    return accepted(req, op, m.PROVIDER, 201, _body(req, topic))


@router.route("GET", TOPIC, operation="Microsoft.EventGrid/topics/read", api_versions=VERSIONS)
def get_topic(req: Request) -> Response:
    return Response(200, _body(req, _topic(req)))


@router.route("POST", TOPIC + "/listKeys", operation="Microsoft.EventGrid/topics/listKeys/action", api_versions=VERSIONS)
def list_keys(req: Request) -> Response:
    return Response(200, m.shared_access_keys(_topic(req)))


add_long_running_delete(router, TOPIC, operation="Microsoft.EventGrid/topics/delete", api_versions=VERSIONS,
                        provider=m.PROVIDER, find=_existing_topic, begin=m.begin_delete_topic)
add_lists(router, m.TOPIC_TYPE, api_versions=VERSIONS, render=_body)


# --- event subscriptions of a topic ------------------------------------------------------------------------------
def _subscription_id(req: Request, topic: Resource) -> str:
    return m.subscription_id(topic, req.params["eventSubscriptionName"])


def _event_subscription(req: Request) -> Resource:
    topic = _topic(req)
    found = req.emulator.store.get(_subscription_id(req, topic))
    if found is None:
        raise NotFound(f"The event subscription '{req.params['eventSubscriptionName']}' of topic '{topic.name}' was "
                       "not found.", code="ResourceNotFound")
    return found


@router.route("PUT", EVENT_SUBSCRIPTION, operation="Microsoft.EventGrid/eventSubscriptions/write", api_versions=VERSIONS)
def put_event_subscription(req: Request) -> Response:
    body = req.json()
    name = req.params["eventSubscriptionName"]
    check_name(name, m.SUBSCRIPTION_NAME_RE, m.SUBSCRIPTION_NAME_RULE, target="eventSubscriptionName")
    topic = _topic(req)
    properties = m.subscription_properties(topic, body.get("properties"))
    store = req.emulator.store
    subscription = store.get(_subscription_id(req, topic))
    if subscription is None:
        subscription = store.put(m.new_subscription(topic, name, properties, req.emulator.clock.timestamp()))
    else:
        subscription.properties = dict(properties, provisioningState="Updating")

    def done(op) -> None:
        subscription.properties["provisioningState"] = "Succeeded"

    def failed(op) -> None:
        subscription.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, topic.location or "global", on_success=done, on_failure=failed,
                                      result=lambda: Response(200, m.subscription_body(subscription)))
    return accepted(req, op, m.PROVIDER, 201, m.subscription_body(subscription))


@router.route("GET", EVENT_SUBSCRIPTION, operation="Microsoft.EventGrid/eventSubscriptions/read", api_versions=VERSIONS)
def get_event_subscription(req: Request) -> Response:
    return Response(200, m.subscription_body(_event_subscription(req)))


@router.route("POST", EVENT_SUBSCRIPTION + "/getFullUrl", operation="Microsoft.EventGrid/eventSubscriptions/getFullUrl/action",
              api_versions=VERSIONS)
def get_full_url(req: Request) -> Response:
    destination = _event_subscription(req).properties["destination"]
    if destination["endpointType"] != "WebHook":
        raise InvalidParameter("Only a WebHook destination has a full endpoint URL.", target="destination")
    return Response(200, {"endpointUrl": destination["properties"]["endpointUrl"]})


@router.route("GET", EVENT_SUBSCRIPTIONS, operation="Microsoft.EventGrid/eventSubscriptions/read", api_versions=VERSIONS)
def list_event_subscriptions(req: Request) -> Response:
    return listing(req, [m.subscription_body(s) for s in m.subscriptions_of(req.emulator.store, _topic(req))])


def _find_subscription(req: Request) -> Resource | None:
    return req.emulator.store.get(_subscription_id(req, _topic(req)))


add_long_running_delete(router, EVENT_SUBSCRIPTION, operation="Microsoft.EventGrid/eventSubscriptions/delete",
                        api_versions=VERSIONS, provider=m.PROVIDER, find=_find_subscription,
                        begin=m.begin_delete_subscription)


# --- system topics ------------------------------------------------------------------------------------------
def _system_topic_id(req: Request) -> str:
    return st.topic_id(req.params["subscriptionId"], req.params["resourceGroupName"], req.params["systemTopicName"])


def _system_topic(req: Request) -> Resource:
    return get_resource(req.emulator.store, _system_topic_id(req), st.SYSTEM_TOPIC_TYPE, req.params["systemTopicName"],
                        req.params["resourceGroupName"])


def _existing_system_topic(req: Request) -> Resource | None:
    req.emulator.store.resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])
    return req.emulator.store.get(_system_topic_id(req))


@router.route("PUT", SYSTEM_TOPIC, operation="Microsoft.EventGrid/systemTopics/write", api_versions=VERSIONS)
def put_system_topic(req: Request) -> Response:
    """201 for a new topic, 200 for an update (the SDK takes both), Creating/Updating until the operation
    ends; only tags and the identity change on an update."""
    body = req.json()
    name = req.params["systemTopicName"]
    st.check_topic_name(name)
    store = req.emulator.store
    sub = req.params["subscriptionId"]
    rg = store.resource_group(sub, req.params["resourceGroupName"])
    location = require_location(body)
    tags = check_tags(body)
    existing = store.get(_system_topic_id(req))
    properties = st.topic_properties(sub, body, existing, store)
    identity = st.identity_properties(body.get("identity"), _system_topic_id(req))
    if existing is None:
        topic = store.put(st.new_topic(sub, rg.name, name, location, tags, properties, identity,
                                       req.emulator.clock.timestamp()))
    else:
        topic = existing
        topic.properties = dict(properties, provisioningState="Updating")
        topic.tags = tags
        topic.extra.pop("identity", None)
        if identity is not None:
            topic.extra["identity"] = identity

    def done(op) -> None:
        topic.properties["provisioningState"] = "Succeeded"

    def failed(op) -> None:
        topic.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, topic.location or location, on_success=done, on_failure=failed,
                                      result=lambda: Response(200, topic.to_arm()))
    return accepted(req, op, m.PROVIDER, 201 if existing is None else 200, topic.to_arm())


@router.route("GET", SYSTEM_TOPIC, operation="Microsoft.EventGrid/systemTopics/read", api_versions=VERSIONS)
def get_system_topic(req: Request) -> Response:
    return Response(200, _system_topic(req).to_arm())


add_long_running_delete(router, SYSTEM_TOPIC, operation="Microsoft.EventGrid/systemTopics/delete", api_versions=VERSIONS,
                        provider=m.PROVIDER, find=_existing_system_topic, begin=st.begin_delete_topic)
add_lists(router, st.SYSTEM_TOPIC_TYPE, api_versions=VERSIONS)


def _system_subscription_id(req: Request, topic: Resource) -> str:
    return st.subscription_id(topic, req.params["eventSubscriptionName"])


@router.route("PUT", SYSTEM_SUBSCRIPTION, operation="Microsoft.EventGrid/systemTopics/eventSubscriptions/write",
              api_versions=VERSIONS)
def put_system_subscription(req: Request) -> Response:
    """201 + long-running operation, for a new event subscription and an update alike (the SDK takes only 201)."""
    body = req.json()
    name = req.params["eventSubscriptionName"]
    check_name(name, m.SUBSCRIPTION_NAME_RE, m.SUBSCRIPTION_NAME_RULE, target="eventSubscriptionName")
    topic = _system_topic(req)
    properties = st.subscription_properties(topic, body.get("properties"))
    store = req.emulator.store
    subscription = store.get(_system_subscription_id(req, topic))
    if subscription is None:
        subscription = store.put(st.new_subscription(topic, name, properties, req.emulator.clock.timestamp()))
    else:
        subscription.properties = dict(properties, provisioningState="Updating")

    def done(op) -> None:
        subscription.properties["provisioningState"] = "Succeeded"

    def failed(op) -> None:
        subscription.properties["provisioningState"] = "Failed"

    op = req.emulator.start_operation(req, "global", on_success=done, on_failure=failed,
                                      result=lambda: Response(200, st.subscription_body(subscription)))
    return accepted(req, op, m.PROVIDER, 201, st.subscription_body(subscription))


def _find_system_subscription(req: Request) -> Resource | None:
    return req.emulator.store.get(_system_subscription_id(req, _system_topic(req)))


@router.route("GET", SYSTEM_SUBSCRIPTION, operation="Microsoft.EventGrid/systemTopics/eventSubscriptions/read",
              api_versions=VERSIONS)
def get_system_subscription(req: Request) -> Response:
    found = _find_system_subscription(req)
    if found is None:
        raise NotFound(f"The event subscription '{req.params['eventSubscriptionName']}' of system topic "
                       f"'{req.params['systemTopicName']}' was not found.", code="ResourceNotFound")
    return Response(200, st.subscription_body(found))


@router.route("GET", SYSTEM_SUBSCRIPTIONS, operation="Microsoft.EventGrid/systemTopics/eventSubscriptions/read",
              api_versions=VERSIONS)
def list_system_subscriptions(req: Request) -> Response:
    return listing(req, [st.subscription_body(s) for s in st.subscriptions_of(req.emulator.store, _system_topic(req))])


add_long_running_delete(router, SYSTEM_SUBSCRIPTION, operation="Microsoft.EventGrid/systemTopics/eventSubscriptions/delete",
                        api_versions=VERSIONS, provider=m.PROVIDER, find=_find_system_subscription,
                        begin=st.begin_delete_subscription)


# --- the data plane: publish -----------------------------------------------------------------------------------
@data_plane.route("POST", PUBLISH, operation="Microsoft.EventGrid/events/send/action", api_versions=None)
def publish_events(req: Request) -> Response:
    """Event Grid's order: the endpoint, then who is calling, then the request; 200 with no body."""
    topic = req.emulator.store.get(_topic_id(req))
    if not m.publishable(topic):
        raise publish.NotFound(f"No topic answers at '{req.path}': topic '{req.params['topicName']}' does not exist in "
                               f"resource group '{req.params['resourceGroupName']}' of subscription "
                               f"'{req.params['subscriptionId']}'.")
    publish.authorize(topic, req.headers, req.bearer_token(), req.emulator.clock.timestamp())
    publish.check_api_version(req.query)
    events = publish.read_batch(req.raw_body, req.headers.get("content-type", ""), topic)
    _route(req.emulator, topic, events)
    return Response(200)


def _route(emulator: Any, topic: Resource, events: list[dict[str, Any]]) -> None:
    """Each event to every event subscription of the topic whose filter it passes, in publish order."""
    schema, mapping = topic.properties["inputSchema"], topic.properties.get("inputSchemaMapping")
    live = [s for s in m.subscriptions_of(emulator.store, topic)
            if s.properties["provisioningState"] in ("Succeeded", "Updating")]
    lanes = deliveries(emulator)
    for event in events:
        subject, event_type = m.routing_fields(event, schema, mapping)
        for subscription in live:
            if not m.wants(subscription, subject, event_type):
                continue
            destination = subscription.properties["destination"]
            if destination["endpointType"] not in m.DELIVERED_TYPES:
                lanes.not_delivered(subscription.id, str(event.get("id", "")),
                                    f"{destination['endpointType']} destinations are kept but not delivered to")
                continue
            target = Target(subscription.id, subscription.name, topic.id, destination["properties"]["endpointUrl"],
                            subscription.properties["eventDeliverySchema"],
                            subscription.properties["retryPolicy"]["maxDeliveryAttempts"])
            lanes.submit(target, delivered_form(event, schema, target.schema))


# --- admin: watching deliveries ------------------------------------------------------------------------------------
def _stats(emulator: Any, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, deliveries(emulator).stats()


def _wait(emulator: Any, body: dict[str, Any]) -> tuple[int, Any]:
    timeout = body.get("timeout_seconds", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 <= timeout <= 600:
        raise ValueError("timeout_seconds: a number of seconds from 0 to 600")
    lanes = deliveries(emulator)
    idle = lanes.wait_idle(float(timeout))
    return 200, dict(lanes.stats(), idle=idle)


# Not under the state lock: waiting must let requests (and the lanes) go on.
ADMIN = [AdminRoute("GET", r"eventgrid/deliveries", _stats, locked=False),
         AdminRoute("POST", r"eventgrid/deliveries/wait", _wait, locked=False)]
