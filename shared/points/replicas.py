"""Site Recovery's replicated items (Azure-to-Azure), pure: what compliance needs of each, read from a
``replicationProtectedItems`` body in ARM's REST shape (the SDK's ``as_dict()``). shared/points/inventory.py lists
them, one paged list per vault that VMKEEPER_VAULTS names, in the same pass as the fleet's recovery points.

A replicated item is no recovery point (a restore cannot take it; its recovery points live in Site Recovery), so it
is kept beside the points (``FleetPoints.replicas``), by the VM it replicates: A2A's
``providerSpecificDetails.fabricObjectId``, the source VM's ARM id. Which instance of that VM it replicates, ASR
does not say (it has no vmId); its protected managed disks do: compliance counts an item for a VM only when it
replicates the VM's current OS disk (shared/compliance/replica.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..instants import parse_instant

# protectionState while the first full copy of the disks is made (and again after a reprotect).
INITIAL_STATES = frozenset({"EnablingProtection", "InitialReplicationInProgress", "ReprotectInProgress"})
PROTECTED = "Protected"


@dataclass(frozen=True)
class HealthError:
    code: str  # errorCode, e.g. RpoThresholdExceeded
    message: str  # summaryMessage (or errorMessage)
    recommended_action: str = ""

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "recommended_action": self.recommended_action}


@dataclass(frozen=True)
class ReplicatedItem:
    id: str  # the replicationProtectedItem's ARM id
    vault_id: str
    vm_id: str  # the VM it replicates (fabricObjectId), lower case
    protection_state: str  # e.g. InitialReplicationInProgress, Protected, FailoverCommitted
    health: str  # replicationHealth: Normal, Warning, Critical
    errors: tuple[HealthError, ...] = ()
    rpo_seconds: int | None = None  # the newest recovery point's age when ASR last calculated it
    rpo_calculated: datetime | None = None  # lastRpoCalculatedTime
    progress: int | None = None  # initial replication, percent (monitoringPercentageCompletion)
    disks: frozenset[str] = frozenset()  # the source managed disks it replicates, lower case
    source_region: str = ""
    target_region: str = ""
    recovery_vm: str = ""  # recoveryFabricObjectId, lower case: the VM a failover made (or a failback goes to)
    recovery_disks: frozenset[str] = frozenset()  # the recovery-side disks (recoveryTargetDiskId), lower case

    @property
    def failed_over(self) -> bool:
        """Failed over (completed or committed), not reprotected yet: production runs on ``recovery_vm``."""
        state = self.protection_state.lower()
        return "failover" in state and not state.startswith("test") and state.endswith(("completed", "committed"))

    @property
    def active_vm(self) -> str:
        """The VM the item is now about (its replica kind is judged on it): the failed-over VM while failed over, else
        the VM it replicates."""
        return self.recovery_vm if self.failed_over and self.recovery_vm else self.vm_id

    @property
    def standby_vm(self) -> str:
        """The pair's other VM (the source of a failed-over item; after a reprotect, the failback target): no replica
        of its own is expected of it."""
        other = self.vm_id if self.active_vm != self.vm_id else self.recovery_vm
        return "" if other == self.active_vm else other

    def disks_of(self, vm: str) -> frozenset[str]:
        """The item's disks on ``vm``'s side."""
        return self.recovery_disks if vm and vm == self.recovery_vm and vm != self.vm_id else self.disks

    @property
    def initial(self) -> bool:
        """The first full copy is still being made: no recovery point to fail over to yet."""
        return self.protection_state in INITIAL_STATES or self.progress is not None


def _details(props: Mapping[str, Any]) -> Mapping[str, Any]:
    details = props.get("providerSpecificDetails")
    return details if isinstance(details, Mapping) else {}


def replicated_item(body: Mapping[str, Any], vault_id: str) -> ReplicatedItem | None:
    """One item from its body; None for an item that is not Azure-to-Azure or names no VM."""
    props = body.get("properties") or {}
    a2a = _details(props)
    vm = str(a2a.get("fabricObjectId") or "").strip().lower()
    if str(a2a.get("instanceType") or "") != "A2A" or not vm.startswith("/subscriptions/"):
        return None
    errors = tuple(HealthError(str(e.get("errorCode") or ""), str(e.get("summaryMessage") or e.get("errorMessage") or ""),
                               str(e.get("recommendedAction") or ""))
                   for e in props.get("healthErrors") or [] if isinstance(e, Mapping))
    rpo = a2a.get("rpoInSeconds")
    progress = a2a.get("monitoringPercentageCompletion")
    initial_job = str(a2a.get("monitoringJobType") or "") == "InitialReplication"
    managed = [d for d in a2a.get("protectedManagedDisks") or [] if isinstance(d, Mapping)]
    disks = frozenset(str(d.get("diskId") or "").lower() for d in managed if d.get("diskId"))
    recovery_disks = frozenset(str(d.get("recoveryTargetDiskId") or "").lower() for d in managed
                               if d.get("recoveryTargetDiskId"))
    return ReplicatedItem(
        str(body.get("id") or ""), vault_id, vm, str(props.get("protectionState") or ""),
        str(props.get("replicationHealth") or ""), errors,
        int(rpo) if isinstance(rpo, int | float) and not isinstance(rpo, bool) else None,
        parse_instant(a2a.get("lastRpoCalculatedTime")),
        int(progress) if initial_job and isinstance(progress, int | float) and not isinstance(progress, bool) else None,
        disks, str(a2a.get("primaryFabricLocation") or ""), str(a2a.get("recoveryFabricLocation") or ""),
        str(a2a.get("recoveryFabricObjectId") or "").strip().lower(), recovery_disks)
