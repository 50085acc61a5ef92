"""The report's data, gathered from what vmkeeper already recorded: the latest compliance evaluation
(ledger), the alerts outbox (retention's deletions, failed and poisoned jobs) and the restores table.
Reads only; nothing here calls Azure Resource Manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..alerts import events as A
from ..instants import format_instant
from ..restore.records import ENDING, READY, TERMINAL
from .failures import from_alert
from .model import Deletion, LeaseRow, ReportData, RestoreRow

WINDOW = timedelta(days=30)
FAILURES = (A.PROTECTION_FAILED, A.JOB_POISONED, A.RESTORE_FAILED, A.DRILL_FAILED, A.DRILL_KEPT,
            A.REPLICATION_INELIGIBLE, A.REPLICATION_FAILED)
MAX_ROWS = 500  # per history section: the page stays light; older ones are in the tables


class Reports:
    def __init__(self, compliance: Any, ledger: Any, alerts: Any, records: Any, drills: Any = None,
                 cost: Any = None):
        self.compliance, self.ledger, self.alerts, self.records = compliance, ledger, alerts, records
        self.drills = drills  # shared/drill/service.py Drills (its history), or None
        self.cost = cost  # () -> shared/cost/service.py CostService, or None

    def _cost(self, notes: list[str]) -> dict[str, Any] | None:
        if self.cost is None:
            return None
        try:
            return self.cost().recorded()
        except Exception as exc:  # noqa: BLE001 (said on the page; the rest of the report stands)
            notes.append(f"cost: the cost run's rows not readable ({type(exc).__name__})")
            return None

    def data(self, now: datetime | None = None) -> ReportData:
        now = now or datetime.now(UTC)
        since = now - WINDOW
        evaluation = self.compliance.recorded()
        notes = list(evaluation.notes) if evaluation else ["Compliance has not been evaluated yet."]
        notes += [f"Excluded, not a fleet member: {e.name} ({e.resource_group}): {e.reason}"  # not judged, not hidden
                  for e in (evaluation.excluded if evaluation else [])]
        alerts = self.alerts.recent(since)
        deletions = [Deletion(a["time"], item.get("id", ""), a["subject"], item.get("rule", ""), item.get("reason", ""))
                     for a in alerts if a["type"] == A.RETENTION_DELETED for item in a["data"].get("deleted") or []]
        deletions = merged(deletions, self._ledger_deletions(since, notes))
        failures = [from_alert(a) for a in alerts if a["type"] in FAILURES]
        records = self.records.recent()
        leases = sorted((lease_row(r) for r in records if r.state in (READY, ENDING)), key=lambda x: (x.expires_at, x.id))
        restores = [RestoreRow(r.id, str(r.request.get("vm", "")), str((r.request.get("target") or {}).get("type", "")),
                               r.state, r.created_at, r.updated_at if r.state in TERMINAL else None, r.principal) for r in records[:MAX_ROWS]]
        return ReportData(
            generated=format_instant(now),
            evaluated=format_instant(evaluation.at) if evaluation else None,
            summary=tuple(evaluation.summary()) if evaluation else (),
            vms=tuple(evaluation.vms) if evaluation else (),
            points_per_day=tuple(evaluation.points_per_day) if evaluation else (),
            deletions=tuple(deletions[:MAX_ROWS]), failures=tuple(failures[:MAX_ROWS]), restores=tuple(restores),
            leases=tuple(leases),
            drills=tuple(self.drills.history()[:MAX_ROWS]) if self.drills is not None else (),
            cost=self._cost(notes), notes=tuple(notes),  # cost first: its note too
            vaults=tuple(evaluation.vaults) if evaluation else ())

    def _ledger_deletions(self, since: datetime, notes: list[str]) -> list[Deletion]:
        """What retention deleted, from its runs' rows in the ledger (shared/retention/service.py records each
        delete there too): the page says every deletion even when its alert was lost."""
        try:
            rows = self.ledger.rows_between("run-" + since.strftime("%Y%m%dT%H%M%S"), "run.", "outcome eq 'deleted'")
        except Exception as exc:  # noqa: BLE001 (said on the page; the alerts' deletions still show)
            notes.append(f"ledger: retention's deletions not readable ({type(exc).__name__})")
            return []
        return [Deletion(str(r.get("deletedAt") or r.get("updated") or ""), str(r.get("item", "")),
                         str(r.get("vmId", "")), str(r.get("rule", "")), str(r.get("reason", ""))) for r in rows]

    def html(self, now: datetime | None = None) -> str:
        from .render import render

        return render(self.data(now))


def merged(alerted: list[Deletion], recorded: list[Deletion]) -> list[Deletion]:
    """Deletions said by alerts and by the ledger, each resource once (the alert's row when both say it), newest
    first."""
    seen = {d.resource_id.lower() for d in alerted}
    out = alerted + [d for d in recorded if d.resource_id.lower() not in seen]
    return sorted(out, key=lambda d: (d.time, d.resource_id), reverse=True)


def lease_row(record: Any) -> LeaseRow:
    """A ready or ending file recovery or export, from its record (its plan says what was made, where and until when)."""
    plan = record.plan or {}
    carries = plan.get("carries") or _carries(plan)
    files = plan.get("target_type") == "files"
    luns = tuple(f"LUN {c.get('lun')}: " + ("OS disk" if c.get("source_lun") is None else f"LUN {c['source_lun']}")
                 + (f" ({c['source_disk']})" if c.get("source_disk") else "") for c in carries) if files else ()
    return LeaseRow(record.id, str(record.request.get("vm", "")), str(record.request.get("recovery_point", "")),
                    str(plan.get("target_type", "")), ((plan.get("vm") or {}).get("id") or None) if files else None,
                    tuple(str(c.get("disk_id", "")) for c in carries), luns,
                    str((plan.get("lease") or {}).get("expires_at") or ""), record.state, record.principal)


def _carries(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan saved without ``carries``: from its disks (shared/restore/plan.py Plan.carries)."""
    return [{"lun": d.get("attach_lun"), "disk_id": d.get("id"), "source_disk": d.get("source_name"),
             "source_lun": d.get("lun")} for d in plan.get("disks") or []]
