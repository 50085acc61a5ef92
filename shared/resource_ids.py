"""ARM resource ids, read with azure-mgmt-core's parser (never split by hand)."""

from __future__ import annotations

import re
from typing import NamedTuple

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class ResourceRef(NamedTuple):
    subscription_id: str
    resource_group: str
    name: str


def parts(resource_id: str) -> dict[str, str]:
    """azure-mgmt-core's reading of the id ({} when it is not a resource id)."""
    from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id

    if not isinstance(resource_id, str) or not is_valid_resource_id(resource_id):
        return {}
    return parse_resource_id(resource_id)


def resource_of(resource_id: str, namespace: str, resource_type: str) -> ResourceRef | None:
    """(subscription, group, name) when the id names a top-level resource of that type itself, not
    a child of it (a VM's extension, its tags): None otherwise."""
    p = parts(resource_id)
    if (not p.get("resource_group") or not p.get("name") or p.get("children")
            or p.get("namespace", "").lower() != namespace.lower() or p.get("type", "").lower() != resource_type.lower()):
        return None
    return ResourceRef(p["subscription"], p["resource_group"], p["name"])


def child_of(resource_id: str, namespace: str, resource_type: str, child_type: str) -> tuple[ResourceRef, str] | None:
    """(the parent, the child's name) for an id such as a restore point in its collection."""
    p = parts(resource_id)
    if (p.get("last_child_num") != 1 or p.get("child_type_1", "").lower() != child_type.lower()
            or p.get("namespace", "").lower() != namespace.lower() or p.get("type", "").lower() != resource_type.lower()):
        return None
    return ResourceRef(p["subscription"], p["resource_group"], p["name"]), p["child_name_1"]


def vm(resource_id: str) -> ResourceRef | None:
    return resource_of(resource_id, "Microsoft.Compute", "virtualMachines")


def vault(resource_id: str) -> ResourceRef | None:
    """A Recovery Services vault in a subscription given as a GUID."""
    ref = resource_of(resource_id, "Microsoft.RecoveryServices", "vaults")
    return ref if ref and GUID.match(ref.subscription_id) else None


def last_segment(resource_id: str) -> str:
    """The resource's own name (the last child's, for a child resource)."""
    return parts(resource_id).get("resource_name") or resource_id.rstrip("/").rsplit("/", 1)[-1]
