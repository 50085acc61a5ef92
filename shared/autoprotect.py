"""Auto-protect as a service: the two entry points the trigger adapters call.

- ``handle_event``: a VM's Event Grid event → validated → one protection job on the queue.
  Everything else is acknowledged and ignored cheaply; a malformed event is logged with the
  field named, and nothing else happens; a duplicate delivery of the same event is dropped.
- ``handle_message``: one step of a protection job (shared/protect.py). Done → recorded; Retry →
  the job is re-enqueued with a visibility delay (no function ever sleeps); Failed, a bad
  message, or an error on the last delivery → the poison queue, with the reason.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

from . import azure_clients, jobs
from .events import BadEvent, parse
from .ledger import Ledger
from .protect import KIND, Protector, new_message
from .settings import ProtectSettings

log = logging.getLogger("vmkeeper.autoprotect")
MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (a test keeps them equal)


@lru_cache(maxsize=1)
def settings() -> ProtectSettings:
    return ProtectSettings.from_env(os.environ)


def _ledger(s: ProtectSettings) -> Ledger:
    return Ledger(azure_clients.table(s.ledger_table))


def handle_event(event: dict[str, Any]) -> str:
    """Returns what was done: "ignored", "rejected", "duplicate" or "enqueued"."""
    try:
        vm_event = parse(event)
    except BadEvent as exc:
        log.error("event %s rejected: %s", event.get("id") if isinstance(event, dict) else "?", exc)
        return "rejected"
    if vm_event is None:
        return "ignored"
    s = settings()
    if not _ledger(s).first_delivery(f"{vm_event.event_id}:{vm_event.action}:{vm_event.vm_id}"):
        return "duplicate"
    message = new_message(vm_event.action, vm_event.vm_id, vm_event.event_id, vm_event.event_time)
    azure_clients.queue(s.queue).send_message(jobs.encode(message))
    log.info("VM %s: %s job enqueued (event %s)", vm_event.vm_id, vm_event.action, vm_event.event_id)
    return "enqueued"


def handle_message(body: bytes, dequeue_count: int) -> str:
    s = settings()
    queue = azure_clients.queue(s.queue)
    try:
        message = jobs.decode(body, KIND, ("action", "vm_id"))
    except jobs.BadMessage as exc:
        log.error("protection job rejected: %s", exc)
        _poison(s, body, str(exc))
        return "poisoned"
    try:
        outcome = Protector(s, azure_clients).handle(message)
    except jobs.BadMessage as exc:
        _poison(s, body, str(exc), message)
        return "poisoned"
    except Exception as exc:
        if dequeue_count < MAX_DEQUEUE_COUNT:
            raise  # the host retries the delivery
        _poison(s, body, f"{type(exc).__name__}: {exc}", message)
        return "poisoned"
    ledger = _ledger(s)
    if isinstance(outcome, jobs.Done):
        ledger.record_vm(message["vm_id"], outcome.result, outcome.detail, message.get("event_id"))
        log.info("VM %s: %s %s", message["vm_id"], outcome.result, outcome.detail)
        return outcome.result
    if isinstance(outcome, jobs.Retry):
        queue.send_message(jobs.encode({**message, **outcome.changes}), visibility_timeout=outcome.delay)
        return "retry"
    ledger.record_vm(message["vm_id"], "failed", {"reason": outcome.reason}, message.get("event_id"))
    _poison(s, body, outcome.reason, message)
    return "poisoned"


def _poison(s: ProtectSettings, body: bytes, reason: str, message: dict[str, Any] | None = None) -> None:
    log.error("protection job to the poison queue: %s", reason)
    azure_clients.queue(f"{s.queue}-poison").send_message(jobs.poison_body(body, reason, message))
