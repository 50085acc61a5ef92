"""Which VMs are due a DR drill, and the names a drill uses: pure.

A VM is drilled when its policy has a ``drill`` block and either drills all its VMs or the VM is tagged
``vmkeeper-drill: true``; never when it opted out. Drills fall in periods of ``every_days`` counted from
the Unix epoch: a drill's id derives from the VM and its period, so planning the same period again finds
the same drill (nothing twice), and the next period makes a new one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import tags as T
from ..membership import members
from ..points.model import VAULT, RecoveryPoint
from ..policy.document import DrillSpec, PolicySet

ADDRESS_SPACE, SUBNET_PREFIX, SUBNET = "10.254.0.0/16", "10.254.0.0/24", "drill"


@dataclass(frozen=True)
class DueDrill:
    id: str
    vm_id: str  # lower case
    policy: str
    spec: DrillSpec
    copy_region: str | None
    period: int


def period_of(now: datetime, every_days: int) -> int:
    return int(now.timestamp() // (every_days * 86400))


def drill_id(vm_id: str, period: int, every_days: int) -> str:
    return hashlib.sha256(f"{vm_id.lower()}|{every_days}|{period}".encode()).hexdigest()[:16]


def selected(tags: Mapping[str, str] | None, spec: DrillSpec) -> bool:
    by_name = {str(k).lower(): str(v or "") for k, v in (tags or {}).items()}
    return spec.all_vms or by_name.get(T.DRILL, "").strip().lower() in T.TRUE_VALUES


def due(vms: Iterable[Mapping[str, Any]], policies: PolicySet, now: datetime,
        outside: Mapping[str, str] | None = None) -> list[DueDrill]:
    """The drills of this period for every VM (Resource Graph rows: id, tags) that should be drilled (``outside``:
    shared/membership.py's test failover VMs)."""
    out = []
    for row in members(vms, outside):  # a drilled, restored or test failover VM is never drilled itself
        resolution = policies.for_vm(row.get("tags"))
        policy = resolution.policy
        if policy is None or policy.drill is None or not selected(row.get("tags"), policy.drill):
            continue
        spec = policy.drill
        period = period_of(now, spec.every_days)
        vm_id = str(row["id"]).lower()
        out.append(DueDrill(drill_id(vm_id, period, spec.every_days), vm_id, policy.name, spec, policy.copy_region, period))
    return sorted(out, key=lambda d: d.vm_id)


def choose_point(points: Iterable[RecoveryPoint], spec: DrillSpec, copy_region: str | None) -> RecoveryPoint | None:
    """The newest complete point of the kind the drill asks for (a copy: in the policy's second region)."""
    def fits(p: RecoveryPoint) -> bool:
        if not p.complete or p.kind == VAULT:
            return False
        if spec.point == "copy":
            return p.copy and (copy_region is None or p.region == copy_region)
        return not p.copy and p.kind == spec.point
    return max((p for p in points if fits(p)), key=lambda p: p.time, default=None)


def group_name(drill: str) -> str:
    return f"vmkeeper-drill-{drill}"


def vm_name(source_vm_name: str) -> str:
    """The drilled VM's name: the source's, shortened so names built from it stay within Azure's limits."""
    base = re.sub(r"[^A-Za-z0-9-]", "-", source_vm_name)[:40].strip("-") or "vm"
    return f"{base}-drill"
