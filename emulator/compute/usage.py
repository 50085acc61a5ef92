"""Used size: what a snapshot or a disk restore point holds, which no resource property shows and on which Azure
bills it (Learn "Create an incremental snapshot": "incremental snapshots are billed for the used size only";
a full snapshot of a managed disk likewise on its used size). Kept in ``internal["usedBytes"]``, never on the
wire; the Cost Management emulation (emulator/costmanagement) prices it.

The model, deterministic so tests can compute what is billed: a disk holds ``used_fraction`` of its provisioned
bytes (``internal["usedBytes"]`` when a test set one); each day it changes ``daily_change_fraction`` of its used
bytes. A full snapshot holds the disk's used bytes; the first incremental point of a disk (snapshot or disk
restore point: one family here) too; a later one the bytes changed since the previous point of that disk, never
more than the used bytes. A copy to another region holds what its source holds.
"""

from __future__ import annotations

from typing import Any

from ..core.providers import Setting
from ..core.state import Resource

SETTING_NAME = "disk_usage"
DEFAULTS = {"used_fraction": 0.5, "daily_change_fraction": 0.02}


def merge_setting(current: dict[str, Any], value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError('settings.disk_usage: an object such as {"used_fraction": 0.5, "daily_change_fraction": 0.02}')
    unknown = set(value) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"settings.disk_usage: unknown field(s) {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    out = dict(current)
    for key, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
            raise ValueError(f"settings.disk_usage.{key}: a fraction from 0 to 1")
        out[key] = float(v)
    return out


SETTING = Setting(SETTING_NAME, dict(DEFAULTS), merge_setting)


def disk_used_bytes(emulator: Any, disk: Resource) -> int:
    if "usedBytes" in disk.internal:
        return int(disk.internal["usedBytes"])
    size = int(disk.properties.get("diskSizeBytes") or int(disk.properties.get("diskSizeGB") or 0) * 1024**3)
    return int(size * emulator.provider_settings[SETTING_NAME]["used_fraction"])


def new_point(emulator: Any, disk: Resource | None, now: float, *, incremental: bool) -> int:
    """The used bytes of a new snapshot or disk restore point of ``disk`` taken at ``now`` (remembered on the disk
    as its latest point)."""
    if disk is None:
        return 0
    used = disk_used_bytes(emulator, disk)
    last = disk.internal.get("lastPointAt")
    if incremental and last is not None:
        days = max(0.0, now - float(last)) / 86400.0
        held = min(used, int(used * emulator.provider_settings[SETTING_NAME]["daily_change_fraction"] * days))
    else:
        held = used
    disk.internal["lastPointAt"] = now
    return held
