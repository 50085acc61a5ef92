"""The planner, pure: inventory + policies + now (+ what vmkeeper already took) → the jobs due,
one per VM per schedule slot per kind, with names derived from VM, disk and slot only — so planning
the same slot again yields the same names, and the workers' PUTs create nothing new.

It never plans past Azure's limits: at most 7 incremental snapshots per disk per 5 minutes and 500
per disk; one restore point creation in flight per VM; at least 1 h between crash-consistent and
3 h between application-consistent restore points. What it skips, it says why.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from . import tags as T
from .policy import MIN_HOURS, Policy, PolicySet, Schedule

SNAPSHOT_WINDOW = timedelta(minutes=5)
SNAPSHOTS_PER_WINDOW = 7
SNAPSHOTS_PER_DISK = 500
NAME_OK = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class DiskRef:
    id: str
    name: str
    lun: int | None  # None: the OS disk


@dataclass(frozen=True)
class VmRecord:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    tags: Mapping[str, str]
    os_disk: DiskRef | None
    data_disks: tuple[DiskRef, ...] = ()

    @classmethod
    def from_resource_graph(cls, row: Mapping[str, Any]) -> VmRecord:
        storage = ((row.get("properties") or {}).get("storageProfile") or {})
        os_spec = storage.get("osDisk") or {}
        os_id = (os_spec.get("managedDisk") or {}).get("id")
        data = tuple(DiskRef((d.get("managedDisk") or {}).get("id"), d.get("name") or "", d.get("lun"))
                     for d in storage.get("dataDisks") or [] if (d.get("managedDisk") or {}).get("id"))
        return cls(row["id"], row["name"], row["subscriptionId"], row["resourceGroup"], row["location"],
                   dict(row.get("tags") or {}), DiskRef(os_id, os_spec.get("name") or "", None) if os_id else None,
                   tuple(sorted(data, key=lambda d: d.lun)))


@dataclass(frozen=True)
class SnapshotTarget:
    disk_id: str
    snapshot_name: str
    lun: int | None


@dataclass(frozen=True)
class Job:
    kind: str  # "snapshot_set" | "restore_point"
    vm_id: str
    subscription_id: str
    resource_group: str
    location: str
    policy: str
    slot: datetime
    set_id: str
    tags: Mapping[str, str]
    snapshots: tuple[SnapshotTarget, ...] = ()
    restore_point_collection_name: str | None = None
    restore_point_name: str | None = None
    consistency: str | None = None
    excluded_disk_ids: tuple[str, ...] = ()
    copy_region: str | None = None
    lock_days: int | None = None
    expires: datetime | None = None


@dataclass(frozen=True)
class Skip:
    vm_id: str
    reason: str
    problem: bool = False  # a bad tag an operator should fix (an opt-out or a limit is no problem)


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]
    skipped: list[Skip]


@dataclass(frozen=True)
class History:
    """What vmkeeper already took: snapshot creation times per disk id, and restore points per VM id
    as (created, consistency, in_flight). Keys are lower-case ids."""

    snapshots_by_disk: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    restore_points_by_vm: Mapping[str, Sequence[tuple[datetime, str, bool]]] = field(default_factory=dict)


# --- slots ----------------------------------------------------------------------------------------
def slot_for(schedule: Schedule, now: datetime) -> datetime:
    """The latest slot start at or before ``now`` (UTC), DST-correct in the schedule's time zone."""
    now = now.astimezone(UTC)
    if schedule.kind == "hourly":
        hours = int(now.timestamp() // 3600)
        return datetime.fromtimestamp((hours - hours % schedule.every_hours) * 3600, UTC)
    zone = ZoneInfo(schedule.tz)
    local = now.astimezone(zone)
    for back in range(0, 8):
        day = local.date() - timedelta(days=back)
        if schedule.kind == "weekly" and day.weekday() != schedule.weekday:
            continue
        start = datetime.combine(day, schedule.at, tzinfo=zone).astimezone(UTC)
        if start <= now:
            return start
    raise AssertionError("a weekly slot is always within 8 days")


# --- names ----------------------------------------------------------------------------------------
def _h(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _safe(name: str, limit: int) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", name)[:limit]
    return cleaned.rstrip(".-") or "vm"


def snapshot_name(vm_name: str, disk: DiskRef, slot: datetime) -> str:
    part = "os" if disk.lun is None else str(disk.lun)
    return f"vmk-{_safe(vm_name, 20)}-{part}-{slot:%Y%m%d%H%M}-{_h(disk.id.lower() + slot.isoformat())}"


def collection_name(vm_id: str, vm_name: str) -> str:
    return f"vmk-rpc-{_safe(vm_name, 40)}-{_h(vm_id.lower())}"


def restore_point_name(vm_id: str, slot: datetime) -> str:
    return f"vmk-rp-{slot:%Y%m%d%H%M}-{_h(vm_id.lower() + slot.isoformat())}"


def set_id(vm_id: str, slot: datetime, kind: str) -> str:
    return _h(f"{vm_id.lower()}|{slot.isoformat()}|{kind}", 16)


def _instant(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- planning -------------------------------------------------------------------------------------
def _tags(vm: VmRecord, policy: Policy, slot: datetime, sid: str, expires: datetime | None) -> dict[str, str]:
    tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: policy.name,
            T.SLOT: _instant(slot), T.SET: sid}
    if expires:
        tags[T.EXPIRES] = _instant(expires)
    return tags


def _expires(policy: Policy, slot: datetime) -> datetime | None:
    from .retention import RetentionPolicy

    max_age = RetentionPolicy.from_dict(policy.retention).max_age if policy.retention else None
    return slot + max_age if max_age else None


def _snapshot_job(vm: VmRecord, policy: Policy, slot: datetime, history: History) -> Job | Skip:
    spec = policy.snapshots
    disks = [d for d in vm.data_disks if spec.luns == "all" or d.lun in spec.luns]
    if spec.include_os_disk and vm.os_disk:
        disks.insert(0, vm.os_disk)
    if not disks:
        return Skip(vm.id.lower(), f"policy '{policy.name}' selects no disk of this VM")
    for disk in disks:
        taken = [t for t in history.snapshots_by_disk.get(disk.id.lower(), ()) if t != slot]
        if len(taken) >= SNAPSHOTS_PER_DISK:
            return Skip(vm.id.lower(), f"disk {disk.name or disk.id} has {SNAPSHOTS_PER_DISK} incremental snapshots (Azure's limit)")
        recent = [t for t in taken if slot - SNAPSHOT_WINDOW < t <= slot]
        if len(recent) >= SNAPSHOTS_PER_WINDOW:
            return Skip(vm.id.lower(), f"disk {disk.name or disk.id} had {SNAPSHOTS_PER_WINDOW} snapshots in 5 minutes (Azure's limit)")
    sid = set_id(vm.id, slot, "snapshot_set")
    expires = _expires(policy, slot)
    return Job("snapshot_set", vm.id.lower(), vm.subscription_id, vm.resource_group, vm.location, policy.name, slot, sid,
               _tags(vm, policy, slot, sid, expires),
               snapshots=tuple(SnapshotTarget(d.id, snapshot_name(vm.name, d, slot), d.lun) for d in disks),
               copy_region=policy.copy_region, lock_days=policy.lock_days, expires=expires)


def _restore_point_job(vm: VmRecord, policy: Policy, slot: datetime, history: History) -> Job | Skip:
    spec = policy.restore_point
    points = [p for p in history.restore_points_by_vm.get(vm.id.lower(), ()) if p[0] != slot]
    if any(in_flight for _, _, in_flight in points):
        return Skip(vm.id.lower(), "a restore point creation is in flight (one at a time per VM)")
    need = timedelta(hours=MIN_HOURS[spec.consistency])
    if any(slot - need < created <= slot for created, consistency, _ in points if consistency == spec.consistency):
        return Skip(vm.id.lower(), f"{spec.consistency} restore points need {need} between them")
    excluded = tuple(d.id for d in vm.data_disks if d.lun in spec.exclude_luns)
    sid = set_id(vm.id, slot, "restore_point")
    expires = _expires(policy, slot)
    return Job("restore_point", vm.id.lower(), vm.subscription_id, vm.resource_group, vm.location, policy.name, slot, sid,
               _tags(vm, policy, slot, sid, expires),
               restore_point_collection_name=collection_name(vm.id, vm.name),
               restore_point_name=restore_point_name(vm.id, slot), consistency=spec.consistency,
               excluded_disk_ids=excluded, copy_region=policy.copy_region, expires=expires)


def plan(inventory: Iterable[VmRecord], policies: PolicySet, now: datetime, history: History | None = None) -> Plan:
    history = history or History()
    jobs: list[Job] = []
    skipped: list[Skip] = []
    for vm in inventory:
        chosen = policies.for_vm(dict(vm.tags))
        if chosen.policy is None:
            skipped.append(Skip(vm.id.lower(), chosen.error or chosen.reason, problem=chosen.error is not None))
            continue
        policy = chosen.policy
        slot = slot_for(policy.schedule, now)
        for spec, make in ((policy.snapshots, _snapshot_job), (policy.restore_point, _restore_point_job)):
            if spec is None:
                continue
            outcome = make(vm, policy, slot, history)
            (jobs if isinstance(outcome, Job) else skipped).append(outcome)
    return Plan(jobs, skipped)
