"""Auto-protect as a service: the two entry points the trigger adapters call.

- ``handle_event``: a VM's Event Grid event → validated → one protection job on the queue.
  Everything else is acknowledged and ignored cheaply; a malformed event is logged with the
  field named, and nothing else happens; a duplicate delivery of the same event is dropped.
- ``handle_message``: one step of a protection job (shared/protect.py), settled by
  shared/runner.py: recorded when done, re-enqueued with a delay, or poisoned with the reason.
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
from .runner import run_step
from .settings import ProtectSettings

log = logging.getLogger("vmkeeper.autoprotect")


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
    ledger = _ledger(s)

    def done(message: dict[str, Any], outcome: jobs.Done) -> None:
        ledger.record_vm(message["vm_id"], outcome.result, outcome.detail, message.get("event_id"))
        log.info("VM %s: %s %s", message["vm_id"], outcome.result, outcome.detail)

    def failed(message: dict[str, Any], reason: str) -> None:
        ledger.record_vm(message["vm_id"], "failed", {"reason": reason}, message.get("event_id"))

    return run_step(body, dequeue_count, kind=KIND, required=("action", "vm_id"),
                    step=Protector(s, azure_clients).handle, queue=azure_clients.queue(s.queue),
                    poison=azure_clients.queue(f"{s.queue}-poison"), on_done=done, on_failed=failed)
