"""RPO compliance across the fleet: read (the inventory: shared/points/inventory.py), judge each VM (compliance/rpo.py),
raise an alert for each change (a breach begins or ends; a kind of point goes missing, or nothing is
missing any more), then record the rows the report and the CLI read. Evaluating alone writes nothing
(the CLI's ``status``)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..alerts import events as A
from ..azure.guards import VaultPosture, vault_posture
from ..azure.ledger import Ledger
from ..instants import format_instant, parse_instant
from ..points.inventory import Inventory
from ..points.model import VAULT, FleetPoints, of_instance
from ..ports import Arm
from ..settings import ComplianceSettings
from . import replica, rpo
from .model import (
    BREACHED,
    COPY,
    INITIAL_REPLICATION,
    KINDS,
    MET,
    MISSING,
    NOT_PROTECTED,
    NOT_SUPPORTED,
    OPTED_OUT,
    REPLICA,
    RESTORE_POINT_COPY,
    SNAPSHOT_COPY,
    STATES,
    DayCount,
    ExcludedVm,
    KindStatus,
    SummaryRow,
    VmRow,
)

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
    excluded: list[ExcludedVm] = field(default_factory=list)  # no fleet members: not judged, not counted
    vaults: list[VaultPosture] = field(default_factory=list)  # each vault's protection posture (docs/protected-vaults.md)

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


def judge(fleet: FleetPoints, policies: Any, now: datetime,
          initial: Mapping[str, tuple[str, datetime]] | None = None) -> Evaluation:
    """Pure: every VM of the inventory judged against its policy, and the points per day. ``initial``: each VM's
    replica in initial replication at the last evaluation, and since when (``replica.initial_since``)."""
    out = Evaluation(now, notes=list(fleet.problems))
    out.excluded = sorted((ExcludedVm(str(row["id"]), str(row.get("name") or str(row["id"]).rsplit("/", 1)[-1]),
                                      str(row.get("resourceGroup") or ""),
                                      str(row.get("location") or "").replace(" ", "").lower(), why)
                           for row, why in fleet.excluded), key=lambda e: e.vm_id.lower())
    for row in fleet.vms:
        vm_id = str(row["id"])
        resolution = policies.for_vm(row.get("tags"))
        # Only the points of the VM as it is now (a VM created again under its name is another instance).
        points = of_instance(fleet.points.get(vm_id.lower(), []), row.get("vmId"))
        result = rpo.evaluate(resolution, points, now, _replica_judge(fleet, row, now, initial or {}))
        out.vms.append(VmRow(vm_id, str(row.get("name") or vm_id.rsplit("/", 1)[-1]),
                             str(row.get("subscriptionId") or "").lower(), str(row.get("resourceGroup") or ""),
                             str(row.get("location") or "").replace(" ", "").lower(),
                             resolution.policy.name if resolution.policy else None, result.state, result.reason,
                             result.kinds, result.missing, result.not_immutable))
    for row in fleet.unsupported:
        out.vms.append(unsupported(row, policies.for_vm(row.get("tags"))))
    out.vms.sort(key=lambda v: (STATES.index(v.state), v.vm_id.lower()))
    first = (now - timedelta(days=DAYS - 1)).date()
    days: Counter = Counter()
    for points in fleet.points.values():
        for p in points:
            if p.complete and p.kind != VAULT and p.time.date() >= first:
                days[(p.time.date().isoformat(), rpo.kind_of(p))] += 1
    out.points_per_day = [DayCount(day, kind, n) for (day, kind), n in sorted(days.items())]
    if any(p.kind == VAULT for ps in fleet.points.values() for p in ps):
        out.notes.append("Points per day count vmkeeper's snapshot sets, restore points and copies; "
                         "Azure Backup's recovery points are counted in their vaults.")
    return out


def _replica_judge(fleet: FleetPoints, row: Mapping[str, Any], now: datetime,
                   initial: Mapping[str, tuple[str, datetime]]) -> Callable[[Any], replica.Judgement | None]:
    """How one VM's replica is judged once its policy is known: its item (of its current instance), whether it
    must have one, and since when an initial replication was seen."""
    vm = str(row["id"]).lower()
    item, absent = replica.of_instance(fleet.replicas.get(vm, []), row.get("osDisk"), vm)
    seen = initial.get(vm)
    since = seen[1] if seen and item is not None and seen[0] == item.id.lower() else None
    region = str(row.get("location") or "").replace(" ", "").lower()
    # The other VM of a failed-over pair (the source; after a reprotect, the failback target) expects no replica of
    # its own: the pair's item is judged on the VM production runs on.
    standby = item is None and bool(fleet.standby.get(vm))
    return lambda policy: replica.judge(item, not standby and replica.expected(row.get("tags"), policy, region),
                                        replica.rpo_target(policy), now, since=since, absent=absent)


def unsupported(row: Mapping[str, Any], resolution: Any) -> VmRow:
    """A machine no kind of point covers (a Uniform scale set's instance): ``not_supported``, saying why and what
    to do, unless its set (or itself) is opted out."""
    vm_id = str(row["id"])
    set_name = str(row.get("scaleSet") or vm_id.rsplit("/virtualMachines/", 1)[0]).rsplit("/", 1)[-1]
    if resolution.opted_out:
        state, reason = OPTED_OUT, resolution.reason
    else:
        state = NOT_SUPPORTED
        reason = (f"an instance of the Uniform scale set '{set_name}': Azure Backup and VM restore points do not cover "
                  "Uniform scale set instances, so vmkeeper makes no point of it; keep what matters in the set's model "
                  "and its data elsewhere, move the workload to a Flexible scale set (its VMs are protected like any "
                  "VM), or opt the set out (tag 'vmkeeper-optout' on the set) to accept the gap")
    return VmRow(vm_id, str(row.get("name") or vm_id.rsplit("/", 1)[-1]), str(row.get("subscriptionId") or "").lower(),
                 str(row.get("resourceGroup") or ""), str(row.get("location") or "").replace(" ", "").lower(),
                 resolution.policy.name if resolution.policy else None, state, reason)


NO_POLICY = "policy"  # what a VM with no policy lacks (a bad tag, no default): no kind can be named


def gaps(state: str, kinds: Any) -> frozenset[str]:
    """What a VM vmkeeper should protect lacks: its missing kinds, ``policy`` when none applies, or ``not_supported``
    for a machine no kind of point covers."""
    if state == NOT_SUPPORTED:
        return frozenset({NOT_SUPPORTED})
    missing = frozenset(k.kind for k in kinds if k.state == MISSING)
    return missing or (frozenset({NO_POLICY}) if state == NOT_PROTECTED else frozenset())


def _replica_of(kinds: Any) -> KindStatus | None:
    return next((k for k in kinds if k.kind == REPLICA), None)


def changes(previous: Mapping[str, Mapping[str, Any]], vms: list[VmRow]) -> list[A.Alert]:
    """Pure: an alert for each change since the last evaluation (``previous``: its ledger rows by VM id,
    lower case). A kind its policy makes immutable lacks its immutabilityPolicy (``VmRow.not_immutable``) where it did
    not before: ``immutability.missing``; it lacks none any more: ``immutability.resolved``. A breach begins (a kind of point breached, none before) or ends (every kind breached before
    is met): ``rpo.breached`` / ``rpo.restored``, keyed by the newest points it is about. A kind goes
    missing (or the VM has no policy) that was not before: ``protection.missing``; nothing is missing
    any more: ``protection.resolved``; keyed by what is missing and the last evaluation before it, so
    the same change raised again (a crash before the rows were written) is the same event, and the
    same kind missing again later is a new one. The replica kind's breach is its own:
    ``replication.unhealthy`` when it begins, ``replication.restored`` when the replica is healthy again (met,
    or a new initial replication), keyed by the item and the last evaluation before it; a missing replica
    is a gap like any kind's."""
    out = []
    for v in vms:
        row = previous.get(v.vm_id.lower())
        was = vm_from_row(row) if row is not None else None
        since = str(row.get("evaluated") or "-") if row is not None else "-"
        points = [k for k in v.kinds if k.kind != REPLICA]  # a replica's newest moves every few minutes
        key = ",".join(f"{k.kind}:{k.newest or 'none'}" for k in points)
        data = {"state": v.state, "reason": v.reason, "policy": v.policy, "missing": list(v.missing),
                "not_immutable": list(v.not_immutable), "kinds": [asdict(k) for k in v.kinds]}
        breached = {k.kind for k in points if k.state == BREACHED}
        was_breached = {k.kind for k in was.kinds if k.state == BREACHED and k.kind != REPLICA} if was else set()
        if breached and not was_breached:
            out.append(A.Alert(A.RPO_BREACHED, v.vm_id.lower(), key, data))
        elif was_breached and not breached and all(k.state == MET for k in points if k.kind in was_breached) \
                and any(k.kind in was_breached for k in points):
            out.append(A.Alert(A.RPO_RESTORED, v.vm_id.lower(), key, data))
        rep, was_rep = _replica_of(v.kinds), _replica_of(was.kinds) if was else None
        unhealthy, was_unhealthy = (x is not None and x.state == BREACHED for x in (rep, was_rep))
        if unhealthy and not was_unhealthy:
            out.append(A.Alert(A.REPLICATION_UNHEALTHY, v.vm_id.lower(), f"{rep.point_id}|after {since}",
                               {**data, "replica": asdict(rep)}))
        elif was_unhealthy and rep is not None and rep.state in (MET, INITIAL_REPLICATION):
            out.append(A.Alert(A.REPLICATION_RESTORED, v.vm_id.lower(), f"{rep.point_id}|after {since}",
                               {**data, "replica": asdict(rep)}))
        # A row recorded before gaps were alerted (no ``missing``) raised none: its gaps are new to subscribers.
        alerted = was is not None and row.get("missing") is not None
        now, before = gaps(v.state, v.kinds), gaps(was.state, was.kinds) if alerted else frozenset()
        if now - before:
            out.append(A.Alert(A.PROTECTION_MISSING, v.vm_id.lower(), f"{','.join(sorted(now))}|after {since}",
                               {**data, "newly_missing": sorted(now - before)}))
        elif before and not now:
            out.append(A.Alert(A.PROTECTION_RESOLVED, v.vm_id.lower(),
                               f"{','.join(sorted(before))}|after {since}|{key}", data))
        # Immutability asked and lacking (rpo.py): said once when it begins, and when it ends.
        lacking, lacked = set(v.not_immutable), set(was.not_immutable) if was is not None else set()
        if lacking - lacked:
            out.append(A.Alert(A.IMMUTABILITY_MISSING, v.vm_id.lower(), f"{','.join(sorted(lacking))}|after {since}",
                               data))
        elif lacked and not lacking:
            out.append(A.Alert(A.IMMUTABILITY_RESOLVED, v.vm_id.lower(),
                               f"{','.join(sorted(lacked))}|after {since}|{key}", data))
    return out


class ComplianceService:
    def __init__(self, settings: ComplianceSettings, arm: Arm, ledger: Ledger, alerts: Any = None,
                 isolated: tuple[str, str] | None = None):
        self.settings, self.arm, self.ledger, self.alerts = settings, arm, ledger, alerts
        self.isolated = isolated  # the backup subscription and group of isolated copies, read with ``arm``

    def evaluate(self, now: datetime, progress: Callable[[str], None] = lambda step: None,
                 previous: Mapping[str, Mapping[str, Any]] | None = None) -> Evaluation:
        """Read and judge the whole fleet; writes nothing. ``previous``: the last evaluation's rows (read here
        when not given: they carry since when each replica has been in initial replication)."""
        from ..policy.document import load_policy_file

        policies = load_policy_file(self.settings.policy_file)
        if previous is None:
            previous = self.previous()
        fleet = Inventory(self.arm, self.settings.vaults, self.isolated).fleet(list(self.settings.subscriptions), progress)
        evaluation = judge(fleet, policies, now, replica.initial_since(previous))
        evaluation.vaults = [vault_posture(self.arm, v) for v in sorted({v.lower(): v for v in self.settings.vaults.values()}.values())]
        evaluation.notes += [f"vault {p.vault_id}: protection settings not read ({p.error})" for p in evaluation.vaults if p.error]
        return evaluation

    def previous(self) -> dict[str, dict[str, Any]]:
        """The last evaluation's rows by VM id (lower case); none before the first (no table is made to say so)."""
        return {r["vmId"]: r for r in self.ledger.existing_rows(ROWS, select=list(PREVIOUS))}

    def run(self, now: datetime) -> dict[str, int]:
        """Evaluate, alert on each change, then record (alerts first: a crash before the rows are
        written raises the same alerts again, which the outbox drops)."""
        previous = self.previous()
        evaluation = self.evaluate(now, previous=previous)
        raised = 0
        if self.alerts is not None:
            for alert in changes(previous, evaluation.vms):
                raised += bool(self.alerts.raise_(alert))
        stamp = format_instant(now)
        self.ledger.record_many(ROWS, [(v.vm_id.lower(), _row(v, stamp)) for v in evaluation.vms])
        self.ledger.record(RUNS, LATEST, {"evaluated": stamp, "counts": json.dumps(evaluation.counts()),
                                          "pointsPerDay": json.dumps([asdict(d) for d in evaluation.points_per_day]),
                                          "notes": json.dumps(evaluation.notes)[:30000],
                                          "excluded": _excluded_json(evaluation.excluded),
                                          "vaults": json.dumps([asdict(p) for p in evaluation.vaults])[:30000]})
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
        vms = sorted((vm_from_row(r) for r in rows), key=lambda v: (STATES.index(v.state), v.vm_id.lower()))
        return Evaluation(parse_instant(stamp), vms, [DayCount(**d) for d in json.loads(latest.get("pointsPerDay") or "[]")],
                          json.loads(latest.get("notes") or "[]"),
                          [ExcludedVm(**e) for e in json.loads(latest.get("excluded") or "[]")],
                          [VaultPosture(**p) for p in json.loads(latest.get("vaults") or "[]")])


def _excluded_json(excluded: list[ExcludedVm], limit: int = 30000) -> str:
    """The excluded VMs as one table property (64 KiB at most): as many as fit, each reason cut at 500 characters."""
    rows: list[dict[str, Any]] = []
    size = 2
    for e in excluded:
        row = dict(asdict(e), reason=e.reason[:500])
        size += len(json.dumps(row)) + 2
        if size > limit:
            break
        rows.append(row)
    return json.dumps(rows)


PREVIOUS = ("vmId", "vm", "name", "subscription", "group", "region", "policy", "state", "reason", "kinds",
            "missing", "notImmutable", "evaluated")  # what ``changes`` reads of the last evaluation's rows


def _row(v: VmRow, stamp: str) -> dict[str, Any]:
    return {"vmId": v.vm_id.lower(), "vm": v.vm_id, "name": v.name, "subscription": v.subscription,
            "group": v.resource_group, "region": v.region, "policy": v.policy or "", "state": v.state,
            "reason": v.reason[:8000], "kinds": json.dumps([asdict(k) for k in v.kinds]),
            "missing": json.dumps(list(v.missing)), "notImmutable": json.dumps(list(v.not_immutable)),
            "evaluated": stamp}


def vm_from_row(r: Mapping[str, Any]) -> VmRow:
    kinds = tuple(_kind(k) for k in json.loads(r.get("kinds") or "[]"))
    missing = tuple(sorted((k.kind for k in kinds if k.state == MISSING and k.kind in KINDS), key=KINDS.index))
    state = r.get("state") or NOT_PROTECTED
    if state == NOT_PROTECTED and missing and len(missing) < len(kinds):
        state = MISSING  # recorded before ``missing`` was a state of its own: some kinds were there
    return VmRow(r.get("vm") or r.get("vmId") or "", r.get("name") or "", r.get("subscription") or "",
                 r.get("group") or "", r.get("region") or "", r.get("policy") or None, state, r.get("reason") or "",
                 kinds, missing, tuple(json.loads(r.get("notImmutable") or "[]")))


def _kind(k: Mapping[str, Any]) -> KindStatus:
    """A recorded kind, older rows' words read as today's: a kind without a point was ``not_protected``,
    and ``copy`` was either kind's copy (its point id tells which, when it has one)."""
    k = {f: k.get(f) for f in ("kind", "state", "rpo_hours", "newest", "age_hours", "point_id", "replication",
                                "immutability_policy")} | {"immutable_points": int(k.get("immutable_points") or 0)}
    if k["state"] == NOT_PROTECTED:
        k["state"] = MISSING
    if k["kind"] == COPY and k["point_id"]:
        k["kind"] = SNAPSHOT_COPY if str(k["point_id"]).startswith("snapshot-set:") else RESTORE_POINT_COPY
    return KindStatus(**k)

