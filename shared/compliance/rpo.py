"""RPO compliance of one VM, pure: what its policy expects (which kinds of point, each with an RPO)
and whether the newest complete point of each kind is young enough.

- A kind is expected when the policy makes it: ``vault`` (the policy names a ``backup_policy``),
  ``snapshot_set`` (``snapshots``), ``restore_point`` (``restore_point``) and ``copy`` (``copy``: a
  complete snapshot set or restore point in the policy's second region).
- The RPO is the policy's ``rpo_hours``, or else the longest gap between two of its slots (a daily
  slot in a zone with daylight saving is 25 h apart once a year) plus ``GRACE`` for the run to finish;
  a vault point is held to a day plus grace (Azure Backup's standard policies run at most daily;
  vmkeeper does not read the Backup policy's own schedule), unless ``rpo_hours`` says otherwise.
- Only complete points count: a snapshot set with a member missing, failed or still copying, a restore
  point not Succeeded or not fully replicated, says nothing about recoverability.
- States: ``met`` (newest complete point no older than the RPO), ``breached`` (older), ``not_protected``
  (no complete point of that kind, or no policy applies at all), ``opted_out``. A VM's state is its
  worst kind's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..policy.document import Policy, Resolution
from ..report.model import (
    BREACHED,
    COPY,
    MET,
    NOT_PROTECTED,
    OPTED_OUT,
    RESTORE_POINT,
    SNAPSHOT_SET,
    STATES,
    VAULT,
    KindStatus,
)
from ..restore import catalogue
from ..restore.catalogue import RecoveryPoint

GRACE = timedelta(hours=1)  # a slot's jobs are spread over it and a snapshot takes a while to complete
VAULT_INTERVAL = timedelta(hours=24)
LONGEST_GAP = {"daily": timedelta(hours=25), "weekly": timedelta(hours=169)}  # a DST change lengthens one gap


@dataclass(frozen=True)
class Expectation:
    kind: str
    rpo: timedelta


@dataclass(frozen=True)
class Compliance:
    state: str
    reason: str
    kinds: tuple[KindStatus, ...] = ()


def expectations(policy: Policy) -> list[Expectation]:
    """The kinds of point ``policy`` makes, each with its RPO."""
    s = policy.schedule
    gap = timedelta(hours=s.every_hours or 0) if s.kind == "hourly" else LONGEST_GAP[s.kind]
    override = timedelta(hours=policy.rpo_hours) if policy.rpo_hours else None
    scheduled = override or gap + GRACE
    out = []
    if policy.backup_policy:
        out.append(Expectation(VAULT, override or VAULT_INTERVAL + GRACE))
    if policy.snapshots:
        out.append(Expectation(SNAPSHOT_SET, scheduled))
    if policy.restore_point:
        out.append(Expectation(RESTORE_POINT, scheduled))
    if policy.copy and (policy.snapshots or policy.restore_point):
        out.append(Expectation(COPY, scheduled))
    return out


def kind_of(point: RecoveryPoint) -> str:
    if point.kind == catalogue.VAULT:
        return VAULT
    return COPY if point.copy else (SNAPSHOT_SET if point.kind == catalogue.SNAPSHOT_SET else RESTORE_POINT)


def newest_complete(points: Iterable[RecoveryPoint], kind: str, copy_region: str | None = None) -> RecoveryPoint | None:
    """The newest complete point of ``kind`` (a copy counts only in the policy's second region)."""
    best = None
    for p in points:
        if not p.complete or kind_of(p) != kind or (kind == COPY and copy_region and p.region != copy_region):
            continue
        if best is None or p.time > best.time:
            best = p
    return best


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _words(kind: str) -> str:
    return {VAULT: "vault recovery point", SNAPSHOT_SET: "snapshot set", RESTORE_POINT: "restore point",
            COPY: "second-region copy"}[kind]


def evaluate(resolution: Resolution, points: Iterable[RecoveryPoint], now: datetime) -> Compliance:
    """One VM's compliance at ``now``, from its policy resolution and its recovery points."""
    if resolution.opted_out:
        return Compliance(OPTED_OUT, resolution.reason)
    if resolution.policy is None:
        return Compliance(NOT_PROTECTED, resolution.error or resolution.reason)
    policy = resolution.policy
    points = list(points)
    statuses, worst = [], []
    for exp in expectations(policy):
        point = newest_complete(points, exp.kind, policy.copy_region)
        rpo_h = _hours(exp.rpo)
        if point is None:
            statuses.append(KindStatus(exp.kind, NOT_PROTECTED, rpo_h))
            worst.append((NOT_PROTECTED, f"no complete {_words(exp.kind)}"))
            continue
        age = max(now - point.time, timedelta(0))  # a clock a little behind Azure's is no breach
        state = MET if age <= exp.rpo else BREACHED
        statuses.append(KindStatus(exp.kind, state, rpo_h, point.time.strftime("%Y-%m-%dT%H:%M:%SZ"), _hours(age),
                                   point.id))
        if state == BREACHED:
            worst.append((BREACHED, f"newest {_words(exp.kind)} {_hours(age)} h old, RPO {rpo_h:g} h"))
    if not statuses:
        return Compliance(NOT_PROTECTED, f"policy '{policy.name}' makes no recovery points")
    if not worst:
        return Compliance(MET, f"every kind within RPO (policy '{policy.name}')", tuple(statuses))
    state = min((s for s, _ in worst), key=STATES.index)
    return Compliance(state, "; ".join(reason for _, reason in worst), tuple(statuses))
