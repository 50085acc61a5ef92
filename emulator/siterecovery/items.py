"""A replicated (protected) item: an Azure VM replicating from one region to another. Its state is
kept as a phase (enabling, replicating, failedOver, committed, reprotecting, disabling) with a failover
direction, and everything time-dependent is derived from the emulator's clock when read: initial
replication progress, crash-consistent recovery points every 5 emulated minutes (app-consistent ones at
the policy's frequency), kept for the policy's history; RPO; replication health; allowed operations."""

from __future__ import annotations

import math
import uuid
from typing import Any

from ..core.clock import iso
from ..core.state import Resource, Store
from . import models as m

DEFAULT_INITIAL_REPLICATION_SECONDS = 60.0
RPO_THRESHOLD_SECONDS = 3600  # the policy's recoveryPointThresholdInMinutes (60)
PROTECTED_OPERATIONS = ["PlannedFailover", "UnplannedFailover", "DisableProtection", "TestFailover"]
REVERSE = {"PrimaryToRecovery": "RecoveryToPrimary", "RecoveryToPrimary": "PrimaryToRecovery"}


def new_item(container: Resource, name: str, spec: dict[str, Any], now: float) -> Resource:
    return Resource(f"{container.id}/replicationProtectedItems/{name}", m.ITEM_TYPE, name, None, None, {}, {},
                    dict(spec, phase="enabling", objectId=str(uuid.uuid4()), replStart=None, replUntil=None,
                         stalledAt=None, stalled=False, tfo={"state": None}, failover=None, op=None, scenario=None,
                         lastFailover=None, lastTestFailover=None, active="Primary", direction="PrimaryToRecovery"),
                    now)


def items_of(store: Store, vault: Resource) -> list[Resource]:
    return store.of_type(m.ITEM_TYPE, vault.id)


def item_for_vm(store: Store, vm_id: str) -> Resource | None:
    for item in store.of_type(m.ITEM_TYPE):
        if any(m.same_id(v, vm_id) for v in [item.internal["vmId"], *item.internal["vms"].values()]):
            return item
    return None


# --- time-derived state ---------------------------------------------------------------------------------
def observe(store: Store, item: Resource, now: float) -> None:
    """What ASR notices by itself: replication stalls when the source VM is gone or the health fault is set."""
    vm = store.get(item.internal["vmId"])
    stalled = item.internal["stalled"] or vm is None
    if stalled and item.internal["stalledAt"] is None:
        item.internal["stalledAt"] = now
    elif not stalled and item.internal["stalledAt"] is not None:
        item.internal["stalledAt"] = None


def protected_at(item: Resource) -> float | None:
    start = item.internal["replStart"]
    return None if start is None else start + item.internal["irSeconds"]


def initial_replication_percent(item: Resource, now: float) -> int | None:
    start, done = item.internal["replStart"], protected_at(item)
    if start is None or done is None or item.internal["phase"] != "replicating":
        return None
    if now >= done:
        return 100
    return int(max(0.0, (now - start) / max(done - start, 1e-9)) * 100)


def is_protected(item: Resource, now: float) -> bool:
    done = protected_at(item)
    return item.internal["phase"] == "replicating" and done is not None and now >= done


def points(store: Store, item: Resource, now: float) -> list[dict[str, Any]]:
    """The item's recovery points, oldest first: ``{name, time, type, sync}``."""
    i = item.internal
    first = protected_at(item)
    if first is None or i["phase"] not in ("replicating", "failedOver"):
        return []
    end = min(now, i["replUntil"] or math.inf, i["stalledAt"] or math.inf)
    if end < first:
        return []
    policy = store.get(i["policy"])
    settings = policy.internal["settings"] if policy is not None else {"recoveryPointHistory": 1440,
                                                                       "appConsistentFrequencyInMinutes": 0,
                                                                       "multiVmSyncStatus": "Disable"}
    history = settings["recoveryPointHistory"] * 60
    app = settings["appConsistentFrequencyInMinutes"] * 60
    step = m.CRASH_MINUTES * 60
    last = int((end - first) // step)
    oldest = 0 if history <= 0 else max(0, math.ceil((end - history - first) / step))
    if history <= 0:
        oldest = last
    sync = "MultiVmSyncRecoveryPoint" if i.get("multiVmGroupName") and settings["multiVmSyncStatus"] == "Enable" \
        else "PerVmRecoveryPoint"
    out = []
    for k in range(oldest, last + 1):
        t = first + k * step
        kind = "AppConsistent" if app and (k * step) % app == 0 else "CrashConsistent"
        out.append({"name": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{item.key}/{i['replStart']}/{k}")), "time": t,
                    "type": kind, "sync": sync})
    return out


def point_id(item: Resource, point: dict[str, Any]) -> str:
    return f"{item.id}/recoveryPoints/{point['name']}"


def render_point(item: Resource, point: dict[str, Any]) -> dict[str, Any]:
    disks = [d["diskId"] for d in item.internal["disks"]]
    return {"id": m.wire_id(point_id(item, point)), "name": point["name"], "type": m.POINT_TYPE, "properties": {
        "recoveryPointTime": iso(point["time"]), "recoveryPointType": point["type"],
        "providerSpecificDetails": {"instanceType": m.A2A, "recoveryPointSyncType": point["sync"], "disks": disks}}}


def find_point(store: Store, item: Resource, wanted: str | None, kind: str, now: float) -> dict[str, Any] | None:
    """A point by its id or name, else the latest of ``kind`` (Latest, LatestProcessed, LatestCrashConsistent,
    LatestApplicationConsistent)."""
    found = points(store, item, now)
    if wanted:
        name = wanted.rstrip("/").rsplit("/", 1)[-1].lower()
        return next((p for p in found if p["name"] == name), None)
    if kind == "LatestApplicationConsistent":
        found = [p for p in found if p["type"] == "AppConsistent"]
    return found[-1] if found else None


def rpo_seconds(store: Store, item: Resource, now: float) -> int | None:
    found = points(store, item, now)
    if not found or item.internal["phase"] != "replicating":
        return None
    return int(now - found[-1]["time"])


def health_errors(store: Store, item: Resource, now: float) -> list[dict[str, Any]]:
    i = item.internal
    errors = []
    when = iso(i["stalledAt"]) if i["stalledAt"] is not None else iso(now)
    if i["phase"] in ("replicating", "enabling") and store.get(i["vmId"]) is None:
        errors.append(_health_error("SourceVirtualMachineNotFound", f"The virtual machine '{i['friendlyName']}' was not found.",
                                    "The source virtual machine was deleted.",
                                    "Disable replication of the item; purge it if disabling fails.", when, i["vmId"]))
    rpo = rpo_seconds(store, item, now)
    if rpo is not None and rpo > RPO_THRESHOLD_SECONDS:
        errors.append(_health_error("RpoThresholdExceeded",
                                    f"The recovery point objective of '{i['friendlyName']}' is {rpo // 60} minutes, over the "
                                    f"threshold of {RPO_THRESHOLD_SECONDS // 60} minutes.",
                                    "Replication has not produced a recovery point for a while (network, churn or an "
                                    "agent problem on the source VM).",
                                    "Check the source VM's connectivity to the cache storage account and its "
                                    "Site Recovery extension.", when, i["vmId"]))
    return errors


def _health_error(code: str, message: str, causes: str, action: str, when: str, entity: str) -> dict[str, Any]:
    return {"innerHealthErrors": [], "errorSource": "SiteRecovery", "errorType": "Error", "errorLevel": "Error",
            "errorCategory": "Replication", "errorCode": code, "summaryMessage": message, "errorMessage": message,
            "possibleCauses": causes, "recommendedAction": action, "creationTimeUtc": when,
            "recoveryProviderErrorMessage": "", "entityId": entity, "errorId": str(uuid.uuid5(uuid.NAMESPACE_URL, code + entity)),
            "customerResolvability": "Allowed"}


def state(store: Store, item: Resource, now: float) -> tuple[str, str, list[str]]:
    """(protectionState, its description, allowedOperations): nothing is allowed while an operation runs."""
    protection, description, allowed = _state(store, item, now)
    return protection, description, [] if item.internal.get("opKind") else allowed


def _state(store: Store, item: Resource, now: float) -> tuple[str, str, list[str]]:
    i = item.internal
    phase, tfo, op = i["phase"], i["tfo"]["state"], i.get("opKind")
    if phase == "enabling":
        return "EnablingProtection", "Enabling protection", []
    if phase == "disabling":
        return "DisablingProtection", "Disabling protection", []
    if phase == "reprotecting":
        return "ReprotectInProgress", "Reprotect in progress", []
    if op in ("PlannedFailover", "UnplannedFailover"):
        return f"{op}Initiated", f"{'Planned failover' if op == 'PlannedFailover' else 'Failover'} in progress", []
    if phase == "failedOver":
        kind = i["failover"]["kind"]
        return f"{kind}Completed", "Failover completed", ["Commit", "DisableProtection"]
    if phase == "committed":
        return "FailoverCommitted", "Failover committed", ["ReverseReplicate", "DisableProtection"]
    if not is_protected(item, now):
        return "InitialReplicationInProgress", "Initial replication in progress", ["DisableProtection"]
    if tfo in ("running", "cleaning"):
        return "Protected", "Test failover in progress" if tfo == "running" else "Cleaning up test failover", []
    if tfo in ("done", "failed"):
        return "Protected", "Cleanup test failover pending", ["TestFailoverCleanup"]
    return "Protected", "Protected", list(PROTECTED_OPERATIONS)


def replication_health(store: Store, item: Resource, now: float) -> str:
    errors = health_errors(store, item, now)
    if not errors:
        return "Normal"
    return "Critical" if any(e["errorCode"] == "SourceVirtualMachineNotFound" for e in errors) else "Warning"


# --- the wire ---------------------------------------------------------------------------------------------
def render(store: Store, item: Resource, now: float) -> dict[str, Any]:
    i = item.internal
    observe(store, item, now)
    protection, description, allowed = state(store, item, now)
    tfo_state = {None: "None", "running": "InProgress", "done": "WaitingForCompletion", "failed": "Failed",
                 "cleaning": "CleanupInProgress"}[i["tfo"]["state"]]
    tfo_description = {None: "None", "running": "In progress", "done": "Waiting for user input", "failed": "Failed",
                       "cleaning": "Cleanup in progress"}[i["tfo"]["state"]]
    container = m.container_of(store, item)
    fabric = m.fabric_of(store, container)
    recovery_container = store.get(i["recoveryContainer"])
    recovery_fabric = m.fabric_of(store, recovery_container) if recovery_container is not None else None
    policy = store.get(i["policy"])
    rpo = rpo_seconds(store, item, now)
    scenario = i["scenario"] or {"name": "None", "jobId": f"{item.id.split('/replicationFabrics/')[0]}/replicationJobs/None",
                                 "start": None}
    percent = initial_replication_percent(item, now)
    replicating = i["phase"] == "replicating"
    disks = []
    for d in i["disks"]:
        disks.append({
            "diskId": d["diskId"], "recoveryResourceGroupId": d["recoveryResourceGroupId"],
            "recoveryTargetDiskId": d.get("targetId") or d["replicaId"], "recoveryReplicaDiskId": d["replicaId"],
            "recoveryOrignalTargetDiskId": d["replicaId"],
            "recoveryReplicaDiskAccountType": d["replicaSku"], "recoveryTargetDiskAccountType": d["targetSku"],
            "diskName": d["name"], "diskCapacityInBytes": d["sizeGb"] * 1024**3,
            "primaryStagingAzureStorageAccountId": d["staging"], "diskType": d["sku"], "resyncRequired": False,
            "monitoringPercentageCompletion": percent if percent is not None and percent < 100 else None,
            "monitoringJobType": "InitialReplication" if percent is not None and percent < 100 else None,
            "dataPendingInStagingStorageAccountInMB": 0.0, "dataPendingAtSourceAgentInMB": 0.0,
            "diskState": ("InitialReplicationInProgress" if percent is not None and percent < 100 else
                          "Protected" if replicating else "Unavailable"),
            "allowedDiskLevelOperation": [], "isDiskEncrypted": False, "isDiskKeyEncrypted": False,
            "failoverDiskName": d["replicaName"], "tfoDiskName": d["tfoName"],
        })
    details = {
        "instanceType": m.A2A,
        "fabricObjectId": i["vmId"],
        "initialPrimaryFabricLocation": i["initialPrimary"], "initialRecoveryFabricLocation": i["initialRecovery"],
        "multiVmGroupId": i.get("multiVmGroupId"), "multiVmGroupName": i.get("multiVmGroupName"),
        "multiVmGroupCreateOption": "UserSpecified" if i.get("multiVmGroupName") else None,
        "protectedDisks": [], "unprotectedDisks": [{"diskLunId": lun, "diskAutoProtectionStatus": "Disabled"}
                                                     for lun in i["unprotected"]],
        "protectedManagedDisks": disks,
        "primaryFabricLocation": i["primaryLocation"], "recoveryFabricLocation": i["recoveryLocation"],
        "osType": i["osType"], "recoveryAzureVMSize": i["vmSize"], "recoveryAzureVMName": i["recoveryVmName"],
        "recoveryAzureResourceGroupId": i["recoveryResourceGroupId"],
        "selectedRecoveryAzureNetworkId": i.get("recoveryNetwork"), "selectedTfoAzureNetworkId": i["tfo"].get("network"),
        "vmNics": [{"nicId": nic, "sourceNicArmId": nic, "recoveryVMNetworkId": i.get("recoveryNetwork"),
                    "recoveryNicName": nic.rsplit("/", 1)[-1], "tfoRecoveryNicName": nic.rsplit("/", 1)[-1] + "-test",
                    "selectionType": "SelectedByUser"} for nic in i["nics"]],
        "monitoringPercentageCompletion": percent if percent is not None and percent < 100 else None,
        "monitoringJobType": "InitialReplication" if percent is not None and percent < 100 else None,
        "lastHeartbeat": iso(now) if store.get(i["vmId"]) is not None and i["stalledAt"] is None else
        (iso(i["stalledAt"]) if i["stalledAt"] is not None else None),
        "agentVersion": "9.66.7567.1", "isReplicationAgentUpdateRequired": False,
        "recoveryFabricObjectId": i["vms"].get(i["recoveryLocation"]),
        "vmProtectionState": protection, "vmProtectionStateDescription": description,
        "lifecycleId": i["objectId"],
        "testFailoverRecoveryFabricObjectId": i["tfo"].get("vm"),
        "rpoInSeconds": rpo,
        "lastRpoCalculatedTime": iso(math.floor(now / 60) * 60) if rpo is not None else None,
        "tfoAzureVMName": i["tfoVmName"],
        "recoveryAzureGeneration": "V2",
        "vmEncryptionType": "NotEncrypted",
        "churnOptionSelected": "Normal",
    }
    props = {
        "friendlyName": i["friendlyName"],
        "protectedItemType": "A2AVirtualMachine",
        "protectableItemId": None,
        "recoveryServicesProviderId": None,
        "primaryFabricFriendlyName": fabric.name,
        "primaryFabricProvider": "Azure",
        "recoveryFabricFriendlyName": recovery_fabric.name if recovery_fabric is not None else "",
        "recoveryFabricId": m.wire_id(recovery_fabric.id) if recovery_fabric is not None else "",
        "primaryProtectionContainerFriendlyName": container.name,
        "recoveryProtectionContainerFriendlyName": recovery_container.name if recovery_container is not None else "",
        "protectionState": protection,
        "protectionStateDescription": description,
        "activeLocation": i["active"],
        "testFailoverState": tfo_state,
        "testFailoverStateDescription": tfo_description,
        "switchProviderState": "None", "switchProviderStateDescription": "None",
        "allowedOperations": allowed,
        "replicationHealth": replication_health(store, item, now),
        "failoverHealth": "Normal",
        "healthErrors": health_errors(store, item, now),
        "policyId": m.wire_id(i["policy"]),
        "policyFriendlyName": policy.name if policy is not None else "",
        "lastSuccessfulFailoverTime": iso(i["lastFailover"]) if i["lastFailover"] else None,
        "lastSuccessfulTestFailoverTime": iso(i["lastTestFailover"]) if i["lastTestFailover"] else None,
        "currentScenario": {"scenarioName": scenario["name"], "jobId": m.wire_id(scenario["jobId"]),
                            "startTime": iso(scenario["start"]) if scenario["start"] else "1753-01-01T01:01:01Z"},
        "failoverRecoveryPointId": m.wire_id((i["failover"] or {}).get("point") or i["tfo"].get("point") or "") or None,
        "providerSpecificDetails": details,
        "recoveryContainerId": m.wire_id(i["recoveryContainer"]),
        "eventCorrelationId": i["objectId"],
    }
    return m.body_of(item, props)
