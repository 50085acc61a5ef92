"""RPO compliance across the fleet: read (compliance/reads.py), judge each VM (compliance/rpo.py),
raise an alert for each change (a breach begins, a breach ends), then record the rows the report
and the CLI read. Evaluating alone writes nothing (the CLI's ``status``)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..alerts import events as A
from ..azure.ledger import Ledger
from ..instants import format_instant, parse_instant
from ..ports import Arm
from ..report.model import BREACHED, MET, STATES, DayCount, KindStatus, SummaryRow, VmRow
from ..restore import catalogue
from ..settings import ComplianceSettings
from . import rpo
from .reads import FleetPoints, read_fleet

log = logging.getLogger("vmkeeper.compliance")
ROWS = "compliance"  # ledger partition: one row per VM, from the latest evaluation
RUNS = "compliance-run"  # ledger partition: the latest evaluation's summary
LATEST = "latest"
DAYS = 30


@dataclass
class Evaluation:
    at: datetime
    vms: list[VmRow] = field(default_factory=list)
    points_per_day: list[DayCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[SummaryRow]:
        return summarize(self.vms)

    def counts(self) -> dict[str, int]:
        c = Counter(v.state for v in self.vms)
        return {s: c.get(s, 0) for s in STATES}


def summarize(vms: list[VmRow]) -> list[SummaryRow]:
    groups: dict[tuple[str, str], Counter] = {}
    for v in vms:
        groups.setdefault((v.subscription, v.policy or "(none)"), Counter())[v.state] += 1
    return [SummaryRow(sub, pol, **{s: c.get(s, 0) for s in STATES}) for (sub, pol), c in sorted(groups.items())]


def judge(fleet: FleetPoints, policies: Any, now: datetime) -> Evaluation:
    """Pure: every VM of the inventory judged against its policy, and the points per day."""
    out = Evaluation(now, notes=list(fleet.problems))
    for row in fleet.vms:
        vm_id = str(row["id"])
        resolution = policies.for_vm(row.get("tags"))
        result = rpo.evaluate(resolution, fleet.points.get(vm_id.lower(), []), now)
        out.vms.append(VmRow(vm_id, str(row.get("name") or vm_id.rsplit("/", 1)[-1]),
                             str(row.get("subscriptionId") or "").lower(), str(row.get("resourceGroup") or ""),
                             str(row.get("location") or "").replace(" ", "").lower(),
                             resolution.policy.name if resolution.policy else None, result.state, result.reason,
                             result.kinds))
    out.vms.sort(key=lambda v: (STATES.index(v.state), v.vm_id.lower()))
    first = (now - timedelta(days=DAYS - 1)).date()
    days: Counter = Counter()
    for points in fleet.points.values():
        for p in points:
            if p.complete and p.kind != catalogue.VAULT and p.time.date() >= first:
                days[(p.time.date().isoformat(), rpo.kind_of(p))] += 1
    out.points_per_day = [DayCount(day, kind, n) for (day, kind), n in sorted(days.items())]
    if any(p.kind == catalogue.VAULT for ps in fleet.points.values() for p in ps):
        out.notes.append("Points per day count vmkeeper's snapshot sets, restore points and copies; "
                         "Azure Backup's recovery points are counted in their vaults.")
    return out


def changes(previous: dict[str, str], vms: list[VmRow]) -> list[A.Alert]:
    """Pure: an alert for each VM whose breach began or ended since the last evaluation. Keyed by the
    newest points a breach is about, so the same breach raised again is the same event."""
    out = []
    for v in vms:
        was = previous.get(v.vm_id.lower())
        key = ",".join(f"{k.kind}:{k.newest or 'none'}" for k in v.kinds)
        data = {"state": v.state, "reason": v.reason, "policy": v.policy,
                "kinds": [asdict(k) for k in v.kinds]}
        if v.state == BREACHED and was != BREACHED:
            out.append(A.Alert(A.RPO_BREACHED, v.vm_id.lower(), key, data))
        elif was == BREACHED and v.state == MET:
            out.append(A.Alert(A.RPO_RESTORED, v.vm_id.lower(), key, data))
    return out


class ComplianceService:
    def __init__(self, settings: ComplianceSettings, arm: Arm, ledger: Ledger, alerts: Any = None):
        self.settings, self.arm, self.ledger, self.alerts = settings, arm, ledger, alerts

    def evaluate(self, now: datetime, progress: Callable[[str], None] = lambda step: None) -> Evaluation:
        """Read and judge the whole fleet; writes nothing."""
        from ..policy.document import load_policy_file

        policies = load_policy_file(self.settings.policy_file)
        fleet = read_fleet(self.arm, list(self.settings.subscriptions), self.settings.vaults, progress)
        return judge(fleet, policies, now)

    def run(self, now: datetime) -> dict[str, int]:
        """Evaluate, alert on each change, then record (alerts first: a crash before the rows are
        written raises the same alerts again, which the outbox drops)."""
        evaluation = self.evaluate(now)
        previous = {r["vmId"]: r["state"] for r in self.ledger.rows(ROWS, select=["vmId", "state"])}
        raised = 0
        if self.alerts is not None:
            for alert in changes(previous, evaluation.vms):
                raised += bool(self.alerts.raise_(alert))
        stamp = format_instant(now)
        self.ledger.record_many(ROWS, [(v.vm_id.lower(), _row(v, stamp)) for v in evaluation.vms])
        self.ledger.record(RUNS, LATEST, {"evaluated": stamp, "counts": json.dumps(evaluation.counts()),
                                          "pointsPerDay": json.dumps([asdict(d) for d in evaluation.points_per_day]),
                                          "notes": json.dumps(evaluation.notes)[:30000]})
        if self.alerts is not None:
            self.alerts.flush()
        counts = {**evaluation.counts(), "alerts": raised}
        log.info("compliance at %s: %s", stamp, counts)
        return counts

    def recorded(self) -> Evaluation | None:
        """The latest recorded evaluation (None: never evaluated)."""
        latest = self.ledger.get(RUNS, LATEST)
        if latest is None:
            return None
        stamp = latest["evaluated"]
        rows = self.ledger.rows(ROWS, f"evaluated eq '{stamp}'")
        vms = sorted((_vm(r) for r in rows), key=lambda v: (STATES.index(v.state), v.vm_id.lower()))
        return Evaluation(parse_instant(stamp), vms, [DayCount(**d) for d in json.loads(latest.get("pointsPerDay") or "[]")],
                          json.loads(latest.get("notes") or "[]"))


def _row(v: VmRow, stamp: str) -> dict[str, Any]:
    return {"vmId": v.vm_id.lower(), "vm": v.vm_id, "name": v.name, "subscription": v.subscription,
            "group": v.resource_group, "region": v.region, "policy": v.policy or "", "state": v.state,
            "reason": v.reason[:8000], "kinds": json.dumps([asdict(k) for k in v.kinds]), "evaluated": stamp}


def _vm(r: dict[str, Any]) -> VmRow:
    return VmRow(r["vm"], r["name"], r["subscription"], r["group"], r["region"], r["policy"] or None, r["state"],
                 r["reason"], tuple(KindStatus(**k) for k in json.loads(r["kinds"])))

