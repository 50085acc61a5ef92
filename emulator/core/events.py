"""Event Grid: every successful write, delete and action produces the Azure-subscription
system-topic event (Microsoft.Resources.ResourceWriteSuccess / ResourceDeleteSuccess /
ResourceActionSuccess), delivered to subscribers registered through the admin API.

Delivery is asynchronous (a worker thread), retried with backoff as Event Grid does, and only to
loopback endpoints: nothing leaves this machine.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from .clock import iso

log = logging.getLogger("emulator.events")

EVENT_TYPES = {
    "write": "Microsoft.Resources.ResourceWriteSuccess",
    "delete": "Microsoft.Resources.ResourceDeleteSuccess",
    "action": "Microsoft.Resources.ResourceActionSuccess",
}
SCHEMAS = ("EventGridSchema", "CloudEventSchemaV1_0")
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class EventSubscription:
    id: str
    endpoint: str
    schema: str = "EventGridSchema"
    included_event_types: list[str] | None = None
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    subscription_id: str | None = None  # the system topic's subscription; None = every subscription
    max_attempts: int = 5
    delivered: int = 0
    failed: int = 0

    def wants(self, event: dict[str, Any], subscription_id: str) -> bool:
        if self.subscription_id and self.subscription_id.lower() != subscription_id.lower():
            return False
        if self.included_event_types and event["eventType"] not in self.included_event_types:
            return False
        subject = event["subject"].lower()
        if self.subject_begins_with and not subject.startswith(self.subject_begins_with.lower()):
            return False
        return not self.subject_ends_with or subject.endswith(self.subject_ends_with.lower())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "schema": self.schema,
            "includedEventTypes": self.included_event_types,
            "subjectBeginsWith": self.subject_begins_with,
            "subjectEndsWith": self.subject_ends_with,
            "subscriptionId": self.subscription_id,
            "delivered": self.delivered,
            "failed": self.failed,
        }


def build_event(kind: str, resource_id: str, operation_name: str, subscription_id: str, ts: float,
                method: str, url: str) -> dict[str, Any]:
    """The Event Grid schema form, shaped like ../shared/azure-api/events samples."""
    provider = operation_name.split("/", 1)[0]
    correlation = str(uuid.uuid4())
    data: dict[str, Any] = {
        "authorization": {
            "scope": resource_id,
            "action": operation_name,
            "evidence": {"role": "Contributor", "roleAssignmentScope": f"/subscriptions/{subscription_id}",
                         "principalType": "ServicePrincipal"},
        },
        "claims": {
            "aud": "https://management.azure.com/",
            "iss": f"https://sts.windows.net/{TENANT_ID}/",
            "appid": "00000000-0000-0000-0000-000000000000",
            "http://schemas.microsoft.com/identity/claims/tenantid": TENANT_ID,
            "ver": "1.0",
        },
        "correlationId": correlation,
        "httpRequest": {"clientRequestId": str(uuid.uuid4()), "clientIpAddress": "127.0.0.1", "method": method, "url": url},
        "resourceProvider": provider,
        "resourceUri": resource_id,
        "operationName": operation_name,
        "status": "Succeeded",
        "subscriptionId": subscription_id,
        "tenantId": TENANT_ID,
    }
    return {
        "subject": resource_id,
        "eventType": EVENT_TYPES[kind],
        "eventTime": iso(ts).replace("+00:00", "Z"),
        "id": str(uuid.uuid4()),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": f"/subscriptions/{subscription_id}",
    }


def to_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event["id"],
        "source": event["topic"],
        "specversion": "1.0",
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }


def validate_endpoint(endpoint: str) -> None:
    parsed = urllib.parse.urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("endpoint: must be an http(s) URL")
    if parsed.hostname not in LOOPBACK_HOSTS:
        raise ValueError("endpoint: must be a loopback address (127.0.0.1/localhost): nothing leaves this machine")


class EventBus:
    def __init__(self, keep: int = 20000):
        self._lock = threading.Lock()
        self.subscriptions: dict[str, EventSubscription] = {}
        self.published: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._queue: queue.Queue[tuple[EventSubscription, dict[str, Any]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.retry_delays = (0.2, 0.5, 1.0, 2.0)

    def subscribe(self, spec: dict[str, Any]) -> EventSubscription:
        endpoint = spec.get("endpoint")
        if not isinstance(endpoint, str):
            raise ValueError("endpoint: required (a loopback http(s) URL)")
        validate_endpoint(endpoint)
        schema = spec.get("schema", "EventGridSchema")
        if schema not in SCHEMAS:
            raise ValueError(f"schema: must be one of {', '.join(SCHEMAS)}")
        sub = EventSubscription(
            id=spec.get("id") or str(uuid.uuid4()),
            endpoint=endpoint,
            schema=schema,
            included_event_types=spec.get("includedEventTypes"),
            subject_begins_with=spec.get("subjectBeginsWith", ""),
            subject_ends_with=spec.get("subjectEndsWith", ""),
            subscription_id=spec.get("subscriptionId"),
        )
        with self._lock:
            self.subscriptions[sub.id] = sub
        return sub

    def unsubscribe(self, sub_id: str) -> bool:
        with self._lock:
            return self.subscriptions.pop(sub_id, None) is not None

    def publish(self, event: dict[str, Any], subscription_id: str) -> None:
        with self._lock:
            self.published.append(event)
            targets = [s for s in self.subscriptions.values() if s.wants(event, subscription_id)]
        for target in targets:
            self._ensure_worker()
            self._queue.put((target, event))

    def _ensure_worker(self) -> None:
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="eventgrid-delivery", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            target, event = item
            try:
                self._deliver(target, event)
            finally:
                self._queue.task_done()

    def _deliver(self, target: EventSubscription, event: dict[str, Any]) -> None:
        if target.schema == "CloudEventSchemaV1_0":
            body, ctype = json.dumps(to_cloud_event(event)).encode(), "application/cloudevents+json; charset=utf-8"
        else:
            body, ctype = json.dumps([event]).encode(), "application/json"
        headers = {"Content-Type": ctype, "aeg-event-type": "Notification", "aeg-subscription-name": target.id}
        for attempt in range(target.max_attempts):
            headers["aeg-delivery-count"] = str(attempt)
            try:
                req = urllib.request.Request(target.endpoint, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback only, checked)
                    if 200 <= resp.status < 300:
                        target.delivered += 1
                        return
            except (urllib.error.URLError, OSError) as exc:
                log.debug("event delivery to %s failed: %s", target.endpoint, exc)
            time.sleep(self.retry_delays[min(attempt, len(self.retry_delays) - 1)])
        target.failed += 1
        log.warning("event %s dropped after %d attempts to %s", event["id"], target.max_attempts, target.endpoint)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until queued deliveries are done (for tests and the demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        if self._worker and self._worker.is_alive():
            self._queue.put(None)
