"""Which VMs are fleet members: the one rule every VM listing applies (the scheduler, auto-protect, the
drill planner, Site Recovery's enable, recovery plans, compliance), pure but for ``read_outside``.

A VM vmkeeper made itself — by a restore to a new VM, a DR drill's VM among them (a drill restores through
the restore service, so its VM carries the tag too) — is tagged ``vmkeeper-restore`` with the restore's id.
It is not a fleet member: it gets no snapshots, no locks, no Azure Backup, no drill of its own and no
compliance judgement (a drill's group is torn down; locks inside it would keep it). An operator who keeps
such a VM as a real one opts it in with ``vmkeeper-fleet: true`` (or removes ``vmkeeper-restore``).

A VM Site Recovery made for a test failover (a replica drill's, or ``POST /api/failovers`` ``test_failover``; or
one an operator started) is not a fleet member either, whatever its tags: it lives until the test failover's
cleanup, which deletes it with its NIC and disks (a lock or a backup of it would only get in the way). ASR writes
no tag on it; its replicated item names it: A2A's ``testFailoverRecoveryFabricObjectId`` (the test VM's id), and,
while the item's ``testFailoverState`` is anything but ``None``, ``tfoAzureVMName`` in the item's
``recoveryAzureResourceGroupId`` (named before the VM exists, so its creation event is caught too). Never the
item's own source or failed-over VM (``fabricObjectId``, ``recoveryFabricObjectId``): a VM after a real failover is
production, a member like any other. ``read_outside`` reads those items (one paged list per vault of
VMKEEPER_VAULTS) for every capability; ``test_failover_vms`` is the rule. A test failover VM can't be opted in.

Every other VM is a member; policies and ``vmkeeper-optout`` decide the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import resource_ids
from . import tags as T

log = logging.getLogger("vmkeeper.membership")
NO_TEST_FAILOVER = ("", "none")  # testFailoverState of an item with no test failover under way or awaiting cleanup
VM_SEGMENT = "/providers/microsoft.compute/virtualmachines/"


def _by_name(tags: Mapping[str, Any] | None) -> dict[str, str]:
    """Azure tag names are case-insensitive (sorted: a duplicate resolves the same way every time)."""
    out: dict[str, str] = {}
    for name, value in sorted((tags or {}).items(), key=lambda kv: str(kv[0])):
        out.setdefault(str(name).lower(), "" if value is None else str(value))
    return out


def _test_vms(body: Mapping[str, Any]) -> tuple[set[str], str]:
    """The test failover VMs one replicated item (ARM's REST shape) names, lower case, and the item's words."""
    props = body.get("properties") if isinstance(body.get("properties"), Mapping) else {}
    a2a = props.get("providerSpecificDetails") if isinstance(props.get("providerSpecificDetails"), Mapping) else {}
    if str(a2a.get("instanceType") or "") != "A2A":
        return set(), ""
    found = set()
    tfo = str(a2a.get("testFailoverRecoveryFabricObjectId") or "").strip().lower()
    if VM_SEGMENT in tfo:
        found.add(tfo)
    state = str(props.get("testFailoverState") or "").strip()
    name = str(a2a.get("tfoAzureVMName") or "").strip()
    group = str(a2a.get("recoveryAzureResourceGroupId") or "").strip().rstrip("/")
    if state.lower() not in NO_TEST_FAILOVER and name and resource_ids.vm(f"{group}{VM_SEGMENT}{name}") is not None:
        found.add(f"{group}{VM_SEGMENT}{name}".lower())
    production = {str(a2a.get(k) or "").strip().lower() for k in ("fabricObjectId", "recoveryFabricObjectId")}
    item = str(body.get("name") or str(body.get("id") or "").rsplit("/", 1)[-1])
    source = str(a2a.get("fabricObjectId") or "").rsplit("/", 1)[-1] or "?"
    state = state if state.lower() not in NO_TEST_FAILOVER else "ended"
    return found - production, f"Site Recovery item '{item}' (replicating {source}; test failover {state})"


def test_failover_vms(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The VMs Site Recovery made for test failovers, from replicated items' bodies: id (lower case) → why each is
    no fleet member, in words."""
    out: dict[str, str] = {}
    for body in items:
        vms, words = _test_vms(body)
        for vm in sorted(vms):
            out.setdefault(vm, f"the test failover VM of {words}: not a fleet member (Site Recovery deletes it, its "
                               "NIC and disks at the test failover's cleanup)")
    return out


def read_outside(arm: Any, vaults: Mapping[str, str]) -> dict[str, str]:
    """``test_failover_vms`` of every replicated item in the vaults VMKEEPER_VAULTS names (one paged list per vault,
    each vault once). A vault that can't be read raises: the caller decides (a job looks again; a listing says so)."""
    items: list[Mapping[str, Any]] = []
    for vault_id in sorted({v.lower(): v for v in vaults.values()}.values()):
        ref = resource_ids.vault(vault_id)
        if ref is None:
            continue
        listed = arm.site_recovery(ref.subscription_id).replication_protected_items.list(ref.resource_group, ref.name)
        items.extend(i.as_dict() for i in listed)
    return test_failover_vms(items)


def not_member_reason(tags: Mapping[str, Any] | None, vm_id: str | None = None,
                      outside: Mapping[str, str] | None = None) -> str | None:
    """None for a fleet member; else why not, in words. ``outside``: ``test_failover_vms`` (by VM id)."""
    if outside and vm_id and (why := outside.get(str(vm_id).lower())):
        return why
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


def is_member(tags: Mapping[str, Any] | None, vm_id: str | None = None,
              outside: Mapping[str, str] | None = None) -> bool:
    return not_member_reason(tags, vm_id, outside) is None


def members(rows: Iterable[Mapping[str, Any]], outside: Mapping[str, str] | None = None) -> list[Mapping[str, Any]]:
    """The fleet's rows of a VM listing (Resource Graph rows, each with ``id`` and ``tags``)."""
    return [row for row in rows if is_member(row.get("tags"), row.get("id"), outside)]


def split(rows: Iterable[Mapping[str, Any]], outside: Mapping[str, str] | None = None
          ) -> tuple[list[Mapping[str, Any]], list[tuple[Mapping[str, Any], str]]]:
    """(members, excluded with why) of a VM listing, in one pass."""
    inside, out = [], []
    for row in rows:
        why = not_member_reason(row.get("tags"), row.get("id"), outside)
        (out.append((row, why)) if why else inside.append(row))
    return inside, out


def outside_or_none(arm: Any, vaults: Mapping[str, str], what: str) -> tuple[dict[str, str], str | None]:
    """``read_outside`` for a listing that goes on without it: (the map, or {} and the problem in words, logged)."""
    try:
        return read_outside(arm, vaults), None
    except Exception as exc:  # noqa: BLE001 (said where the listing reports; the listing is not lost for it)
        problem = f"{what}: Site Recovery's items not read ({type(exc).__name__}: {exc}): its test failover VMs " \
                  "can't be told apart from the fleet this time"
        log.error("%s", problem[:1000])
        return {}, problem[:1000]
