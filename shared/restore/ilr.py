"""Azure Backup item-level recovery (file recovery) of a vault point: provision a session, hand its mount script
to an operator, revoke it. Effects on ARM through the app's RecoveryServicesBackupClient; the rules (the bounded
duration, the script's file name) are the pure functions at the top.

Like a restore step (``steps.py``), nothing here waits on Azure: ``provision`` and ``revoke`` send once, note what
they sent in the context they return, and answer ``Wait`` (look again after Azure's Retry-After) until the
operation has ended. Run twice (a crash, a redelivered message), they send nothing twice that matters: a provision
on a point whose session is active keeps that session, a revoke of what is gone is ``Next``.

The mount script carries a password that opens the point's disks for as long as the session lasts: a secret.
vmkeeper keeps it nowhere. Azure Backup keeps it with the session, and :func:`scripts` fetches it from Azure
(``listInstantItemRecoveryOperationResult``) each time an operator asks, for a caller with ``Restore.Operator``
only, to be sent in that one response (``Cache-Control: no-store``). What is stored — the restore's record —
holds the provision's operation id and times, which open nothing without vmkeeper's own Azure role. Once the
session is revoked or over, the script is gone with it. Nothing here logs a script; :class:`Script` leaves its
content out of its ``repr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..azure.retry_after import retry_after_seconds
from ..instants import format_instant, parse_instant
from .access import Principal, parse_id
from .steps import Fail, Next, Result, Wait

# Azure's limit: "The script gives read-only access to a recovery point and is valid for only 12 hours" (Learn,
# "Recover files from Azure virtual machine backup", articles/backup/backup-azure-restore-files-from-vm.md,
# section Security; its Troubleshooting table: "…exceeded the 12-hr limit"). The REST call takes no duration:
# vmkeeper revokes at the end of the one asked for, Azure at its 12 hours whatever happens to vmkeeper.
MAX_HOURS = 12.0
DEFAULT_HOURS = 12.0
MIN_HOURS = 0.25
WAIT = 5  # seconds before looking again when Azure gives no Retry-After
FABRIC = "Azure"
# The emulator's codes (no contract names any): see emulator/README.md, "Where no official example exists".
NO_SESSION = "UserErrorNoActiveIlrSession"
IN_PROGRESS = "UserErrorIlrProvisionInProgress"
_OPERATION = re.compile(r"/(?:operationsStatus|operationResults|backupOperations)/([^/?]+)", re.IGNORECASE)


class NotOperator(PermissionError):
    """The caller may not read a mount script (it needs Restore.Operator)."""


class Gone(Exception):
    """The session is over (revoked, or its time ended): there is no script to give."""


class NotYet(Exception):
    """The session is still being provisioned: its script comes when the provision has ended."""


@dataclass(frozen=True)
class Script:
    """One client script of a session: run on the machine that is to see the point's files."""

    os_type: str  # Windows | Linux (the backed-up VM's)
    extension: str  # .exe, .ps1 (Windows) or .py (Linux)
    name: str  # the file name to save it as
    content: str | None = field(default=None, repr=False)  # the secret: never logged
    url: str | None = None  # where Azure serves it instead of content (the Windows executable)


# --- pure -----------------------------------------------------------------------------------------
def bounded_hours(hours: Any) -> float:
    """The session's duration in hours: DEFAULT_HOURS when absent; ValueError naming ``duration_hours`` unless
    a number from MIN_HOURS to Azure's MAX_HOURS."""
    if hours is None:
        return DEFAULT_HOURS
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours != hours:
        raise ValueError("duration_hours: must be a number of hours")
    if not MIN_HOURS <= hours <= MAX_HOURS:
        raise ValueError(f"duration_hours: {hours:g} is not from {MIN_HOURS:g} to {MAX_HOURS:g} (Azure Backup ends a "
                         "file recovery session after 12 hours)")
    return float(hours)


def script_name(vm: str, suffix: str | None, extension: str) -> str:
    """``{vm}_{suffix}{extension}``: Azure's scriptNameSuffix is "mandatory … added to the name of script that is
    given for download to user" (swagger ClientScriptForConnect), ignored when empty."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", vm)
    return f"{safe}_{suffix}{extension}" if suffix else f"{safe}{extension}"


def operation_id(headers: Any) -> str | None:
    """The operation a provision or revoke started, from its Azure-AsyncOperation (or Location) URL."""
    for name in ("Azure-AsyncOperation", "Location"):
        match = _OPERATION.search((headers or {}).get(name) or "")
        if match:
            return match.group(1)
    return None


# --- effects --------------------------------------------------------------------------------------
def _point(point_id: str) -> tuple[str, str, str, str, str, str]:
    """(subscription, group, vault, container, item, point) of a vault point id (BadId otherwise)."""
    p = parse_id(point_id, "vault_point")
    return p.subscription, p.group, p.parts["vault"], p.parts["container"], p.parts["item"], p.name


def _error(exc: Exception) -> tuple[int, str, str]:
    error = getattr(exc, "error", None)
    return (getattr(exc, "status_code", 0) or 0, getattr(error, "code", None) or type(exc).__name__,
            getattr(error, "message", None) or str(exc))


def _headers(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    return pipeline_response.http_response.headers


def _status(arm: Any, point_id: str, operation: str) -> tuple[str, dict[str, Any], int | None]:
    """(status, error, Retry-After seconds) of an operation on the point's protected item."""
    sub, rg, vault, container, item, _ = _point(point_id)
    seen: dict[str, int | None] = {}

    def hook(response: Any) -> None:
        seen["after"] = retry_after_seconds(response.http_response.headers)

    status = arm.backup(sub).protected_item_operation_statuses.get(vault, rg, FABRIC, container, item, operation,
                                                                   raw_response_hook=hook)
    error, value = status.error, status.status or ""
    return (str(getattr(value, "value", value)),  # the SDK's enum member: its value, not "OperationStatusValues.…"
            {"code": getattr(error, "code", None), "message": getattr(error, "message", None)}, seen.get("after"))


def session_active(arm: Any, point_id: str) -> bool | None:
    """Whether Azure says the point has an active session (``isInstantIlrSessionActive``); None: no such point."""
    from azure.core.exceptions import ResourceNotFoundError

    sub, rg, vault, container, item, point = _point(point_id)
    try:
        found = arm.backup(sub).recovery_points.get(vault, rg, FABRIC, container, item, point)
    except ResourceNotFoundError:
        return None
    return bool((found.properties or {}).get("isInstantIlrSessionActive"))


def provision(arm: Any, point_id: str, vm_id: str, context: dict[str, Any], *, now: datetime,
              hours: Any = None, initiator: str | None = None) -> Result:
    """Open (or keep) a file recovery session on the vault point of VM ``vm_id`` for ``hours`` (bounded_hours).

    First ``Wait(0)`` noting ``ilr_was_active`` (a session someone opened before this one: the caller decides
    whether its revoke may end it); then one POST, noting ``ilr_operation`` (the id :func:`scripts` needs),
    ``ilr_sent_at`` and ``ilr_expires_at`` (sent + hours: never after Azure's own end, which counts from later);
    then ``Wait`` by Azure's Retry-After until the operation ends: ``Next`` when it succeeded, ``Fail`` if not."""
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.recoveryservicesbackup.models import IaasVMILRRegistrationRequest, ILRRequestResource

    span = bounded_hours(hours)
    parse_id(vm_id, "vm")
    if "ilr_was_active" not in context:
        active = session_active(arm, point_id)
        if active is None:
            return Fail(f"vault point {point_id} was not found: no file recovery", "NotFound")
        return Wait(0, "noting whether a file recovery session is active", {"ilr_was_active": active})
    operation = context.get("ilr_operation")
    if operation:
        status, error, after = _status(arm, point_id, operation)
        if status.lower() == "succeeded":
            return Next()
        if status.lower() in ("failed", "canceled", "invalid"):
            return Fail(f"Azure Backup could not provision file recovery ({error['code']}): {error['message']}"[:2000],
                        "FileRecoveryFailed")
        return Wait(after or WAIT, "file recovery being provisioned")
    sub, rg, vault, container, item, point = _point(point_id)
    request = ILRRequestResource(properties=IaasVMILRRegistrationRequest(
        recovery_point_id=point, virtual_machine_id=vm_id, initiator_name=initiator,
        renew_existing_registration=bool(context["ilr_was_active"])))
    try:
        headers = arm.backup(sub).item_level_recovery_connections.provision(
            vault, rg, FABRIC, container, item, point, request, cls=_headers)
    except HttpResponseError as exc:
        status_code, code, message = _error(exc)
        return Fail(f"Azure Backup refused file recovery on {point_id} ({code}): {message}"[:2000],
                    "NotFound" if status_code == 404 else "Forbidden" if status_code == 403 else "FileRecoveryRefused")
    operation = operation_id(headers)
    if not operation:
        return Fail("Azure Backup accepted file recovery without naming its operation", "FileRecoveryFailed")
    return Wait(retry_after_seconds(headers) or WAIT, "file recovery being provisioned", {
        "ilr_operation": operation, "ilr_sent_at": format_instant(now),
        "ilr_expires_at": format_instant(now + timedelta(hours=span))})


def due(context: dict[str, Any], now: datetime) -> bool:
    """Whether the session's time (``ilr_expires_at``) has come: the expiry timer revokes it then."""
    expires = parse_instant(context.get("ilr_expires_at"))
    return expires is not None and now >= expires


def scripts(principal: Principal, arm: Any, point_id: str, context: dict[str, Any]) -> list[Script]:
    """The session's client scripts, fetched from Azure for a caller with Restore.Operator (NotOperator
    otherwise), to be sent once in the answer to that caller and not kept. Gone when the session is over."""
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.recoveryservicesbackup.models import InstantItemRecoveryOperationResultRequest

    if not principal.can_restore():
        raise NotOperator("a file recovery script opens the point's disks: it is given to Restore.Operator only")
    operation = context.get("ilr_operation")
    if not operation:
        raise Gone("no file recovery was provisioned")
    sub, rg, vault, container, item, point = _point(point_id)
    try:
        target = arm.backup(sub).item_level_recovery_connections.list_instant_item_recovery_operation_result(
            rg, vault, FABRIC, container, item, point,
            InstantItemRecoveryOperationResultRequest(provision_instant_item_recovery_operation_id=operation))
    except HttpResponseError as exc:
        status_code, code, _ = _error(exc)
        if status_code == 404 or code == NO_SESSION:
            raise Gone(f"the file recovery session on {point_id} is over ({code})") from None
        if code == IN_PROGRESS:
            raise NotYet(f"file recovery on {point_id} is still being provisioned") from None
        raise
    vm = item.rsplit(";", 1)[-1]
    return [Script(s.os_type or "", s.script_extension or "", script_name(vm, s.script_name_suffix, s.script_extension or ""),
                   s.script_content or None, s.url or None) for s in target.client_scripts or []]


def revoke(arm: Any, point_id: str, context: dict[str, Any] | None = None) -> Result:
    """End the point's session. Idempotent: a point without one (never provisioned, revoked, over, or the point
    itself gone) is ``Next``; else one POST, noting ``ilr_revoke_operation``, then ``Wait`` until it ends. A revoke
    refused, or whose operation ended failed with the session still active, is ``Fail`` (its operation forgotten, so
    the next try sends it again)."""
    from azure.core.exceptions import HttpResponseError

    context = context or {}
    operation = context.get("ilr_revoke_operation")
    if operation:
        status, error, after = _status(arm, point_id, operation)
        if status.lower() == "succeeded":
            return Next()
        if status.lower() in ("failed", "canceled", "invalid"):
            if not session_active(arm, point_id):
                return Next()
            # Said (the restore's end alerts once) and tried again: sent afresh, the failed operation forgotten.
            return Fail(f"Azure Backup's revoke of file recovery on {point_id} ended {status} ({error['code']}): "
                        f"{error['message']}"[:2000], "RevokeFailed", {"ilr_revoke_operation": None})
        return Wait(after or WAIT, "file recovery being revoked")
    if not session_active(arm, point_id):
        return Next()
    sub, rg, vault, container, item, point = _point(point_id)
    try:
        headers = arm.backup(sub).item_level_recovery_connections.revoke(vault, rg, FABRIC, container, item, point,
                                                                          cls=_headers)
    except HttpResponseError as exc:
        status_code, code, message = _error(exc)
        if status_code == 404 or code == NO_SESSION:  # over between the look and the revoke
            return Next()
        return Fail(f"Azure Backup refused to revoke file recovery on {point_id} ({code}): {message}"[:2000],
                    "Forbidden" if status_code == 403 else "RevokeRefused")
    return Wait(retry_after_seconds(headers) or WAIT, "file recovery being revoked",
                {"ilr_revoke_operation": operation_id(headers)})
