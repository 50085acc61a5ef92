"""What enabling a VM's replication creates, in which order, with which request bodies; and how ASR's
answers are read (an operation's status, a refusal, error 150144). Pure: shared/replication/steps.py does it.

Azure-to-Azure, explicit route (what the portal and the CLI make), in one vault in the target region:

    level 1: the source region's fabric, the target region's fabric, the replication policy,
             the isolated recovery VNet (when the policy asks vmkeeper to make one)
    level 2: a protection container in each fabric, the network mapping (source VNet → recovery VNet)
    level 3: the container mapping source → target under the policy, and its reverse (failback needs it)
    then:    the VM's replicated item (A2AEnableProtectionInput), followed to ``Protected``

A level's objects don't depend on each other: the missing ones of a level are created together, and the next
level is looked at once their operations have ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..policy.document import ReplicationSpec
from . import names

A2A = "A2A"
PROTECTED = "protected"
ENABLING = ("", "enablingprotection", "initialreplicationinprogress")  # protectionState, lower case: still on its way
LOOK_SHARE = 0.1  # an item not Protected yet, without a pace to go by: looked at again after this share of the wait
PACE_POINTS = 20  # percentage points gained before the initial replication's pace is trusted
REFINE_SECONDS, REFINE_SHARE = 8, 0.75  # an end further off than this is looked at after this share of the time to it
NOT_RUNNING = "150144"  # ASR: disabling failed, the source VM is not running (or gone): purge is the way out
ISOLATED_ADDRESS_SPACE, ISOLATED_SUBNET_PREFIX = "10.0.0.0/16", "10.0.0.0/24"  # isolated: any space; the usual one
# A write refused because something it names is still being created (by this job's previous level, or by
# another VM's job that made it first): a 404 of the parent, or a 400 naming the reference. Looked at again.
REFERENCE_TARGETS = ("properties.targetProtectionContainerId", "properties.policyId", "properties.recoveryFabricName",
                     "properties.providerSpecificDetails.recoveryContainerId")


@dataclass(frozen=True)
class Obj:
    """One object to have: ``kind`` (fabric, container, policy, mapping, network_mapping, vnet), its path names
    after the vault's group and name (a VNet's: its group and name), and the body that creates it."""

    kind: str
    path: tuple[str, ...]
    body: dict[str, Any] = field(hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{'/'.join(self.path)}"


@dataclass(frozen=True)
class Chain:
    """Everything one VM's replication needs in the vault, and its own item."""

    vault_id: str
    source_region: str
    target_region: str
    source_fabric: str
    target_fabric: str
    policy: str  # the replication policy's name
    levels: tuple[tuple[Obj, ...], ...]
    target_vnet: str
    target_subnet: str | None

    @property
    def source_container(self) -> str:
        return names.container(self.source_region)

    @property
    def target_container_id(self) -> str:
        return (f"{self.vault_id}/replicationFabrics/{self.target_fabric}/replicationProtectionContainers/"
                f"{names.container(self.target_region)}")

    @property
    def policy_id(self) -> str:
        return f"{self.vault_id}/replicationPolicies/{self.policy}"


def policy_settings(spec: ReplicationSpec) -> tuple[int, int, bool]:
    """(recovery point history, app-consistent frequency, both in minutes; multi-VM sync on)."""
    return spec.recovery_point_retention_hours * 60, spec.app_consistent_frequency_hours * 60, bool(spec.consistency_group)


def target_network(spec: ReplicationSpec, source_vnet: str) -> tuple[str, str | None] | None:
    """(recovery VNet id, subnet name or None: ASR's choice) for a VM on ``source_vnet``; None when the policy
    maps no such VNet."""
    if spec.isolated_network:
        group = spec.target_resource_group.rstrip("/")
        return (f"{group}/providers/Microsoft.Network/virtualNetworks/{names.isolated_vnet(spec.target_region)}",
                names.ISOLATED_SUBNET)
    mapping = spec.mapping_for(source_vnet)
    return None if mapping is None else (mapping.target_vnet, mapping.target_subnet)


def chain(vault_id: str, source_region: str, spec: ReplicationSpec, fabrics: dict[str, str], source_vnet: str,
          network: tuple[str, str | None]) -> Chain:
    """The objects a VM in ``source_region`` on ``source_vnet`` needs (``fabrics``: region → the fabric's name
    in this vault: vmkeeper's, or one the vault has for the region already)."""
    src, tgt = names.region(source_region), spec.target_region
    history, app, sync = policy_settings(spec)
    policy = names.replication_policy(history, app, sync)
    policy_id = f"{vault_id}/replicationPolicies/{policy}"
    fabric = {r: fabrics.get(r) or names.fabric(r) for r in (src, tgt)}
    container_id = {r: f"{vault_id}/replicationFabrics/{fabric[r]}/replicationProtectionContainers/{names.container(r)}"
                    for r in (src, tgt)}
    target_vnet, subnet = network
    level1 = [Obj("fabric", (fabric[r],), {"properties": {"customDetails": {"instanceType": "Azure", "location": r}}})
              for r in (src, tgt)]
    level1.append(Obj("policy", (policy,), {"properties": {"providerSpecificInput": {
        "instanceType": A2A, "recoveryPointHistory": history, "appConsistentFrequencyInMinutes": app,
        "crashConsistentFrequencyInMinutes": 5, "multiVmSyncStatus": "Enable" if sync else "Disable"}}}))
    if spec.isolated_network:
        group = spec.target_resource_group.rstrip("/").split("/")
        level1.append(Obj("vnet", (group[2], group[4], names.isolated_vnet(tgt)), {
            "location": tgt, "tags": {"managed-by": "vmkeeper"},
            "properties": {"addressSpace": {"addressPrefixes": [ISOLATED_ADDRESS_SPACE]},
                           "subnets": [{"name": names.ISOLATED_SUBNET,
                                        "properties": {"addressPrefix": ISOLATED_SUBNET_PREFIX}}]}}))
    level2 = [Obj("container", (fabric[r], names.container(r)), {"properties": {"providerSpecificInput": [
        {"instanceType": A2A}]}}) for r in (src, tgt)]
    level2.append(Obj("network_mapping", (fabric[src], names.NETWORK, names.network_mapping(source_vnet, tgt)), {
        "properties": {"recoveryFabricName": fabric[tgt], "recoveryNetworkId": target_vnet,
                       "fabricSpecificDetails": {"instanceType": "AzureToAzure", "primaryNetworkId": source_vnet}}}))
    level3 = [Obj("mapping", (fabric[a], names.container(a), names.container_mapping(a, b, policy)), {"properties": {
        "targetProtectionContainerId": container_id[b], "policyId": policy_id,
        "providerSpecificInput": {"instanceType": A2A, "agentAutoUpdateStatus": "Disabled"}}})
        for a, b in ((src, tgt), (tgt, src))]
    return Chain(vault_id, src, tgt, fabric[src], fabric[tgt], policy, (tuple(level1), tuple(level2), tuple(level3)),
                 target_vnet, subnet)


def enable_input(c: Chain, spec: ReplicationSpec, vm_id: str, disk_ids: list[str], cache_account: str) -> dict[str, Any]:
    """The A2AEnableProtectionInput of the VM's item: every managed disk (the OS disk first) staged through the
    source region's cache account, recovered into the target group and VNet."""
    details: dict[str, Any] = {
        "instanceType": A2A, "fabricObjectId": vm_id, "recoveryContainerId": c.target_container_id,
        "recoveryResourceGroupId": spec.target_resource_group, "recoveryAzureNetworkId": c.target_vnet,
        "vmManagedDisks": [{"diskId": d, "primaryStagingAzureStorageAccountId": cache_account,
                            "recoveryResourceGroupId": spec.target_resource_group} for d in disk_ids]}
    if c.target_subnet:
        details["recoverySubnetName"] = c.target_subnet
    if spec.consistency_group:
        details["multiVmGroupName"] = spec.consistency_group
    return {"properties": {"policyId": c.policy_id, "providerSpecificDetails": details}}


# --- ASR's answers ------------------------------------------------------------------------------------------
def operation_state(body: Any) -> tuple[str, dict[str, Any] | None]:
    """An ``Azure-AsyncOperation`` status body → ("running" | "succeeded" | "failed", its error)."""
    status = str((body or {}).get("status") or "").lower() if isinstance(body, dict) else ""
    if status == "succeeded":
        return "succeeded", None
    if status in ("failed", "canceled", "cancelled"):
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        return "failed", error or {"code": status, "message": f"the operation ended {body.get('status')}"}
    return "running", None


def error_text(error: dict[str, Any] | None) -> str:
    error = error or {}
    return f"{error.get('code') or 'error'}: {error.get('message') or '(no message)'}"


def is_not_running(error: dict[str, Any] | None) -> bool:
    """ASR refused to disable replication because the source VM is not running or gone (150144)."""
    return str((error or {}).get("code") or "") == NOT_RUNNING


def refusal(status: int | None, code: str | None, target: str | None) -> str:
    """A write ARM refused: ``wait`` (something it names is still being created: look again), or ``fail``."""
    if status == 404:
        return "wait"
    if status == 400 and target in REFERENCE_TARGETS:
        return "wait"
    return "fail"


def status_url_ok(url: str, arm_endpoint: str, vault_id: str) -> bool:
    """An operation's status URL (from ARM's answer, carried in a queue message) is one of the vault's on the
    configured endpoint: the app's token is never sent anywhere else."""
    try:
        parts, base = urlsplit(url), urlsplit(arm_endpoint)
    except ValueError:
        return False
    prefix = f"{vault_id.rstrip('/')}/".lower()
    return (parts.scheme == "https" and parts.netloc.lower() == base.netloc.lower()
            and parts.path.lower().startswith(prefix) and ".." not in parts.path
            and ("/replicationoperationstatus/" in parts.path.lower() or "/operationresults/" in parts.path.lower()))


def next_look(now: float, since: float, progress: Any, first: dict[str, float] | None,
              ceiling: int) -> tuple[int, dict[str, float] | None]:
    """When to look again at an item on its way to ``Protected`` (seconds, 1 to ``ceiling``), and the progress
    sample to carry to that look. ASR's ``monitoringPercentageCompletion`` against the first look that saw it
    gives the pace of the initial replication, once it has gained ``PACE_POINTS`` since (whole percents: a pace
    from fewer could be far off): the next look is when it should end at that pace (looked at again, a pace
    that changed corrects itself; an end far off is looked at three quarters of the way there, where the longer
    span gives a truer pace). Before that, a tenth of the time waited since the item was sent: a short wait is
    seen within a second of its end, a long one within a few percent."""
    share = LOOK_SHARE * max(0.0, now - since)
    try:
        p = float(progress) if progress is not None else None
    except (TypeError, ValueError):
        p = None
    if p is None:
        delay = share
    elif first is None or p < float(first.get("p", 0)) or float(first.get("t", now)) >= now:
        first, delay = {"t": now, "p": p}, share  # the first sample (or a restarted replication's)
    elif p >= float(first["p"]) + PACE_POINTS:
        pace = (p - float(first["p"])) / (now - float(first["t"]))  # percent a second
        delay = max(0.0, 100.0 - p) / pace
        if delay > REFINE_SECONDS:  # far off: looked at before the end, with a longer span to measure the pace over
            delay *= REFINE_SHARE
    else:
        delay = share
    return max(1, min(ceiling, math.ceil(delay))), first


def item_parts(item_id: str) -> tuple[str, str, str] | None:
    """(fabric, container, item) of a replicated item's id (ASR spells ``/Subscriptions/``)."""
    segments = item_id.strip("/").split("/")
    lower = [s.lower() for s in segments]
    try:
        f, c, i = (lower.index("replicationfabrics"), lower.index("replicationprotectioncontainers"),
                   lower.index("replicationprotecteditems"))
    except ValueError:
        return None
    if not (f + 2 == c and c + 2 == i and i + 2 == len(segments)):
        return None
    return segments[f + 1], segments[c + 1], segments[i + 1]
