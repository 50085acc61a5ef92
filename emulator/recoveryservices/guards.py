"""A vault's protection posture: its security settings (soft delete, immutability) and multi-user authorization
(MUA) through a Resource Guard that a backupResourceGuardProxies child names. Rules on plain state; the routes are
in responses.py. Where each rule comes from, and which codes are the emulator's own: emulator/README.md,
"Protected vaults".

The Resource Guard itself (Microsoft.DataProtection/resourceGuards, often in another subscription or tenant) is not
served here: a proxy names it by id, and who may act on it is read from the emulator's role assignments
(core/rbac.py) — strictly: only a principal with an explicit assignment granting the guard's operation passes,
unlike ARM's own checks, which are permissive for a principal with no assignment. MUA's point is that nobody
holds that by default."""

from __future__ import annotations

from typing import Any

from ..core.errors import ArmError
from ..core.state import Resource, Store

PROXY_TYPE = "Microsoft.RecoveryServices/vaults/backupResourceGuardProxies"
PROXY_NAME = "VaultProxy"  # the only name Azure accepts for a Recovery Services vault's proxy
GUARD_TYPE = "microsoft.dataprotection/resourceguards"
UNLOCK_SECONDS = 600.0  # how long an unlockDelete lets the named resource be deleted (the emulator's choice)

# The critical operations of a Recovery Services vault, as a proxy lists them (vaultCriticalOperation) and as a
# request names them ({guard}/{operation}/default). GetResourceGuardProxy example (2026-10-01) for the first two,
# the DataProtection resourceGuards request collections for the others; triggerRestoreRequests from the
# 2026-10-01 TriggerRestore_ResourceGuardEnabled example.
DELETE_PROXY = "deleteResourceGuardProxyRequests"
DISABLE_SOFT_DELETE = "disableSoftDeleteRequests"
DELETE_ITEM = "deleteProtectedItemRequests"
UPDATE_ITEM = "updateProtectedItemRequests"
UPDATE_POLICY = "updateProtectionPolicyRequests"
SECURITY_PIN = "getBackupSecurityPINRequests"
TRIGGER_RESTORE = "triggerRestoreRequests"
MANDATORY = (DELETE_PROXY, DISABLE_SOFT_DELETE)
CRITICAL = (*MANDATORY, DELETE_ITEM, UPDATE_ITEM, UPDATE_POLICY, SECURITY_PIN, TRIGGER_RESTORE)

IMMUTABILITY_STATES = ("Disabled", "Unlocked", "Locked")
SOFT_DELETE_STATES = ("Enabled", "Disabled", "AlwaysON")
LOCKED_MESSAGE = ("The immutable vault property for this vault is locked, hence, this setting cannot be disabled. The "
                  "vault has its immutable vault property enabled and locked, and it can no longer be reverted to a "
                  "non-immutable vault. Refer to the documentation to learn more: https://aka.ms/AB-ImmutableVaults-States")


def critical_operation(name: str) -> str:
    return f"Microsoft.DataProtection/resourceGuards/{name}"


def guard_action(name: str) -> str:
    """The role action a caller needs on the guard to perform a critical operation (the emulator's naming)."""
    return f"Microsoft.DataProtection/resourceGuards/{name}/write"


# --- security settings -------------------------------------------------------------------------------
def _state(settings: dict[str, Any], block: str, field: str, allowed: tuple[str, ...], default: str) -> str:
    value = (settings.get(block) or {}).get(field, default)
    for known in allowed:
        if isinstance(value, str) and value.lower() == known.lower():
            return known
    raise ArmError(f"properties.securitySettings.{block}.{field}: one of {', '.join(allowed)}.",
                   code="BMSUserErrorInvalidInput", status=400, target=f"properties.securitySettings.{block}.{field}")


def immutability(vault: Resource) -> str:
    settings = vault.properties.get("securitySettings") or {}
    return _state(settings, "immutabilitySettings", "state", IMMUTABILITY_STATES, "Disabled")


def soft_delete(vault: Resource) -> str:
    settings = vault.properties.get("securitySettings") or {}
    return _state(settings, "softDeleteSettings", "softDeleteState", SOFT_DELETE_STATES, "Enabled")


def is_immutable(vault: Resource) -> bool:
    return immutability(vault) in ("Unlocked", "Locked")


def check_security_settings(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The vault's securitySettings after a PUT (``old`` None: a new vault): Locked immutability can't be made on
    create (Azure: create Unlocked, then lock) nor left (Unlocked or Disabled); AlwaysON soft delete can't be left;
    retention of soft-deleted data is 14-180 days."""
    if not isinstance(new, dict):
        raise ArmError("properties.securitySettings: must be an object.", code="BMSUserErrorInvalidInput",
                       target="properties.securitySettings")
    merged = {**(old or {}), **new}
    state = _state(merged, "immutabilitySettings", "state", IMMUTABILITY_STATES, "Disabled")
    before = _state(old or {}, "immutabilitySettings", "state", IMMUTABILITY_STATES, "Disabled") if old else None
    if state == "Locked" and before not in ("Unlocked", "Locked"):
        raise ArmError(LOCKED_MESSAGE if before is None else
                       "properties.securitySettings.immutabilitySettings.state: a vault is locked from Unlocked only "
                       "(enable immutability first, then lock it).",
                       code="UserErrorUnsupportedVaultImmutabilityStateChange", status=400,
                       target="properties.securitySettings.immutabilitySettings.state")
    if before == "Locked" and state != "Locked":
        raise ArmError(LOCKED_MESSAGE, code="UserErrorUnsupportedVaultImmutabilityStateChange", status=400,
                       target="properties.securitySettings.immutabilitySettings.state")
    soft = _state(merged, "softDeleteSettings", "softDeleteState", SOFT_DELETE_STATES, "Enabled")
    soft_before = _state(old or {}, "softDeleteSettings", "softDeleteState", SOFT_DELETE_STATES, "Enabled") if old else None
    if soft_before == "AlwaysON" and soft != "AlwaysON":
        raise ArmError("properties.securitySettings.softDeleteSettings.softDeleteState: soft delete is always-on for "
                       "this vault and can't be disabled.", code="UserErrorSoftDeleteAlwaysOnCannotBeChanged",
                       status=400, target="properties.securitySettings.softDeleteSettings.softDeleteState")
    days = (merged.get("softDeleteSettings") or {}).get("softDeleteRetentionPeriodInDays", 14)
    if not isinstance(days, int) or isinstance(days, bool) or not 14 <= days <= 180:
        raise ArmError("properties.securitySettings.softDeleteSettings.softDeleteRetentionPeriodInDays: 14 to 180.",
                       code="BMSUserErrorInvalidInput", status=400,
                       target="properties.securitySettings.softDeleteSettings.softDeleteRetentionPeriodInDays")
    return merged


def immutable_refusal(vault: Resource, what: str) -> ArmError:
    return ArmError(f"{what} is not allowed: vault '{vault.name}' is immutable ({immutability(vault)}), and an immutable "
                    "vault blocks operations that could lose recovery points.",
                    code="UserErrorOperationNotAllowedOnImmutableVault", status=400)


# --- proxies ---------------------------------------------------------------------------------------------
def proxies(store: Store, vault: Resource) -> list[Resource]:
    return store.of_type(PROXY_TYPE, vault.id)


def operation_details(guard_id: str, excluded: list[str] | None = None) -> list[dict[str, str]]:
    out = []
    for name in CRITICAL:
        if excluded and name in excluded and name not in MANDATORY:
            continue
        out.append({"vaultCriticalOperation": critical_operation(name), "defaultResourceRequest": f"{guard_id}/{name}/default"})
    return out


def parse_guard_id(value: Any, field: str) -> str:
    parts = value.split("/") if isinstance(value, str) else []
    if len(parts) != 9 or parts[0] or parts[1].lower() != "subscriptions" or parts[3].lower() != "resourcegroups" \
            or parts[5].lower() != "providers" or f"{parts[6]}/{parts[7]}".lower() != GUARD_TYPE or not parts[8]:
        raise ArmError(f"{field}: '{value}' is not a Resource Guard id (/subscriptions/…/resourceGroups/…/providers/"
                       "Microsoft.DataProtection/resourceGuards/{name}).", code="BMSUserErrorInvalidInput", status=400,
                       target=field)
    return value


def guarding(store: Store, vault: Resource, operation: str) -> list[str]:
    """The guards (ids) a critical operation on the vault needs, by its proxies' operation details."""
    wanted = critical_operation(operation).lower()
    return [p.properties["resourceGuardResourceId"] for p in proxies(store, vault)
            if any(str(d.get("vaultCriticalOperation", "")).lower() == wanted
                   for d in p.properties.get("resourceGuardOperationDetails") or [])]


def check(req: Any, store: Store, vault: Resource, operation: str, requests: Any, what: str) -> None:
    """A critical operation on a vault with a proxy that guards it: the request must name the guard's operation
    (``{guard}/{operation}/…``) and the caller must hold that operation on the guard. The check on the guard is
    ARM's linked access check (the SDK: "ResourceGuardOperationRequests on which LAC check will be performed"),
    recorded in the call log as LINKED; 403 LinkedAuthorizationFailed when not granted."""
    guards = guarding(store, vault, operation)
    if not guards:
        return
    named = [r for r in requests if isinstance(r, str)] if isinstance(requests, list) else []
    emulator, principal = req.emulator, req.bearer_token()
    for guard in guards:
        prefix = f"{guard}/{operation}/".lower()
        request = next((r for r in named if r.lower().startswith(prefix)), None)
        if request is None:
            raise ArmError(f"{what} is a critical operation protected by the Resource Guard '{guard}' (multi-user "
                           f"authorization): the request must carry resourceGuardOperationRequests naming "
                           f"'{guard}/{operation}/default', with access to it granted on the Resource Guard.",
                           code="UserErrorResourceGuardOperationRequestMissing", status=400,
                           target="properties.resourceGuardOperationRequests")
        action = guard_action(operation)
        allowed = principal is not None and any(a.principal == principal and a.allows(action, request)
                                                for a in emulator.rbac.assignments)
        emulator.calls.record("LINKED", request, action, 200 if allowed else 403, emulator.clock.timestamp(),
                              req.headers.get("user-agent"))
        if not allowed:
            raise emulator.rbac.refused(principal, req.route.operation if req.route else "", req.path.rstrip("/"),
                                        [(action, request)])


# --- unlockDelete: a delete that MUA guards is allowed for a while after the guard said yes ------------------
def unlock(vault: Resource, resource_id: str, now: float) -> float:
    until = now + UNLOCK_SECONDS
    vault.internal.setdefault("unlocked", {})[resource_id.lower()] = until
    return until


def unlocked(vault: Resource, resource_id: str, now: float) -> bool:
    return (vault.internal.get("unlocked") or {}).get(resource_id.lower(), 0.0) > now


def check_delete(store: Store, vault: Resource, resource_id: str, operation: str, now: float, what: str) -> None:
    """A delete MUA guards (a protected item's data, the proxy itself) needs an unlockDelete of that resource first."""
    guards = guarding(store, vault, operation)
    if guards and not unlocked(vault, resource_id, now):
        raise ArmError(f"{what} is a critical operation protected by the Resource Guard '{guards[0]}' (multi-user "
                       f"authorization): unlock it first (POST {vault.id}/backupResourceGuardProxies/{PROXY_NAME}/"
                       f"unlockDelete with resourceGuardOperationRequests naming '{guards[0]}/{operation}/default' and "
                       "resourceToBeDeleted naming it).", code="UserErrorResourceGuardOperationRequestMissing", status=400)
