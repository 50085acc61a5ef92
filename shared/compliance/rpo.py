"""RPO compliance of one VM, pure: what its policy expects (which kinds of point, each with an RPO)
and whether the newest complete point of each kind is young enough.

- A kind is expected when the policy makes it: ``vault`` (the policy names a ``backup_policy``),
  ``snapshot_set`` (``snapshots``), ``restore_point`` (``restore_point``), and with ``copy`` the
  copies of each in the policy's second region: ``snapshot_copy`` and ``restore_point_copy``, each
  judged on its own (a fresh restore point copy says nothing of snapshot set copies failing for days).
- The RPO is the policy's ``rpo_hours``, or else the longest gap between two of its slots (a daily
  slot in a zone with daylight saving is 25 h apart once a year) plus ``GRACE`` for the run to finish;
  a vault point is held to a day plus grace (Azure Backup's standard policies run at most daily;
  vmkeeper does not read the Backup policy's own schedule), unless ``rpo_hours`` says otherwise.
- Only complete points count: a snapshot set with a member missing, failed or still copying, a restore
  point not Succeeded or not fully replicated, says nothing about recoverability.
- A kind's state: ``met`` (newest complete point no older than the RPO), ``breached`` (older),
  ``missing`` (no complete point of that kind). The ``replica`` kind (Site Recovery) is judged apart
  (compliance/replica.py) and joins the others here; its ``initial_replication`` is no gap. A VM's:
  ``breached`` when any kind is; else
  ``not_protected`` when no policy applies (a bad tag, no default) or every kind it expects is missing;
  else ``missing`` when some are (``missing`` names them); else ``met``; or ``opted_out``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..points.model import RecoveryPoint, kind_of
from ..policy.document import Policy, Resolution
from . import isolated
from .model import (
    BREACHED,
    ISOLATED_COPY,
    KINDS,
    MET,
    MISSING,
    NOT_PROTECTED,
    OPTED_OUT,
    REPLICA,
    RESTORE_POINT,
    RESTORE_POINT_COPY,
    SNAPSHOT_COPY,
    SNAPSHOT_SET,
    VAULT,
    KindStatus,
)
from .replica import Judgement

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
    missing: tuple[str, ...] = ()  # the expected kinds with no complete point


COPIES = (SNAPSHOT_COPY, RESTORE_POINT_COPY)


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
    if policy.copy and policy.snapshots:
        out.append(Expectation(SNAPSHOT_COPY, scheduled))
    if policy.copy and policy.restore_point:
        out.append(Expectation(RESTORE_POINT_COPY, scheduled))
    if getattr(policy, "isolated", False) and policy.snapshots:  # judged as its sets (shared/compliance/isolated.py)
        out.append(Expectation(ISOLATED_COPY, scheduled))
    return out


def newest_complete(points: Iterable[RecoveryPoint], kind: str, copy_region: str | None = None) -> RecoveryPoint | None:
    """The newest complete point of ``kind`` (a copy counts only in the policy's second region)."""
    best = None
    for p in points:
        if not p.complete or kind_of(p) != kind or (kind in COPIES and copy_region and p.region != copy_region):
            continue
        if best is None or p.time > best.time:
            best = p
    return best


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _words(kind: str) -> str:
    return {VAULT: "vault recovery point", SNAPSHOT_SET: "snapshot set", RESTORE_POINT: "restore point",
            SNAPSHOT_COPY: "second-region snapshot set copy", RESTORE_POINT_COPY: "second-region restore point copy",
            REPLICA: "Site Recovery replica", ISOLATED_COPY: "isolated copy"}[kind]


def evaluate(resolution: Resolution, points: Iterable[RecoveryPoint], now: datetime,
             replica: Callable[[Policy], Judgement | None] | None = None) -> Compliance:
    """One VM's compliance at ``now``, from its policy resolution and its recovery points; ``replica`` judges
    its Site Recovery replica against the policy (compliance/replica.py), when it has or needs one."""
    if resolution.opted_out:
        return Compliance(OPTED_OUT, resolution.reason)
    if resolution.policy is None:
        return Compliance(NOT_PROTECTED, f"no policy applies: {resolution.error or resolution.reason}")
    policy = resolution.policy
    points = list(points)
    statuses, breaches, missing, said = [], [], [], []
    for exp in expectations(policy):
        if exp.kind == ISOLATED_COPY:
            judged_copy = isolated.judge(points, exp.rpo, now, second_region=bool(policy.copy))
            statuses.append(judged_copy.status)
            if judged_copy.status.state == MISSING:
                missing.append(exp.kind)
                said += [judged_copy.words] if judged_copy.words else []
            elif judged_copy.status.state == BREACHED:
                breaches.append(judged_copy.words)
            continue
        point = newest_complete(points, exp.kind, policy.copy_region)
        rpo_h = _hours(exp.rpo)
        if point is None:
            statuses.append(KindStatus(exp.kind, MISSING, rpo_h))
            missing.append(exp.kind)
            continue
        age = max(now - point.time, timedelta(0))  # a clock a little behind Azure's is no breach
        state = MET if age <= exp.rpo else BREACHED
        statuses.append(KindStatus(exp.kind, state, rpo_h, point.time.strftime("%Y-%m-%dT%H:%M:%SZ"), _hours(age),
                                   point.id))
        if state == BREACHED:
            breaches.append(f"newest {_words(exp.kind)} {_hours(age)} h old, RPO {rpo_h:g} h")
    if not statuses:
        return Compliance(NOT_PROTECTED, f"policy '{policy.name}' makes no recovery points")
    notes = []
    judged = replica(policy) if replica is not None else None
    if judged is not None:
        statuses.append(judged.status)
        if judged.status.state == MISSING:
            missing.append(REPLICA)
            notes.append(judged.words)
        elif judged.status.state == BREACHED:
            breaches.append(judged.words)
        else:
            notes.append(judged.words)
    missing.sort(key=KINDS.index)
    gone = [k for k in missing if k != REPLICA and not (k == ISOLATED_COPY and said)]
    reasons = breaches + ([f"no complete {', '.join(_words(k) for k in gone)}"] if gone else []) + said
    reasons += [n for n in notes if n]
    if breaches:
        state = BREACHED
    elif len(missing) == len(statuses):
        state = NOT_PROTECTED
    elif missing:
        state = MISSING
    else:
        return Compliance(MET, "; ".join([f"every kind within RPO (policy '{policy.name}')"] + [n for n in notes if n]),
                          tuple(statuses))
    return Compliance(state, "; ".join(reasons), tuple(statuses), tuple(missing))
