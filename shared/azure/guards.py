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


VAULT_API = "2024-04-01"  # Microsoft.RecoveryServices vaults: securitySettings with AlwaysON and immutabilitySettings


@dataclass(frozen=True)
class VaultPosture:
    """What protects a vault's backups from being deleted: soft delete, immutability, a Resource Guard."""

    vault_id: str
    soft_delete: str  # AlwaysON | Enabled | Disabled | "" (unread)
    immutability: str  # Locked | Unlocked | Disabled | "" (unread)
    guard: str = ""  # the Resource Guard's id; "" without MUA
    error: str = ""  # why it could not be read

    def findings(self) -> list[str]:
        """What leaves the vault's backups deletable by one identity (nothing when it could not be read: said apart)."""
        if self.error:
            return []
        out = []
        if self.soft_delete != "AlwaysON":
            out.append(f"soft delete is {self.soft_delete or 'off'}, not always-on")
        if self.immutability not in ("Unlocked", "Locked"):
            out.append("immutability is disabled")
        return out


def vault_posture(arm: Any, vault_id: str) -> VaultPosture:
    """The vault's security settings (a generic ARM GET: vaults/read) and its guard (backupResourceGuardProxies/read)."""
    from azure.core.exceptions import AzureError, HttpResponseError
    from azure.mgmt.core.tools import parse_resource_id

    try:
        vault = arm.resources(parse_resource_id(vault_id)["subscription"]).resources.get_by_id(vault_id, api_version=VAULT_API)
        security = (vault.properties or {}).get("securitySettings") or {}
        guard = vault_guard(arm, vault_id)
    except HttpResponseError as exc:
        return VaultPosture(vault_id, "", "", error=f"{exc.status_code} {exc.error.code if exc.error else ''}".strip())
    except AzureError as exc:  # no answer (a timeout, a reset): said on the page, never the evaluation's end
        return VaultPosture(vault_id, "", "", error=f"{type(exc).__name__}: {exc}"[:300])
    return VaultPosture(vault_id, str((security.get("softDeleteSettings") or {}).get("softDeleteState") or "Enabled"),
                        str((security.get("immutabilitySettings") or {}).get("state") or "Disabled"),
                        guard.id if guard else "")
