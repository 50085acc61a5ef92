"""Azure Backup's rules for Azure VMs, on plain state: vaults and their policies, discovery
(refreshContainers), protected items, recovery points (on demand and from the policy schedule,
computed lazily on the emulator's clock), jobs and restores.

State lives in the Store as nested resources under the vault (policies, protected items, jobs), so
it is saved with ``--state`` and is invisible to the top-level resource lists and Resource Graph.
Emulator-private parts (discovered VMs, recovery points, schedule bookkeeping) are in ``internal``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from ..compute import models as compute
from ..core.arm import normalize_location, parse_rid, rid
from ..core.errors import ArmError
from ..core.state import Resource, Store
from . import ilr

PROVIDER = "Microsoft.RecoveryServices"
VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
POLICY_TYPE = "Microsoft.RecoveryServices/vaults/backupPolicies"
JOB_TYPE = "Microsoft.RecoveryServices/vaults/backupJobs"
CONTAINER_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers"
ITEM_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
PROTECTABLE_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectableItems"
RP_TYPE = ITEM_TYPE + "/recoveryPoints"
FABRIC = "Azure"
MANAGEMENT_TYPE = "AzureIaasVM"
ITEM_KIND = "Microsoft.Compute/virtualMachines"
MAX_ITEMS_PER_VAULT = 1000  # Azure VMs per vault (Azure Backup support matrix)
DEFAULT_POLICY = "DefaultPolicy"
ENHANCED_POLICY = "EnhancedPolicy"
VAULT_NAME_RE = r"[A-Za-z][A-Za-z0-9-]{1,49}"
VAULT_NAME_RULE = "Vault names are 2-50 characters: letters, digits and hyphens, starting with a letter."
DAY = 86400.0
UNIT_DAYS = {"days": 1, "weeks": 7, "months": 30, "years": 365}
NOT_DISCOVERABLE = ("creating", "deleting", "failed")


class BackupError(ArmError):
    """Azure Backup's user errors: 400 with a BMS/UserError code."""

    status = 400
    code = "BMSUserErrorInvalidInput"


def iso_z(ts: float) -> str:
    """Azure Backup's timestamp form: 2017-12-21T22:48:25.435395Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def duration_text(seconds: float) -> str:
    return f"PT{max(0.0, seconds):.7f}S"


# --- names ---------------------------------------------------------------------------------------
def container_name(rg: str, vm: str) -> str:
    return f"IaasVMContainer;iaasvmcontainerv2;{rg.lower()};{vm.lower()}"


def item_name(rg: str, vm: str) -> str:
    return f"VM;iaasvmcontainerv2;{rg.lower()};{vm.lower()}"


def short_container(rg: str, vm: str) -> str:
    return f"iaasvmcontainerv2;{rg.lower()};{vm.lower()}"


def parse_container(name: str) -> tuple[str, str] | None:
    """(rg, vm) of 'IaasVMContainer;iaasvmcontainerv2;{rg};{vm}' or 'iaasvmcontainerv2;{rg};{vm}'."""
    parts = name.split(";")
    if len(parts) == 4 and parts[0].lower() == "iaasvmcontainer" and parts[1].lower() == "iaasvmcontainerv2":
        return parts[2], parts[3]
    if len(parts) == 3 and parts[0].lower() == "iaasvmcontainerv2":
        return parts[1], parts[2]
    return None


def parse_item(name: str) -> tuple[str, str] | None:
    parts = name.split(";")
    if len(parts) == 4 and parts[0].lower() == "vm" and parts[1].lower() == "iaasvmcontainerv2":
        return parts[2], parts[3]
    return None


def item_id(vault_id: str, rg: str, vm: str) -> str:
    return f"{vault_id}/backupFabrics/{FABRIC}/protectionContainers/{container_name(rg, vm)}/protectedItems/{item_name(rg, vm)}"


def vm_names(vm_id: str) -> tuple[str, str]:
    parts = vm_id.split("/")
    return parts[4], parts[8]


# --- vaults and policies ---------------------------------------------------------------------------
def new_vault(sub: str, rg: str, name: str, location: str, now: float, tags: dict[str, str] | None = None,
              sku: dict[str, Any] | None = None, properties: dict[str, Any] | None = None) -> Resource:
    props: dict[str, Any] = {
        "provisioningState": "Succeeded",
        "publicNetworkAccess": "Enabled",
        "privateEndpointStateForBackup": "None",
        "privateEndpointStateForSiteRecovery": "None",
        "redundancySettings": {"standardTierStorageRedundancy": "GeoRedundant", "crossRegionRestore": "Disabled"},
        "securitySettings": {"softDeleteSettings": {"softDeleteState": "Enabled", "softDeleteRetentionPeriodInDays": 14},
                             "immutabilitySettings": {"state": "Disabled"}},
    }
    for key in ("publicNetworkAccess", "redundancySettings", "securitySettings"):
        if properties and key in properties:
            props[key] = properties[key]
    extra = {"sku": dict(sku or {"name": "RS0", "tier": "Standard"}), "etag": f'W/"datetime\'{iso_z(now)}\'"'}
    return Resource(rid(sub, rg, PROVIDER, "vaults", name), VAULT_TYPE, name, location, tags, props, extra,
                    {"discovered": {}, "refreshedAt": None}, now)


def _run_time(now: float, hour: int) -> str:
    return datetime.fromtimestamp(now, UTC).strftime(f"%Y-%m-%dT{hour:02d}:00:00Z")


def default_policy_properties(now: float) -> dict[str, Any]:
    """The standard policy a new vault has: daily at 19:00 UTC, 30 daily points, 2 days of instant restore."""
    at = _run_time(now, 19)
    return {
        "backupManagementType": MANAGEMENT_TYPE,
        "policyType": "V1",
        "instantRpRetentionRangeInDays": 2,
        "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                           "scheduleRunTimes": [at], "scheduleWeeklyFrequency": 0},
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                            "dailySchedule": {"retentionTimes": [at], "retentionDuration": {"count": 30, "durationType": "Days"}}},
        "timeZone": "UTC",
    }


def enhanced_policy_properties(now: float) -> dict[str, Any]:
    """The Enhanced (V2) policy: every 4 hours in a 12-hour window from 08:00 UTC, 7 days of instant restore."""
    at = _run_time(now, 8)
    return {
        "backupManagementType": MANAGEMENT_TYPE,
        "policyType": "V2",
        "instantRpRetentionRangeInDays": 7,
        "schedulePolicy": {"schedulePolicyType": "SimpleSchedulePolicyV2", "scheduleRunFrequency": "Hourly",
                           "hourlySchedule": {"interval": 4, "scheduleWindowStartTime": at, "scheduleWindowDuration": 12}},
        "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy",
                            "dailySchedule": {"retentionTimes": [at], "retentionDuration": {"count": 30, "durationType": "Days"}}},
        "timeZone": "UTC",
    }


def new_policy(vault: Resource, name: str, properties: dict[str, Any], now: float) -> Resource:
    return Resource(f"{vault.id}/backupPolicies/{name}", POLICY_TYPE, name, None, None, properties, {}, {}, now)


def add_default_policies(store: Store, vault: Resource, now: float) -> None:
    store.put(new_policy(vault, DEFAULT_POLICY, default_policy_properties(now), now))
    store.put(new_policy(vault, ENHANCED_POLICY, enhanced_policy_properties(now), now))


def validate_policy(props: dict[str, Any]) -> dict[str, Any]:
    """Check an AzureIaasVM policy body (what is modelled: schedules and retention) and return it."""
    if str(props.get("backupManagementType", "")).lower() != MANAGEMENT_TYPE.lower():
        raise BackupError("properties.backupManagementType: only 'AzureIaasVM' policies are modelled.",
                          code="BMSUserErrorInvalidPolicyInput")
    sp = props.get("schedulePolicy") or {}
    kind = sp.get("schedulePolicyType")
    freq = str(sp.get("scheduleRunFrequency", "")).lower()
    v2 = str(props.get("policyType", "V1")).upper() == "V2"
    if kind not in ("SimpleSchedulePolicy", "SimpleSchedulePolicyV2"):
        raise BackupError("properties.schedulePolicy.schedulePolicyType: SimpleSchedulePolicy or SimpleSchedulePolicyV2.",
                          code="BMSUserErrorInvalidPolicyInput")
    if v2 != (kind == "SimpleSchedulePolicyV2"):
        raise BackupError("An Enhanced policy (policyType V2) needs a SimpleSchedulePolicyV2 schedule, a standard "
                          "policy a SimpleSchedulePolicy.", code="BMSUserErrorInvalidPolicyInput")
    if freq not in ("daily", "weekly", "hourly") or (freq == "hourly" and not v2):
        raise BackupError("properties.schedulePolicy.scheduleRunFrequency: Daily or Weekly (Hourly needs an Enhanced "
                          "policy).", code="BMSUserErrorInvalidPolicyInput")
    try:
        schedule_slots(props)
    except (ValueError, TypeError) as exc:
        raise BackupError(f"properties.schedulePolicy: invalid schedule ({exc}).",
                          code="BMSUserErrorInvalidPolicyInput") from None
    if retention_days(props) <= 0:
        raise BackupError("properties.retentionPolicy: a positive retention is required.", code="BMSUserErrorInvalidPolicyInput")
    out = dict(props)
    out.pop("protectedItemsCount", None)
    out.setdefault("policyType", "V2" if v2 else "V1")
    out.setdefault("timeZone", "UTC")
    return out


# --- the schedule --------------------------------------------------------------------------------
def _seconds_of_day(value: str) -> int:
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return dt.hour * 3600 + dt.minute * 60 + dt.second


def schedule_slots(props: dict[str, Any]) -> tuple[list[int], set[str] | None]:
    """(seconds after midnight UTC at which a backup runs, weekdays or None for every day).

    The policy's timeZone is not applied: run times are read as UTC."""
    sp = props.get("schedulePolicy") or {}
    freq = str(sp.get("scheduleRunFrequency", "Daily")).lower()
    if sp.get("schedulePolicyType") == "SimpleSchedulePolicyV2":
        if freq == "hourly":
            hourly = sp.get("hourlySchedule") or {}
            interval = int(hourly.get("interval") or 4)
            window = int(hourly.get("scheduleWindowDuration") or 24)
            if interval <= 0 or window <= 0:
                raise ValueError("hourlySchedule interval and window must be positive")
            start = _seconds_of_day(hourly.get("scheduleWindowStartTime") or "2000-01-01T08:00:00Z")
            return [start + h * 3600 for h in range(0, window, interval)], None
        if freq == "weekly":
            weekly = sp.get("weeklySchedule") or {}
            return ([_seconds_of_day(t) for t in weekly.get("scheduleRunTimes") or []],
                    {d.lower() for d in weekly.get("scheduleRunDays") or []})
        return [_seconds_of_day(t) for t in (sp.get("dailySchedule") or {}).get("scheduleRunTimes") or []], None
    times = [_seconds_of_day(t) for t in sp.get("scheduleRunTimes") or []]
    if freq == "weekly":
        return times, {d.lower() for d in sp.get("scheduleRunDays") or []}
    return times, None


def schedule_times(props: dict[str, Any], start: float, end: float) -> list[float]:
    """The policy's backup times in (start, end]."""
    try:
        slots, weekdays = schedule_slots(props)
    except (ValueError, TypeError):
        return []
    out = []
    day = (start // DAY) * DAY - DAY
    while day <= end:
        for slot in slots:
            t = day + slot
            if start < t <= end:
                if weekdays is None or datetime.fromtimestamp(t, UTC).strftime("%A").lower() in weekdays:
                    out.append(t)
        day += DAY
    return sorted(set(out))


def retention_days(props: dict[str, Any]) -> float:
    """How long a scheduled point is kept: the daily retention (or the longest other one)."""
    rp = props.get("retentionPolicy") or {}
    if rp.get("retentionPolicyType") == "SimpleRetentionPolicy":
        durations = [rp.get("retentionDuration") or {}]
    else:
        daily = (rp.get("dailySchedule") or {}).get("retentionDuration")
        durations = [daily] if daily else [(rp.get(k) or {}).get("retentionDuration") or {}
                                           for k in ("weeklySchedule", "monthlySchedule", "yearlySchedule")]
    best = 0.0
    for d in durations:
        if d:
            best = max(best, float(d.get("count") or 0) * UNIT_DAYS.get(str(d.get("durationType", "Days")).lower(), 1))
    return best


# --- discovery -----------------------------------------------------------------------------------
def discover(store: Store, vault: Resource, now: float) -> int:
    """What a refreshContainers sees: the VMs of the vault's subscription that exist and are
    provisioned at this moment. A VM created (or still Creating) later waits for the next refresh."""
    found: dict[str, str] = {}
    for vm in store.of_type(compute.VM_TYPE, f"/subscriptions/{vault.subscription_id}"):
        if str(vm.properties.get("provisioningState", "Succeeded")).lower() in NOT_DISCOVERABLE:
            continue
        found[vm.key] = vm.id
    vault.internal["discovered"] = found
    vault.internal["refreshedAt"] = now
    return len(found)


def is_discovered(vault: Resource, vm: Resource) -> bool:
    return vm.key in (vault.internal.get("discovered") or {})


def vaults(store: Store) -> list[Resource]:
    return store.of_type(VAULT_TYPE)


def items_of(store: Store, vault: Resource) -> list[Resource]:
    return store.of_type(ITEM_TYPE, vault.id)


def count_items(store: Store, vault: Resource) -> int:
    prefix = vault.key + "/"
    return sum(1 for k in store.by_type.get(ITEM_TYPE.lower(), {}) if k.startswith(prefix))


def item_for_vm(store: Store, vault: Resource, vm_id: str) -> Resource | None:
    rg, name = vm_names(vm_id)
    item = store.get(item_id(vault.id, rg, name))
    if item is not None and item.internal.get("vmId", "").lower() == vm_id.lower():
        return item
    return None


def protections(store: Store, vm_id: str) -> list[tuple[Resource, Resource]]:
    """Every (vault, item) that holds the VM, in any state (enabling, protected, stopped)."""
    out = []
    for vault in vaults(store):
        item = item_for_vm(store, vault, vm_id)
        if item is not None:
            out.append((vault, item))
    return out


def protectable_vms(store: Store, vault: Resource) -> list[Resource]:
    """Discovered VMs of the vault's region that still exist, are provisioned and are protected by no
    vault (Azure lists a VM backed up by this or another vault no more)."""
    region = normalize_location(vault.location)
    out = []
    for key in sorted(vault.internal.get("discovered") or {}):
        vm = store.get(key)
        if vm is None or normalize_location(vm.location) != region:
            continue
        if str(vm.properties.get("provisioningState", "Succeeded")).lower() in NOT_DISCOVERABLE:
            continue
        if protections(store, vm.id):
            continue
        out.append(vm)
    return out


def policy_of(store: Store, vault: Resource, policy_id: str) -> Resource | None:
    prefix = f"{vault.id}/backupPolicies/".lower()
    if not policy_id or not policy_id.lower().startswith(prefix):
        return None
    return store.get(policy_id)


def check_enable(store: Store, vault: Resource, vm: Resource | None, vm_id: str, rg: str, name: str) -> None:
    """Azure's checks before enabling protection of a VM in a vault (raise BackupError)."""
    if vm is None:
        raise BackupError(f"The virtual machine '{vm_id}' was not found. A VM must exist (and be provisioned) to be "
                          "protected.", code="BMSUserErrorVmNotFound")
    state = str(vm.properties.get("provisioningState", "Succeeded"))
    if state.lower() in NOT_DISCOVERABLE:
        raise BackupError(f"The virtual machine '{vm.name}' is {state}: only a provisioned VM can be protected.",
                          code="BMSUserErrorVmNotProvisioned")
    if normalize_location(vm.location) != normalize_location(vault.location):
        raise BackupError(f"The virtual machine '{vm.name}' is in region '{normalize_location(vm.location)}' and the vault "
                          f"'{vault.name}' in '{normalize_location(vault.location)}': a vault protects only VMs of its own "
                          "region. Use a vault in the VM's region.", code="BMSUserErrorVmAndVaultInDifferentRegions")
    for other, item in protections(store, vm.id):
        if other.key != vault.key:
            state = item.properties.get("protectionState")
            raise BackupError(f"The virtual machine '{vm.name}' is already protected by the vault '{other.id}' "
                              f"(protection state {state}). A VM can be protected by one vault only: stop protection "
                              "and delete its backup data there first.", code="UserErrorBackupVMAlreadyProtected",
                              target="properties.sourceResourceId")
    if not is_discovered(vault, vm):
        raise BackupError(f"The container '{container_name(rg, name)}' was not found in vault '{vault.name}': the VM has "
                          "not been discovered. Run refreshContainers (discovery) after the VM is provisioned, then retry.",
                          code="BMSUserErrorContainerObjectNotFound")
    if count_items(store, vault) >= MAX_ITEMS_PER_VAULT:
        raise BackupError(f"The vault '{vault.name}' already holds {MAX_ITEMS_PER_VAULT} protected VMs, the most a vault "
                          "can protect. Use another vault for this VM.", code="BMSUserErrorProtectedItemsLimitReached")


# --- protected items -----------------------------------------------------------------------------
def new_item(vault: Resource, vm: Resource, policy: Resource, now: float) -> Resource:
    rg, name = vm_names(vm.id)
    data_id = str(int(hashlib.sha256(f"{vault.key}|{vm.key}|{now}".encode()).hexdigest()[:15], 16))
    props: dict[str, Any] = {
        "protectedItemType": ITEM_KIND,
        "backupManagementType": MANAGEMENT_TYPE,
        "workloadType": "VM",
        "containerName": short_container(rg, name),
        "friendlyName": vm.name,
        "virtualMachineId": vm.id,
        "sourceResourceId": vm.id,
        "policyId": policy.id,
        "policyName": policy.name,
        "protectionState": "IRPending",
        "protectionStatus": "Healthy",
        "healthStatus": "Passed",
        "lastBackupStatus": "",
        "protectedItemDataId": data_id,
        "vaultId": vault.id,
        "isScheduledForDeferredDelete": False,
    }
    internal = {"vmId": vm.id, "state": "enabling", "since": None, "scheduledUntil": None, "points": [], "op": None}
    return Resource(item_id(vault.id, rg, name), ITEM_TYPE, item_name(rg, name), None, None, props, {}, internal, now)


def set_policy(item: Resource, policy: Resource) -> None:
    item.properties["policyId"] = policy.id
    item.properties["policyName"] = policy.name
    if str(policy.properties.get("policyType", "")).upper() == "V2":
        item.properties["policyType"] = "V2"
    else:
        item.properties.pop("policyType", None)


def activate(item: Resource, now: float) -> None:
    """Protection is on: the schedule runs from now."""
    item.internal["state"] = "ready"
    item.internal["since"] = now
    item.internal["scheduledUntil"] = now
    item.properties["protectionState"] = "Protected"
    item.properties["protectionStatus"] = "Healthy"


def stop(store: Store, item: Resource, now: float) -> None:
    """Stop protection, retaining data: no more scheduled points, existing points are kept."""
    materialize(store, item, now)
    item.internal["state"] = "stopped"
    item.properties["protectionState"] = "ProtectionStopped"
    item.properties["policyId"] = ""
    item.properties.pop("policyName", None)
    item.properties.pop("policyType", None)


def is_visible(item: Resource) -> bool:
    return item.internal.get("state") in ("ready", "stopped")


def capture_vm(store: Store, vm: Resource) -> dict[str, Any]:
    """What a recovery point keeps of the VM: size, OS, zones and its disks."""
    storage = vm.properties.get("storageProfile") or {}
    disks = []
    for spec, is_os in [(storage.get("osDisk") or {}, True)] + [(d, False) for d in storage.get("dataDisks") or []]:
        disk_id = (spec.get("managedDisk") or {}).get("id") or ""
        disk = store.get(disk_id) if disk_id else None
        disks.append({
            "lun": None if is_os else spec.get("lun"),
            "name": spec.get("name") or (disk.name if disk else disk_id.rsplit("/", 1)[-1]),
            "sizeGb": int((disk.properties.get("diskSizeGB") if disk else None) or spec.get("diskSizeGB") or 30),
            "sku": (disk.extra.get("sku") or {}).get("name") if disk else (spec.get("managedDisk") or {}).get("storageAccountType"),
            "osType": (storage.get("osDisk") or {}).get("osType", "Linux") if is_os else None,
            "sourceDiskId": disk_id,
        })
    return {
        "vmSize": (vm.properties.get("hardwareProfile") or {}).get("vmSize"),
        "osType": (storage.get("osDisk") or {}).get("osType", "Linux"),
        "zones": vm.extra.get("zones"),
        "consistency": "CrashConsistent" if compute.power_state(vm) in ("deallocated", "stopped") else "AppConsistent",
        "disks": [d for d in disks if d["name"]],
    }


def point_name(ts: float) -> str:
    """Deterministic recovery point names (Azure's are numeric): the point's time in milliseconds."""
    return str(int(round(ts * 1000)))


def add_point(item: Resource, ts: float, capture: dict[str, Any], expiry: float, rule: str, source: str,
              name: str | None = None) -> dict[str, Any]:
    point = {"name": name or point_name(ts), "time": ts, "expiry": expiry, "rule": rule, "source": source, **capture}
    points: list[dict[str, Any]] = item.internal.setdefault("points", [])
    if any(p["name"] == point["name"] for p in points):
        return next(p for p in points if p["name"] == point["name"])
    points.append(point)
    points.sort(key=lambda p: p["time"])
    item.properties["lastBackupStatus"] = "Completed"
    latest = points[-1]["time"]
    item.properties["lastBackupTime"] = iso_z(latest)
    item.properties["lastRecoveryPoint"] = iso_z(latest)
    return point


def materialize(store: Store, item: Resource, now: float) -> None:
    """Recovery points the policy schedule made between the last look and now (lazy, deterministic)."""
    if item.internal.get("state") != "ready":
        return
    start = float(item.internal.get("scheduledUntil") or now)
    if now <= start:
        return
    item.internal["scheduledUntil"] = now
    vm = store.get(item.internal.get("vmId", ""))
    policy = store.get(item.properties.get("policyId") or "")
    if vm is None or policy is None:  # a deleted VM gets no new points (its backups would fail)
        return
    keep = retention_days(policy.properties) * DAY
    start = max(start, now - keep - DAY)
    times = schedule_times(policy.properties, start, now)
    if not times:
        return
    capture = capture_vm(store, vm)
    for t in times:
        add_point(item, t, capture, t + keep, "DailyRule" if keep else "", "Scheduled")


def live_points(item: Resource, now: float) -> list[dict[str, Any]]:
    """Points still kept: an item under protection loses expired points; a stopped one keeps all."""
    points = item.internal.get("points") or []
    if item.internal.get("state") == "ready":
        points[:] = [p for p in points if p["expiry"] > now]
    return list(points)


def item_extended_info(item: Resource, now: float) -> dict[str, Any]:
    points = live_points(item, now)
    info: dict[str, Any] = {"recoveryPointCount": len(points), "policyInconsistent": False}
    if points:
        info["oldestRecoveryPoint"] = iso_z(points[0]["time"])
        info["oldestRecoveryPointInVault"] = iso_z(points[0]["time"])
    return info


def render_item(store: Store, item: Resource, now: float) -> dict[str, Any]:
    materialize(store, item, now)
    body = item.to_arm()
    props = dict(body["properties"])
    props["extendedInfo"] = item_extended_info(item, now)
    props.setdefault("lastRecoveryPoint", None)
    body["properties"] = props
    return body


def render_point(item: Resource, point: dict[str, Any], now: float, instant_days: float) -> dict[str, Any]:
    instant = "Valid" if now < point["time"] + instant_days * DAY else "Deleted"
    disks = point.get("disks") or []
    props: dict[str, Any] = {
        "objectType": "IaasVMRecoveryPoint",
        "recoveryPointTime": iso_z(point["time"]),
        "recoveryPointType": point.get("consistency", "AppConsistent"),
        "recoveryPointAdditionalInfo": "",
        "sourceVMStorageType": "NormalStorage",
        "isSourceVMEncrypted": False,
        "isInstantIlrSessionActive": ilr.session(item, point["name"], now) is not None,
        "isManagedVirtualMachine": True,
        "isPrivateAccessEnabledOnAnyDisk": False,
        "originalStorageAccountOption": False,
        "virtualMachineSize": point.get("vmSize"),
        "osType": point.get("osType"),
        "securityType": "None",
        "recoveryPointTierDetails": [{"type": "InstantRP", "status": instant}, {"type": "HardenedRP", "status": "Valid"}],
        "recoveryPointMoveReadinessInfo": {"ArchivedRP": {"isReadyForMove": False,
                                                          "additionalInfo": "Archive tier is not modelled by the emulator."}},
        "recoveryPointDiskConfiguration": {
            "numberOfDisksIncludedInBackup": len(disks), "numberOfDisksAttachedToVm": len(disks),
            "includedDiskList": [{"lun": d["lun"] if d["lun"] is not None else -1, "name": d["name"]} for d in disks],
            "excludedDiskList": [],
        },
        "recoveryPointProperties": {"expiryTime": iso_z(point["expiry"]), "ruleName": point.get("rule", ""),
                                    "isSoftDeleted": False},
    }
    if point.get("zones"):
        props["zones"] = point["zones"]
    return {"id": f"{item.id}/recoveryPoints/{point['name']}", "name": point["name"], "type": RP_TYPE, "properties": props}


# --- jobs ----------------------------------------------------------------------------------------
TASKS = {
    "Backup": ["Take Snapshot", "Transfer data to vault"],
    "Restore": ["Transfer data from vault"],
    "ConfigureBackup": [],
    "DisableBackup": [],
    "DeleteBackupData": [],
}


def new_job(vault: Resource, operation: str, vm_name: str, container: str, now: float, *, user: bool = True,
            bag: dict[str, str] | None = None, name: str | None = None) -> Resource:
    name = name or str(uuid.uuid4())
    props: dict[str, Any] = {
        "jobType": "AzureIaaSVMJob",
        "backupManagementType": MANAGEMENT_TYPE,
        "operation": operation,
        "status": "InProgress",
        "entityFriendlyName": vm_name,
        "containerName": container,
        "startTime": iso_z(now),
        "activityId": str(uuid.uuid4()),
        "virtualMachineVersion": "Compute",
        "isUserTriggered": user,
        "extendedInfo": {"propertyBag": dict(bag or {"VM Name": vm_name}), "tasksList": []},
    }
    return Resource(f"{vault.id}/backupJobs/{name}", JOB_TYPE, name, None, None, props, {},
                    {"start": now, "end": None, "op": None}, now)


def finish_job(job: Resource, now: float, error: dict[str, str] | None = None) -> None:
    job.internal["end"] = now
    job.properties["status"] = "Failed" if error else "Completed"
    job.properties["endTime"] = iso_z(now)
    if error:
        job.properties["errorDetails"] = [{"errorCode": error.get("code", "InternalOperationError"),
                                           "errorString": error.get("message", "The operation failed."),
                                           "recommendations": ["Retry the operation."]}]


def render_job(job: Resource, now: float, percent: float | None = None) -> dict[str, Any]:
    body = job.to_arm()
    props = dict(body["properties"])
    start, end = job.internal.get("start") or job.created, job.internal.get("end")
    props["duration"] = duration_text((end or now) - start)
    status = props.get("status")
    tasks = []
    for i, task in enumerate(TASKS.get(props.get("operation", ""), [])):
        state = "Completed" if status == "Completed" else ("Failed" if status == "Failed" and i == 0 else
                                                           ("InProgress" if i == 0 else "NotStarted"))
        tasks.append({"taskId": task, "status": state, "duration": duration_text((end or now) - start if i == 0 else 0)})
    ext = dict(props.get("extendedInfo") or {})
    ext["tasksList"] = tasks
    if status == "InProgress":
        ext["progressPercentage"] = round(percent or 0.0, 1)
    props["extendedInfo"] = ext
    body["properties"] = props
    return body


def jobs_of(store: Store, vault: Resource) -> list[Resource]:
    jobs = store.of_type(JOB_TYPE, vault.id)
    jobs.sort(key=lambda j: (j.internal.get("start") or j.created, j.key), reverse=True)
    return jobs


# --- backupStatus --------------------------------------------------------------------------------
def backup_status(store: Store, vm_id: str) -> dict[str, Any]:
    """BackupStatus_Get: Protected (active protection), Protecting (being enabled) or NotProtected
    (nothing, or protection stopped: then vaultId still names the vault holding its data)."""
    found = protections(store, vm_id)
    if not found:
        return {"protectionStatus": "NotProtected"}
    vault, item = found[0]
    rg, name = vm_names(item.internal["vmId"])
    state = item.internal.get("state")
    status = {"ready": "Protected", "enabling": "Protecting"}.get(state, "NotProtected")
    body = {
        "protectionStatus": status,
        "vaultId": vault.id,
        "fabricName": FABRIC,
        "containerName": f"iaasvmcontainer;iaasvmcontainerv2;{rg.lower()};{name.lower()}",
        "protectedItemName": f"vm;iaasvmcontainerv2;{rg.lower()};{name.lower()}",
        "errorCode": "Success",
    }
    if item.properties.get("policyName"):
        body["policyName"] = item.properties["policyName"]
    return body


# --- restores ------------------------------------------------------------------------------------
def _free_name(store: Store, sub: str, rg: str, kind: str, name: str) -> str:
    candidate, n = name, 1
    while store.get(rid(sub, rg, "Microsoft.Compute", kind, candidate)) is not None:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def restore_disks(store: Store, point: dict[str, Any], vm_name: str, sub: str, rg: str, location: str,
                  now: float, tags: dict[str, str] | None = None) -> list[Resource]:
    """Managed disks restored from a recovery point into a resource group (Compute's disk model)."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d-%H%M%S")
    disks = []
    for d in point.get("disks") or []:
        label = "osdisk" if d["lun"] is None else f"datadisk-{d['lun']}"
        name = _free_name(store, sub, rg, "disks", f"{vm_name}-{label}-{stamp}")
        disk = compute.new_disk(sub, rg, name, location, now, size_gb=int(d["sizeGb"]), sku=d.get("sku") or "Premium_LRS",
                                creation={"createOption": "Import", "sourceUri": f"azurebackup://{point['name']}/{d['name']}"},
                                tags=tags, os_type=d.get("osType"))
        store.put(disk)
        disks.append(disk)
    return disks


def replace_disks(store: Store, point: dict[str, Any], vm: Resource, now: float,
                  tags: dict[str, str] | None = None) -> list[Resource]:
    """An original-location restore: the point's disks restored beside the VM and swapped in, LUN for LUN;
    the VM's own disks detached and kept (Azure Backup keeps them too)."""
    parsed = parse_rid(vm.id)
    assert parsed is not None
    disks = restore_disks(store, point, vm.name, parsed["subscription"], parsed["resource_group"], vm.location, now, tags)
    by_lun = {d["lun"]: disk for d, disk in zip(point.get("disks") or [], disks, strict=True)}
    storage = vm.properties.setdefault("storageProfile", {})
    for old_id in compute.vm_disk_ids(vm):
        old = store.get(old_id)
        if old is not None:
            compute.detach_disk(old)
    if None in by_lun and storage.get("osDisk"):
        new = by_lun[None]
        storage["osDisk"] = dict(storage["osDisk"], name=new.name, managedDisk={"id": new.id},
                                 diskSizeGB=new.properties["diskSizeGB"])
    storage["dataDisks"] = [dict(d, name=by_lun[d["lun"]].name, managedDisk={"id": by_lun[d["lun"]].id},
                                 diskSizeGB=by_lun[d["lun"]].properties["diskSizeGB"])
                            if d.get("lun") in by_lun else d for d in storage.get("dataDisks") or []]
    for disk_id in compute.vm_disk_ids(vm):
        disk = store.get(disk_id)
        if disk is not None:
            compute.attach_disk(disk, vm.id)
    compute.touch_vm(vm)
    return disks


def restore_vm(store: Store, point: dict[str, Any], target_vm_id: str, subnet_id: str, location: str, now: float,
               tags: dict[str, str] | None = None) -> tuple[Resource, list[Resource], Resource]:
    """An alternate-location restore: disks, a NIC in the given subnet and the VM, all provisioned."""
    from ..network.responses import new_nic

    parsed = parse_rid(target_vm_id)
    assert parsed is not None
    sub, rg, name = parsed["subscription"], parsed["resource_group"], parsed["name"]
    disks = restore_disks(store, point, name, sub, rg, location, now, tags)
    nic = new_nic(sub, rg, _free_name(store, sub, rg, "networkInterfaces", f"{name}-nic-{uuid.uuid4().hex[:6]}"),
                  location, subnet_id, tags, now)
    store.put(nic)
    by_lun = {d["lun"]: disk for d, disk in zip(point.get("disks") or [], disks, strict=True)}
    os_disk = by_lun.get(None)
    storage: dict[str, Any] = {"dataDisks": []}
    if os_disk is not None:
        storage["osDisk"] = {"osType": point.get("osType", "Linux"), "name": os_disk.name, "createOption": "Attach",
                             "caching": "ReadWrite", "managedDisk": {"id": os_disk.id, "storageAccountType": os_disk.extra["sku"]["name"]},
                             "diskSizeGB": os_disk.properties["diskSizeGB"], "deleteOption": "Detach"}
    for lun, disk in sorted(((k, v) for k, v in by_lun.items() if k is not None), key=lambda kv: kv[0]):
        storage["dataDisks"].append({"lun": lun, "name": disk.name, "createOption": "Attach", "caching": "None",
                                     "managedDisk": {"id": disk.id, "storageAccountType": disk.extra["sku"]["name"]},
                                     "diskSizeGB": disk.properties["diskSizeGB"], "deleteOption": "Detach"})
    vm = compute.new_vm(sub, rg, name, location, now, size=point.get("vmSize") or "Standard_D2s_v5", storage=storage,
                        network={"networkInterfaces": [{"id": nic.id, "properties": {"primary": True}}]}, tags=tags,
                        state="Succeeded")
    for disk in disks:
        compute.attach_disk(disk, vm.id)
    nic.properties["virtualMachine"] = {"id": vm.id}
    store.put(vm)
    return vm, disks, nic


# --- seeding (tests, demo) -----------------------------------------------------------------------
def seed_vault(emulator: Any, subscription_id: str, resource_group: str, name: str, region: str) -> str:
    """A vault with its default policies, written straight into the store (no events); creates the
    subscription and resource group if needed. Returns the vault id (an existing vault is kept)."""
    with emulator.lock:
        store, now = emulator.store, emulator.clock.timestamp()
        store.add_subscription(subscription_id)
        region = normalize_location(region)
        try:
            store.resource_group(subscription_id, resource_group)
        except ArmError:
            store.put_resource_group(subscription_id, resource_group, region)
        vault_id = rid(subscription_id, resource_group, PROVIDER, "vaults", name)
        vault = store.get(vault_id)
        if vault is None:
            vault = store.put(new_vault(subscription_id, resource_group, name, region, now))
            add_default_policies(store, vault, now)
        return vault.id


def seed_vaults(emulator: Any, subscription_id: str, resource_group: str, regions: list[str]) -> dict[str, str]:
    """One vault per region (``vault-{region}``) with its default policies (DefaultPolicy, EnhancedPolicy),
    written straight into the store (no events). Returns {region: vault id}."""
    return {normalize_location(r): seed_vault(emulator, subscription_id, resource_group, f"vault-{normalize_location(r)}", r)
            for r in regions}


def seed_protected_item(emulator: Any, vault_id: str, vm_id: str, policy: str = DEFAULT_POLICY) -> str:
    """A VM already protected by a vault (discovered, Protected with the policy), no events. Returns the item id."""
    with emulator.lock:
        store, now = emulator.store, emulator.clock.timestamp()
        vault, vm = store.get(vault_id), store.get(vm_id)
        if vault is None or vm is None:
            raise ValueError(f"seed_protected_item: vault '{vault_id}' or VM '{vm_id}' not found")
        vault.internal.setdefault("discovered", {})[vm.key] = vm.id
        pol = store.get(f"{vault.id}/backupPolicies/{policy}")
        if pol is None:
            raise ValueError(f"seed_protected_item: no policy '{policy}' in '{vault_id}'")
        item = item_for_vm(store, vault, vm.id) or new_item(vault, vm, pol, now)
        set_policy(item, pol)
        activate(item, now)
        store.put(item)
        return item.id


def seed_recovery_point(emulator: Any, protected_item_id: str, name: str | None = None, age_seconds: float = 3600) -> str:
    """An on-demand recovery point taken ``age_seconds`` ago (no job, no events). Returns its name."""
    with emulator.lock:
        store, now = emulator.store, emulator.clock.timestamp()
        item = store.get(protected_item_id)
        vm = store.get(item.internal["vmId"]) if item else None
        if item is None or vm is None:
            raise ValueError(f"seed_recovery_point: item '{protected_item_id}' or its VM not found")
        point = add_point(item, now - age_seconds, capture_vm(store, vm), now + 30 * DAY, "OnDemand", "OnDemand", name)
        return point["name"]
