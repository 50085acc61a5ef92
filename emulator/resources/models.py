"""What a resource group's delete does to what it holds: ARM deletes every resource in the group,
each as its own provider would (a VM first, so that its disks and NICs are freed and follow their
deleteOption; a snapshot no longer counting against its disk's limits), and none of it is a call of
the client's own (the call log shows the one group delete). A resource its provider refuses to delete
(a disk a VM outside the group holds) is kept, and the group with it: the delete ends Failed with
``ResourceGroupDeletionBlocked`` (Learn "Azure Resource Manager resource group and resource deletion";
the error as ARM answers it, no official example)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import ArmError
from ..core.state import Resource, ResourceGroup, Store

# Deleted first, in this order: each holds what comes after it (a VM its disks and NICs, a NIC its subnet).
HOLDERS = ("microsoft.compute/virtualmachines", "microsoft.network/networkinterfaces")


def _order(resource: Resource) -> tuple[int, int, str]:
    rtype = resource.type.lower()
    tier = HOLDERS.index(rtype) if rtype in HOLDERS else len(HOLDERS)
    return (tier, rtype.count("/"), resource.key)


def delete_contents(store: Store, group: ResourceGroup, deletions: dict[str, Callable[..., Any]]) -> list[tuple[Resource, ArmError]]:
    """Deletes every resource in ``group`` through its provider's delete backend where it has one
    (``deletions``: resource type → begin(store, resource) → Deletion), else removes it. Returns the
    resources whose provider refused, with its error; they and their children are kept."""
    refused: list[tuple[Resource, ArmError]] = []
    for resource in sorted(store.children(group.id), key=_order):
        if store.get(resource.id) is None:  # taken with an earlier one (a VM's disks, a collection's points)
            continue
        if any(resource.key.startswith(kept.key + "/") for kept, _ in refused):
            continue
        begin = deletions.get(resource.type.lower())
        if begin is None:
            store.delete(resource.id)
            continue
        try:
            begin(store, resource).done()
        except ArmError as exc:
            refused.append((resource, exc))
    return refused


def blocked_error(group: ResourceGroup, refused: list[tuple[Resource, ArmError]]) -> dict[str, Any]:
    names = ",".join(f"'{r.type}/{r.name}'" for r, _ in refused)
    return {"code": "ResourceGroupDeletionBlocked",
            "message": f"Deletion of resource group '{group.name}' failed as resources with identifiers {names} could "
                       "not be deleted. The provisioning state of the resource group will be rolled back.",
            "details": [{"target": r.id, "code": exc.code, "message": exc.message} for r, exc in refused]}
