"""Pins: what is in use is never deleted. Pure: rows already read go in (shared/points/reads.py reads
them), the pins in force at ``now`` come out. No I/O, no clock.

What pins a point, and until when. A pin ends with its job, or at its bound at the latest: a job that
died without saying so (a crashed restore, a lost message) does not hold a point for ever.

- A second-region copy in flight pins its source: a CopyStart snapshot not yet at 100 %, without a copy
  error and not Failed (its source: ``creationData.sourceResourceId``, else its ``vmkeeper-copy-of`` tag),
  or a restore point whose ``sourceRestorePoint`` is set, not yet Succeeded or Failed. No bound of its
  own: this is Azure's word, read afresh every pass, not a record of ours that a crash could leave stale.
  A copy outlives its job's copy timeout (the job gives up; Azure's copy runs on, and deleting its source
  ends it ``CopySourceNotFound``), so it pins its source for as long as Azure shows it copying (``until``
  is the next pass's look: ``now`` + an hour). A copy that never ends is ended by deleting it, not its
  source: then the source is free on the next pass.
- A scheduled job not done pins what it makes. The schedule's ledger (shared/schedule/service.py) has a
  row per job in partition ``enqueued@{slot}`` (``at``: when it was last handed to the queue, epoch
  seconds) and, once it ends, one in ``jobs@{slot}`` (``outcome``: done | failed, ``updated``). A job is
  running when it was enqueued and has no outcome, or only a ``failed`` one older than its last enqueue
  (a re-sent job; its row's ``copies``, when there, the copies the job makes: a set copied into the backup
  subscription too copies each disk twice). A snapshot set job pins the whole set (every snapshot whose ``vmkeeper-set`` is
  ``names.set_id(vm, slot)``: the source in every region and its copies), a restore point job its
  restore point (``names.restore_point_name(vm, slot)``). Bound: the last enqueue + an hour + one copy
  timeout per disk (a set's copies go one disk after another) + one step timeout per immutability step.
- A restore pending or running (drills restore through the restore service: their restores are rows
  too) pins the point its request names (``recovery_point``: a restore point's id, or
  ``snapshot-set:{set}:{region}``, the set) and every source its plan's disks read (``source_id``: the
  snapshots, the disk restore points). Bound: its latest step's start (else its acceptance) + the
  restore step timeout + an hour (the restore service fails a step that runs longer).
- A file recovery or an export (shared/restore/lease.py) pins its point until it has ended: ``ready`` (made,
  in use) and ``ending`` (being undone) too. Bound: the later of the above and its expiry (its plan's
  ``lease.expires_at``) + the restore step timeout + an hour: an end that cannot finish is alerted, not
  left to pin for ever.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import names
from ..instants import format_instant, parse_instant
from .model import SET_ID as _SET_POINT  # a snapshot set's catalogue id

MARGIN = timedelta(hours=1)  # past a job's own bound: its last step may have begun just before it
COPY_TIMEOUT = timedelta(hours=24)  # VMKEEPER_COPY_TIMEOUT_HOURS' default: one disk's copy, at most
STEP_TIMEOUT = timedelta(minutes=30)  # a scheduled step's looks (a snapshot or restore point being created) end by then
LOOK = timedelta(minutes=15)  # the longest between two looks at a copy: a step may end this long past its bound
RESTORE_STEP_TIMEOUT = timedelta(hours=24)  # shared/restore/service.py STEP_TIMEOUT
SNAPSHOT_SET, RESTORE_POINT = "snapshot_set", "restore_point"  # the schedule's job types
PENDING, RUNNING = "pending", "running"  # shared/restore/records.py: a restore still to run, or running
READY, ENDING = "ready", "ending"  # a file recovery or an export: in use, or being undone
IN_USE = (PENDING, RUNNING, READY, ENDING)
RESTORE_PARTITION = "restore"


@dataclass(frozen=True)
class Pin:
    """Something in use, and what it keeps: ARM ids, whole snapshot sets, restore points by name."""

    reason: str
    until: datetime  # the bound: after it the pin is void, whatever its job says
    ids: frozenset[str] = frozenset()  # lower case
    sets: frozenset[str] = frozenset()  # vmkeeper-set values, lower case: every snapshot of the run
    points: frozenset[str] = frozenset()  # restore point names, lower case (vmkeeper's name one VM's slot)
    observed: bool = False  # Azure shows it in use now (a copy in flight): it lasts as long as Azure does

    def describe(self) -> str:
        if self.observed:
            return f"{self.reason} (pinned for as long as Azure shows it so)"
        return f"{self.reason} (pinned until {format_instant(self.until)} at the latest)"


@dataclass(frozen=True)
class Copy:
    """A second-region copy not complete yet."""

    id: str
    source_id: str
    created: datetime


@dataclass(frozen=True)
class Job:
    """One scheduled job as the schedule's ledger shows it."""

    vm_id: str
    kind: str  # SNAPSHOT_SET | RESTORE_POINT
    slot: datetime
    enqueued_at: datetime | None  # last handed to the queue (None: never)
    outcome: str | None = None  # "done" | "failed" | None (still running, or lost)
    outcome_at: datetime | None = None
    disks: int = 1  # a snapshot set's disks (its copies go one after another)
    copies: int | None = None  # the copies it makes, when its enqueue says so (isolated copies: more than its disks)


@dataclass(frozen=True)
class Restore:
    """One restore (or a drill's) as the restores table shows it."""

    id: str
    state: str
    recovery_point: str
    sources: tuple[str, ...]  # what its disks are made from
    since: datetime | None  # its latest step's start, else when it was accepted
    expires: datetime | None = None  # a file recovery's or an export's expiry


# --- the schedule's ledger keys (shared/schedule/service.py writes them; a test checks they agree) ---------------
def job_key(vm_id: str, kind: str, slot: datetime) -> str:
    return f"{vm_id.lower()}|{kind}|{slot_key(slot)}"


def slot_key(slot: datetime) -> str:
    """A slot as the schedule's job messages carry it (``datetime.isoformat`` of the UTC slot)."""
    return slot.astimezone(UTC).isoformat()


def enqueued_partition(slot: datetime) -> str:
    return f"enqueued@{slot_key(slot)}"


def jobs_partition(slot: datetime) -> str:
    return f"jobs@{slot_key(slot)}"


def job_lifetime(copies: int, *, immutable_steps: int = 0, copy_timeout: timedelta = COPY_TIMEOUT,
                 step_timeout: timedelta = STEP_TIMEOUT, look: timedelta = LOOK) -> timedelta:
    """The longest a scheduled job may run once sent: its create and check each give up after
    ``step_timeout``; a snapshot set copies one disk after another (``copies``), each copy's start bounded
    by ``step_timeout`` and the copy by ``copy_timeout``, the last look at it up to ``look`` later; each
    immutability step (``immutable_steps``: the set's, ``immutable``, its second-region copies',
    ``copy_immutable``, its isolated copies', ``isolated_immutable``) gives up after ``step_timeout`` too. A job without copies is given one copy's time all the same: slack
    for its wait in the queue for write budget. The planner re-sends a job only past it, and a running job's
    pin lasts at least as long, so no job still running is ever unpinned (one function: a test checks both
    use it)."""
    return (2 + immutable_steps) * step_timeout + max(1, copies) * copy_timeout + copies * (step_timeout + look)


IMMUTABLE_STEPS = 3  # the most a job has: ``immutable`` (its set), ``copy_immutable`` and ``isolated_immutable`` (its copies)


def job_bound(job: Job, copy_timeout: timedelta = COPY_TIMEOUT) -> datetime | None:
    """When a job's pin ends at the latest, if it is running (None: it is not). The ledger does not say
    whether the job copies, nor whether its policy makes its points immutable: taken as copying every disk
    and taking both immutability steps, the longest it may be."""
    if job.enqueued_at is None or job.outcome == "done":
        return None
    if job.outcome is not None and (job.outcome_at is None or job.outcome_at >= job.enqueued_at):
        return None  # ended (failed) since its last enqueue
    return job.enqueued_at + MARGIN + job_lifetime(max(1, job.disks, job.copies or 0), immutable_steps=IMMUTABLE_STEPS,
                                                   copy_timeout=copy_timeout)


# --- the restores table (shared/restore/records.py writes it) ---------------------------------------------------
def restore_from_entity(entity: Mapping[str, Any]) -> Restore:
    """A restores table row, read leniently: a part that does not parse pins nothing, the rest still does."""

    def doc(name: str) -> Any:
        try:
            return json.loads(entity.get(name) or "null")
        except (TypeError, ValueError):
            return None

    request, plan, steps = doc("request"), doc("plan"), doc("steps")
    point = request.get("recovery_point") if isinstance(request, dict) else None
    disks = plan.get("disks") if isinstance(plan, dict) else None
    sources = tuple(str(d["source_id"]) for d in disks or [] if isinstance(d, dict) and d.get("source_id"))
    starts = [parse_instant(s.get("started_at")) for s in steps or [] if isinstance(s, dict)]
    since = max([t for t in starts if t] + [t for t in [parse_instant(entity.get("created_at"))] if t], default=None)
    leased = plan.get("lease") if isinstance(plan, dict) else None
    expires = parse_instant(leased.get("expires_at")) if isinstance(leased, dict) else None
    return Restore(str(entity.get("RowKey", "")), str(entity.get("state", "")), str(point or ""), sources, since,
                   expires)


# --- the pins ----------------------------------------------------------------------------------------------------
def pins(now: datetime, *, copies: Iterable[Copy] = (), jobs: Iterable[Job] = (), restores: Iterable[Restore] = (),
         copy_timeout: timedelta = COPY_TIMEOUT, restore_step_timeout: timedelta = RESTORE_STEP_TIMEOUT) -> list[Pin]:
    """The pins in force at ``now`` (past their bound: void)."""
    out = []
    for copy in copies:  # seen in flight now: pinned while Azure says so, however long past the copy timeout
        if copy.source_id:
            out.append(Pin(f"its copy {_short(copy.id)} is in flight (since {format_instant(copy.created)})",
                           now + MARGIN, ids=frozenset({copy.source_id.lower()}), observed=True))
    for job in jobs:
        until = job_bound(job, copy_timeout)
        if until is None or until <= now:
            continue
        slot = format_instant(job.slot)
        if job.kind == SNAPSHOT_SET:
            out.append(Pin(f"the snapshot set job of slot {slot} is still running (copies included)", until,
                           sets=frozenset({names.set_id(job.vm_id, job.slot)})))
        elif job.kind == RESTORE_POINT:
            out.append(Pin(f"the restore point job of slot {slot} is still running (its copy included)", until,
                           points=frozenset({names.restore_point_name(job.vm_id, job.slot).lower()})))
    for restore in restores:
        if restore.state not in IN_USE or restore.since is None:
            continue  # ended; or never accepted (no time to bound it by)
        until = max(restore.since, restore.expires or restore.since) + restore_step_timeout + MARGIN
        if until <= now:
            continue
        point = restore.recovery_point.strip().lower()
        found = _SET_POINT.match(point)
        ids = {s.lower() for s in restore.sources} | ({point} if point.startswith("/subscriptions/") else set())
        ids |= {i.split("/diskrestorepoints/", 1)[0] for i in ids if "/diskrestorepoints/" in i}  # its restore point
        out.append(Pin(f"restore {restore.id} is {restore.state} from it", until, ids=frozenset(ids),
                       sets=frozenset({found.group(1)} if found else ())))
    return out


class PinIndex:
    """The pins by what they keep: ``find`` answers for one artifact."""

    def __init__(self, pins: Iterable[Pin], now: datetime):
        self.by_id: dict[str, Pin] = {}
        self.by_set: dict[str, Pin] = {}
        self.by_point: dict[str, Pin] = {}
        for pin in pins:
            if pin.until <= now:
                continue
            for keys, index in ((pin.ids, self.by_id), (pin.sets, self.by_set), (pin.points, self.by_point)):
                for key in keys:
                    held = index.get(key)
                    if held is None or pin.until > held.until:  # the longest pin says why
                        index[key] = pin

    def __bool__(self) -> bool:
        return bool(self.by_id or self.by_set or self.by_point)

    def find(self, resource_id: str, set_id: str | None = None) -> Pin | None:
        """The pin on an artifact: its id, its snapshot set, or (a restore point) its name."""
        lid = resource_id.lower()
        pin = self.by_id.get(lid)
        if pin is None and set_id:
            pin = self.by_set.get(set_id.strip().lower())
        if pin is None and "/restorepoints/" in lid:
            pin = self.by_point.get(lid.rsplit("/", 1)[-1])
        return pin


def _short(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]
