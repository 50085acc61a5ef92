"""The alerts vmkeeper raises, as CloudEvents 1.0 (pure).

Each alert says one change: its ``key`` names the change (a job, a restore, the newest point a breach
is about), so raising the same change twice makes the same event id: the outbox drops the second,
and a subscriber that sees a resend after a crash can tell it by id. The subject is the VM's id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PROTECTION_FAILED = "vmkeeper.protection.failed"  # Azure refused or failed a VM's protection job
JOB_POISONED = "vmkeeper.job.poisoned"  # a message vmkeeper could not process went to the poison queue
# A VM's protected item was found stopped (ProtectionStopped, data retained: someone stopped it outside vmkeeper)
# and vmkeeper resumed it under its policy. Said, because a stop may be an attacker's first move, or an operator
# who should opt the VM out instead (``vmkeeper-optout: true``).
PROTECTION_RESUMED = "vmkeeper.protection.resumed"
RPO_BREACHED = "vmkeeper.rpo.breached"
RPO_RESTORED = "vmkeeper.rpo.restored"
# A VM vmkeeper should protect has no complete point of a kind its policy makes (or no policy applies:
# a bad tag, no default); and its end, nothing missing any more. ``data.missing`` names the kinds.
PROTECTION_MISSING = "vmkeeper.protection.missing"
PROTECTION_RESOLVED = "vmkeeper.protection.resolved"
# A VM's Site Recovery replica turns unhealthy (replicationHealth not Normal, RPO over the policy's target, replicating
# nothing, or an initial replication overdue: shared/compliance/replica.py), and its end. ``data.replica`` says why.
REPLICATION_UNHEALTHY = "vmkeeper.replication.unhealthy"
REPLICATION_RESTORED = "vmkeeper.replication.restored"
# A kind of point a VM's policy makes immutable whose newest point, past its job's bound, lacks the immutabilityPolicy
# the policy asks (none, Unlocked where Locked is asked, too short); and its end. ``data.not_immutable`` names the kinds.
IMMUTABILITY_MISSING = "vmkeeper.immutability.missing"
IMMUTABILITY_RESOLVED = "vmkeeper.immutability.resolved"
RESTORE_SUCCEEDED = "vmkeeper.restore.succeeded"
RESTORE_FAILED = "vmkeeper.restore.failed"
# A file recovery or an export (shared/restore/lease.py): made and ready (``data``: until when, which LUN carries
# what; never a SAS), its expiry passed (it is being undone), and an undo that failed (said once; it is tried again).
RESTORE_FILES_READY = "vmkeeper.restore.files.ready"
RESTORE_FILES_EXPIRED = "vmkeeper.restore.files.expired"
RESTORE_FILES_OVERDUE = "vmkeeper.restore.files.overdue"
RETENTION_DELETED = "vmkeeper.retention.deleted"
DRILL_FAILED = "vmkeeper.drill.failed"  # a DR drill's VM did not come back (its resources are kept for a while)
DRILL_KEPT = "vmkeeper.drill.kept"  # a drill's teardown left its group: held, not the drill's, holding another's, locked
# Site Recovery (shared/replication/): a VM Azure won't replicate (``data`` has Azure's reason and recommended
# action); a VM vmkeeper should replicate and can't (a job that failed, a tag or block that doesn't add up).
REPLICATION_INELIGIBLE = "vmkeeper.replication.ineligible"
REPLICATION_FAILED = "vmkeeper.replication.failed"
# An application's recovery plan cannot be kept in step (a bad vmkeeper-app / vmkeeper-app-group tag, a plan of that
# name vmkeeper did not make, VMs that no one plan can hold): ``data.problem`` says what, ``data.field`` names the tag.
RECOVERY_PLAN_PROBLEM = "vmkeeper.recoveryplan.problem"
FAILOVER_SUCCEEDED = "vmkeeper.failover.succeeded"  # a failover asked through the API ended (shared/failover/)
FAILOVER_FAILED = "vmkeeper.failover.failed"
# A policy's points cost more this month (month-to-date actual + the estimate for points newer than the cost data)
# than its budget (shared/cost/): once per policy and month; ``data`` has the month, the cost and the budget.
COST_OVER_BUDGET = "vmkeeper.cost.over_budget"
TYPES = (COST_OVER_BUDGET, PROTECTION_FAILED, JOB_POISONED, RPO_RESTORED, RPO_BREACHED, PROTECTION_MISSING, PROTECTION_RESOLVED,
         RESTORE_SUCCEEDED, RESTORE_FAILED, RETENTION_DELETED, DRILL_FAILED, DRILL_KEPT, REPLICATION_UNHEALTHY,
         REPLICATION_RESTORED, REPLICATION_INELIGIBLE, REPLICATION_FAILED, RECOVERY_PLAN_PROBLEM, FAILOVER_SUCCEEDED,
         FAILOVER_FAILED, RESTORE_FILES_READY, RESTORE_FILES_EXPIRED, RESTORE_FILES_OVERDUE, PROTECTION_RESUMED,
         IMMUTABILITY_MISSING, IMMUTABILITY_RESOLVED)
MAX_DATA = 32 * 1024  # characters of reason kept: an event stays far below Event Grid's 1 MB (and 64 KB billing unit)


@dataclass(frozen=True)
class Alert:
    type: str
    subject: str  # the VM's resource id (lower case), or what failed when no VM is known
    key: str  # the change this alert is about
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"type: unknown alert type {self.type!r}")

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.type}|{self.subject.lower()}|{self.key}".encode()).hexdigest()[:32]


def cloud_event(alert: Alert, source: str, time: datetime) -> dict[str, Any]:
    """The CloudEvents 1.0 JSON form Event Grid takes (``application/cloudevents-batch+json``)."""
    return {"specversion": "1.0", "id": alert.id, "source": source, "type": alert.type, "subject": alert.subject,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "datacontenttype": "application/json",
            "data": _bounded(alert.data)}


def _bounded(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:MAX_DATA] if isinstance(v, str) else v) for k, v in data.items()}


def subject_of(job: Any, fallback: str) -> str:
    """The VM a job is about (a scheduled job nests it under ``job``), else ``fallback``."""
    if isinstance(job, dict):
        inner = job.get("job") if isinstance(job.get("job"), dict) else job
        vm = inner.get("vm_id")
        if isinstance(vm, str) and vm:
            return vm.lower()
    return fallback


_PER_TRY = ("errors", "last_error", "attempt", "resent", "since", "reads", "writes", "grant")  # a try's state


def for_resumed(vm_id: str, job_event: str, detail: dict[str, Any]) -> Alert:
    """The alert for a stopped protected item vmkeeper resumed. Keyed by the job that resumed it: a redelivery of
    that job is the same change, a later stop and resume another."""
    data = {k: detail[k] for k in ("vault", "item", "policy", "vmkeeper_policy", "vm_instance") if k in detail}
    return Alert(PROTECTION_RESUMED, vm_id.lower(), f"resumed|{job_event}", data)


def for_poisoning(cause: str, original: Any, reason: str, queue: str, failed_type: str = PROTECTION_FAILED) -> Alert:
    """The alert for a job sent to ``queue``'s poison queue: ``failed_type`` when the job's own work
    failed, else ``vmkeeper.job.poisoned``. Keyed by the job and reason: a duplicate delivery poisoned
    again is the same change."""
    import json

    body = original.decode("utf-8", "replace") if isinstance(original, bytes) else original
    if isinstance(body, dict):  # what changes from one try to the next is not the job's identity
        body = {k: v for k, v in body.items() if k not in _PER_TRY}
    # A scheduled job is its ``job`` (VM, kind, slot): a re-sent one that fails the same way again (a copy
    # that ended Failed is not started again) is the same change, whatever its step's own state.
    identity = body["job"] if isinstance(body, dict) and isinstance(body.get("job"), dict) else body
    key = hashlib.sha256(f"{json.dumps(identity, sort_keys=True, default=str)}|{reason}".encode()).hexdigest()
    kind = failed_type if cause == "failed" else JOB_POISONED
    job = body.get("job") if isinstance(body, dict) and isinstance(body.get("job"), dict) else body
    data = {"queue": queue, "reason": reason, "cause": cause}
    if isinstance(job, dict):
        data.update({k: job[k] for k in ("type", "slot", "vm_id", "restore_id", "event_id", "failover_id") if k in job})
    return Alert(kind, subject_of(body, f"queue {queue}"), key, data)
