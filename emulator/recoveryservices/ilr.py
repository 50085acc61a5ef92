"""Azure Backup item-level recovery (ILR, "file recovery") on a recovery point, as plain state: a session a
provision opens (or renews), a revoke or Azure's 12-hour limit ends, and the client scripts it hands out.

Kept in the protected item (``internal["ilr"]``, by recovery point name), so a session goes with its item or
point. A session is active while ``now < expiry``; an expired one is dropped the first time it is looked at.
Learn, "Recover files from Azure virtual machine backup" (articles/backup/backup-azure-restore-files-from-vm.md,
section Security): "The script gives read-only access to a recovery point and is valid for only 12 hours";
Troubleshooting: "…exceeded the 12-hr limit". The REST API has no duration: the limit is the service's.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..core.state import Resource

SESSION_SECONDS = 12 * 3600.0  # Azure's limit on an ILR session (Learn, above)
EXTENSIONS = {"Windows": (".exe", ".ps1"), "Linux": (".py",)}  # Learn: an executable for Windows, Python for Linux


def _sessions(item: Resource) -> dict[str, dict[str, Any]]:
    return item.internal.setdefault("ilr", {})


def session(item: Resource, point: str, now: float) -> dict[str, Any] | None:
    """The point's active session, or None (an expired one is dropped)."""
    sessions = _sessions(item)
    found = sessions.get(point.lower())
    if found is not None and found["expiry"] <= now:
        del sessions[point.lower()]
        return None
    return found


def open_session(item: Resource, point: dict[str, Any], now: float, *, vm_id: str, initiator: str | None,
                 renew: bool) -> dict[str, Any]:
    """What a provision does when its operation ends: a new session for 12 hours; an active one is kept as it is
    (the same target and password), its 12 hours counted again only when ``renewExistingRegistration``."""
    current = session(item, point["name"], now)
    if current is not None:
        if renew:
            current["expiry"] = now + SESSION_SECONDS
        current["renewals"] = current.get("renewals", 0) + (1 if renew else 0)
        return current
    target = {
        "point": point["name"], "osType": point.get("osType") or "Linux", "virtualMachineId": vm_id,
        "initiatorName": initiator or "", "renewExistingRegistration": renew, "start": now,
        "expiry": now + SESSION_SECONDS, "iqn": f"iqn.2016-01.com.microsoft.azurebackup:{secrets.token_hex(8)}",
        "password": secrets.token_urlsafe(15), "renewals": 0,
    }
    _sessions(item)[point["name"].lower()] = target
    return target


def close_session(item: Resource, point: str) -> bool:
    """A revoke's end: the session is gone (False: there was none)."""
    return _sessions(item).pop(point.lower(), None) is not None


def client_scripts(target: dict[str, Any], vm_name: str, region: str, expiry_text: str) -> list[dict[str, Any]]:
    """InstantItemRecoveryTarget.clientScripts for the session's OS: Windows an executable (by URL) and a
    PowerShell script, Linux a Python script. Each script carries the session's CHAP password (a secret)."""
    portal = f"pod01-rec2.{region}.backup.windowsazure.com"
    suffix = target["point"]
    if target["osType"].lower() == "windows":
        content = (f"# Azure Backup file recovery: mounts recovery point {suffix} of {vm_name} (read-only) over iSCSI\n"
                   f"# Valid until {expiry_text}\n"
                   "Start-Service -Name MSiSCSI\n"
                   f"$chap = '{target['password']}'\n"
                   f"New-IscsiTargetPortal -TargetPortalAddress '{portal}' -TargetPortalPortNumber 3260\n"
                   f"Connect-IscsiTarget -NodeAddress '{target['iqn']}' -TargetPortalAddress '{portal}' "
                   f"-AuthenticationType MUTUALCHAP -ChapUsername '{target['initiatorName'] or vm_name}' -ChapSecret $chap\n")
        return [
            {"scriptExtension": ".exe", "osType": "Windows", "scriptNameSuffix": suffix,
             "url": f"https://{portal}/ilr/{target['iqn'].rsplit(':', 1)[-1]}/{vm_name}_{suffix}.exe"},
            {"scriptContent": content, "scriptExtension": ".ps1", "osType": "Windows", "scriptNameSuffix": suffix},
        ]
    content = ("#!/usr/bin/env python3\n"
               f"# Azure Backup file recovery: mounts recovery point {suffix} of {vm_name} (read-only) over iSCSI\n"
               f"# Valid until {expiry_text}\n"
               "import subprocess\n"
               f"PORTAL, IQN, CHAP = '{portal}:3260', '{target['iqn']}', '{target['password']}'\n"
               "subprocess.run(['iscsiadm', '-m', 'discovery', '-t', 'sendtargets', '-p', PORTAL], check=True)\n"
               "subprocess.run(['iscsiadm', '-m', 'node', '-T', IQN, '-p', PORTAL, '--login'], check=True)\n")
    return [{"scriptContent": content, "scriptExtension": ".py", "osType": "Linux", "scriptNameSuffix": suffix}]
