"""What compliance decides, as plain data: a VM's state and each kind's, the reason in words, the VMs listed but
not judged, the counts per subscription and policy (shared/compliance/rpo.py decides them; shared/report shows them,
the CLI's ``--json`` prints them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..points.model import (  # noqa: F401 (compliance's words for them)
    COPY,
    ISOLATED_COPY,
    REPLICA,
    RESTORE_POINT,
    RESTORE_POINT_COPY,
    SNAPSHOT_COPY,
    SNAPSHOT_SET,
    VAULT,
)
from ..points.model import JUDGED_KINDS as KINDS  # noqa: F401

POINT_KINDS = tuple(k for k in KINDS if k != REPLICA)  # the kinds counted per day (a replica's points are ASR's)

# A VM's compliance states, worst first: ``breached`` (a kind's newest point older than its RPO),
# ``not_protected`` (no policy applies, or no complete point of any kind it expects), ``missing`` (some
# kinds it expects have no complete point: ``VmRow.missing`` names them), ``not_supported`` (a machine no kind of
# point vmkeeper makes can cover — a Uniform scale set's instance: Azure Backup and VM restore points do not take
# them; the reason says so), ``met``, ``opted_out``.
BREACHED, NOT_PROTECTED, MISSING, MET, OPTED_OUT = "breached", "not_protected", "missing", "met", "opted_out"
NOT_SUPPORTED = "not_supported"
STATES = (BREACHED, NOT_PROTECTED, MISSING, NOT_SUPPORTED, MET, OPTED_OUT)
# What the gate (`vmkeeper status`) fails on and alerts say: a machine vmkeeper cannot protect is unprotected too,
# until an operator opts it out (its scale set's `vmkeeper-optout` tag): never a silent gap.
UNPROTECTED = (BREACHED, NOT_PROTECTED, MISSING, NOT_SUPPORTED)
# A kind's states: met, breached, or missing (no complete point of that kind); and, for the replica kind only,
# initial_replication: Site Recovery's first full copy in progress, within its allowance (shared/compliance/replica.py).
INITIAL_REPLICATION = "initial_replication"
KIND_STATES = (BREACHED, MISSING, MET, INITIAL_REPLICATION)
# Kinds of point, in Azure's words: a vault recovery point, a snapshot set, a VM restore point, and the
# copies of each of the last two in the policy's second region (judged apart: one kind's copies say
# nothing of the other's).
# nothing of the other's): the inventory's words (shared/points/model.py), imported above. COPY: rows recorded
# before copies were judged by kind (either kind's copy; read, never written).


@dataclass(frozen=True)
class KindStatus:
    kind: str
    state: str  # met | breached | missing
    rpo_hours: float
    newest: str | None = None  # ISO 8601 UTC time of the newest complete point; None: none
    age_hours: float | None = None
    point_id: str | None = None  # the restore API's catalogue id of that point; a replica's: its replicated item
    # The replica kind only: Azure's replicationHealth, healthErrors, protection state, rpoInSeconds and
    # lastRpoCalculatedTime, initial replication progress and since when (shared/compliance/replica.py).
    replication: dict[str, Any] | None = None
    # Snapshot sets and their copies: the newest complete point's immutabilityPolicy in Azure's words ({type:
    # Locked|Unlocked, policyExpirationTime}; None: it has none), and how many of the kind's points hold one now.
    immutability_policy: dict[str, Any] | None = None
    immutable_points: int = 0


@dataclass(frozen=True)
class VmRow:
    vm_id: str
    name: str
    subscription: str
    resource_group: str
    region: str
    policy: str | None  # None: no policy applies (opted out, a bad tag, no default)
    state: str
    reason: str  # why this state, in words ("newest snapshot set 30.2 h old, RPO 25 h")
    kinds: tuple[KindStatus, ...] = ()
    missing: tuple[str, ...] = ()  # the kinds it expects with no complete point (KINDS order)
    # The kinds its policy makes immutable whose newest complete point past its job's bound has no immutabilityPolicy
    # as the policy asks (none, Unlocked where Locked is asked, or one expiring before the policy's days): a finding,
    # said in ``reason`` and alerted (vmkeeper.immutability.missing), whatever the state.
    not_immutable: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExcludedVm:
    """A VM listed that is no fleet member (shared/membership.py: a restore's, a drill's or a test failover's): not
    judged, not counted, shown with why."""

    vm_id: str
    name: str
    resource_group: str
    region: str
    reason: str


@dataclass(frozen=True)
class SummaryRow:
    subscription: str
    policy: str  # "(none)" for VMs without one
    met: int = 0
    breached: int = 0
    not_protected: int = 0
    missing: int = 0
    opted_out: int = 0
    not_supported: int = 0


@dataclass(frozen=True)
class DayCount:
    day: str  # YYYY-MM-DD (UTC)
    kind: str
    count: int
