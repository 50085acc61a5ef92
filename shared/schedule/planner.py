"""The planner, pure: inventory + policies + now (+ what vmkeeper already took) → the jobs due, one
per VM per schedule slot per kind, and the VMs skipped with the reason why.

Names come from the VM, the disk and the slot only, so planning the same slot again yields the same
jobs with the same names, and the workers' PUTs of those names create nothing new.

Given ``history``, it never plans past Azure's limits: at most 7 incremental snapshots per disk in
any 5 minutes and 500 per disk; one restore point creation in flight per VM; at least 1 h before a
crash-consistent and 3 h before an application-consistent restore point (counted from the VM's last
restore point of either kind: stricter than Azure needs only if a VM changes policy). A job held back
by a limit is skipped now and planned by a later run of the same slot, once the limit allows.

No I/O, no clock (``now`` is an argument), no Azure SDK.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from .. import names, resource_ids
from .. import tags as T
from ..names import collection_name, restore_point_name, set_id, snapshot_name
from ..points.pins import job_lifetime
from ..policy.document import MIN_RESTORE_POINT_HOURS, ImmutabilitySpec, Policy, PolicySet, Schedule, zone

SNAPSHOT_WINDOW = timedelta(minutes=5)
SNAPSHOTS_PER_WINDOW = 7  # incremental snapshots per disk per SNAPSHOT_WINDOW
SNAPSHOTS_PER_DISK = 500  # incremental snapshots per disk in total
# Azure snapshot names: 1-80 of alphanumerics, '_', '.', '-'; start alphanumeric; end alphanumeric or '_'.
NAME_OK = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


# --- inputs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiskRef:
    id: str
    name: str
    lun: int | None  # None: the OS disk


@dataclass(frozen=True)
class VmRecord:
    id: str  # ARM id as listed; ``key`` is its lower-case form, used for every comparison
    name: str
    subscription_id: str
    resource_group: str
    location: str
    tags: Mapping[str, str]
    os_disk: DiskRef | None
    data_disks: tuple[DiskRef, ...] = ()
    power_state: str | None = None  # "running", "deallocated"... when the inventory says
    instance: str | None = None  # properties.vmId: which instance of the VM (its ARM id outlives it)

    @property
    def key(self) -> str:
        return self.id.lower()

    @classmethod
    def from_resource_graph(cls, row: Mapping[str, Any]) -> VmRecord:
        """A Resource Graph row of microsoft.compute/virtualmachines (id, name, subscriptionId,
        resourceGroup, location, tags, properties). Unmanaged (VHD) disks are left out: there is no
        managed disk to snapshot."""
        vm_id = row["id"]
        props = row.get("properties") or {}
        storage = props.get("storageProfile") or {}
        os_spec = storage.get("osDisk") or {}
        os_id = (os_spec.get("managedDisk") or {}).get("id")
        os_disk = DiskRef(os_id, os_spec.get("name") or _last(os_id), None) if os_id else None
        data = []
        for spec in storage.get("dataDisks") or []:
            disk_id = (spec.get("managedDisk") or {}).get("id")
            if disk_id and spec.get("lun") is not None:
                data.append(DiskRef(disk_id, spec.get("name") or _last(disk_id), int(spec["lun"])))
        code = (((props.get("extended") or {}).get("instanceView") or {}).get("powerState") or {}).get("code")
        return cls(
            vm_id,
            row.get("name") or _last(vm_id),
            row.get("subscriptionId") or resource_ids.parts(vm_id).get("subscription", ""),
            row.get("resourceGroup") or resource_ids.parts(vm_id).get("resource_group", ""),
            (row.get("location") or "").lower(),
            dict(row.get("tags") or {}),
            os_disk,
            tuple(sorted(data, key=lambda d: d.lun)),
            code.split("/", 1)[-1].lower() if code else None,
            str(props["vmId"]).lower() if props.get("vmId") else None,
        )


class TakenSnapshot(NamedTuple):
    created: datetime
    name: str | None = None  # when known, a snapshot of the slot being planned is recognised as done


class TakenRestorePoint(NamedTuple):
    created: datetime
    consistency: str
    in_flight: bool = False
    name: str | None = None  # as for TakenSnapshot


@dataclass(frozen=True)
class History:
    """What vmkeeper already took. ``snapshots_by_disk``: disk id → creation instants (or
    TakenSnapshot / (created, name)); ``restore_points_by_vm``: VM id → TakenRestorePoint or
    (created, consistency, in_flight[, name]). Ids in any case; instants timezone-aware.

    Without names every entry counts against the limits, so a re-plan of a slot already done may
    report a skip where, with names, it repeats the same (no-op) job."""

    snapshots_by_disk: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    restore_points_by_vm: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    # disk id → how many incremental snapshots it has in all, when only the count is known (a
    # fleet's full listing would be too big): counts toward the 500-per-disk limit.
    snapshot_counts_by_disk: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, value: History | Mapping[str, Any] | None) -> History:
        if value is None:
            return cls()
        if isinstance(value, History):
            return value
        return cls(value.get("snapshots_by_disk") or {}, value.get("restore_points_by_vm") or {},
                   value.get("snapshot_counts_by_disk") or {})


# --- outputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SnapshotTarget:
    disk_id: str
    snapshot_name: str
    lun: int | None  # None: the OS disk


@dataclass(frozen=True)
class Job:
    kind: Literal["snapshot_set", "restore_point"]
    vm_id: str  # lower case
    subscription_id: str
    resource_group: str
    location: str
    policy: str  # the policy's lower-case name: what retention looks policies up by
    slot: datetime  # UTC
    set_id: str
    tags: Mapping[str, str]  # for every artifact of the job
    snapshots: tuple[SnapshotTarget, ...] = ()
    restore_point_collection_name: str | None = None
    restore_point_name: str | None = None
    consistency: str | None = None
    excluded_disk_ids: tuple[str, ...] = ()
    copy_region: str | None = None
    lock_days: int | None = None
    expires: datetime | None = None
    immutability: ImmutabilitySpec | None = None  # snapshot sets: the policy's immutability block
    isolated: bool = False  # snapshot sets: copied into the backup subscription once complete


@dataclass(frozen=True)
class Skip:
    vm_id: str  # lower case
    reason: str
    problem: bool = False  # something an operator should fix (a bad tag, a policy that selects no disk)
    kind: str | None = None  # the job kind held back; None: the whole VM


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    skipped: list[Skip]


# --- slots ----------------------------------------------------------------------------------------
def slot_for(schedule: Schedule, now: datetime) -> datetime:
    """The latest slot start at or before ``now``, in UTC.

    hourly: every ``every_hours`` whole hours counted from the Unix epoch, so the slots are the same
    whatever the host's clock or zone. daily/weekly: the local time in the policy's zone, DST-correct:
    a time that does not exist that day (clocks spring forward) starts at the instant it would have
    without the change (02:30 → 03:30 CEST); a time that exists twice (clocks fall back) starts once,
    at its first occurrence."""
    now = _utc(now, "now")
    if schedule.kind == "hourly":
        hours = int(now.timestamp() // 3600)
        return datetime.fromtimestamp((hours - hours % schedule.every_hours) * 3600, UTC)
    tz = zone(schedule.tz)
    today = now.astimezone(tz).date()
    for back in range(8):  # a weekly slot is at most 7 local days back
        day = today - timedelta(days=back)
        if schedule.kind == "weekly" and day.weekday() != schedule.weekday:
            continue
        start = datetime.combine(day, schedule.at, tzinfo=tz).astimezone(UTC)  # fold=0: first occurrence
        if start <= now:
            return start
    raise AssertionError("unreachable: a slot starts within 8 days")


# --- names: shared/names.py (retention re-derives them to know what is vmkeeper's) ---------------
_slot_text = names.slot_text


# --- planning -------------------------------------------------------------------------------------
def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got {when.isoformat()})")
    return when.astimezone(UTC)


def _last(arm_id: str) -> str:
    return resource_ids.last_segment(arm_id)


def _label(disk: DiskRef) -> str:
    return disk.name or _last(disk.id)


class _Limits:
    """History, normalised, plus what this plan has already given each disk: the plan's own jobs
    count against the limits too (a disk shared by several VMs)."""

    def __init__(self, history: History):
        self.snapshots: dict[str, list[TakenSnapshot]] = {}
        for disk_id, entries in history.snapshots_by_disk.items():
            self.snapshots.setdefault(disk_id.lower(), []).extend(self._snapshot(e) for e in entries)
        self.points: dict[str, list[TakenRestorePoint]] = {}
        for vm_id, entries in history.restore_points_by_vm.items():
            self.points.setdefault(vm_id.lower(), []).extend(self._point(e) for e in entries)
        self.planned: dict[str, int] = {}
        self.counts = {disk_id.lower(): int(n) for disk_id, n in history.snapshot_counts_by_disk.items()}

    @staticmethod
    def _snapshot(entry: Any) -> TakenSnapshot:
        if isinstance(entry, datetime):
            return TakenSnapshot(_utc(entry, "history snapshot time"))
        created, *rest = entry
        return TakenSnapshot(_utc(created, "history snapshot time"), *rest)

    @staticmethod
    def _point(entry: Any) -> TakenRestorePoint:
        created, consistency, *rest = entry
        return TakenRestorePoint(_utc(created, "history restore point time"), consistency, *rest)

    def snapshot_problem(self, disk: DiskRef, name: str, now: datetime) -> str | None:
        """Why a snapshot ``name`` of ``disk`` can't be planned now; None if it can."""
        entries = self.snapshots.get(disk.id.lower(), [])
        if any(e.name == name for e in entries):
            return None  # taken already: the worker's PUT creates nothing
        planned = self.planned.get(disk.id.lower(), 0)
        if max(len(entries), self.counts.get(disk.id.lower(), 0)) + planned >= SNAPSHOTS_PER_DISK:
            return f"disk has {SNAPSHOTS_PER_DISK} incremental snapshots (Azure's limit): {_label(disk)}"
        # The snapshot is made at or after now: everything after now - 5 min may share its window.
        recent = sum(1 for e in entries if e.created > now - SNAPSHOT_WINDOW) + planned
        if recent >= SNAPSHOTS_PER_WINDOW:
            return (
                f"disk had {SNAPSHOTS_PER_WINDOW} incremental snapshots in 5 minutes (Azure's limit): "
                f"{_label(disk)}; a later run of the slot takes it"
            )
        return None

    def take_snapshot(self, disk: DiskRef, name: str) -> None:
        if not any(e.name == name for e in self.snapshots.get(disk.id.lower(), [])):
            self.planned[disk.id.lower()] = self.planned.get(disk.id.lower(), 0) + 1

    def restore_point_problem(self, vm_key: str, name: str, consistency: str, now: datetime) -> str | None:
        points = self.points.get(vm_key, [])
        if any(p.name == name for p in points):
            return None  # this slot's: the worker's PUT creates nothing
        if any(p.in_flight for p in points):
            return "a restore point of this VM is being created (Azure allows one creation at a time per VM)"
        need = timedelta(hours=MIN_RESTORE_POINT_HOURS[consistency])
        last = max((p.created for p in points), default=None)
        if last is not None and last > now - need:
            return (
                f"{consistency} restore points need {need.seconds // 3600} h after the VM's last one "
                f"({_slot_text(last)}): a run of the slot from {_slot_text(last + need)} takes it"
            )
        return None


def _artifact_tags(
    vm: VmRecord, policy_key: str, slot: datetime, sid: str, expires: datetime | None
) -> dict[str, str]:
    tags = {
        T.MANAGED_BY: T.MANAGED_BY_VALUE,
        T.VM: vm.key,
        T.ARTIFACT_POLICY: policy_key,
        T.SLOT: _slot_text(slot),
        T.SET: sid,
    }
    if expires is not None:
        tags[T.EXPIRES] = _slot_text(expires)
    if vm.instance:
        tags[T.VM_INSTANCE] = vm.instance
    return tags


def _copy_region(policy: Policy, vm: VmRecord) -> str | None:
    region = policy.copy_region
    # A copy into the VM's own region protects against nothing (and only the planner knows the region).
    if region and region == vm.location.replace(" ", "").lower():
        return None
    return region


def _snapshot_job(
    vm: VmRecord,
    key: str,
    policy: Policy,
    slot: datetime,
    now: datetime,
    limits: _Limits,
    max_age: timedelta | None,
) -> Job | Skip:
    spec = policy.snapshots
    disks = [d for d in vm.data_disks if spec.luns == "all" or d.lun in spec.luns]
    if spec.include_os_disk and vm.os_disk is not None:
        disks.insert(0, vm.os_disk)
    if not disks:
        luns = "all" if spec.luns == "all" else ", ".join(map(str, spec.luns)) or "none"
        return Skip(
            vm.key,
            f"policy '{policy.name}' selects no disk of this VM (luns: {luns}; "
            f"include_os_disk: {str(spec.include_os_disk).lower()})",
            problem=True,
            kind="snapshot_set",
        )
    targets = tuple(SnapshotTarget(d.id, snapshot_name(vm.name, d, slot), d.lun) for d in disks)
    for disk, target in zip(disks, targets, strict=True):
        problem = limits.snapshot_problem(disk, target.snapshot_name, now)
        if problem:
            return Skip(vm.key, problem, kind="snapshot_set")
    for disk, target in zip(disks, targets, strict=True):
        limits.take_snapshot(disk, target.snapshot_name)
    sid = set_id(vm.id, slot)
    expires = slot + max_age if max_age else None
    return Job(
        "snapshot_set",
        vm.key,
        vm.subscription_id,
        vm.resource_group,
        vm.location,
        key,
        slot,
        sid,
        {**_artifact_tags(vm, key, slot, sid, expires), T.SET_SIZE: str(len(targets))},  # a set knows when it is whole
        snapshots=targets,
        copy_region=_copy_region(policy, vm),
        lock_days=policy.lock_days,
        expires=expires,
        immutability=policy.immutability,
        isolated=policy.isolated,
    )


def _restore_point_job(
    vm: VmRecord,
    key: str,
    policy: Policy,
    slot: datetime,
    now: datetime,
    limits: _Limits,
    max_age: timedelta | None,
) -> Job | Skip:
    spec = policy.restore_point
    name = restore_point_name(vm.id, slot)
    problem = limits.restore_point_problem(vm.key, name, spec.consistency, now)
    if problem:
        return Skip(vm.key, problem, kind="restore_point")
    sid = set_id(vm.id, slot)
    expires = slot + max_age if max_age else None
    return Job(
        "restore_point",
        vm.key,
        vm.subscription_id,
        vm.resource_group,
        vm.location,
        key,
        slot,
        sid,
        _artifact_tags(vm, key, slot, sid, expires),
        restore_point_collection_name=collection_name(vm.id, vm.name),
        restore_point_name=name,
        consistency=spec.consistency,
        excluded_disk_ids=tuple(d.id for d in vm.data_disks if d.lun in spec.exclude_luns),
        copy_region=_copy_region(policy, vm),
        expires=expires,
    )


def overdue_after(job: Job, *, step_timeout: timedelta, copy_timeout: timedelta, look: timedelta) -> timedelta:
    """How long after it was sent a job not yet done counts as lost (and is sent again): past the
    longest it may take (shared/points/pins.py job_lifetime, which also bounds a running job's pin)."""
    copies = 0 if not job.copy_region else len(job.snapshots) if job.kind == "snapshot_set" else 1
    copies += len(job.snapshots) if job.isolated else 0  # its copies into the backup subscription, one disk at a time
    return job_lifetime(copies, immutable_steps=immutable_steps(job), step_timeout=step_timeout,
                        copy_timeout=copy_timeout, look=look)


def immutable_steps(job: Job) -> int:
    """The worker's immutability steps a job takes (shared/schedule/steps.py): ``immutable`` once its set is made,
    ``copy_immutable`` once its second-region copies are, ``isolated_immutable`` once its copies in the backup
    subscription are."""
    kinds = job.immutability.kinds if job.immutability and job.kind == "snapshot_set" else ()
    return (("snapshot_sets" in kinds) + ("copies" in kinds and bool(job.copy_region))
            + ("isolated_copies" in kinds and bool(job.isolated)))


def plan(
    inventory: Iterable[VmRecord],
    policies: PolicySet,
    now: datetime,
    history: History | Mapping[str, Any] | None = None,
) -> Plan:
    """The jobs due at ``now`` and the VMs (or kinds) skipped, with reasons. VMs are planned in id
    order (a VM listed twice counts once), so the plan does not depend on the inventory's order."""
    now = _utc(now, "now")
    limits = _Limits(History.of(history))
    unique = {vm.key: vm for vm in reversed(list(inventory))}  # the first listing of a VM wins
    jobs: list[Job] = []
    skipped: list[Skip] = []
    for vm_key in sorted(unique):
        vm = unique[vm_key]
        chosen = policies.for_vm(vm.tags)
        if chosen.policy is None:
            skipped.append(Skip(vm.key, chosen.error or chosen.reason, problem=chosen.error is not None))
            continue
        policy = chosen.policy
        key = policy.name.lower()
        slot = slot_for(policy.schedule, now)
        if policy.snapshots is not None:
            outcome = _snapshot_job(vm, key, policy, slot, now, limits, policy.retention.max_age)
            (jobs if isinstance(outcome, Job) else skipped).append(outcome)
        if policy.restore_point is not None:
            outcome = _restore_point_job(vm, key, policy, slot, now, limits, policy.retention.max_age)
            (jobs if isinstance(outcome, Job) else skipped).append(outcome)
    return Plan(jobs, skipped)
