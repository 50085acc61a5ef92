"""Site Recovery as a service: the entry points the trigger adapters call.

- ``handle_event``: a VM's Event Grid event (the auto-protect subscription's: shared/autoprotect/events.py) →
  one replication job on the queue: enable when the VM was written, disable when it was deleted. Only while
  some policy has a ``replication`` block (else nothing is queued: a fleet without Site Recovery pays
  nothing); a duplicate delivery is dropped, recorded as seen only once its job is on the queue.
- ``handle_message``: one step of a replication job (shared/replication/steps.py), settled by
  shared/queue/runner.py; each outcome is recorded per VM (ledger partition ``replication``), an ineligible VM
  and a VM marked critical that can't be replicated raise an alert each (once per change), a failed job is
  poisoned with its reason and an alert.
- ``sweep``: the periodic pass (a tag added later, a policy changed, an event lost): a job for every VM that
  should replicate and has no item yet, and a disable job for each of vmkeeper's items whose VM is no longer
  listed (the job itself checks the VM).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from .. import membership, resource_ids
from ..alerts import events as A
from ..autoprotect.events import BadEvent, parse
from ..azure.graph import query_all
from ..azure.ledger import Ledger
from ..instants import format_instant
from ..ports import Arm, Queue
from ..queue import messages, runner
from ..settings import ReplicationSettings
from . import names, select
from .steps import KIND, Replicator, new_message

log = logging.getLogger("vmkeeper.replication")
PARTITION = "replication"
SEND_THREADS = 8  # the sweep's jobs sent side by side (one Storage round trip each)
VMS = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, location, tags"


class Replication:
    def __init__(self, settings: ReplicationSettings, arm: Arm, queue: Queue, poison: Queue, ledger: Ledger,
                 alerts: Any = None, arm_endpoint: str = "https://management.azure.com"):
        self.settings, self.arm, self.queue, self.poison, self.ledger = settings, arm, queue, poison, ledger
        self.alerts = alerts  # shared/alerts/outbox.py Alerts, or None
        self.replicator = Replicator(settings, arm, arm_endpoint, ledger)

    def _replicating(self) -> bool:
        """Whether any policy has a replication block (an unreadable document: yes, the worker reports it)."""
        try:
            return any(p.replication is not None for p in self.replicator.policies.get().policies.values())
        except Exception:  # noqa: BLE001 (the job reports a broken document; the event is not lost here)
            return True

    # --- events ------------------------------------------------------------------------------------------
    def handle_event(self, event: dict[str, Any]) -> str:
        """Returns what was done: "ignored", "rejected", "duplicate" or "enqueued"."""
        try:
            vm_event = parse(event)
        except BadEvent as exc:
            log.error("event %s rejected: %s", event.get("id") if isinstance(event, dict) else "?", exc)
            return "rejected"
        if vm_event is None or not self._replicating():
            return "ignored"
        action = "enable" if vm_event.action == "protect" else "disable"
        key = f"{vm_event.event_id}:replicate-{action}:{vm_event.vm_id}"
        if self.ledger.delivered(key):
            return "duplicate"
        self.queue.send_message(messages.encode(new_message(action, vm_event.vm_id, vm_event.event_id,
                                                            vm_event.event_time)))
        self.ledger.record_delivery(key)
        log.info("VM %s: replication %s job enqueued (event %s)", vm_event.vm_id, action, vm_event.event_id)
        return "enqueued"

    # --- jobs --------------------------------------------------------------------------------------------
    def handle_message(self, body: bytes) -> str:
        return runner.run(body, kind=KIND, required=("action", "vm_id"), step=self.replicator.handle,
                          queue=self.queue, poison=self.poison, on_done=self._done, on_failed=self._failed,
                          alert=self._poisoned)

    def _record(self, message: dict[str, Any], outcome: str, detail: dict[str, Any]) -> None:
        self.ledger.record(PARTITION, str(message["vm_id"]).lower(), {
            "vmId": str(message["vm_id"]).lower(), "action": str(message.get("action") or ""), "outcome": outcome,
            "detail": json.dumps(detail, sort_keys=True, default=str)[:30000], "eventId": message.get("event_id") or ""})

    def _done(self, message: dict[str, Any], outcome: messages.Done) -> None:
        self._record(message, outcome.result, outcome.detail)
        log.info("VM %s: replication %s %s", message["vm_id"], outcome.result, outcome.detail)
        vm_id = str(message["vm_id"]).lower()
        if outcome.result == "ineligible":
            d = outcome.detail
            self._alert(A.Alert(A.REPLICATION_INELIGIBLE, vm_id, f"ineligible|{d.get('vm_instance')}|{d.get('code')}", {
                "reason": f"{d.get('message')} Recommended action: {d.get('recommended_action')}", "code": d.get("code"), "possible_causes": d.get("possible_causes"),
                "recommended_action": d.get("recommended_action"), "target_region": d.get("target_region"),
                "policy": d.get("vmkeeper_policy")}))
        elif outcome.result in select.MISTAKES:
            reason = str(outcome.detail.get("reason") or outcome.result)
            self._alert(A.Alert(A.REPLICATION_FAILED, vm_id, f"{outcome.result}|{reason}", {
                "reason": reason, "cause": outcome.result, "policy": outcome.detail.get("vmkeeper_policy")}))

    def _failed(self, message: dict[str, Any], reason: str) -> None:
        self._record(message, "failed", {"reason": reason})

    def _poisoned(self, cause: str, job: Any, reason: str) -> None:
        self._alert(A.for_poisoning(cause, job, reason, self.settings.queue, failed_type=A.REPLICATION_FAILED))

    def _alert(self, alert: A.Alert) -> None:
        if self.alerts is not None:
            self.alerts.raise_(alert)

    # --- the sweep ---------------------------------------------------------------------------------------
    def sweep(self, now: datetime) -> dict[str, int]:
        """Queue what the fleet owes Site Recovery; returns counts."""
        from concurrent.futures import ThreadPoolExecutor

        from ..policy.document import load_policy_file

        counts = {"vms": 0, "enable": 0, "disable": 0, "replicated": 0}
        policies = load_policy_file(self.settings.policy_file)
        if not any(p.replication is not None for p in policies.policies.values()):
            return counts
        if not self.settings.subscriptions:
            log.error("replication sweep: VMKEEPER_SUBSCRIPTIONS is not set: no VM is looked at")
            return counts
        replicated, ours, test_vms = self._replicated()
        listed: set[str] = set()
        jobs: list[dict[str, Any]] = []
        event = f"sweep:{format_instant(now)}"
        for row in query_all(self.arm.resource_graph(), list(self.settings.subscriptions), VMS):
            vm_id = str(row["id"]).lower()
            listed.add(vm_id)
            counts["vms"] += 1
            if vm_id in replicated:
                counts["replicated"] += 1
                continue
            choice = select.decide(row.get("tags"), str(row.get("location") or ""), policies, vm_id, test_vms)
            if choice.spec is None and choice.skip not in select.MISTAKES:
                continue
            jobs.append(new_message("enable", vm_id, event, format_instant(now)))
            counts["enable"] += 1
        in_scope = {s.lower() for s in self.settings.subscriptions}
        for vm_id in sorted(v for v in ours - listed if v.split("/")[2] in in_scope):  # the job looks at the VM itself
            jobs.append(new_message("disable", vm_id, event, format_instant(now)))
            counts["disable"] += 1
        with ThreadPoolExecutor(SEND_THREADS) as pool:  # a job each VM, sent side by side: the first start sooner
            list(pool.map(lambda job: self.queue.send_message(messages.encode(job)), jobs))
        log.info("replication sweep: %s", counts)
        return counts

    def _replicated(self) -> tuple[set[str], set[str], dict[str, str]]:
        """The VMs the configured vaults replicate (any item; both VMs of a failed-over or reprotected pair: the
        source and the VM the failover made), those vmkeeper's own items replicate, and the test failover VMs the
        items name (shared/membership.py)."""
        replicated, ours, bodies = set(), set(), []
        for vault_id in sorted({v.lower(): v for v in self.settings.vaults.values()}.values()):
            vault = resource_ids.vault(vault_id)
            for item in self.arm.site_recovery(vault.subscription_id).replication_protected_items.list(
                    vault.resource_group, vault.name):
                bodies.append(item.as_dict())
                details = item.properties.provider_specific_details or {}
                source = str(details.get("fabricObjectId") or "").lower()
                if not source:
                    continue
                replicated.add(source)
                if details.get("recoveryFabricObjectId"):  # the pair's other VM: its item is this one (reprotect)
                    replicated.add(str(details["recoveryFabricObjectId"]).lower())
                if names.is_ours(item.name, source):
                    ours.add(source)
        return replicated, ours, membership.test_failover_vms(bodies)
