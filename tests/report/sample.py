"""A realistic report, built deterministically: VMs across two subscriptions and three policies in every
state, 30 days of points, some deletions, failures and restores, and eight weeks of weekly DR drills. Shared by the renderer's unit tests and
the browser test."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from shared.instants import format_instant, parse_instant
from shared.report.model import (
    BREACHED,
    COPY,
    INITIAL_REPLICATION,
    MET,
    MISSING,
    NOT_PROTECTED,
    OPTED_OUT,
    REPLICA,
    RESTORE_POINT,
    RESTORE_POINT_COPY,
    SNAPSHOT_COPY,
    SNAPSHOT_SET,
    STATES,
    VAULT,
    DayCount,
    Deletion,
    DrillRow,
    Failure,
    KindStatus,
    LeaseRow,
    ReportData,
    RestoreRow,
    SummaryRow,
    VmRow,
)

GENERATED = "2026-11-28T10:00:00Z"
SUBSCRIPTIONS = ("0b1f6471-1bf0-4dda-aec3-111111111111", "7c9e6679-7425-40de-944b-222222222222")
POLICIES = {  # policy: (kind, RPO hours)
    "gold": ((VAULT, 25), (SNAPSHOT_SET, 25), (RESTORE_POINT, 25), (SNAPSHOT_COPY, 49), (RESTORE_POINT_COPY, 49)),
    "silver": ((VAULT, 25), (SNAPSHOT_SET, 25)),
    "bronze": ((VAULT, 169),),
}
ROLES = ("web", "db", "app", "cache", "batch", "jump")
REGIONS = ("westeurope", "northeurope")
NASTY_NAME = "<script>alert(1)</script>"


def vm_id(sub: str, group: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"


def _vm(i: int, generated: datetime) -> VmRow:
    sub = SUBSCRIPTIONS[i % 2]
    role = ROLES[i % len(ROLES)]
    name = f"{role}-{i:03d}"
    group = f"rg-{role}"
    region = REGIONS[(i // 2) % 2]
    vid = vm_id(sub, group, name)
    pick = i % 10  # 5 met, 2 breached, 2 missing a kind or not protected, 1 opted out in every ten
    if pick == 9:
        return VmRow(vid, name, sub, group, region, None, OPTED_OUT, "vmkeeper-optout tag is 'true'")
    policy = list(POLICIES)[i % 3]
    kinds, worst, reason, missing = [], MET, "every kind within its RPO", ()
    for n, (kind, rpo) in enumerate(POLICIES[policy]):
        age: float | None = round(1.5 + (i * 7 + n * 3) % 20 + (i % 7) / 10, 1)
        state = MET
        if pick in (6, 7) and n == len(POLICIES[policy]) - 1:
            age, state = round(rpo + 5.2 + i % 11, 1), BREACHED
            worst, reason = BREACHED, f"newest {kind.replace('_', ' ')} {age} h old, RPO {rpo} h"
        elif pick == 8 and n == 0:
            age, state, missing = None, MISSING, (kind,)
            worst = MISSING if len(POLICIES[policy]) > 1 else NOT_PROTECTED
            reason = f"no complete {kind.replace('_', ' ')}"
        newest = format_instant(generated - timedelta(hours=age)) if age is not None else None
        point = f"{kind}:{name}:{n}" if age is not None else None
        kinds.append(KindStatus(kind, state, float(rpo), newest, age, point))
    if policy == "gold" and pick != 8:  # gold VMs are replicated by Site Recovery too
        kinds.append(replica(i, pick, generated))
    return VmRow(vid, name, sub, group, region, policy, worst, reason, tuple(kinds), missing)


def replica(i: int, pick: int, generated: datetime) -> KindStatus:
    """A gold VM's Site Recovery replica: unhealthy on a breached VM, else copying (every fourth) or met."""
    item = f"/subscriptions/{SUBSCRIPTIONS[0]}/resourceGroups/rg-dr/providers/Microsoft.RecoveryServices/vaults/" \
           f"vault-dr/replicationFabrics/f/replicationProtectionContainers/c/replicationProtectedItems/vm-{i}"
    detail = {"health": "Normal", "protection_state": "Protected", "rpo_seconds": None, "rpo_calculated": None,
              "progress": None, "errors": [], "target_region": "northeurope", "since": None}
    if pick in (6, 7):
        seconds = 3600 + 300 * (i % 7) + 120
        detail.update(health="Warning", rpo_seconds=seconds, rpo_calculated=format_instant(generated), errors=[{
            "code": "RpoThresholdExceeded", "message": f"The RPO of vm-{i} is {seconds // 60} minutes",
            "recommended_action": "Check the source VM's connectivity to the cache storage account"}])
        return KindStatus(REPLICA, BREACHED, 1.0, format_instant(generated - timedelta(seconds=seconds)),
                          round(seconds / 3600, 4), item, detail)
    if i % 4 == 0:
        detail.update(protection_state="InitialReplicationInProgress", progress=10 + i % 80,
                      since=format_instant(generated - timedelta(hours=1)))
        return KindStatus(REPLICA, INITIAL_REPLICATION, 1.0, None, None, item, detail)
    seconds = 60 + 37 * (i % 9)
    detail.update(rpo_seconds=seconds, rpo_calculated=format_instant(generated))
    return KindStatus(REPLICA, MET, 1.0, format_instant(generated - timedelta(seconds=seconds)),
                      round(seconds / 3600, 4), item, detail)


def _summary(vms: list[VmRow]) -> tuple[SummaryRow, ...]:
    counts: dict[tuple[str, str], Counter] = {}
    for v in vms:
        counts.setdefault((v.subscription, v.policy or "(none)"), Counter())[v.state] += 1
    return tuple(
        SummaryRow(sub, pol, **{s: c[s] for s in STATES}) for (sub, pol), c in sorted(counts.items())
    )


def points(generated: datetime, days: int = 30) -> tuple[DayCount, ...]:
    out = []
    for d in range(days):
        day = (generated.date() - timedelta(days=days - 1 - d)).isoformat()
        for kind, count in (
            (VAULT, 18 + d % 4),
            (SNAPSHOT_SET, 10 + d % 5),
            (RESTORE_POINT, 6 + d % 3),
            (SNAPSHOT_COPY, 4 if d % 3 else 0),  # no copy every third day: a day without a kind
            (RESTORE_POINT_COPY, 2 if d % 3 else 0),
        ):
            if count:
                out.append(DayCount(day, kind, count))
    return tuple(out)


DRILL_WEEKS = 8
DRILLED = 12  # VMs with drills (gold and silver: bronze keeps only vault points, which drills don't use)
FAILED_REASONS = (
    "VM agent not Ready within 30 minutes",
    "OperationNotAllowed: quota of Standard_D4s_v5 cores exceeded in northeurope",
    "no complete copy in northeurope",
)


def drills(vms: list[VmRow], now: datetime) -> tuple[DrillRow, ...]:
    """Weekly drills over DRILL_WEEKS weeks for the first DRILLED gold and silver VMs, spread over the week;
    about one in eleven fails (kept five days, then removed), the newest of the first VM is still running;
    plus a VM drilled twice and deleted since (not in the VM table). Newest first, as the model says."""
    rows = []
    drilled = [v for v in vms if v.policy in ("gold", "silver")][:DRILLED]
    for j, vm in enumerate(drilled):
        kind = (COPY, RESTORE_POINT)[j % 2] if vm.policy == "gold" else SNAPSHOT_SET
        for w in range(DRILL_WEEKS):
            started = now - timedelta(days=7 * w + 0.45 * j, hours=2 + j % 5)
            age = now - started
            # each VM its own usual RTO (4–12 min, bigger disks take longer), a week's jitter, a slow week now and then
            rto = 240 + (j * 97) % 480 + ((j * 31 + w * 17) % 13 - 6) * 15 + (420 if (j + 2 * w) % 9 == 4 else 0) + w / 10
            rpo = (0.5 + (j * 5 + w * 7) % 26 + w / 10) * 3600
            cleanup = "removed" if age > timedelta(days=1) else "removing"
            result, reason = "passed", ""
            if j == 0 and w == 0:
                started = now - timedelta(minutes=12)
                result, rto, cleanup = "running", None, ""
            elif (j * 3 + w) % 11 == 5:
                result, rto, reason = "failed", None, FAILED_REASONS[(j + w) % len(FAILED_REASONS)]
                cleanup = "kept" if age < timedelta(hours=120) else "removed"  # the policy keeps failed for 120 h
            if vm.name == NASTY_NAME and w == 1:
                result, rto, reason = "failed", None, 'agent said <b>"no"</b> & gave up'
            rows.append(DrillRow(f"d-{vm.name}-{w}", vm.vm_id, format_instant(started), result, rto, rpo, kind,
                                 cleanup, reason))
    gone = vm_id(SUBSCRIPTIONS[1], "rg-old", "legacy-erp")
    for w in (6, 7):
        rows.append(DrillRow(f"d-legacy-erp-{w}", gone, format_instant(now - timedelta(days=7 * w + 3)), "passed",
                             1500.0 + 60 * w, 20.5 * 3600, SNAPSHOT_SET, "removed"))
    return tuple(sorted(rows, key=lambda d: d.started, reverse=True))


def sample_report(vm_count: int = 40, generated: str = GENERATED, nasty: bool = True) -> ReportData:
    """``vm_count`` VMs (the first named like a script when ``nasty``), and the rest of a busy month."""
    now = parse_instant(generated)
    assert now is not None
    vms = [_vm(i, now) for i in range(vm_count)]
    if nasty and vms:
        v = vms[0]
        vms[0] = VmRow(vm_id(v.subscription, v.resource_group, "evil"), NASTY_NAME, v.subscription,
                       v.resource_group, v.region, v.policy, v.state, 'reason with "quotes" & <b>tags</b>', v.kinds)

    def at(hours: float) -> str:
        return format_instant(now - timedelta(hours=hours))

    sub = SUBSCRIPTIONS[0]
    deletions = tuple(
        Deletion(
            at(30 + 5 * i),
            f"/subscriptions/{sub}/resourceGroups/rg-web/providers/Microsoft.Compute/snapshots/vmkeeper-web-{i:03d}-os",
            vm_id(sub, "rg-web", f"web-{i:03d}"),
            ("daily", "keep_last", "max_age", "orphan")[i % 4],
            f"older than the rule allows (point {i})",
        )
        for i in range(6)
    )
    failures = (  # the same snapshot failing three times: one row, count 3
        Failure(at(3), "vmkeeper.protection.failed", vm_id(sub, "rg-db", "db-001"),
                "OperationNotAllowed: disk is locked", "snapshot_set", "create", "OperationNotAllowed"),
        Failure(at(20), "vmkeeper.job.poisoned", vm_id(SUBSCRIPTIONS[1], "rg-app", "app-002"), "throttled 5 times",
                "restore_point"),
        Failure(at(9), "vmkeeper.protection.failed", vm_id(sub, "rg-db", "db-001"),
                "OperationNotAllowed: disk is locked", "snapshot_set", "create", "OperationNotAllowed"),
        Failure(at(15), "vmkeeper.protection.failed", vm_id(sub, "rg-db", "db-001"),
                "OperationNotAllowed: disk is locked", "snapshot_set", "create", "OperationNotAllowed"),
    )
    restores = (
        RestoreRow("r-0001", vm_id(sub, "rg-web", "web-000"), "disks", "Succeeded", at(48), at(47.5), "ops@contoso.com"),
        RestoreRow("r-0002", vm_id(sub, "rg-db", "db-001"), "vm", "Running", at(1), None, "oncall@contoso.com"),
        RestoreRow("r-0003", vm_id(SUBSCRIPTIONS[1], "rg-app", "app-002"), "vm", "Failed", at(26), at(25), "ops@contoso.com"),
    )
    helper = vm_id(sub, "rg-ops", "ops-jump-01")
    point = f"{vm_id(sub, 'rg-db', 'db-001')}/restorePointCollections/rpc-db-001/restorePoints/rp-20261127"
    disks = f"/subscriptions/{sub}/resourceGroups/rg-ops/providers/Microsoft.Compute/disks"
    leases = (
        LeaseRow("r-0004", vm_id(sub, "rg-db", "db-001"), point, "files", helper,
                 (f"{disks}/db-001-lun1-rr0004", f"{disks}/db-001-os-rr0004"),
                 ("LUN 1: LUN 1 (db-001-data1)", "LUN 2: OS disk (db-001-osdisk)"), at(-6), "ready", "ops@contoso.com"),
        LeaseRow("r-0005", vm_id(sub, "rg-web", "web-000"), "snapshot-set:0123456789abcdef:westeurope", "export", None,
                 (f"/subscriptions/{sub}/resourceGroups/rg-restore/providers/Microsoft.Compute/disks/web-000-lun0-rr0005",),
                 (), at(0.25), "ready", "oncall@contoso.com"),  # its expiry passed 15 min ago: overdue
        LeaseRow("r-0006", vm_id(sub, "rg-web", "web-000"), "snapshot-set:0123456789abcdef:westeurope", "files", helper,
                 (f"{disks}/web-000-lun0-rr0006",), ("LUN 3: LUN 0 (web-000-data0)",), at(1), "ending", "ops@contoso.com"),
    )
    return ReportData(
        generated=generated,
        evaluated=at(0.5),
        summary=_summary(vms),
        vms=tuple(vms),
        points_per_day=points(now),
        deletions=deletions,
        failures=failures,
        restores=restores,
        leases=leases,
        drills=drills(vms, now),
        notes=("alerts table: not readable (AuthorizationPermissionMismatch)",),
        cost=cost(vms, now),
    )


def cost(vms: list, now: datetime) -> dict:
    """The cost run's record (shared/cost/service.py recorded()): each VM a week of daily cost, per policy too."""
    days = [(now - timedelta(days=d)).strftime("%Y-%m-%d") for d in range(7, -1, -1)]

    def row(name: str, policy: str, per_day: float) -> dict:
        daily = {d: round(per_day * (1 + i / 10), 4) for i, d in enumerate(days)}
        return {"name": name, "subscription": "", "policy": policy, "month": now.strftime("%Y-%m"),
                "month_to_date": round(sum(daily.values()), 4), "last_30_days": round(sum(daily.values()), 4),
                "estimate": round(per_day / 3, 4), "currency": "USD", "daily": daily, "at": now.strftime("%Y-%m-%dT%H:%M:%SZ")}

    rows = [row(v.vm_id.lower(), v.policy or "(none)", 0.4 + (i % 97) / 20) for i, v in enumerate(vms)]  # every VM: the page caps
    policies: dict[str, dict] = {}
    for r in rows:
        p = policies.setdefault(r["policy"], {**r, "name": r["policy"], "month_to_date": 0.0, "last_30_days": 0.0,
                                              "estimate": 0.0, "daily": {}})
        for k in ("month_to_date", "last_30_days", "estimate"):
            p[k] += r[k]
        for d, v in r["daily"].items():
            p["daily"][d] = p["daily"].get(d, 0.0) + v
    return {"at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "period": [days[0], days[-1]], "data_lag_hours": 24,
            "run": {"queried": ["s"], "deferred": {}, "kept": [], "failed": {}, "unpriced": [], "alerts": 0},
            "vms": rows, "policies": list(policies.values())}
