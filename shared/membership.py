"""Which VMs are fleet members: the one rule every VM listing applies (the scheduler, auto-protect, the
drill planner, compliance), pure.

A VM vmkeeper made itself — by a restore to a new VM, a DR drill's VM among them (a drill restores through
the restore service, so its VM carries the tag too) — is tagged ``vmkeeper-restore`` with the restore's id.
It is not a fleet member: it gets no snapshots, no locks, no Azure Backup, no drill of its own and no
compliance judgement (a drill's group is torn down; locks inside it would keep it). An operator who keeps
such a VM as a real one opts it in with ``vmkeeper-fleet: true`` (or removes ``vmkeeper-restore``). Every
other VM is a member; policies and ``vmkeeper-optout`` decide the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import tags as T


def _by_name(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Azure tag names are case-insensitive (sorted: a duplicate resolves the same way every time)."""
    out: dict[str, str] = {}
    for name, value in sorted((tags or {}).items(), key=lambda kv: str(kv[0])):
        out.setdefault(str(name).lower(), "" if value is None else str(value))
    return out


def not_member_reason(tags: Mapping[str, Any] | None) -> str | None:
    """None for a fleet member; else why not, in words."""
    if not tags or not any(str(name).lower() == T.RESTORE for name in tags):
        return None  # the common case, cheaply: a fleet of thousands is listed every slot
    by_name = _by_name(tags)
    made_by = by_name.get(T.RESTORE, "").strip()
    if not made_by:  # an empty value names no restore
        return None
    if by_name.get(T.FLEET, "").strip().lower() in T.TRUE_VALUES:
        return None
    return (f"made by vmkeeper restore {made_by!r} (tag '{T.RESTORE}'): not a fleet member unless tagged "
            f"'{T.FLEET}: true'")


def is_member(tags: Mapping[str, Any] | None) -> bool:
    return not_member_reason(tags) is None


def members(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The fleet's rows of a VM listing (Resource Graph rows, each with ``tags``)."""
    return [row for row in rows if is_member(row.get("tags"))]
