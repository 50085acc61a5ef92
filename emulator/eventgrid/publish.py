"""Publishing to a custom topic (data plane, api-version 2018-01-01): who may publish, and which
batches Event Grid accepts. Errors carry Event Grid's envelope ``{"error": {"code", "message",
"details": [{"code", "message"}]}}`` with the HTTP status name as code (BadRequest, as the service
answers, with detail InputJsonInvalid for a batch it can't read) and say which field of which event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from datetime import datetime
from typing import Any

from ..core.errors import ArmError
from ..core.state import Resource
from .models import endpoint_path, shared_access_keys

API_VERSIONS = ("2018-01-01",)
MAX_BYTES = 1024 * 1024  # the batch, and each event in it (Learn "Publish events to … custom topics")
CONTENT_TYPES = ("application/json", "application/cloudevents-batch+json")
CLOUD_EVENT_REQUIRED = ("id", "source", "specversion", "type")
EVENT_GRID_REQUIRED = ("id", "subject", "data", "eventType", "eventTime", "dataVersion")
EVENT_GRID_FIELDS = set(EVENT_GRID_REQUIRED) | {"topic", "metadataVersion"}
SCHEMA_NAMES = {"EventGridSchema": "EventGridEvent", "CloudEventSchemaV1_0": "CloudEventV10",
                "CustomEventSchema": "CustomEvent"}


class PublishError(ArmError):
    detail_code: str | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message,
                          "details": [{"code": self.detail_code or self.code, "message": self.message}]}}


class BadRequest(PublishError):
    status, code, detail_code = 400, "BadRequest", "InputJsonInvalid"


class Unauthorized(PublishError):
    status, code = 401, "Unauthorized"


class Forbidden(PublishError):
    status, code = 403, "Forbidden"


class NotFound(PublishError):
    status, code = 404, "NotFound"


class TooLarge(PublishError):
    status, code = 413, "RequestEntityTooLarge"


# --- who may publish --------------------------------------------------------------------------------------
def authorize(topic: Resource, headers: dict[str, str], bearer: str | None, now: float) -> str:
    """How the caller proved itself: a bearer token (Microsoft Entra ID; the emulator, holding no identity
    provider, takes any non-empty one), else the topic's key or a SAS token signed with it, unless the topic
    disables local auth. Returns the scheme; raises 401/403."""
    host = f"the topic '{topic.name}'"
    if topic.properties.get("publicNetworkAccess") == "Disabled":
        raise Forbidden(f"Publishing to {host} is forbidden: its publicNetworkAccess is Disabled and the emulator "
                        "has no private endpoints to reach it through.")
    if bearer is not None:
        if not bearer.strip():
            raise Unauthorized(f"The request to {host} carries an empty bearer token.")
        return "Bearer"
    key, sas = headers.get("aeg-sas-key"), headers.get("aeg-sas-token")
    if key is None and sas is None:
        raise Unauthorized(f"The request to {host} has no credential: send 'Authorization: Bearer …', "
                           "'aeg-sas-key' or 'aeg-sas-token'.")
    if topic.properties.get("disableLocalAuth"):
        raise Unauthorized(f"The request authorization key is not authorized for {host}: local authentication "
                           "(aeg-sas-key, aeg-sas-token) is disabled on it (disableLocalAuth); use Microsoft Entra ID.")
    keys = list(shared_access_keys(topic).values())
    if key is not None:
        if not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            raise Unauthorized(f"The request authorization key is not authorized for {host}: the aeg-sas-key "
                               "is not one of its keys (key1, key2).")
        return "aeg-sas-key"
    _check_sas(topic, sas or "", keys, now)
    return "aeg-sas-token"


def _check_sas(topic: Resource, token: str, keys: list[str], now: float) -> None:
    """``r={resource}&e={expiry}&s={signature}``, the form azure-eventgrid's ``generate_sas`` makes: an
    HMAC-SHA256 with a topic key over ``r=…&e=…``, for this topic's endpoint, not expired."""
    unsigned, _, signature = token.rpartition("&s=")
    fields = dict(urllib.parse.parse_qsl(unsigned, keep_blank_values=True))
    reason = None
    if not signature or "r" not in fields or "e" not in fields:
        reason = "it is not of the form r=…&e=…&s=…"
    else:
        expected = [base64.b64encode(hmac.new(base64.b64decode(k), unsigned.encode("ascii", "replace"),
                                              hashlib.sha256).digest()).decode() for k in keys]
        resource = urllib.parse.urlsplit(fields["r"]).path.rstrip("/").lower()
        try:
            expiry = datetime.fromisoformat(fields["e"]).timestamp()
        except ValueError:
            expiry = None
        if urllib.parse.unquote(signature) not in expected:
            reason = "its signature is not made with one of the topic's keys"
        elif resource != endpoint_path(topic).lower():
            reason = f"it was made for '{fields['r']}', not this topic's endpoint"
        elif expiry is None or expiry <= now:
            reason = f"it expired at '{fields['e']}'" if expiry is not None else f"its expiry '{fields['e']}' is not a date"
    if reason:
        raise Unauthorized(f"The request authorization token is not authorized for the topic '{topic.name}': {reason}.")


# --- which batches are accepted ----------------------------------------------------------------------------
def check_api_version(query: dict[str, str]) -> None:
    version = query.get("api-version")
    if not version:
        raise BadRequest("The api-version query parameter is required (api-version=2018-01-01).")
    if version not in API_VERSIONS:
        raise BadRequest(f"The api-version '{version}' is not supported for publishing to a topic "
                         f"(supported: {', '.join(API_VERSIONS)}).")


def read_batch(raw: bytes, content_type: str, topic: Resource) -> list[dict[str, Any]]:
    """The events of a publish request, checked against the topic's inputSchema; Event Grid schema events
    get the fields Event Grid stamps (``topic``, ``metadataVersion``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    schema = topic.properties["inputSchema"]
    expected = SCHEMA_NAMES[schema]
    if len(raw) > MAX_BYTES:
        _too_large(raw)
    if media == "application/cloudevents+json":
        raise BadRequest("Content-Type 'application/cloudevents+json' (one CloudEvent, structured mode) is not served "
                         "by the emulator: send a JSON array as 'application/cloudevents-batch+json'.")
    if media not in CONTENT_TYPES:
        raise BadRequest(f"Content-Type '{content_type}' is not supported: send a JSON array as "
                         f"{' or '.join(CONTENT_TYPES)}.")
    if media == "application/cloudevents-batch+json" and schema != "CloudEventSchemaV1_0":
        raise BadRequest(f"This resource is configured for '{expected}' schema: a CloudEvents batch "
                         "(Content-Type 'application/cloudevents-batch+json') does not conform to it.")
    try:
        events = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(events, list):
        raise BadRequest(f"This resource is configured for '{expected}' schema: the body must be a JSON array of "
                         f"events, not a JSON {type(events).__name__ if events is not None else 'null'}.")
    if not events:
        raise BadRequest("The body is an empty array: publish at least one event.")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise BadRequest(f"This resource is configured for '{expected}' schema: the event at index {i} is not "
                             "a JSON object.")
        if schema == "CloudEventSchemaV1_0":
            _check_cloud_event(event, i)
        elif schema == "EventGridSchema":
            _check_event_grid_event(event, i, topic)
    return events


def _too_large(raw: bytes) -> None:
    try:
        events = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        events = None
    for i, event in enumerate(events if isinstance(events, list) else []):
        size = len(json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_BYTES:
            raise TooLarge(f"The event at index {i} is {size} bytes: an event may be at most 1 MB ({MAX_BYTES} bytes).")
    raise TooLarge(f"The request body is {len(raw)} bytes: a batch of events may be at most 1 MB ({MAX_BYTES} bytes).")


def _check_cloud_event(event: dict[str, Any], i: int) -> None:
    for field in CLOUD_EVENT_REQUIRED:
        value = event.get(field)
        if not isinstance(value, str) or not value:
            problem = "is missing" if field not in event else "must be a non-empty string"
            raise BadRequest(f"This resource is configured to receive event in 'CloudEventV10' schema: required "
                             f"property '{field}' of the event at index {i} {problem}.")
    if event["specversion"] != "1.0":
        raise BadRequest(f"The event at index {i} has specversion '{event['specversion']}': only CloudEvents '1.0' "
                         "is accepted.")
    if "data" in event and "data_base64" in event:
        raise BadRequest(f"The event at index {i} has both 'data' and 'data_base64': a CloudEvent carries one.")


def _check_event_grid_event(event: dict[str, Any], i: int, topic: Resource) -> None:
    unexpected = sorted(set(event) - EVENT_GRID_FIELDS)
    if unexpected:
        raise BadRequest(f"This resource is configured for 'EventGridEvent' schema. Received unexpected property "
                         f"'{unexpected[0]}' in the event at index {i}, which does not conform to the expected schema.")
    for field in EVENT_GRID_REQUIRED:
        if field not in event or (field != "data" and not isinstance(event[field], str)):
            problem = "is missing" if field not in event else "must be a string"
            raise BadRequest(f"This resource is configured for 'EventGridEvent' schema: required property '{field}' "
                             f"of the event at index {i} {problem}.")
    try:
        datetime.fromisoformat(event["eventTime"])
    except ValueError:
        raise BadRequest(f"The event at index {i} has eventTime '{event['eventTime']}', not a date-time.") from None
    given = event.get("topic")
    if given is not None and str(given).lower() != topic.id.lower():
        raise BadRequest(f"The event at index {i} names topic '{given}': when given, it must be this topic's "
                         f"resource id '{topic.id}'.")
    event["topic"] = topic.id
    event["metadataVersion"] = "1"
