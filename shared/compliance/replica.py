"""The ``replica`` kind, pure: a VM's Site Recovery replicated item judged for compliance (shared/points/replicas.py
reads the items).

- **Which VMs must have one**: a VM tagged ``vmkeeper-dr: critical`` (tag name and value case-insensitive). A VM
  with a replicated item is judged whether tagged or not (it is replicated: its replica's health matters); a VM
  with neither has no ``replica`` kind at all.
- **Which item is the VM's**: one whose ``fabricObjectId`` is the VM's id and that replicates the VM's current OS
  disk (ASR names no instance; a VM deleted and created again under its name keeps its id but not its disks, and
  its old item replicates nothing of it). When Resource Graph says no OS disk, any item of the VM's id counts.
- **The RPO target**: the policy's ``replication.rpo_minutes`` when it has one (``rpo_target``), else
  ``DEFAULT_RPO`` (60 minutes, Site Recovery's own default RPO threshold for A2A health). It is the VM's
  policy's, as for every other kind.
- **The replica's age**: ``rpoInSeconds`` (the newest recovery point's age when ASR calculated it) plus the time
  since ``lastRpoCalculatedTime`` (an RPO that ASR stopped calculating must not stay young); its newest point is
  ``lastRpoCalculatedTime - rpoInSeconds``.
- **State** (a kind's: ``met``, ``breached``, ``missing``, or ``initial_replication``):
  ``missing``: the VM must have one and has none (or only one of an earlier instance).
  ``breached`` (unhealthy): ``replicationHealth`` other than Normal (Azure's own judgement, whatever the RPO), a
  replica older than the RPO target, a protection state that replicates nothing (failed over, committed, being
  disabled…), or an initial replication not done ``INITIAL_ALLOWANCE`` after vmkeeper first saw it in progress.
  ``initial_replication``: the first full copy is being made, healthy, within its allowance: no gap yet and no
  breach (a VM just enrolled is not unprotected by mistake), said in the reason with its progress.
  ``met``: Protected, health Normal, the replica no older than the RPO target.
- The allowance counts from the first evaluation that saw the item (by id) in initial replication, carried from
  one evaluation to the next in the compliance rows (``KindStatus.replication["since"]``); an item seen for the
  first time starts its allowance then.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import tags as T
from ..instants import format_instant, parse_instant
from ..points.replicas import PROTECTED, ReplicatedItem
from .model import BREACHED, INITIAL_REPLICATION, MET, MISSING, REPLICA, KindStatus

DR_TAG, CRITICAL = T.DR, T.DR_CRITICAL  # on a VM: replicate it
DEFAULT_RPO = timedelta(minutes=60)
INITIAL_ALLOWANCE = timedelta(hours=24)  # a first full copy of large disks over a region pair takes hours, not days
HEALTHY = "Normal"
# What a compliance row keeps of Azure's health errors (the row's kinds are one table property, at most 64 KiB).
MAX_ERRORS, MAX_TEXT = 5, 500


@dataclass(frozen=True)
class Judgement:
    status: KindStatus
    words: str  # the reason, in words ("replica RPO 72 min, target 60 min; replication health Warning: …")


def rpo_target(policy: Any) -> timedelta:
    """The replica's RPO target: the policy's ``replication.rpo_minutes`` (shared/policy), else ``DEFAULT_RPO``."""
    minutes = getattr(getattr(policy, "replication", None), "rpo_minutes", None)
    if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0:
        return timedelta(minutes=minutes)
    return DEFAULT_RPO


def critical(vm_tags: Mapping[str, Any] | None) -> bool:
    """Tagged ``vmkeeper-dr: critical`` (Azure tag names are case-insensitive; so is the value here)."""
    return any(str(k).lower() == DR_TAG and str(v or "").strip().lower() == CRITICAL for k, v in (vm_tags or {}).items())


def expected(vm_tags: Mapping[str, Any] | None, policy: Any, region: str) -> bool:
    """Whether the VM must have a replica: tagged critical (whatever its policy says: the operator thinks it is
    replicated), or its policy replicates all its VMs and it is not already in the target region
    (shared/replication/select.py decides the same for enabling)."""
    spec = getattr(policy, "replication", None)
    return critical(vm_tags) or bool(spec is not None and spec.all_vms and region != spec.target_region)


def of_instance(items: Iterable[ReplicatedItem], os_disk: str | None, vm: str = "") -> tuple[ReplicatedItem | None, str]:
    """The VM's item among those about its id (``ReplicatedItem.active_vm``), and, when there are some but none is
    its, why. A failed-over VM's disks are the item's recovery-side ones."""
    items = sorted(items, key=lambda i: i.id.lower())
    disk = (os_disk or "").strip().lower()
    if not items:
        return None, ""
    mine = [i for i in items if not disk or not i.disks_of(vm.lower()) or disk in i.disks_of(vm.lower())]
    if mine:
        return mine[0], ""
    return None, f"replicated item {items[0].id.rsplit('/', 1)[-1]} replicates other disks (an earlier instance of the VM)"


def _bounded(error: dict[str, str]) -> dict[str, str]:
    return {k: v[:MAX_TEXT] for k, v in error.items()}


def _minutes(delta: timedelta | float) -> str:
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    return f"{seconds / 60:.0f} min"


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 4)  # minutes matter for a replica: more places than a point's age


def judge(item: ReplicatedItem | None, expected: bool, rpo: timedelta, now: datetime, *,
          since: datetime | None = None, absent: str = "") -> Judgement | None:
    """The replica kind of one VM at ``now``: None when it has no item and need not have one. ``since``: when an
    earlier evaluation first saw this item in initial replication; ``absent``: why an item of the VM is not its."""
    rpo_h = _hours(rpo)
    if item is None:
        if not expected:
            return None
        why = absent or "no replicated item in the vaults vmkeeper knows"
        return Judgement(KindStatus(REPLICA, MISSING, rpo_h), f"tagged {DR_TAG}: {CRITICAL} but not replicated ({why})")
    age = newest = None
    if item.rpo_seconds is not None and item.rpo_calculated is not None:
        newest = item.rpo_calculated - timedelta(seconds=item.rpo_seconds)
        age = timedelta(seconds=item.rpo_seconds) + max(now - item.rpo_calculated, timedelta(0))
    detail: dict[str, Any] = {"health": item.health, "protection_state": item.protection_state,
                              "rpo_seconds": item.rpo_seconds,
                              "rpo_calculated": format_instant(item.rpo_calculated) if item.rpo_calculated else None,
                              "progress": item.progress, "errors": [_bounded(e.to_json()) for e in item.errors[:MAX_ERRORS]],
                              "target_region": item.target_region or None, "since": None}
    problems = []
    if item.health != HEALTHY:
        errors = "; ".join(f"{e.code}: {e.message[:MAX_TEXT]}" for e in item.errors[:MAX_ERRORS]) \
            or "no health error given"
        problems.append(f"replication health {item.health or 'unknown'} ({errors})")
    state = MET
    if item.initial:
        started = since or now
        detail["since"] = format_instant(started)
        progress = f" {item.progress} %" if item.progress is not None else ""
        if now - started > INITIAL_ALLOWANCE:
            problems.append(f"initial replication{progress} not done {(now - started).total_seconds() / 3600:.1f} h "
                            f"after it was first seen (allowance {_hours(INITIAL_ALLOWANCE):g} h)")
        words = f"replica: initial replication{progress} since {format_instant(started)}"
        state = INITIAL_REPLICATION
    elif item.protection_state != PROTECTED:
        problems.append(f"replica protection state {item.protection_state or 'unknown'}: it replicates nothing now"
                        + (" (failed over onto this VM: reprotect replicates it back)" if item.failed_over else ""))
        words = ""
    elif age is not None and age > rpo:
        problems.append(f"replica RPO {_minutes(age)}, target {_minutes(rpo)}")
        words = ""
    else:
        words = f"replica RPO {_minutes(age)}, target {_minutes(rpo)}" if age is not None else \
            "replica protected, Azure reports no RPO yet"
    if problems:
        state, words = BREACHED, "; ".join(problems)
    status = KindStatus(REPLICA, state, rpo_h, format_instant(newest) if newest else None,
                        _hours(age) if age is not None else None, item.id, detail)
    return Judgement(status, words)


def initial_since(previous: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, datetime]]:
    """From the last evaluation's rows (by VM id, lower case): each VM's replica in initial replication then
    (within its allowance or past it), as (item id lower case, since when)."""
    import json

    out = {}
    for vm, row in previous.items():
        try:
            kinds = json.loads(row.get("kinds") or "[]")
        except ValueError:
            continue
        for k in kinds if isinstance(kinds, list) else []:
            detail = k.get("replication") if isinstance(k, dict) else None
            since = parse_instant((detail or {}).get("since")) if isinstance(detail, dict) else None
            if k.get("kind") == REPLICA and since and k.get("point_id"):  # initial then (healthy or overdue)
                out[vm.lower()] = (str(k["point_id"]).lower(), since)
    return out
