"""Delivery of a custom topic's events to its WebHook event subscriptions, off the request thread.

Each event subscription has its own lane (a FIFO and, while it holds work, one thread), so events
reach a subscriber in the order they were published and a failing subscriber holds up no other.
Before the first delivery to an endpoint the lane runs Event Grid's endpoint validation: the
CloudEvents abuse-protection handshake (``OPTIONS`` with ``WebHook-Request-Origin``, answered by
``WebHook-Allowed-Origin``) for CloudEvents delivery, the ``SubscriptionValidationEvent`` (answered by
``{"validationResponse": code}``) otherwise. A delivery is acknowledged by 200–204 only (Learn "Event
Grid message delivery and retry"); anything else is retried a few times on a short backoff, then the
event is dropped and counted (no dead-lettering here).
"""

from __future__ import annotations

import collections
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from ..core.events import to_cloud_event

log = logging.getLogger("emulator.eventgrid")

ORIGIN = "eventgrid.azure.net"
ACKNOWLEDGED = range(200, 205)
MAX_ATTEMPTS = 4  # Azure tries up to 30 times over 24 h; a local test should not wait minutes
RETRY_DELAYS = (0.1, 0.3, 1.0)  # seconds before the 2nd, 3rd, 4th attempt
TIMEOUT = 10.0  # seconds a subscriber has to answer (Azure: 30)


@dataclass(frozen=True)
class Target:
    """What delivery needs to know of an event subscription, taken when the event is published."""

    id: str  # the event subscription's resource id
    name: str
    topic_id: str
    endpoint_url: str
    schema: str  # EventGridSchema | CloudEventSchemaV1_0 | CustomInputSchema
    max_attempts: int


def delivered_form(event: dict[str, Any], input_schema: str, delivery_schema: str) -> dict[str, Any]:
    """An accepted event in the subscription's delivery schema (Event Grid events may go out as CloudEvents)."""
    if input_schema == "EventGridSchema" and delivery_schema == "CloudEventSchemaV1_0":
        return to_cloud_event(event)
    return event


@dataclass
class _Lane:
    queue: collections.deque
    busy: bool = False
    validated: frozenset[tuple[str, str]] = frozenset()


class Deliveries:
    def __init__(self, retry_delays: tuple[float, ...] = RETRY_DELAYS, max_attempts: int = MAX_ATTEMPTS):
        self.retry_delays = retry_delays
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._lanes: dict[str, _Lane] = {}
        self._pending = 0
        self._counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._dropped: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)

    # --- publishing side ---------------------------------------------------------------------------------
    def submit(self, target: Target, event: dict[str, Any]) -> None:
        with self._lock:
            lane = self._lanes.setdefault(target.id.lower(), _Lane(collections.deque()))
            lane.queue.append((target, event))
            self._pending += 1
            if not lane.busy:
                lane.busy = True
                threading.Thread(target=self._run, args=(lane,), name=f"eventgrid-{target.name}", daemon=True).start()

    def not_delivered(self, subscription_id: str, event_id: str, reason: str) -> None:
        """An event for a destination the emulator keeps but sends nothing to (StorageQueue, AzureFunction…)."""
        with self._lock:
            self._counts[subscription_id.lower()]["notDelivered"] += 1
            self._dropped.append({"eventSubscription": subscription_id, "eventId": event_id, "reason": reason})

    # --- observing --------------------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or being delivered (retries included), False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
            return True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            totals: collections.Counter = collections.Counter()
            for counts in self._counts.values():
                totals.update(counts)
            return {"pending": self._pending, "delivered": totals["delivered"], "failed": totals["failed"],
                    "notDelivered": totals["notDelivered"],
                    "eventSubscriptions": {k: dict(v) for k, v in self._counts.items()},
                    "dropped": list(self._dropped)}

    # --- the lane's thread ---------------------------------------------------------------------------------
    def _run(self, lane: _Lane) -> None:
        while True:
            with self._lock:
                if not lane.queue:
                    lane.busy = False  # checked and cleared under the lock: submit() starts a new thread
                    return
                target, event = lane.queue.popleft()
            try:
                self._deliver(lane, target, event)
            except Exception:  # a bug here must not stop the lane or leave waiters hanging
                log.exception("delivery of event %s to %s failed unexpectedly", event.get("id"), target.endpoint_url)
                self._count(target, "failed")
            finally:
                with self._idle:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()

    def _deliver(self, lane: _Lane, target: Target, event: dict[str, Any]) -> None:
        attempts = min(target.max_attempts, self.max_attempts)
        outcome = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)])
            self._count(target, "attempts")
            key = (target.endpoint_url, target.schema)
            if key not in lane.validated:
                outcome = self._validate(target)
                if outcome:
                    continue
                lane.validated = lane.validated | {key}
            outcome = self._post(target, event, attempt)
            if not outcome:
                self._count(target, "delivered")
                return
        self._count(target, "failed")
        with self._lock:
            self._dropped.append({"eventSubscription": target.id, "eventId": event.get("id"),
                                  "reason": f"not delivered after {attempts} attempts: {outcome}"})
        log.warning("event %s dropped after %d attempts to %s: %s", event.get("id"), attempts, target.endpoint_url,
                    outcome)

    def _count(self, target: Target, what: str) -> None:
        with self._lock:
            self._counts[target.id.lower()][what] += 1

    def _validate(self, target: Target) -> str:
        """Event Grid's endpoint validation; '' when the endpoint agreed, else why not."""
        if target.schema == "CloudEventSchemaV1_0":
            status, headers, _ = _send(target.endpoint_url, "OPTIONS", None, {"WebHook-Request-Origin": ORIGIN})
            allowed = headers.get("webhook-allowed-origin", "")
            if status != 200 or allowed not in (ORIGIN, "*"):
                return (f"abuse-protection handshake refused (OPTIONS → {status}, WebHook-Allowed-Origin "
                        f"'{allowed}')")
            return ""
        code = str(uuid.uuid4())
        validation = [{"id": str(uuid.uuid4()), "topic": target.topic_id, "subject": "",
                       "data": {"validationCode": code}, "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                       "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "metadataVersion": "1",
                       "dataVersion": "1"}]
        status, _, body = _send(target.endpoint_url, "POST", json.dumps(validation).encode(), {
            "Content-Type": "application/json; charset=utf-8", "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": target.name.upper()})
        try:
            answer = json.loads(body or b"null")
        except ValueError:
            answer = None
        if status != 200 or not isinstance(answer, dict) or answer.get("validationResponse") != code:
            return f"subscription validation refused (POST → {status}, no matching validationResponse)"
        return ""

    def _post(self, target: Target, event: dict[str, Any], attempt: int) -> str:
        headers = {"aeg-event-type": "Notification", "aeg-subscription-name": target.name.upper(),
                   "aeg-delivery-count": str(attempt), "aeg-metadata-version": "1"}
        if target.schema == "CloudEventSchemaV1_0":  # CloudEvents go one per request, structured mode
            body, headers["Content-Type"] = json.dumps(event).encode(), "application/cloudevents+json; charset=utf-8"
        else:  # Event Grid and custom schemas: an array (of one event: maxEventsPerBatch defaults to 1)
            body, headers["Content-Type"] = json.dumps([event]).encode(), "application/json; charset=utf-8"
        status, _, _ = _send(target.endpoint_url, "POST", body, headers)
        return "" if status in ACKNOWLEDGED else f"POST → {status or 'no answer'}"


def _send(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one request to a loopback subscriber; status 0 if none came."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    handlers: list[Any] = [urllib.request.ProxyHandler({})]  # straight to the loopback address, never via a proxy
    if url.lower().startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context()))
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=TIMEOUT) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        log.debug("%s %s failed: %s", method, url, exc)
        return 0, {}, b""
