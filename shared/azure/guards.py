"""A Recovery Services vault's multi-user authorization (MUA), as vmkeeper reads it: the Resource Guard the vault's
proxy names and the critical operations that guard protects (Learn, "Multi-user authorization using Resource
Guard"). Reads only: vmkeeper writes no proxy and holds no role on any guard — a guarded operation needs an
approver's just-in-time grant on the guard, which an unattended identity must never have (docs/protected-vaults.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TRIGGER_RESTORE = "triggerRestoreRequests"  # a restore from a vault point, where the guard protects restores


@dataclass(frozen=True)
class Guard:
    id: str  # the Resource Guard's resource id
    operations: frozenset[str]  # the critical operations it protects on the vault (lower case, e.g. triggerrestorerequests)

    def protects(self, operation: str) -> bool:
        return operation.lower() in self.operations


def vault_guard(arm: Any, vault_id: str) -> Guard | None:
    """The Resource Guard protecting the vault, None when it has no proxy (no MUA)."""
    from azure.mgmt.core.tools import parse_resource_id

    p = parse_resource_id(vault_id)
    for proxy in arm.backup(p["subscription"]).resource_guard_proxies.get(p["name"], p["resource_group"]):
        props = proxy.properties
        if props is None or not props.resource_guard_resource_id:
            continue
        operations = frozenset((d.vault_critical_operation or "").rsplit("/", 1)[-1].lower()
                               for d in props.resource_guard_operation_details or [])
        return Guard(props.resource_guard_resource_id, operations)
    return None


def refusal(vault_id: str, guard: Guard, operation: str, what: str) -> str:
    """Why vmkeeper does not send an operation the guard protects, and who can."""
    return (f"{what}: the vault {vault_id} is protected by the Resource Guard {guard.id} (multi-user authorization), "
            f"which guards this operation ({operation}). vmkeeper's identity holds no role on the guard, by design, so "
            "Azure Backup would refuse it: an operator with just-in-time access on the guard (its owner's approval) runs "
            f"it instead, naming {guard.id}/{operation}/default in resourceGuardOperationRequests (the portal does this).")
