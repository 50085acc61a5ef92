"""The names vmkeeper gives what it makes: derived from the VM, the disk and the slot only, so a
re-run of a slot PUTs the same names (and creates nothing new), and retention can re-derive a name to
know an artifact is vmkeeper's. ``disk``: anything with ``id`` and ``lun`` (None: the OS disk)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from .instants import format_instant

_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")

def _hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def slot_text(slot: datetime) -> str:
    return format_instant(slot)  # the SLOT tag's form (slots are whole seconds)


def _name_part(vm_name: str, limit: int) -> str:
    # VM names are already in the allowed alphabet; anything else (a foreign inventory) becomes '-'.
    return _NOT_NAME.sub("-", vm_name)[:limit] or "vm"


def snapshot_name(vm_name: str, disk: Any, slot: datetime) -> str:
    """``vmk-{vm[:20]}-{lun|os}-{yyyymmddHHMM}-{sha256(disk id + slot)[:8]}``: at most 49 characters, starts
    with a letter and ends with a hex digit, so always a valid snapshot name."""
    part = "os" if disk.lun is None else str(disk.lun)
    stamp = slot.astimezone(UTC).strftime("%Y%m%d%H%M")
    return f"vmk-{_name_part(vm_name, 20)}-{part}-{stamp}-{_hash(disk.id.lower() + slot_text(slot))}"


def collection_name(vm_id: str, vm_name: str) -> str:
    """One restore point collection per VM, the same for every slot."""
    return f"vmk-rpc-{_name_part(vm_name, 40)}-{_hash(vm_id.lower())}"


def restore_point_name(vm_id: str, slot: datetime) -> str:
    stamp = slot.astimezone(UTC).strftime("%Y%m%d%H%M")
    return f"vmk-rp-{stamp}-{_hash(vm_id.lower() + slot_text(slot))}"


def set_id(vm_id: str, slot: datetime) -> str:
    """Shared by everything one VM's run of one slot makes (16 hex)."""
    return _hash(f"set|{vm_id.lower()}|{slot_text(slot)}", 16)


def copy_name(name: str, region: str) -> str:
    """The name of a snapshot's (or restore point collection's) copy in another region (≤ 80 characters)."""
    suffix = f"-{region}"
    return name[: 80 - len(suffix)] + suffix


def container_name(resource_group: str, vm_name: str) -> str:
    """Azure Backup's protection container of a VM (its names are Backup's, lower case)."""
    return f"IaasVMContainer;iaasvmcontainerv2;{resource_group.lower()};{vm_name.lower()}"


def item_name(resource_group: str, vm_name: str) -> str:
    """Azure Backup's protected item of a VM."""
    return f"VM;iaasvmcontainerv2;{resource_group.lower()};{vm_name.lower()}"
