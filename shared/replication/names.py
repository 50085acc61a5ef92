"""The names vmkeeper gives Site Recovery's objects (Azure-to-Azure) in a Recovery Services vault: derived
from regions, settings, VNet and VM ids only, so every run of every job asks for the same names, a re-run
creates nothing, and anyone reading a vault (the health, drill and failover capabilities, an operator) can
tell vmkeeper's objects by name. Pure.

ASR's names are 1-260 characters of letters, digits, '_', '.', '-', starting with a letter or digit.
A2A allows one fabric per region in a vault: a vault that has one under another name (the portal's
``asr-a2a-default-{region}``) keeps it, and vmkeeper uses it (shared/replication/steps.py).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "vmk"
NETWORK = "azureNetwork"  # the replicationNetworks segment of an A2A network mapping (ASR's own name for it)
ISOLATED_SUBNET = "default"  # the subnet of the isolated recovery VNet vmkeeper makes
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.lower().encode()).hexdigest()[:n]


def _part(text: str, limit: int) -> str:
    return _NOT_NAME.sub("-", text)[:limit] or "x"


def region(name: str) -> str:
    """A region as ARM's ``location`` spells it in ids and names: lower case, no spaces."""
    return name.replace(" ", "").lower()


def fabric(location: str) -> str:
    """The region's A2A fabric: ``vmk-a2a-{region}``."""
    return f"{PREFIX}-a2a-{region(location)}"


def container(location: str) -> str:
    """The protection container vmkeeper makes in a region's fabric."""
    return f"{PREFIX}-a2a-{region(location)}-container"


def replication_policy(retention_minutes: int, app_consistent_minutes: int, multi_vm_sync: bool) -> str:
    """One A2A replication policy per set of settings, named by them: ``vmk-a2a-1440min-app240min-pervm``.
    A policy document that changes the settings gets a new ASR policy (never a PATCH of one in use)."""
    sync = "multivm" if multi_vm_sync else "pervm"
    return f"{PREFIX}-a2a-{retention_minutes}min-app{app_consistent_minutes}min-{sync}"


def container_mapping(source_location: str, target_location: str, policy: str) -> str:
    """The pairing of the source region's container with the target's under ``policy`` (and its reverse, with
    the regions swapped: failback needs it)."""
    return f"{region(source_location)}-{region(target_location)}-{policy}"


def network_mapping(source_vnet_id: str, target_location: str) -> str:
    """The mapping of a source VNet to its recovery VNet in the target region."""
    vnet = source_vnet_id.rstrip("/").rsplit("/", 1)[-1]
    return f"{PREFIX}-{_part(vnet, 60)}-{_hash(source_vnet_id)}-{region(target_location)}"


def protected_item(vm_id: str) -> str:
    """A VM's replicated item: ``vmk-{vm name}-{sha256(vm id)[:8]}``, lower case as ARM ids compare (two VMs of
    one name in two groups of a region share a container, so the id's hash keeps them apart)."""
    vm = vm_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return f"{PREFIX}-{_part(vm, 64)}-{_hash(vm_id)}"


def is_ours(item_name: str, vm_id: str) -> bool:
    """Whether a replicated item is the one vmkeeper makes for this VM (only those does it disable)."""
    return item_name.lower() == protected_item(vm_id).lower()


def is_ours_for_pair(item_name: str, vm_id: str, pair_vm_id: str | None) -> bool:
    """Whether a replicated item replicating ``vm_id`` is vmkeeper's: made for it, or — after a failover and its
    reprotect, the item replicating the VM the failover made back — made for the pair's other VM (the item keeps
    its name; ASR's ``recoveryFabricObjectId`` names that VM)."""
    return is_ours(item_name, vm_id) or bool(pair_vm_id) and is_ours(item_name, str(pair_vm_id))


def isolated_vnet(target_location: str) -> str:
    """The isolated recovery VNet vmkeeper makes in the target group when a policy asks for one (no peering)."""
    return f"{PREFIX}-dr-{region(target_location)}"
