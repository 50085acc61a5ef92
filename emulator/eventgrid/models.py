"""Event Grid custom topics and their event subscriptions, on plain state: names, the topic's input
schema and access keys, where its data plane is served, and what an event subscription accepts
(destination, filter, delivery schema) and which events it wants.

An event subscription is an extension resource (``{topic id}/providers/Microsoft.EventGrid/
eventSubscriptions/{name}``). It is stored under the nested type ``Microsoft.EventGrid/topics/
eventSubscriptions`` so that ARM's resource lists and Resource Graph, which show top-level types only,
leave it out as Azure does; on the wire its type is ``Microsoft.EventGrid/eventSubscriptions``.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from typing import Any

from ..core.arm import check_name, parse_rid, rid
from ..core.errors import ArmError, InvalidParameter
from ..core.resource import Deletion
from ..core.state import Resource, Store

PROVIDER = "Microsoft.EventGrid"
TOPIC_TYPE = "Microsoft.EventGrid/topics"
SUBSCRIPTION_TYPE = "Microsoft.EventGrid/eventSubscriptions"  # on the wire
STORED_SUBSCRIPTION_TYPE = "Microsoft.EventGrid/topics/eventSubscriptions"  # in the store (see above)
INPUT_SCHEMAS = ("EventGridSchema", "CustomEventSchema", "CloudEventSchemaV1_0")
# What each input schema can be delivered as (Learn "CloudEvents v1.0 schema with Azure Event Grid": Event
# Grid events as either schema, CloudEvents as CloudEvents; custom events as they came, here only).
DELIVERY_SCHEMAS = {"EventGridSchema": ("EventGridSchema", "CloudEventSchemaV1_0"),
                    "CloudEventSchemaV1_0": ("CloudEventSchemaV1_0",),
                    "CustomEventSchema": ("CustomInputSchema",)}
PUBLIC_NETWORK_ACCESS = ("Enabled", "Disabled", "SecuredByPerimeter")
ENDPOINT_TYPES = ("WebHook", "StorageQueue", "AzureFunction", "EventHub", "ServiceBusQueue", "ServiceBusTopic",
                  "HybridConnection")
DELIVERED_TYPES = ("WebHook",)  # the others are accepted and kept, but nothing is sent to them
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOPIC_NAME_RE = r"[A-Za-z0-9-]{3,50}"
TOPIC_NAME_RULE = ("Topic name must be between 3 and 50 characters in length. Only alphanumeric letters, digits and "
                   "the '-' character are allowed, and it can't start with 'Microsoft-', 'EventGrid-' or 'System-'.")
RESERVED_PREFIXES = ("microsoft-", "eventgrid-", "system-")
SUBSCRIPTION_NAME_RE = r"[A-Za-z0-9-]{3,64}"
SUBSCRIPTION_NAME_RULE = ("Event subscription name must be between 3 and 64 characters in length and use "
                          "alphanumeric letters, digits and the '-' character only.")
DEFAULT_RETRY_POLICY = {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}  # Azure's defaults
DATA_PLANE_PREFIX = "/eventgrid"


# --- topics -------------------------------------------------------------------------------------------
def topic_id(sub: str, rg: str, name: str) -> str:
    return rid(sub, rg, PROVIDER, "topics", name)


def endpoint_path(topic: Resource) -> str:
    """Where the emulator serves the topic's publish endpoint (Azure: ``https://{topic}.{region}-1.
    eventgrid.azure.net/api/events``): a path on the emulator's own HTTPS host, one per topic id."""
    return f"{DATA_PLANE_PREFIX}/{topic.subscription_id}/{topic.resource_group}/{topic.name}/api/events"


def shared_access_keys(topic: Resource) -> dict[str, str]:
    """key1 and key2: base64 of 32 bytes, as Azure's, and the same for the same topic id every time."""
    def key(name: str) -> str:
        return base64.b64encode(hashlib.sha256(f"{topic.key}|{name}".encode()).digest()).decode()

    return {"key1": key("key1"), "key2": key("key2")}


def check_topic_name(name: str) -> None:
    check_name(name, TOPIC_NAME_RE, TOPIC_NAME_RULE, target="topicName")
    if name.lower().startswith(RESERVED_PREFIXES):
        raise InvalidParameter(f"The resource name '{name}' is invalid. {TOPIC_NAME_RULE}", code="InvalidResourceName",
                               target="topicName")


def topic_properties(props: dict[str, Any], existing: Resource | None) -> dict[str, Any]:
    """The topic's properties from a PUT body, checked; what Azure defaults, defaulted."""
    if not isinstance(props, dict):
        raise InvalidParameter("properties: must be an object.", target="properties")
    schema = props.get("inputSchema", existing.properties["inputSchema"] if existing else "EventGridSchema")
    if schema not in INPUT_SCHEMAS:
        raise InvalidParameter(f"properties.inputSchema: '{schema}' is not one of {', '.join(INPUT_SCHEMAS)}.",
                               target="properties.inputSchema")
    if existing is not None and schema != existing.properties["inputSchema"]:
        raise ArmError(f"properties.inputSchema: a topic's input schema can't be changed (it is "
                       f"'{existing.properties['inputSchema']}').", code="PropertyChangeNotAllowed",
                       target="properties.inputSchema")
    local = props.get("disableLocalAuth", False)
    if not isinstance(local, bool):
        raise InvalidParameter("properties.disableLocalAuth: must be true or false.", target="properties.disableLocalAuth")
    access = props.get("publicNetworkAccess", "Enabled")
    if access not in PUBLIC_NETWORK_ACCESS:
        raise InvalidParameter(f"properties.publicNetworkAccess: '{access}' is not one of "
                               f"{', '.join(PUBLIC_NETWORK_ACCESS)}.", target="properties.publicNetworkAccess")
    rules = props.get("inboundIpRules") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) and isinstance(r.get("ipMask"), str) for r in rules):
        raise InvalidParameter("properties.inboundIpRules: must be a list of {ipMask, action}.",
                               target="properties.inboundIpRules")
    out: dict[str, Any] = {"inputSchema": schema, "disableLocalAuth": local, "publicNetworkAccess": access,
                           "inboundIpRules": rules}
    mapping = props.get("inputSchemaMapping")
    if mapping is not None:
        if schema != "CustomEventSchema" or not isinstance(mapping, dict):
            raise InvalidParameter("properties.inputSchemaMapping: an object, only with inputSchema CustomEventSchema.",
                                   target="properties.inputSchemaMapping")
        out["inputSchemaMapping"] = mapping
    return out


def new_topic(sub: str, rg: str, name: str, location: str, tags: dict[str, str] | None,
              properties: dict[str, Any], now: float) -> Resource:
    return Resource(topic_id(sub, rg, name), TOPIC_TYPE, name, location, tags,
                    dict(properties, provisioningState="Creating"), {}, {}, now)


def topic_body(topic: Resource, base_url: str) -> dict[str, Any]:
    """The topic as ARM shows it; the endpoint follows the emulator's address (it may change across runs)."""
    body = topic.to_arm()
    body["properties"] = dict(topic.properties, endpoint=base_url + endpoint_path(topic))
    return body


def begin_delete_topic(store: Store, topic: Resource) -> Deletion:
    """Its event subscriptions go with it."""
    def done() -> None:
        for child in store.children(topic.id):
            store.delete(child.id)
        store.delete(topic.id)

    topic.properties["provisioningState"] = "Deleting"
    return Deletion(topic.location or "", done)


def publishable(topic: Resource | None) -> bool:
    """A topic whose endpoint answers: created, not being deleted."""
    return topic is not None and topic.properties.get("provisioningState") in ("Succeeded", "Updating")


# --- event subscriptions ----------------------------------------------------------------------------------
def subscription_id(topic: Resource, name: str) -> str:
    return f"{topic.id}/providers/{SUBSCRIPTION_TYPE}/{name}"


def subscriptions_of(store: Store, topic: Resource) -> list[Resource]:
    return store.of_type(STORED_SUBSCRIPTION_TYPE, topic.id)


def destination_properties(raw: Any) -> dict[str, Any]:
    where = "properties.destination"
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{where}: required, an object with endpointType and properties.", target=where)
    kind = raw.get("endpointType")
    if kind not in ENDPOINT_TYPES:
        raise InvalidParameter(f"{where}.endpointType: '{kind}' is not one of {', '.join(ENDPOINT_TYPES)}.",
                               target=f"{where}.endpointType")
    props = raw.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidParameter(f"{where}.properties: must be an object.", target=f"{where}.properties")
    if kind == "WebHook":
        url = props.get("endpointUrl")
        check_webhook_url(url, f"{where}.properties.endpointUrl")
        base = urllib.parse.urlsplit(url)._replace(query="", fragment="").geturl()
        return {"endpointType": kind, "properties": {
            "endpointUrl": url, "endpointBaseUrl": base,
            "maxEventsPerBatch": props.get("maxEventsPerBatch", 1),
            "preferredBatchSizeInKilobytes": props.get("preferredBatchSizeInKilobytes", 64)}}
    if parse_rid(props.get("resourceId") or "") is None:
        raise InvalidParameter(f"{where}.properties.resourceId: required for {kind}, a resource id.",
                               target=f"{where}.properties.resourceId")
    if kind == "StorageQueue" and not (isinstance(props.get("queueName"), str) and props["queueName"]):
        raise InvalidParameter(f"{where}.properties.queueName: required for StorageQueue.",
                               target=f"{where}.properties.queueName")
    return {"endpointType": kind, "properties": dict(props)}


def check_webhook_url(url: Any, where: str) -> None:
    """Azure wants https; locally a subscriber is on this machine (nothing leaves it), usually plain http."""
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidParameter(f"{where}: required, an http(s) URL.", target=where)
    if parsed.hostname not in LOOPBACK_HOSTS:
        raise InvalidParameter(f"{where}: '{parsed.hostname}' is not this machine: the emulator delivers only to "
                               "loopback endpoints (https://127.0.0.1:… or http://127.0.0.1:…).", target=where)


def filter_properties(raw: Any, *, advanced: bool = False) -> dict[str, Any]:
    """An event subscription's filter, checked. ``advanced``: advancedFilters are checked and kept (an event
    subscription nothing is delivered through); else refused rather than ignored (they would change what a
    WebHook receives)."""
    where = "properties.filter"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{where}: must be an object.", target=where)
    if raw.get("advancedFilters") and not advanced:
        raise InvalidParameter(f"{where}.advancedFilters: not served by the emulator (includedEventTypes, "
                               "subjectBeginsWith and subjectEndsWith are).", target=f"{where}.advancedFilters")
    types = raw.get("includedEventTypes")
    if types is not None and not (isinstance(types, list) and all(isinstance(t, str) for t in types)):
        raise InvalidParameter(f"{where}.includedEventTypes: must be a list of event types.",
                               target=f"{where}.includedEventTypes")
    out: dict[str, Any] = {}
    for key in ("subjectBeginsWith", "subjectEndsWith"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise InvalidParameter(f"{where}.{key}: must be a string.", target=f"{where}.{key}")
        out[key] = value
    sensitive = raw.get("isSubjectCaseSensitive", False)
    if not isinstance(sensitive, bool):
        raise InvalidParameter(f"{where}.isSubjectCaseSensitive: must be true or false.",
                               target=f"{where}.isSubjectCaseSensitive")
    out["isSubjectCaseSensitive"] = sensitive
    if types is not None:
        out["includedEventTypes"] = types
    if "enableAdvancedFilteringOnArrays" in raw:
        out["enableAdvancedFilteringOnArrays"] = raw["enableAdvancedFilteringOnArrays"]
    if advanced and raw.get("advancedFilters") is not None:
        out["advancedFilters"] = advanced_filters(raw["advancedFilters"], f"{where}.advancedFilters")
    return out


# Event Grid's advanced filter operators (REST reference "Event Subscriptions - Create Or Update",
# AdvancedFilter's operatorType) and those that take a list of values.
ADVANCED_OPERATORS = ("NumberIn", "NumberNotIn", "NumberLessThan", "NumberGreaterThan", "NumberLessThanOrEquals",
                      "NumberGreaterThanOrEquals", "BoolEquals", "StringIn", "StringNotIn", "StringBeginsWith",
                      "StringEndsWith", "StringContains", "NumberInRange", "NumberNotInRange", "StringNotBeginsWith",
                      "StringNotEndsWith", "StringNotContains", "IsNullOrUndefined", "IsNotNull")
SINGLE_VALUE = ("NumberLessThan", "NumberGreaterThan", "NumberLessThanOrEquals", "NumberGreaterThanOrEquals",
                "BoolEquals")
NO_VALUE = ("IsNullOrUndefined", "IsNotNull")
MAX_ADVANCED_FILTERS = 25  # Learn "Event Grid quotas and limits": advanced filters per event subscription


def advanced_filters(raw: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or len(raw) > MAX_ADVANCED_FILTERS:
        raise InvalidParameter(f"{where}: a list of at most {MAX_ADVANCED_FILTERS} filters.", target=where)
    out = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or item.get("operatorType") not in ADVANCED_OPERATORS:
            raise InvalidParameter(f"{at}.operatorType: one of {', '.join(ADVANCED_OPERATORS)}.",
                                   target=f"{at}.operatorType")
        op = item["operatorType"]
        if not isinstance(item.get("key"), str) or not item["key"]:
            raise InvalidParameter(f"{at}.key: required, the event field filtered on (e.g. data.operationName).",
                                   target=f"{at}.key")
        if op in SINGLE_VALUE:
            if "value" not in item:
                raise InvalidParameter(f"{at}.value: required for {op}.", target=f"{at}.value")
        elif op not in NO_VALUE:
            values = item.get("values")
            if not isinstance(values, list) or not values:
                raise InvalidParameter(f"{at}.values: required for {op}, a non-empty list.", target=f"{at}.values")
        out.append(dict(item))
    return out


def retry_policy(raw: Any) -> dict[str, int]:
    where = "properties.retryPolicy"
    policy = dict(DEFAULT_RETRY_POLICY)
    if raw is None:
        return policy
    if not isinstance(raw, dict):
        raise InvalidParameter(f"{where}: must be an object.", target=where)
    for key, high in (("maxDeliveryAttempts", 30), ("eventTimeToLiveInMinutes", 1440)):
        if key in raw:
            value = raw[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise InvalidParameter(f"{where}.{key}: an integer from 1 to {high}.", target=f"{where}.{key}")
            policy[key] = value
    return policy


def subscription_properties(topic: Resource, props: Any) -> dict[str, Any]:
    """An event subscription's properties from a PUT body, checked against its topic."""
    if not isinstance(props, dict):
        raise InvalidParameter("properties: required, an object with a destination.", target="properties")
    input_schema = topic.properties["inputSchema"]
    allowed = DELIVERY_SCHEMAS[input_schema]
    schema = props.get("eventDeliverySchema") or allowed[0]
    if schema not in allowed:
        raise InvalidParameter(f"properties.eventDeliverySchema: '{schema}' can't carry events of a topic whose "
                               f"inputSchema is {input_schema} (allowed: {', '.join(allowed)}).",
                               target="properties.eventDeliverySchema")
    labels = props.get("labels")
    if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        raise InvalidParameter("properties.labels: must be a list of strings.", target="properties.labels")
    out = {"topic": topic.id, "destination": destination_properties(props.get("destination")), "filter": filter_properties(props.get("filter")),
           "labels": labels, "eventDeliverySchema": schema, "retryPolicy": retry_policy(props.get("retryPolicy"))}
    for key in ("deadLetterDestination", "expirationTimeUtc"):
        if props.get(key) is not None:
            out[key] = props[key]
    return out


def new_subscription(topic: Resource, name: str, properties: dict[str, Any], now: float) -> Resource:
    check_name(name, SUBSCRIPTION_NAME_RE, SUBSCRIPTION_NAME_RULE, target="eventSubscriptionName")
    return Resource(subscription_id(topic, name), STORED_SUBSCRIPTION_TYPE, name, None, None,
                    dict(properties, provisioningState="Creating"), {}, {}, now)


def subscription_body(subscription: Resource) -> dict[str, Any]:
    """As ARM shows it: the WebHook's full URL is write-only (it may carry a secret); GET shows its base."""
    props = dict(subscription.properties)
    destination = props["destination"]
    if destination["endpointType"] == "WebHook":
        shown = {k: v for k, v in destination["properties"].items() if k != "endpointUrl"}
        props["destination"] = {"endpointType": "WebHook", "properties": shown}
    return {"id": subscription.id, "name": subscription.name, "type": SUBSCRIPTION_TYPE, "properties": props}


def begin_delete_subscription(store: Store, subscription: Resource) -> Deletion:
    subscription.properties["provisioningState"] = "Deleting"
    return Deletion("global", lambda: store.delete(subscription.id))


# --- which events a subscription wants ---------------------------------------------------------------------
def routing_fields(event: dict[str, Any], input_schema: str, mapping: dict[str, Any] | None) -> tuple[str, str]:
    """(subject, event type) of an accepted event, as filters read them."""
    if input_schema == "CloudEventSchemaV1_0":
        return str(event.get("subject") or ""), str(event["type"])
    if input_schema == "EventGridSchema":
        return str(event["subject"]), str(event["eventType"])
    fields = ((mapping or {}).get("properties") or {})

    def mapped(name: str) -> str:  # a custom event's field, through the topic's inputSchemaMapping
        spec = fields.get(name) or {}
        source = spec.get("sourceField")
        value = event.get(source) if isinstance(source, str) else None
        return str(value if value is not None else spec.get("defaultValue") or "")

    return mapped("subject"), mapped("eventType")


def wants(subscription: Resource, subject: str, event_type: str) -> bool:
    """Event Grid's basic filters: event types (case-insensitive), subject prefix and suffix."""
    f = subscription.properties["filter"]
    types = f.get("includedEventTypes")
    if types and event_type.lower() not in {t.lower() for t in types}:
        return False
    begins, ends = f.get("subjectBeginsWith", ""), f.get("subjectEndsWith", "")
    if not f.get("isSubjectCaseSensitive"):
        subject, begins, ends = subject.lower(), begins.lower(), ends.lower()
    return subject.startswith(begins) and subject.endswith(ends)
