"""``vmkeeper jobs --failed``: what failed lately, from what vmkeeper recorded (the alerts outbox: protection jobs,
poisoned messages, drills, replication; the restores table: each failed restore's error, step and resources), each
row with Azure's error code and message apart and what to do about it. Pure but for ``gather``; reads no ARM."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..alerts.errors import split_error

FAILED_ALERTS = {"vmkeeper.protection.failed": "protection", "vmkeeper.job.poisoned": "poisoned",
                 "vmkeeper.drill.failed": "drill", "vmkeeper.drill.kept": "drill_cleanup",
                 "vmkeeper.replication.failed": "replication", "vmkeeper.replication.ineligible": "replication",
                 "vmkeeper.failover.failed": "failover"}
# Azure's error codes an operator can act on, and what to do (else the kind's own advice).
TODO = {"AuthorizationFailed": "grant vmkeeper's identity the role infra/ assigns on that scope; the next slot retries",
        "LinkedAuthorizationFailed": "grant vmkeeper's identity the role infra/ assigns on the linked resource too",
        "OperationNotAllowed": "a quota or limit refused it: raise it (Azure portal, Quotas) or lower the policy's load",
        "QuotaExceeded": "raise the subscription's quota for that region, then retry",
        "ResourceNotFound": "the resource is gone: check the VM or target still exists (vmkeeper status)",
        "ScopeLocked": "a lock forbids the write: remove it or exclude the VM (vmkeeper-policy: none)",
        "InternalOperationError": "Azure failed the operation: retry it; if it repeats, open a support case with "
                                  "the time and resource",
        "Conflict": "another operation holds the resource: retry after it ends"}
KIND_TODO = {"protection": "read the message; the next scheduled slot tries again (vmkeeper plan shows it)",
             "poisoned": "the message went to the poison queue: fix its cause (the message), then resend it from there",
             "restore": "fix the cause, then restore again (vmkeeper restore ...); what it made was undone",
             "drill": "the drill's group is kept for a while to look at: see why, then it is removed",
             "drill_cleanup": "the drill's group was kept: remove it once checked (it is not vmkeeper's to force)",
             "replication": "fix what the message names (tag, policy, Azure's reason); the next pass retries",
             "failover": "read the Site Recovery job; retry the action (vmkeeper failover ...)"}
def alert_row(alert: dict[str, Any]) -> dict[str, Any]:
    data = alert.get("data") or {}
    kind = FAILED_ALERTS[alert["type"]]
    error = data.get("error") if isinstance(data.get("error"), dict) else None
    if error:
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
    else:
        code, message = split_error(str(data.get("reason") or ""))
    job = data.get("type") or ""
    step = str(data.get("step") or (error or {}).get("step") or (data.get("cleanup") if kind == "drill_cleanup" else "")
               or "")
    row = {"time": alert["time"], "kind": f"{kind}:{job}" if job and kind in ("protection", "poisoned") else kind,
           "step": step, "resource": alert.get("subject") or "", "code": code, "message": message,
           "id": data.get("drill") or data.get("restore_id") or data.get("failover_id") or None,
           "group": data.get("group") or None}
    return {**row, "todo": todo(kind, code, row)}


def restore_row(record: Any) -> dict[str, Any]:
    error = record.error or {}
    code, message = str(error.get("code") or ""), str(error.get("message") or "")
    if not code:
        code, message = split_error(message)
    row = {"time": record.updated_at, "kind": f"restore:{(record.request.get('target') or {}).get('type', '')}",
           "step": str(error.get("step") or ""), "resource": str(record.request.get("vm", "")), "code": code,
           "message": message, "id": record.id, "group": None}
    return {**row, "todo": todo("restore", code, row)}


def todo(kind: str, code: str, row: dict[str, Any]) -> str:
    what = TODO.get(code) or KIND_TODO.get(kind, "read the message")
    if kind == "restore" and row.get("id"):
        what += f" (vmkeeper restore show {row['id']})"
    if kind.startswith("drill") and row.get("group"):
        what += f" (group {row['group']})"
    return what


def gather(wiring: Any, now: datetime, days: int) -> list[dict[str, Any]]:
    """Failures of the last ``days``, newest first: one row per failed job, restore or drill (a restore's own alert
    is left for its record, which says more)."""
    from ..instants import format_instant

    since = now - timedelta(days=days)
    reports = wiring.reports
    rows = [alert_row(a) for a in reports.alerts.recent(since, tuple(FAILED_ALERTS))]
    rows += [restore_row(r) for r in reports.records.recent()
             if r.state == "failed" and (r.updated_at or "") >= format_instant(since)]
    return sorted(rows, key=lambda r: r["time"] or "", reverse=True)
