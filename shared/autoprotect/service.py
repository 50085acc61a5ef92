"""Auto-protect as a service: the two entry points the trigger adapters call.

- ``handle_event``: a VM's Event Grid event → validated → one protection job on the queue.
  Everything else is acknowledged and ignored cheaply; a malformed event is logged with the
  field named, and nothing else happens; a duplicate delivery of an event whose job was already
  queued is dropped (the event is recorded as seen only after its job is on the queue).
- ``handle_message``: one step of a protection job (shared/autoprotect/steps.py), settled by
  shared/queue/runner.py: recorded when done, re-enqueued with a delay, or poisoned with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

from ..alerts.events import for_poisoning
from ..azure.ledger import Ledger
from ..ports import Arm, Queue
from ..queue import messages, runner
from ..settings import ProtectSettings
from .events import BadEvent, parse
from .steps import KIND, Protector, new_message

log = logging.getLogger("vmkeeper.autoprotect")


class AutoProtect:
    def __init__(self, settings: ProtectSettings, arm: Arm, queue: Queue, poison: Queue, ledger: Ledger,
                 alerts: Any = None):
        self.settings, self.queue, self.poison, self.ledger = settings, queue, poison, ledger
        self.alerts = alerts  # shared/alerts/outbox.py Alerts, or None
        self.protector = Protector(settings, arm)

    def handle_event(self, event: dict[str, Any]) -> str:
        """Returns what was done: "ignored", "rejected", "duplicate" or "enqueued"."""
        try:
            vm_event = parse(event)
        except BadEvent as exc:
            log.error("event %s rejected: %s", event.get("id") if isinstance(event, dict) else "?", exc)
            return "rejected"
        if vm_event is None:
            return "ignored"
        # Seen? Send. Then record: a delivery that fails before its job is queued (Storage down, the
        # host gone) is taken again when Event Grid retries. Two concurrent deliveries may both send:
        # a duplicate job is harmless (every step is idempotent), a lost one is not.
        key = f"{vm_event.event_id}:{vm_event.action}:{vm_event.vm_id}"
        if self.ledger.delivered(key):
            return "duplicate"
        message = new_message(vm_event.action, vm_event.vm_id, vm_event.event_id, vm_event.event_time)
        self.queue.send_message(messages.encode(message))
        self.ledger.record_delivery(key)
        log.info("VM %s: %s job enqueued (event %s)", vm_event.vm_id, vm_event.action, vm_event.event_id)
        return "enqueued"

    def handle_message(self, body: bytes) -> str:
        def done(message: dict[str, Any], outcome: messages.Done) -> None:
            self.ledger.record_vm(message["vm_id"], outcome.result, outcome.detail, message.get("event_id"))
            log.info("VM %s: %s %s", message["vm_id"], outcome.result, outcome.detail)

        def failed(message: dict[str, Any], reason: str) -> None:
            self.ledger.record_vm(message["vm_id"], "failed", {"reason": reason}, message.get("event_id"))

        return runner.run(body, kind=KIND, required=("action", "vm_id"), step=self.protector.handle,
                          queue=self.queue, poison=self.poison, on_done=done, on_failed=failed,
                          alert=self._alert)

    def _alert(self, cause: str, job: Any, reason: str) -> None:
        if self.alerts is not None:
            self.alerts.raise_(for_poisoning(cause, job, reason, self.settings.queue))
