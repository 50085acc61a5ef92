"""What vmkeeper made, by its deterministic names (shared/names.py) as well as its tags. Pure.

Tags can be copied by hand: a snapshot an operator makes with vmkeeper's tags copied onto it (managed-by,
vmkeeper-vm, vmkeeper-set, vmkeeper-slot, vmkeeper-lun...) would otherwise join a set, be deleted with it
by retention, be offered by the catalogue and counted by compliance. A name can't be copied by accident:
vmkeeper's names are derived from the VM, the disk and the slot, so an artifact is vmkeeper's only if its
name is the one vmkeeper derives from what it says it is.

- A snapshot: ``names.snapshot_name(VM name, disk, slot)`` -- the VM's name is the last segment of its
  ``vmkeeper-vm`` tag, the disk its ``creationData.sourceResourceId`` with the LUN of its ``vmkeeper-lun``
  tag (``None``: the OS disk), the slot its ``vmkeeper-slot`` tag.
- A second-region copy (CopyStart, or a ``vmkeeper-copy-of`` tag): ``names.copy_name(its source's name,
  its region)``, its source (``creationData.sourceResourceId``) being vmkeeper's: a snapshot listed with
  it must pass the rule above; one no longer listed (retention deleted the source set, or it is beyond the
  listing) must at least bear the name vmkeeper gives that VM's disk at that slot (all but the hash of
  the disk's id, which the copy does not carry).
- A restore point: ``names.restore_point_name(VM id, slot)``, the VM its collection's ``vmkeeper-vm``
  tag, the slot the one stamped in its name (copies keep their source's name).
Names are compared case-insensitively, as Azure does (the ``vmkeeper-vm`` tag is lower case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from .. import names
from .. import tags as T
from ..instants import parse_instant

_POINT_NAME = re.compile(r"vmk-rp-(\d{12})-[0-9a-f]{8}", re.IGNORECASE)  # names.restore_point_name
_HASH = re.compile(r"[0-9a-f]{8}", re.IGNORECASE)


class _Disk:
    __slots__ = ("id", "lun")

    def __init__(self, disk_id: str, lun: int | None):
        self.id, self.lun = disk_id, lun


def _value(tags: Mapping[str, Any] | None, name: str) -> str | None:
    """A tag's value, its name matched case-insensitively (as Azure does)."""
    value = next((v for k, v in (tags or {}).items() if str(k).lower() == name), None)
    return value if isinstance(value, str) else None


def _last(resource_id: Any) -> str:
    return str(resource_id or "").rstrip("/").rsplit("/", 1)[-1]


def _region(location: Any) -> str:
    return str(location or "").replace(" ", "").lower()


_NO_LUN = object()


def _lun(tags: Mapping[str, Any] | None) -> Any:
    """The LUN tag as snapshot_name takes it: None (the OS disk), an int, or _NO_LUN (absent or unreadable)."""
    text = (_value(tags, T.LUN) or "").strip()
    if text == "None":
        return None
    return int(text) if text.isascii() and text.isdigit() else _NO_LUN


def snapshot_is_vmkeepers(name: str, tags: Mapping[str, Any] | None, disk_id: str | None) -> bool:
    """A source snapshot (not a copy): its name is ``names.snapshot_name`` of its VM, disk and slot."""
    vm, slot, lun = _value(tags, T.VM), parse_instant(_value(tags, T.SLOT)), _lun(tags)
    if not (name and vm and slot and disk_id) or lun is _NO_LUN:
        return False
    return names.snapshot_name(_last(vm), _Disk(disk_id, lun), slot).lower() == name.lower()


def _named_like_a_snapshot_of(name: str, tags: Mapping[str, Any] | None) -> bool:
    """A source no longer listed: its name is the one vmkeeper gives its VM's disk at its slot, but for
    the hash of the disk's id (which a copy does not carry)."""
    vm, slot, lun = _value(tags, T.VM), parse_instant(_value(tags, T.SLOT)), _lun(tags)
    if not (name and vm and slot) or lun is _NO_LUN:
        return False
    expected = names.snapshot_name(_last(vm), _Disk("", lun), slot)
    stem = expected[: -8]
    return len(name) == len(expected) and name.lower().startswith(stem.lower()) and bool(_HASH.fullmatch(name[-8:]))


def is_copy(row: Mapping[str, Any]) -> bool:
    """A second-region copy: made by CopyStart, or tagged with its source."""
    return str(row.get("option") or "").lower() == "copystart" or _value(row.get("tags"), T.COPY_OF) is not None


def copy_is_vmkeepers(name: str, region: str, tags: Mapping[str, Any] | None, source_id: str | None,
                      source_owned: bool | None) -> bool:
    """A copy: its name is ``names.copy_name`` of its source's, and its source is vmkeeper's (``source_owned``:
    what the rule for snapshots said of the source, listed with it; None: the source is not listed)."""
    if not (name and source_id and region):
        return False
    source_name = _last(source_id)
    if names.copy_name(source_name, _region(region)).lower() != name.lower():
        return False
    return source_owned if source_owned is not None else _named_like_a_snapshot_of(source_name, tags)


def owned_snapshots(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ids (lower case) of the snapshots among ``rows`` that are vmkeeper's. A row: ``id``, ``location``,
    ``tags``, ``source`` (``creationData.sourceResourceId``), ``option`` (``creationData.createOption``);
    ``name`` if projected (else the id's last segment)."""
    rows = list(rows)
    sources: dict[str, bool] = {}
    for row in rows:
        if T.is_managed(_lower(row.get("tags"))) and not is_copy(row):
            sources[str(row.get("id") or "").lower()] = snapshot_is_vmkeepers(
                str(row.get("name") or _last(row.get("id"))), row.get("tags"), str(row.get("source") or ""))
    out = {rid for rid, ours in sources.items() if ours}
    for row in rows:
        if not (T.is_managed(_lower(row.get("tags"))) and is_copy(row)):
            continue
        source = str(row.get("source") or "") or _value(row.get("tags"), T.COPY_OF) or ""
        if copy_is_vmkeepers(str(row.get("name") or _last(row.get("id"))), str(row.get("location") or ""),
                             row.get("tags"), source, sources.get(source.lower())):
            out.add(str(row.get("id") or "").lower())
    return out


def _lower(tags: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in (tags or {}).items()}


def restore_point_is_vmkeepers(point_name: str, vm_id: str | None) -> bool:
    """A restore point is vmkeeper's only if its name is the one vmkeeper derives from its VM (the
    collection's vmkeeper-vm tag) and the slot stamped in the name; copies keep the name."""
    slot = restore_point_slot(point_name)
    return bool(slot and vm_id) and names.restore_point_name(vm_id, slot).lower() == point_name.lower()


def restore_point_slot(point_name: str) -> datetime | None:
    """The slot stamped in a restore point's name (vmkeeper's form), or None."""
    found = _POINT_NAME.fullmatch(point_name or "")
    try:
        return datetime.strptime(found.group(1), "%Y%m%d%H%M").replace(tzinfo=UTC) if found else None
    except ValueError:
        return None
