"""Event Grid system topics and their event subscriptions, on plain state (ARM 2025-02-15, as
azure-mgmt-eventgrid 10.4.0 calls them; REST reference "System Topics" and "System Topic Event
Subscriptions": no official example of either is stored in ../shared/azure-api).

A system topic publishes an Azure service's own events (here: an Azure subscription's or a resource
group's resource events, ``topicType`` ``Microsoft.Resources.Subscriptions`` / ``…ResourceGroups``,
location ``global``; a source has one system topic of a type at most). Its event subscriptions are
nested resources (``…/systemTopics/{t}/eventSubscriptions/{n}``, a nested type: ARM's resource lists
leave them out). They are checked and kept, and **nothing is delivered through them**: the emulator's
system-topic events reach the subscribers registered through the admin API (README, "Event Grid: the
Azure-subscription system topic"). So their ``advancedFilters`` are checked and kept, not applied.

Managed identities: a topic's ``identity`` (SystemAssigned and/or UserAssigned) is kept; an event
subscription delivering or dead-lettering with a resource identity must name one the topic has
(Learn "Event delivery with a managed identity": the identity is enabled on the topic first).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..core.arm import check_name, normalize_location, parse_rid, rid
from ..core.errors import ArmError, InvalidParameter
from ..core.resource import Deletion
from ..core.state import Resource, Store
from . import models as m

SYSTEM_TOPIC_TYPE = "Microsoft.EventGrid/systemTopics"
SUBSCRIPTION_TYPE = "Microsoft.EventGrid/systemTopics/eventSubscriptions"
NAME_RE = r"[A-Za-z0-9-]{3,128}"
NAME_RULE = "System topic name must be between 3 and 128 characters and use alphanumeric letters, digits and '-' only."
# Topic types whose source is a scope, not a resource: they live in location 'global'.
GLOBAL_TYPES = {"microsoft.resources.subscriptions": "subscription", "microsoft.resources.resourcegroups": "group"}
IDENTITY_TYPES = ("None", "SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "SystemAssigned,UserAssigned")
DELIVERY_SCHEMAS = ("EventGridSchema", "CloudEventSchemaV1_0")  # a system topic's events are Event Grid events
_NS = uuid.UUID("6f1d5c1e-6a57-4f0e-9d1b-8c3c2a7e5b10")  # the emulator's own: stable ids derived from names


def topic_id(sub: str, rg: str, name: str) -> str:
    return rid(sub, rg, m.PROVIDER, "systemTopics", name)


def check_topic_name(name: str) -> None:
    check_name(name, NAME_RE, NAME_RULE, target="systemTopicName")


def identity_properties(raw: Any, topic_id: str) -> dict[str, Any] | None:
    """A topic's ``identity`` from a PUT body, checked, with the ids Azure adds (stable per topic and
    identity)."""
    if raw is None:
        return None
    where = "identity"
    if not isinstance(raw, dict) or raw.get("type") not in IDENTITY_TYPES:
        raise InvalidParameter(f"{where}.type: one of {', '.join(IDENTITY_TYPES)}.", target=f"{where}.type")
    kind = raw["type"].replace(" ", "")
    out: dict[str, Any] = {"type": raw["type"]}
    if "SystemAssigned" in kind:
        out["principalId"] = str(uuid.uuid5(_NS, f"system|{topic_id.lower()}"))
    if "UserAssigned" in kind:
        users = raw.get("userAssignedIdentities")
        if not isinstance(users, dict) or not users or any(parse_rid(k) is None for k in users):
            raise InvalidParameter(f"{where}.userAssignedIdentities: an object keyed by the identities' resource ids.",
                                   target=f"{where}.userAssignedIdentities")
        out["userAssignedIdentities"] = {k: {"principalId": str(uuid.uuid5(_NS, f"principal|{k.lower()}")),
                                             "clientId": str(uuid.uuid5(_NS, f"client|{k.lower()}"))} for k in users}
    return out


def topic_properties(sub: str, body: dict[str, Any], existing: Resource | None, store: Store) -> dict[str, Any]:
    """The system topic's properties from a PUT body, checked: its source and type can't change, a
    subscription or group topic's source is in the topic's own subscription, and a source has one topic of a
    type."""
    props = body.get("properties")
    if not isinstance(props, dict):
        raise InvalidParameter("properties: required, an object with source and topicType.", target="properties")
    source, topic_type = props.get("source"), props.get("topicType")
    if not isinstance(topic_type, str) or not topic_type:
        raise InvalidParameter("properties.topicType: required, e.g. Microsoft.Resources.Subscriptions.",
                               target="properties.topicType")
    if not isinstance(source, str) or not source.startswith("/subscriptions/"):
        raise InvalidParameter("properties.source: required, the resource id of the events' source.",
                               target="properties.source")
    if existing is not None:
        for key, value in (("source", source), ("topicType", topic_type)):
            if value.lower() != existing.properties[key].lower():
                raise ArmError(f"properties.{key}: a system topic's {key} can't be changed (it is "
                               f"'{existing.properties[key]}').", code="PropertyChangeNotAllowed",
                               target=f"properties.{key}")
    kind = GLOBAL_TYPES.get(topic_type.lower())
    parts = [p for p in source.split("/") if p]
    if kind is not None:
        expected = 2 if kind == "subscription" else 4
        if len(parts) != expected or (kind == "group" and parts[2].lower() != "resourcegroups"):
            raise InvalidParameter(f"properties.source: a {topic_type} topic's source is a {kind}'s id.",
                                   target="properties.source")
        if parts[1].lower() != sub.lower():
            raise InvalidParameter(f"properties.source: '{source}' is not in subscription '{sub}', where the "
                                   "system topic is.", target="properties.source")
        if kind == "group":
            store.resource_group(parts[1], parts[3])
        if normalize_location(body.get("location")) != "global":
            raise InvalidParameter(f"location: a {topic_type} system topic is in location 'global' (got "
                                   f"'{body.get('location')}').", target="location")
    for other in store.of_type(SYSTEM_TOPIC_TYPE):
        if (other is not existing and other.properties["source"].lower() == source.lower()
                and other.properties["topicType"].lower() == topic_type.lower()):
            raise InvalidParameter(f"properties.source: '{source}' already has a {topic_type} system topic, "
                                   f"'{other.id}' (one per source and type).", target="properties.source")
    return {"source": source, "topicType": topic_type,
            "metricResourceId": str(uuid.uuid5(_NS, f"metric|{source.lower()}|{topic_type.lower()}"))}


def new_topic(sub: str, rg: str, name: str, location: str, tags: dict[str, str] | None, properties: dict[str, Any],
              identity: dict[str, Any] | None, now: float) -> Resource:
    extra = {"identity": identity} if identity is not None else {}
    return Resource(topic_id(sub, rg, name), SYSTEM_TOPIC_TYPE, name, location, tags,
                    dict(properties, provisioningState="Creating"), extra, {}, now)


def begin_delete_topic(store: Store, topic: Resource) -> Deletion:
    """Its event subscriptions go with it."""
    def done() -> None:
        for child in store.children(topic.id):
            store.delete(child.id)
        store.delete(topic.id)

    topic.properties["provisioningState"] = "Deleting"
    return Deletion(topic.location or "global", done)


# --- event subscriptions of a system topic ---------------------------------------------------------------
def subscription_id(topic: Resource, name: str) -> str:
    return f"{topic.id}/eventSubscriptions/{name}"


def subscriptions_of(store: Store, topic: Resource) -> list[Resource]:
    return store.of_type(SUBSCRIPTION_TYPE, topic.id)


def _with_identity(topic: Resource, raw: Any, where: str) -> dict[str, Any]:
    """A deliveryWithResourceIdentity / deadLetterWithResourceIdentity: its identity must be the topic's."""
    if not isinstance(raw, dict) or not isinstance(raw.get("identity"), dict):
        raise InvalidParameter(f"{where}.identity: required, {{type, userAssignedIdentity}}.", target=f"{where}.identity")
    identity = raw["identity"]
    kind = identity.get("type")
    have = topic.extra.get("identity") or {}
    if kind == "UserAssigned":
        wanted = identity.get("userAssignedIdentity")
        users = {k.lower() for k in (have.get("userAssignedIdentities") or {})}
        if not isinstance(wanted, str) or wanted.lower() not in users:
            raise InvalidParameter(f"{where}.identity.userAssignedIdentity: '{wanted}' is not an identity of system "
                                   f"topic '{topic.name}': add it to the topic's user-assigned identities first.",
                                   target=f"{where}.identity.userAssignedIdentity")
    elif kind == "SystemAssigned":
        if "SystemAssigned" not in str(have.get("type", "")).replace(" ", ""):
            raise InvalidParameter(f"{where}.identity.type: system topic '{topic.name}' has no system-assigned "
                                   "identity.", target=f"{where}.identity.type")
    else:
        raise InvalidParameter(f"{where}.identity.type: SystemAssigned or UserAssigned.", target=f"{where}.identity.type")
    return dict(raw)


def subscription_properties(topic: Resource, props: Any) -> dict[str, Any]:
    """An event subscription's properties from a PUT body, checked against its system topic."""
    if not isinstance(props, dict):
        raise InvalidParameter("properties: required, an object with a destination.", target="properties")
    schema = props.get("eventDeliverySchema") or "EventGridSchema"
    if schema not in DELIVERY_SCHEMAS:
        raise InvalidParameter(f"properties.eventDeliverySchema: '{schema}' is not one of {', '.join(DELIVERY_SCHEMAS)} "
                               "(a system topic's events are Event Grid events).", target="properties.eventDeliverySchema")
    out: dict[str, Any] = {"topic": topic.properties["source"],
                           "filter": m.filter_properties(props.get("filter"), advanced=True),
                           "labels": props.get("labels"), "eventDeliverySchema": schema,
                           "retryPolicy": m.retry_policy(props.get("retryPolicy"))}
    with_identity = props.get("deliveryWithResourceIdentity")
    if with_identity is not None:
        checked = _with_identity(topic, with_identity, "properties.deliveryWithResourceIdentity")
        checked["destination"] = m.destination_properties(checked.get("destination"))
        out["deliveryWithResourceIdentity"] = checked
    else:
        out["destination"] = m.destination_properties(props.get("destination"))
    dead = props.get("deadLetterWithResourceIdentity")
    if dead is not None:
        out["deadLetterWithResourceIdentity"] = _with_identity(topic, dead, "properties.deadLetterWithResourceIdentity")
        target = dead.get("deadLetterDestination")
        if not isinstance(target, dict) or target.get("endpointType") != "StorageBlob" or parse_rid(
                (target.get("properties") or {}).get("resourceId") or "") is None:
            raise InvalidParameter("properties.deadLetterWithResourceIdentity.deadLetterDestination: a StorageBlob "
                                   "destination with the storage account's resourceId and a blobContainerName.",
                                   target="properties.deadLetterWithResourceIdentity.deadLetterDestination")
    for key in ("deadLetterDestination", "expirationTimeUtc"):
        if props.get(key) is not None:
            out[key] = props[key]
    return out


def new_subscription(topic: Resource, name: str, properties: dict[str, Any], now: float) -> Resource:
    check_name(name, m.SUBSCRIPTION_NAME_RE, m.SUBSCRIPTION_NAME_RULE, target="eventSubscriptionName")
    return Resource(subscription_id(topic, name), SUBSCRIPTION_TYPE, name, None, None,
                    dict(properties, provisioningState="Creating"), {}, {}, now)


def subscription_body(subscription: Resource) -> dict[str, Any]:
    """As ARM shows it (a WebHook's full URL is write-only: GET shows its base, as for custom topics)."""
    props = dict(subscription.properties)
    destination = props.get("destination")
    if destination and destination["endpointType"] == "WebHook":
        shown = {k: v for k, v in destination["properties"].items() if k != "endpointUrl"}
        props["destination"] = {"endpointType": "WebHook", "properties": shown}
    return {"id": subscription.id, "name": subscription.name, "type": SUBSCRIPTION_TYPE, "properties": props}


def begin_delete_subscription(store: Store, subscription: Resource) -> Deletion:
    subscription.properties["provisioningState"] = "Deleting"
    return Deletion("global", lambda: store.delete(subscription.id))
