"""Auto-protect as a service: the two entry points the trigger adapters call.

- ``handle_event``: a VM's Event Grid event → validated → one protection job on the queue.
  Everything else is acknowledged and ignored cheaply; a malformed event is logged with the
  field named, and nothing else happens; a duplicate delivery of an event whose job was already
  queued is dropped (the event is recorded as seen only after its job is on the queue).
- ``handle_message``: one step of a protection job (shared/autoprotect/steps.py), settled by
  shared/queue/runner.py: recorded when done, re-enqueued with a delay, or poisoned with the reason.
- ``sweep``: the periodic pass (a VM older than vmkeeper, a tag that names a policy with a ``backup_policy``
  later, an event lost): a protection job for every fleet VM whose policy enrols it and whose instance the
  ledger does not record as protected so (shared/autoprotect/sweep.py); the job itself reads Azure first.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from .. import membership
from ..alerts.events import for_poisoning, for_resumed
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..instants import format_instant
from ..ports import Arm, Queue
from ..queue import messages, runner
from ..settings import ProtectSettings
from .events import BadEvent, parse
from .steps import KIND, Protector, decide_policy, new_message
from .sweep import HELD, VMS, decide, inputs_key, lasting_failure

log = logging.getLogger("vmkeeper.autoprotect")
SEND_THREADS = 8  # the sweep's jobs sent side by side (one Storage round trip each)
SWEEP = "sweep:"  # a sweep's event ids: sweep:<instant>


class AutoProtect:
    def __init__(self, settings: ProtectSettings, arm: Arm, queue: Queue, poison: Queue, ledger: Ledger,
                 alerts: Any = None):
        self.settings, self.arm, self.queue, self.poison, self.ledger = settings, arm, queue, poison, ledger
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
        def inputs(message: dict[str, Any]) -> dict[str, Any]:
            # A sweep's job carries the inputs it was sent with: the next sweep holds it while they stay the same.
            return {"inputs": message["inputs"]} if isinstance(message.get("inputs"), str) else {}

        def done(message: dict[str, Any], outcome: messages.Done) -> None:
            detail = {**outcome.detail, **inputs(message)} if outcome.result in HELD else outcome.detail
            if outcome.detail.get("resumed") and self.alerts is not None:  # said before the row that ends the job
                self.alerts.raise_(for_resumed(message["vm_id"], str(message.get("event_id") or ""), outcome.detail))
            self.ledger.record_vm(message["vm_id"], outcome.result, detail, message.get("event_id"))
            log.info("VM %s: %s %s", message["vm_id"], outcome.result, outcome.detail)

        def failed(message: dict[str, Any], reason: str) -> None:
            held = inputs(message) if lasting_failure(message) else {}  # else the next sweep sends it again
            self.ledger.record_vm(message["vm_id"], "failed", {"reason": reason, **held}, message.get("event_id"))

        return runner.run(body, kind=KIND, required=("action", "vm_id"), step=self.protector.handle,
                          queue=self.queue, poison=self.poison, on_done=done, on_failed=failed,
                          alert=self._alert)

    def _alert(self, cause: str, job: Any, reason: str) -> None:
        if self.alerts is None:
            return
        if isinstance(job, dict) and str(job.get("event_id") or "").startswith(SWEEP):
            # Each sweep sends a VM that can't be enrolled (no vault for its region) again: the same failure,
            # alerted once, not every sweep (the alert's key is the job and the reason).
            job = {k: v for k, v in job.items() if k not in ("event_id", "event_time")}
        self.alerts.raise_(for_poisoning(cause, job, reason, self.settings.queue))

    # --- the sweep ---------------------------------------------------------------------------------------
    def _document_digest(self) -> str:
        """The policy document's digest: an edit of it sends a held VM's job at once."""
        import hashlib

        with open(self.settings.policy_file, "rb") as document:
            return hashlib.sha256(document.read()).hexdigest()

    def sweep(self, now: datetime) -> dict[str, int]:
        """Queue a protection job for each fleet VM Azure Backup should protect and the ledger does not record
        as protected (this instance, this policy, this vault); returns counts."""
        from concurrent.futures import ThreadPoolExecutor
        from datetime import timedelta

        counts = {"vms": 0, "not_enrolled": 0, "protected": 0, "held": 0, "enqueued": 0}
        if not self.settings.subscriptions:
            log.error("protect sweep: VMKEEPER_SUBSCRIPTIONS is not set: no VM is looked at")
            return counts
        policies = self.protector.policies.get()  # unreadable: the timer fails and says why (the jobs would too)
        # A test failover's VMs are left out here when Site Recovery's items can be read; else the job decides.
        outside, _ = membership.outside_or_none(self.arm, self.settings.vaults, "protect sweep")
        recorded = {str(r.get("vmId") or "").lower(): r
                    for r in self.ledger.existing_rows("vm", select=["vmId", "outcome", "detail", "updated"])}
        document = self._document_digest()
        retry, recheck = timedelta(hours=self.settings.sweep_retry_hours), timedelta(hours=self.settings.sweep_recheck_hours)
        instant = format_instant(now)
        jobs: list[dict[str, Any]] = []
        for row in query_all(self.arm.resource_graph(), list(self.settings.subscriptions), VMS):
            vm_id = str(row["id"]).lower()
            counts["vms"] += 1
            choice = decide_policy(row.get("tags"), policies, vm_id, outside)
            if choice.backup_policy is None and choice.skip != "bad_tag":  # a bad tag: the job records it
                counts["not_enrolled"] += 1
                continue
            location, instance = str(row.get("location") or ""), str(row.get("vmId") or "")
            vault_id = self.settings.vaults.get(location.replace(" ", "").lower(), "")
            key = inputs_key(instance, location, row.get("tags"), vault_id, document)
            verdict = decide(recorded.get(vm_id), instance, choice.backup_policy, vault_id, key, now, retry, recheck)
            if verdict != "send":  # "protected", or "held": its failure already poisoned, alerted and reported
                counts[verdict] += 1
                continue
            jobs.append({**new_message("protect", vm_id, f"{SWEEP}{instant}", instant), "inputs": key})
        with ThreadPoolExecutor(SEND_THREADS) as pool:  # a job each VM, sent side by side: the first start sooner
            list(pool.map(lambda job: self.queue.send_message(messages.encode(job)), jobs))
        counts["enqueued"] = len(jobs)
        log.info("protect sweep: %s", counts)
        return counts
