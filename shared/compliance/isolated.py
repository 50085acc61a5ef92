"""Isolated copies in compliance, pure (docs/isolated-copies.md): a VM whose policy is ``isolated`` expects the kind
``isolated_copy``, its sets' copies in the backup subscription (shared/points/inventory.py reads them with the app's
identity, read-only there).

- Its newest complete isolated copy's age is judged against the policy's RPO, as the set it copies is (the copy
  carries its set's slot): ``met`` or ``breached``; with its immutabilityPolicy, as the snapshot kinds show theirs.
- ``missing`` when there is none, or when the newest complete snapshot set has none past its job's bound (the
  longest a scheduled job may run once sent: shared/points/pins.py ``job_lifetime``, one copy per disk into the
  backup subscription and one more with a second region): its job gave up, or never copied it. Within the bound
  the copy may still be under way, and an older copy is judged by its age alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..points import pins as P
from ..points.model import ISOLATED_COPY, SET_ID, SNAPSHOT_SET, RecoveryPoint, kind_of
from .model import BREACHED, MET, MISSING, KindStatus


@dataclass(frozen=True)
class Judgement:
    status: KindStatus
    words: str  # the reason, in words ("" when met)


def bound(point: RecoveryPoint, second_region: bool) -> timedelta:
    """How long after its slot a set's isolated copy may still be made (its job's bound)."""
    copies = max(1, len(point.disks)) * (2 if second_region else 1)
    return P.MARGIN + P.job_lifetime(copies, immutable_steps=3)  # at most three immutability steps (pins.py)


def _set_of(point: RecoveryPoint) -> str:
    found = SET_ID.fullmatch(point.id)
    return found.group(1) if found else ""


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def judge(points: Iterable[RecoveryPoint], rpo: timedelta, now: datetime, *, second_region: bool = False) -> Judgement:
    points = list(points)
    copies = [p for p in points if p.complete and kind_of(p) == ISOLATED_COPY]
    newest = max(copies, key=lambda p: p.time, default=None)
    rpo_h = _hours(rpo)
    sets = [p for p in points if p.complete and kind_of(p) == SNAPSHOT_SET]
    newest_set = max(sets, key=lambda p: p.time, default=None)
    lacking = None
    if newest_set is not None and _set_of(newest_set) not in {_set_of(p) for p in copies}:
        late = max(now - newest_set.time, timedelta(0))
        if late > bound(newest_set, second_region):
            where = newest.isolated if newest is not None else "the backup subscription"
            lacking = (f"newest snapshot set ({_stamp(newest_set.time)}) has no isolated copy in {where} "
                       f"{_hours(late)} h after its slot (its job may run {_hours(bound(newest_set, second_region))} h)")
    if newest is None:
        return Judgement(KindStatus(ISOLATED_COPY, MISSING, rpo_h), lacking or "")
    age = max(now - newest.time, timedelta(0))
    state = BREACHED if age > rpo else MISSING if lacking else MET
    words = "; ".join(w for w in (f"newest isolated copy {_hours(age)} h old, RPO {rpo_h:g} h" if state == BREACHED
                                  else "", lacking or "") if w)
    held = sum(1 for p in points if kind_of(p) == ISOLATED_COPY and p.immutability is not None and p.immutability.holds(now))
    return Judgement(KindStatus(ISOLATED_COPY, state, rpo_h, _stamp(newest.time), _hours(age), newest.id,
                                immutability_policy=newest.immutability.to_json() if newest.immutability else None,
                                immutable_points=held), words)
