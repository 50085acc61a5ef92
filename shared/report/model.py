"""What the report page shows, as plain data: gathered from the ledger, the alerts table and the
restores table (shared/report/gather.py), rendered by shared/report/render.py. A VM's states and rows are
compliance's (shared/compliance/model.py: the report shows what compliance decides). Every field is
JSON-friendly (``to_json``), so the CLI's ``--json`` and the page read the same thing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..azure.guards import VaultPosture
from ..compliance.model import (  # noqa: F401 (what compliance decides: the report shows it)
    BREACHED,
    COPY,
    INITIAL_REPLICATION,
    KIND_STATES,
    KINDS,
    MET,
    MISSING,
    NOT_PROTECTED,
    NOT_SUPPORTED,
    OPTED_OUT,
    POINT_KINDS,
    REPLICA,
    RESTORE_POINT,
    RESTORE_POINT_COPY,
    SNAPSHOT_COPY,
    SNAPSHOT_SET,
    STATES,
    UNPROTECTED,
    VAULT,
    DayCount,
    ExcludedVm,
    KindStatus,
    SummaryRow,
    VmRow,
)


@dataclass(frozen=True)
class Deletion:
    time: str
    resource_id: str
    vm_id: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Failure:
    time: str
    type: str  # the alert's event type, e.g. vmkeeper.job.poisoned
    subject: str  # the VM id (or what failed)
    reason: str
    kind: str = ""  # the job's kind in vmkeeper's words (snapshot_set, restore, drill, replication...)
    step: str = ""  # the step that failed, when the job says
    code: str = ""  # Azure's error code (OperationNotAllowed, QuotaExceeded...), when known


@dataclass(frozen=True)
class FailureGroup:
    """Failures alike: one row per (kind, step, code, resource), with how often and when last."""

    kind: str
    step: str
    code: str
    resource: str
    count: int
    last: str  # ISO 8601 UTC: the newest one's time
    reason: str  # the newest one's reason


@dataclass(frozen=True)
class RestoreRow:
    id: str
    vm_id: str
    target_type: str
    state: str
    submitted: str
    finished: str | None
    principal: str


@dataclass(frozen=True)
class LeaseRow:
    """A file recovery or an export in flight (ready, or ending): what of whose point is readable where, until when."""

    id: str
    vm_id: str  # the source VM
    point_id: str  # the recovery point's catalogue id
    target_type: str  # files | export
    attached_to: str | None  # files: the operator's VM the disks are attached to
    disks: tuple[str, ...]  # the disks made (an export's one disk)
    luns: tuple[str, ...]  # files: "LUN n: <what it carries>", one per disk
    expires_at: str  # ISO 8601 UTC
    state: str  # ready | ending
    principal: str


@dataclass(frozen=True)
class DrillRow:
    id: str
    vm_id: str
    started: str  # ISO 8601 UTC: when the drill asked for its restore
    result: str  # running | passed | failed
    rto_seconds: float | None  # restore requested → VM running with its agent Ready
    rpo_seconds: float | None  # the point's age when the drill began
    point_kind: str  # copy | snapshot_set | restore_point
    cleanup: str  # "" (not yet) | kept | removing | removed
    reason: str = ""  # why it failed


@dataclass(frozen=True)
class ReportData:
    generated: str  # ISO 8601 UTC
    evaluated: str | None  # when compliance was last evaluated; None: never
    summary: tuple[SummaryRow, ...] = ()
    vms: tuple[VmRow, ...] = ()
    points_per_day: tuple[DayCount, ...] = ()  # the last 30 days, by kind
    deletions: tuple[Deletion, ...] = ()
    failures: tuple[Failure, ...] = ()
    restores: tuple[RestoreRow, ...] = ()
    leases: tuple[LeaseRow, ...] = ()  # file recoveries and exports ready or ending, soonest expiry first
    drills: tuple[DrillRow, ...] = ()  # newest first
    notes: tuple[str, ...] = field(default=())  # what could not be read, said on the page
    cost: dict[str, Any] | None = None  # the cost run's record (shared/cost/service.py recorded()); None: never ran
    vaults: tuple[VaultPosture, ...] = ()  # each vault's protection posture (docs/protected-vaults.md)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
