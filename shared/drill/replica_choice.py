"""A replica drill's decisions, pure: which replicated item is a VM's, whether it can be tested now, which
recovery point to test, where the test VM goes, and what of the test is left in the target group.

Site Recovery's answers are read as plain JSON (the SDK models' ``as_dict()``: Azure's own field names), so
these decisions are tested without Azure. A2A's names of what a test failover makes come from the item's
own details (``tfoAzureVMName``, ``vmNics[].tfoRecoveryNicName``, ``protectedManagedDisks[].tfoDiskName``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..instants import parse_instant

TEST_FAILOVER = "TestFailover"


def _props(item: Mapping[str, Any]) -> Mapping[str, Any]:
    return item.get("properties") or {}


def _a2a(item: Mapping[str, Any]) -> Mapping[str, Any]:
    return _props(item).get("providerSpecificDetails") or {}


def item_of(items: Iterable[Mapping[str, Any]], vm_id: str) -> Mapping[str, Any] | None:
    """The A2A replicated item whose source is the VM (``fabricObjectId``; ids compare without case)."""
    vm = vm_id.lower()
    for item in items:
        details = _a2a(item)
        if details.get("instanceType") == "A2A" and str(details.get("fabricObjectId") or "").lower() == vm:
            return item
    return None


def not_testable(item: Mapping[str, Any]) -> str | None:
    """Why a test failover of the item can't start now (None: it can). A test failover that is someone else's
    (pending or awaiting its cleanup) is never taken over: the drill fails and leaves it."""
    p = _props(item)
    allowed = p.get("allowedOperations") or []
    if TEST_FAILOVER in allowed:
        return None
    test_state = p.get("testFailoverState") or "None"
    why = (f"a test failover is {test_state} (not this drill's)" if test_state != "None"
           else f"its protection state is {p.get('protectionState')!r} ({p.get('protectionStateDescription') or '?'})")
    return f"replicated item {item.get('id')}: a test failover is not allowed now: {why}"


@dataclass(frozen=True)
class Target:
    """Where a test failover of the item goes: its direction, region and group, and the names it gives."""

    direction: str  # PrimaryToRecovery | RecoveryToPrimary
    region: str
    group: str  # the resource group id the test VM, NIC and disks are made in
    names: tuple[str, ...]  # the test VM's, its NICs' and disks' names (lower case)


def target(item: Mapping[str, Any]) -> Target:
    p, a2a = _props(item), _a2a(item)
    primary = (p.get("activeLocation") or "Primary") == "Primary"
    region = str((a2a.get("recoveryFabricLocation") if primary else a2a.get("primaryFabricLocation")) or "")
    group = str(a2a.get("recoveryAzureResourceGroupId") or "")
    names = [a2a.get("tfoAzureVMName")]
    names += [nic.get("tfoRecoveryNicName") for nic in a2a.get("vmNics") or []]
    names += [disk.get("tfoDiskName") for disk in a2a.get("protectedManagedDisks") or []]
    return Target("PrimaryToRecovery" if primary else "RecoveryToPrimary", region.replace(" ", "").lower(), group,
                  tuple(sorted({str(n).lower() for n in names if n})))


def newest_point(points: Iterable[Mapping[str, Any]]) -> tuple[str, datetime] | None:
    """The newest recovery point (its id and time): the test fails over to it, named, so the point's age
    recorded is the age of the point tested."""
    best: tuple[str, datetime] | None = None
    for point in points:
        at = parse_instant(str(_props(point).get("recoveryPointTime") or ""))
        if at is not None and point.get("id") and (best is None or at > best[1]):
            best = (str(point["id"]), at)
    return best


def test_vm(item: Mapping[str, Any], group: str) -> str:
    """The test VM's id: as Site Recovery reports it, else where A2A names it in the target group."""
    found = _a2a(item).get("testFailoverRecoveryFabricObjectId")
    if found:
        return str(found)
    name = _a2a(item).get("tfoAzureVMName") or ""
    return f"{group}/providers/Microsoft.Compute/virtualMachines/{name}"


def leftovers(resources: Iterable[tuple[str, str]], names: Iterable[str], ids: Iterable[str]) -> list[str]:
    """What of the test is still in the target group: resources (id, name) named as the test's, or made by it."""
    wanted, made = {n.lower() for n in names}, {i.lower() for i in ids}
    return sorted(rid for rid, name in resources if name.lower() in wanted or rid.lower() in made)
