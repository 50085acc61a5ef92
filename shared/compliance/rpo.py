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
- Immutability (the policy's ``immutability`` block: its ``kinds`` snapshot_sets and copies): each snapshot kind
  shows its newest complete point's immutabilityPolicy (Locked or Unlocked, its policyExpirationTime) and how many of
  its points hold one now. Where the policy asks for one, the newest complete point past its job's bound (its slot +
  ``GRACE`` + the job's lifetime with its immutability steps: shared/points/pins.py job_lifetime) must carry one as
  asked: none, Unlocked where Locked is asked, or one expiring before the slot + the policy's days is a finding
  (``not_immutable`` names the kinds; the reason says why; compliance/service.py alerts it). It changes no state:
  the point is there and restores; what it lacks is the guard against a delete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..points import pins as P
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
    not_immutable: tuple[str, ...] = ()  # the kinds whose newest point past its job's bound lacks immutability


IMMUTABLE_KIND = {SNAPSHOT_SET: "snapshot_sets", SNAPSHOT_COPY: "copies"}  # a judged kind: the policy's word for it


def immutability_bound(policy: Policy, point: RecoveryPoint, copy_timeout: timedelta = P.COPY_TIMEOUT) -> datetime:
    """When the job that made ``point`` has given up at the latest, its immutability steps included: past it, a point
    the policy makes immutable and without its policy will not get one from that job."""
    spec = policy.immutability
    kinds = spec.kinds if spec else ()
    isolated = policy.isolated
    steps = ("snapshot_sets" in kinds) + ("copies" in kinds and bool(policy.copy)) + ("isolated_copies" in kinds
                                                                                       and isolated)
    copies = (len(point.disks) if policy.copy else 0) + (len(point.disks) if isolated else 0)
    return point.time + GRACE + P.MARGIN + P.job_lifetime(copies, immutable_steps=steps, copy_timeout=copy_timeout)


def immutability_finding(policy: Policy, point: RecoveryPoint) -> str | None:
    """What ``point``'s immutabilityPolicy lacks of what ``policy`` asks (None: nothing)."""
    spec = policy.immutability
    asked = f"{'Locked' if spec.locked else 'Unlocked'} for {spec.days} days"
    imm = point.immutability
    if imm is None:
        return f"has no immutabilityPolicy (policy '{policy.name}' asks {asked})"
    if spec.locked and imm.type != "Locked":
        return f"has an Unlocked immutabilityPolicy (policy '{policy.name}' asks Locked)"
    if imm.until < point.time + timedelta(days=spec.days):
        return (f"has an immutabilityPolicy whose policyExpirationTime {imm.until.strftime('%Y-%m-%dT%H:%M:%SZ')} is "
                f"before the {spec.days} days policy '{policy.name}' asks")
    return None


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
                                   point.id, **_immutability(points, exp.kind, point, policy.copy_region, now)))
        if state == BREACHED:
            breaches.append(f"newest {_words(exp.kind)} {_hours(age)} h old, RPO {rpo_h:g} h")
    if not statuses:
        return Compliance(NOT_PROTECTED, f"policy '{policy.name}' makes no recovery points")
    notes, not_immutable = [], []
    for kind in (k for k, word in IMMUTABLE_KIND.items() if policy.immutability and word in policy.immutability.kinds):
        judged_point = newest_past_bound(points, kind, policy, now)
        finding = immutability_finding(policy, judged_point) if judged_point is not None else None
        if finding:
            not_immutable.append(kind)
            notes.append(f"newest {_words(kind)} past its job's bound "
                         f"({judged_point.time.strftime('%Y-%m-%dT%H:%M:%SZ')}) {finding}")
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
                          tuple(statuses), not_immutable=tuple(not_immutable))
    return Compliance(state, "; ".join(reasons), tuple(statuses), tuple(missing), tuple(not_immutable))


def newest_past_bound(points: list[RecoveryPoint], kind: str, policy: Policy, now: datetime) -> RecoveryPoint | None:
    """The newest complete point of ``kind`` whose job has given up by ``now`` (immutability_bound)."""
    done = [p for p in points if p.complete and kind_of(p) == kind
            and not (kind in COPIES and policy.copy_region and p.region != policy.copy_region)
            and immutability_bound(policy, p) <= now]
    return max(done, key=lambda p: p.time, default=None)


def _immutability(points: list[RecoveryPoint], kind: str, newest: RecoveryPoint, copy_region: str | None,
                  now: datetime) -> dict:
    """A snapshot kind's immutability: its newest point's policy and how many of its points hold one at ``now``."""
    if kind not in IMMUTABLE_KIND:
        return {}
    held = sum(1 for p in points if kind_of(p) == kind and p.immutability is not None and p.immutability.holds(now)
               and not (kind in COPIES and copy_region and p.region != copy_region))
    return {"immutability_policy": newest.immutability.to_json() if newest.immutability else None,
            "immutable_points": held}
