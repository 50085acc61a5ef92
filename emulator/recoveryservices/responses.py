"""Microsoft.RecoveryServices over HTTP: vaults (the azure-mgmt-recoveryservices api-versions) and the
backup API of azure-mgmt-recoveryservicesbackup (2026-10-01), with the status codes and monitor
headers the SDK expects: enable/stop protection PUT 202 (+ item-level operationsStatus /
operationResults), backup and restore POST 202, refreshContainers POST 202 (+ fabric-level
operationResults), protected item DELETE 202 (+ vault-level backupOperations / backupOperationResults)."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from ..compute import agent as vm_agent
from ..compute import models as compute
from ..core.arm import (
    check_name,
    check_tags,
    get_resource,
    linked_access_checks,
    listing,
    no_event,
    normalize_location,
    parse_rid,
    require_location,
    rid,
)
from ..core.errors import ArmError, InvalidParameter, NotFound
from ..core.events import build_event
from ..core.lro import Operation, OperationFailed
from ..core.resource import Monitor, add_lists, add_operation_monitors
from ..core.routing import Request, Response, Router
from ..core.state import Resource
from . import guards as g
from . import ilr
from . import models as m
from .models import BackupError

router = Router()

BACKUP_VERSIONS = ("2026-10-01", "2025-08-01", "2025-02-01", "2024-10-01", "2024-04-01", "2024-02-01", "2024-01-01",
                   "2023-08-01", "2023-06-01", "2023-04-01", "2023-02-01", "2023-01-01", "2022-10-01", "2022-03-01",
                   "2021-12-01", "2021-06-01", "2021-01-01", "2020-10-01", "2020-09-01", "2019-06-15", "2017-07-01",
                   "2016-12-01", "2016-06-01")
VAULT_VERSIONS = ("2025-08-01", "2025-02-01", "2025-01-01", "2024-10-01", "2024-09-30-preview", "2024-04-01",
                  "2024-02-01", "2024-01-01", "2023-08-01", "2023-06-01", "2023-04-01", "2023-02-01", "2023-01-01",
                  "2022-10-01", "2022-09-10", "2022-08-01", "2022-04-01", "2022-03-01", "2022-02-01", "2022-01-01",
                  "2021-12-01", "2021-08-01", "2021-06-01", "2021-03-01", "2021-01-01", "2020-10-01", "2016-06-01")

SUB = "/subscriptions/{subscriptionId}/providers/Microsoft.RecoveryServices"
RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.RecoveryServices"
VAULT = RG + "/vaults/{vaultName}"
FABRIC = VAULT + "/backupFabrics/{fabricName}"
CONTAINER = FABRIC + "/protectionContainers/{containerName}"
ITEM = CONTAINER + "/protectedItems/{protectedItemName}"
RP = ITEM + "/recoveryPoints/{recoveryPointId}"
OPS = "Microsoft.RecoveryServices/vaults"
ITEM_OPS = OPS + "/backupFabrics/protectionContainers/protectedItems"


# --- helpers -------------------------------------------------------------------------------------
def _store(req: Request):
    return req.emulator.store


def _now(req: Request) -> float:
    return req.emulator.clock.timestamp()


def _rg(req: Request):
    return _store(req).resource_group(req.params["subscriptionId"], req.params["resourceGroupName"])


def _vault_id(req: Request) -> str:
    return rid(req.params["subscriptionId"], req.params["resourceGroupName"], m.PROVIDER, "vaults", req.params["vaultName"])


def _vault(req: Request) -> Resource:
    return get_resource(_store(req), _vault_id(req), m.VAULT_TYPE, req.params["vaultName"], req.params["resourceGroupName"])


def _fabric(req: Request) -> None:
    if req.params["fabricName"].lower() != m.FABRIC.lower():
        raise NotFound(f"Fabric '{req.params['fabricName']}' was not found: Azure VM backup uses the fabric 'Azure'.",
                       code="BMSUserErrorFabricNotFound")


def _names(req: Request) -> tuple[str, str]:
    """(resource group, VM name) from the compound container and item names, which must agree."""
    container = m.parse_container(req.params["containerName"])
    item = m.parse_item(req.params["protectedItemName"])
    if container is None or item is None:
        raise BackupError(
            f"Container '{req.params['containerName']}' / item '{req.params['protectedItemName']}': Azure VM names are "
            "'IaasVMContainer;iaasvmcontainerv2;{resourceGroup};{vm}' and 'VM;iaasvmcontainerv2;{resourceGroup};{vm}'.",
            code="BMSUserErrorInvalidInput")
    if (container[0].lower(), container[1].lower()) != (item[0].lower(), item[1].lower()):
        raise BackupError("The protected item does not belong to the container named in the URL.",
                          code="BMSUserErrorInvalidInput")
    return item


def _item(req: Request, vault: Resource, *, visible: bool = True) -> Resource:
    rg, name = _names(req)
    item = _store(req).get(m.item_id(vault.id, rg, name))
    if item is None or (visible and not m.is_visible(item)):
        raise ArmError(f"Protected item '{req.params['protectedItemName']}' was not found in vault '{vault.name}'.",
                       code="BMSUserErrorItemNotFound", status=404)
    return item


def _filter(req: Request) -> dict[str, str]:
    expr = req.query.get("$filter", "")
    clauses = re.findall(r"(\w+)\s+eq\s+'([^']*)'", expr)
    if expr.strip() and not clauses:
        raise InvalidParameter(f"$filter: '{expr}' is not supported (clauses of the form name eq 'value' joined by and).",
                               target="$filter")
    return {k.lower(): v for k, v in clauses}


_CLOCK = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?\s*([AaPp][Mm])?(Z|[+-]\d{2}:\d{2})?")


def _parse_time(value: str, field: str) -> float:
    """Azure Backup's filter times ('2016-01-01 00:00:00 AM', 12-hour or 24-hour) or ISO 8601, as UTC."""
    match = _CLOCK.fullmatch(value.strip())
    if not match:
        raise InvalidParameter(f"$filter/{field}: '{value}' is not a time ('yyyy-MM-dd hh:mm:ss AM').", target=field)
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    meridiem = (match.group(7) or "").upper()
    if meridiem:
        hour = hour % 12 + (12 if meridiem == "PM" else 0)
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise InvalidParameter(f"$filter/{field}: '{value}' is not a valid date.", target=field) from None
    if match.group(8) and match.group(8) != "Z":
        sign = 1 if match.group(8)[0] == "+" else -1
        hh, mm = match.group(8)[1:].split(":")
        return dt.timestamp() - sign * (int(hh) * 3600 + int(mm) * 60)
    return dt.timestamp()


def _version(req: Request) -> str:
    return urllib.parse.quote(req.api_version or "2026-10-01")


def _item_monitors(req: Request, item: Resource, op: Operation) -> dict[str, str]:
    base = f"{req.base_url()}{item.id}"
    return {
        "Azure-AsyncOperation": f"{base}/operationsStatus/{op.id}?api-version={_version(req)}",
        "Location": f"{base}/operationResults/{op.id}?api-version={_version(req)}",
        **req.emulator.operations.retry_headers(op),
    }


def _vault_monitors(req: Request, vault: Resource, op: Operation) -> dict[str, str]:
    base = f"{req.base_url()}{vault.id}"
    return {
        "Azure-AsyncOperation": f"{base}/backupOperations/{op.id}?api-version={_version(req)}",
        "Location": f"{base}/backupOperationResults/{op.id}?api-version={_version(req)}",
        **req.emulator.operations.retry_headers(op),
    }


def _fabric_monitors(req: Request, vault: Resource, op: Operation) -> dict[str, str]:
    base = f"{req.base_url()}{vault.id}/backupFabrics/{m.FABRIC}"
    return {
        "Location": f"{base}/operationResults/{op.id}?api-version={_version(req)}",
        "Azure-AsyncOperation": f"{base}/operationsStatus/{op.id}?api-version={_version(req)}",
        **req.emulator.operations.retry_headers(op),
    }


def _start(req: Request, vault: Resource, job: Resource | None = None, **kwargs: Any) -> Operation:
    op = req.emulator.start_operation(req, vault.location or "", **kwargs)
    op.extra["vault"] = vault.key
    if job is not None:
        op.extra["job"] = job.name
        job.internal["op"] = op.id
    return op


def _op(req: Request, vault: Resource) -> Operation:
    op = req.emulator.operations.get(req.params["operationId"])
    if op is None or op.extra.get("vault") != vault.key:
        raise NotFound(f"The operation '{req.params['operationId']}' was not found in vault '{vault.name}'.",
                       code="BMSUserErrorOperationNotFound")
    return op


def _job_details(op: Operation) -> dict[str, Any]:
    """An operation status names the backup job the operation runs, if any."""
    if op.extra.get("job"):
        return {"properties": {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.extra["job"]}}
    return {}


def _self_location(req: Request, op: Operation) -> dict[str, str]:
    """A result URL still running points back at itself."""
    return {"Location": f"{req.base_url()}{req.path}?api-version={_version(req)}"}


def _inflight(req: Request, item: Resource, key: str = "op") -> Operation | None:
    op = req.emulator.operations.get(item.internal.get(key) or "")
    return op if op is not None and op.status == "InProgress" else None


def _busy(item: Resource) -> BackupError:
    return BackupError(f"Another operation is in progress on the protected item '{item.name}'. Retry when it has completed.",
                       code="BMSUserErrorAnotherOperationInProgress")


def _publish_write(req: Request, resource: Resource, operation: str) -> None:
    """Resources a restore creates are written by the Backup service: ARM reports them like any write."""
    emu = req.emulator
    event = build_event("write", resource.id, operation, resource.subscription_id, emu.clock.timestamp(), "PUT",
                        f"https://management.azure.com{resource.id}")
    emu.events.publish(event, resource.subscription_id)


# --- Azure Backup's checks on the caller ------------------------------------------------------------
# Microsoft Learn, "Use Azure role-based access control to manage Azure Backup recovery points"
# (https://learn.microsoft.com/azure/backup/backup-rbac-rs-vault), "Minimum role requirements for Azure VM
# backup": beside its role on the vault, the caller needs these on the resources a request names (each
# row's "Alternative" column gives the custom-role action). Modelled as ARM's linked access checks.
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
STORAGE_WRITE = "Microsoft.Storage/storageAccounts/write"
GROUP_WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write"


def protect_linked_checks(props: dict[str, Any]) -> list[tuple[str, str]]:
    """"Enable backup of Azure VMs": Virtual Machine Contributor on the VM resource (alternative:
    ``virtualMachines/write``). Stopping protection needs the vault alone ("Stop backup" row)."""
    source = props.get("sourceResourceId")
    if not isinstance(source, str) or not source or str(props.get("protectionState", "")).lower() == "protectionstopped":
        return []
    return [(VM_WRITE, source)]


def restore_linked_checks(props: dict[str, Any]) -> list[tuple[str, str]]:
    """What a restore request names, checked on the caller:

    - every restore: ``virtualMachines/write`` on the source VM that got backed up ("Virtual Machine
      Contributor, Source VM that got backed up");
    - a staging storage account (``storageAccountId``, or ``identityBasedRestoreDetails.targetStorageAccountId``):
      ``Microsoft.Storage/storageAccounts/write`` on it ("Restore managed disks from VM backup": Storage Account
      Contributor on the "Temporary Storage account selected as part of restore to hold data from vault before
      converting them to managed disks");
    - a target resource group (RestoreDisks, AlternateLocation): ``resourceGroups/write`` on it ("Contributor,
      Resource group to which managed disk(s) will be restored" / "in which VM will be deployed");
    - a new VM (AlternateLocation, "Restore VM"): ``virtualMachines/write`` on its resource group,
      ``virtualNetworks/read`` on its virtual network and ``subnets/join/action`` on its subnet. The row also lists
      ``Microsoft.DomainRegistration/domains/write``, which no VM restore exercises (it buys domain names): not
      modelled (infra/LEAST_PRIVILEGE.md)."""
    checks: list[tuple[str, str]] = []

    def named(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    if source := named(props.get("sourceResourceId")):
        checks.append((VM_WRITE, source))
    identity = props.get("identityBasedRestoreDetails")
    staging = named(props.get("storageAccountId")) or (
        named(identity.get("targetStorageAccountId")) if isinstance(identity, dict) else None)
    if staging:
        checks.append((STORAGE_WRITE, staging))
    kind = str(props.get("recoveryType", ""))
    group = named(props.get("targetResourceGroupId"))
    if group and kind in ("RestoreDisks", "AlternateLocation"):
        checks.append((GROUP_WRITE, group))
    if kind == "AlternateLocation":
        target_vm = named(props.get("targetVirtualMachineId"))
        if target_vm and "/providers/" in target_vm:
            checks.append((VM_WRITE, target_vm.split("/providers/", 1)[0]))
        if vnet := named(props.get("virtualNetworkId")):
            checks.append(("Microsoft.Network/virtualNetworks/read", vnet))
        if subnet := named(props.get("subnetId")):
            checks.append(("Microsoft.Network/virtualNetworks/subnets/join/action", subnet))
    return checks


# --- vaults ----------------------------------------------------------------------------------------
@router.route("PUT", VAULT, operation="Microsoft.RecoveryServices/vaults/write", api_versions=VAULT_VERSIONS)
def put_vault(req: Request) -> Response:
    body = req.json()
    name = req.params["vaultName"]
    check_name(name, m.VAULT_NAME_RE, m.VAULT_NAME_RULE)
    _rg(req)
    location = require_location(body)
    tags = check_tags(body)
    sku = body.get("sku")
    if sku is not None and (not isinstance(sku, dict) or sku.get("name") not in ("RS0", "Standard")):
        raise InvalidParameter("sku.name: 'RS0' or 'Standard'.", target="sku.name")
    props = body.get("properties") or {}
    store, now = _store(req), _now(req)
    existing = store.get(_vault_id(req))
    if "securitySettings" in props:  # Locked immutability and AlwaysON soft delete are one-way (guards.py)
        props = dict(props, securitySettings=g.check_security_settings(
            existing.properties.get("securitySettings") if existing is not None else None, props["securitySettings"]))
    if existing is not None:
        if normalize_location(existing.location) != location:
            raise ArmError("Changing property 'location' is not allowed.", code="PropertyChangeNotAllowed", status=409,
                           target="location")
        if tags is not None:
            existing.tags = tags
        if sku is not None:
            existing.extra["sku"] = dict(sku)
        for key in ("publicNetworkAccess", "redundancySettings", "securitySettings"):
            if key in props:
                existing.properties[key] = props[key]
        return Response(200, existing.to_arm())
    vault = m.new_vault(req.params["subscriptionId"], req.params["resourceGroupName"], name, location, now, tags, sku, props)
    store.put(vault)
    m.add_default_policies(store, vault, now)
    return Response(201, vault.to_arm())


@router.route("GET", VAULT, operation="Microsoft.RecoveryServices/vaults/read", api_versions=VAULT_VERSIONS)
def get_vault(req: Request) -> Response:
    return Response(200, _vault(req).to_arm())


@router.route("DELETE", VAULT, operation="Microsoft.RecoveryServices/vaults/delete", api_versions=VAULT_VERSIONS)
def delete_vault(req: Request) -> Response:
    store = _store(req)
    vault = store.get(_vault_id(req))
    if vault is None:
        _rg(req)
        return no_event(Response(204))
    if m.count_items(store, vault):
        raise ArmError(f"Vault '{vault.name}' cannot be deleted as there are existing resources within the vault: "
                       f"{m.count_items(store, vault)} backup item(s). Delete the backup items (stop protection and "
                       "delete data) first.", code="ServiceResourceNotEmpty", status=400)
    for child in store.children(vault.id):
        store.delete(child.id)
    store.delete(vault.id)
    return Response(200)


add_lists(router, m.VAULT_TYPE, api_versions=VAULT_VERSIONS)


# --- multi-user authorization: the vault's Resource Guard proxy (guards.py) ------------------------------
PROXY = VAULT + "/backupResourceGuardProxies/{resourceGuardProxyName}"
PROXY_OPS = OPS + "/backupResourceGuardProxies"


def _proxy_name(req: Request) -> str:
    name = req.params["resourceGuardProxyName"]
    if name.lower() != g.PROXY_NAME.lower():
        raise BackupError(f"resourceGuardProxyName: a Recovery Services vault's Resource Guard proxy is named "
                          f"'{g.PROXY_NAME}', not '{name}'.", code="BMSUserErrorInvalidInput", target="resourceGuardProxyName")
    return g.PROXY_NAME


def _proxy(req: Request, vault: Resource) -> Resource:
    proxy = _store(req).get(f"{vault.id}/backupResourceGuardProxies/{_proxy_name(req)}")
    if proxy is None:
        raise ArmError(f"The vault '{vault.name}' has no Resource Guard proxy: multi-user authorization is not "
                       "enabled on it.", code="BMSUserErrorResourceGuardProxyNotFound", status=404)
    return proxy


@router.route("PUT", PROXY, operation=PROXY_OPS + "/write", api_versions=BACKUP_VERSIONS)
def put_proxy(req: Request) -> Response:
    """Enable MUA: the vault names a Resource Guard. The caller needs Reader on the guard (Learn, "Configure
    Multi-user authorization using Resource Guard": the Backup admin is granted Reader to enable MUA); a proxy
    naming another guard must be deleted first (itself a critical operation)."""
    props = req.json().get("properties")
    if not isinstance(props, dict):
        raise BackupError("properties: a ResourceGuardProxyBase is required.", target="properties")
    guard = g.parse_guard_id(props.get("resourceGuardResourceId"), "properties.resourceGuardResourceId")
    details = props.get("resourceGuardOperationDetails")
    linked_access_checks(req, [("Microsoft.DataProtection/resourceGuards/read", guard)])
    vault = _vault(req)
    name = _proxy_name(req)
    store, now = _store(req), _now(req)
    existing = store.get(f"{vault.id}/backupResourceGuardProxies/{name}")
    if existing is not None and existing.properties["resourceGuardResourceId"].lower() != guard.lower():
        raise BackupError(f"The vault is already protected by the Resource Guard '{existing.properties['resourceGuardResourceId']}': "
                          "remove that proxy first (a critical operation).", code="BMSUserErrorResourceGuardProxyExists")
    if details is None:  # the guard's own list: every critical operation (a guard excluding none)
        details = g.operation_details(guard)
    elif not isinstance(details, list) or not all(isinstance(d, dict) for d in details):
        raise BackupError("properties.resourceGuardOperationDetails: a list of {vaultCriticalOperation, "
                          "defaultResourceRequest}.", target="properties.resourceGuardOperationDetails")
    else:  # a guard that excludes some optional operations; the mandatory ones are always there
        named = {str(d.get("vaultCriticalOperation", "")).lower() for d in details}
        details = [dict(d) for d in details] + [d for d in g.operation_details(guard)
                                               if d["vaultCriticalOperation"].split("/")[-1] in g.MANDATORY
                                               and d["vaultCriticalOperation"].lower() not in named]
    body = {"resourceGuardResourceId": guard, "resourceGuardOperationDetails": details,
            "lastUpdatedTime": m.iso_z(now), "description": props.get("description") or ""}
    if existing is not None:
        existing.properties = body
        return Response(200, existing.to_arm())
    proxy = store.put(Resource(f"{vault.id}/backupResourceGuardProxies/{name}", g.PROXY_TYPE, name, None, None, body,
                               {}, {}, now))
    return Response(200, proxy.to_arm())


@router.route("GET", PROXY, operation=PROXY_OPS + "/read", api_versions=BACKUP_VERSIONS)
def get_proxy(req: Request) -> Response:
    return Response(200, _proxy(req, _vault(req)).to_arm())


@router.route("GET", VAULT + "/backupResourceGuardProxies", operation=PROXY_OPS + "/read", api_versions=BACKUP_VERSIONS)
def list_proxies(req: Request) -> Response:
    return listing(req, [p.to_arm() for p in g.proxies(_store(req), _vault(req))])


@router.route("POST", PROXY + "/unlockDelete", operation=PROXY_OPS + "/unlockDelete/action", api_versions=BACKUP_VERSIONS)
def unlock_delete(req: Request) -> Response:
    """The guard's yes to one delete it protects (a protected item's data: deleteProtectedItemRequests; the proxy
    itself: deleteResourceGuardProxyRequests), for a while (guards.UNLOCK_SECONDS)."""
    body = req.json()
    target = body.get("resourceToBeDeleted")
    if not isinstance(target, str) or not target:
        raise BackupError("resourceToBeDeleted: the id of the resource to delete is required.", target="resourceToBeDeleted")
    vault = _vault(req)
    proxy = _proxy(req, vault)
    operation = g.DELETE_PROXY if target.lower() == proxy.id.lower() else g.DELETE_ITEM
    g.check(req, _store(req), vault, operation, body.get("resourceGuardOperationRequests"), f"Deleting '{target}'")
    until = g.unlock(vault, target, _now(req))
    return Response(200, {"unlockDeleteExpiryTime": m.iso_z(until)})


@router.route("DELETE", PROXY, operation=PROXY_OPS + "/delete", api_versions=BACKUP_VERSIONS)
def delete_proxy(req: Request) -> Response:
    """Remove MUA: a mandatory critical operation (an unlockDelete of the proxy first)."""
    vault = _vault(req)
    store = _store(req)
    proxy = store.get(f"{vault.id}/backupResourceGuardProxies/{_proxy_name(req)}")
    if proxy is None:
        return no_event(Response(204))
    g.check_delete(store, vault, proxy.id, g.DELETE_PROXY, _now(req), "Removing multi-user authorization")
    store.delete(proxy.id)
    return Response(200)


# --- policies --------------------------------------------------------------------------------------
def _policy_body(req: Request, vault: Resource, policy: Resource) -> dict[str, Any]:
    body = policy.to_arm()
    count = sum(1 for i in m.items_of(_store(req), vault)
                if (i.properties.get("policyId") or "").lower() == policy.key and m.is_visible(i))
    body["properties"] = dict(body["properties"], protectedItemsCount=count)
    return body


@router.route("GET", VAULT + "/backupPolicies", operation=OPS + "/backupPolicies/read", api_versions=BACKUP_VERSIONS)
def list_policies(req: Request) -> Response:
    vault = _vault(req)
    wanted = _filter(req).get("backupmanagementtype")
    policies = [p for p in _store(req).of_type(m.POLICY_TYPE, vault.id)
                if wanted is None or str(p.properties.get("backupManagementType", "")).lower() == wanted.lower()]
    return listing(req, [_policy_body(req, vault, p) for p in policies])


def _policy(req: Request, vault: Resource) -> Resource:
    policy = _store(req).get(f"{vault.id}/backupPolicies/{req.params['policyName']}")
    if policy is None:
        raise ArmError(f"Backup policy '{req.params['policyName']}' was not found in vault '{vault.name}'.",
                       code="BMSUserErrorPolicyNotFound", status=404)
    return policy


@router.route("GET", VAULT + "/backupPolicies/{policyName}", operation=OPS + "/backupPolicies/read",
              api_versions=BACKUP_VERSIONS)
def get_policy(req: Request) -> Response:
    vault = _vault(req)
    return Response(200, _policy_body(req, vault, _policy(req, vault)))


@router.route("PUT", VAULT + "/backupPolicies/{policyName}", operation=OPS + "/backupPolicies/write",
              api_versions=BACKUP_VERSIONS)
def put_policy(req: Request) -> Response:
    vault = _vault(req)
    name = req.params["policyName"]
    check_name(name, r"[A-Za-z][A-Za-z0-9_-]{2,149}", "Policy names are 3-150 characters: letters, digits, '-', '_'.")
    props = m.validate_policy(req.json().get("properties") or {})
    store, now = _store(req), _now(req)
    existing = store.get(f"{vault.id}/backupPolicies/{name}")
    if existing is not None and m.retention_days(props) < m.retention_days(existing.properties):
        what = "Modifying a backup policy to reduce its retention"
        if g.is_immutable(vault):
            raise g.immutable_refusal(vault, what)
        g.check(req, store, vault, g.UPDATE_POLICY, (req.json().get("properties") or {}).get("resourceGuardOperationRequests"),
                what)
    if existing is not None:
        for item in m.items_of(store, vault):  # points due under the old schedule are kept
            if (item.properties.get("policyId") or "").lower() == existing.key:
                m.materialize(store, item, now)
        existing.properties = props
        policy = existing
    else:
        policy = store.put(m.new_policy(vault, name, props, now))
    return Response(200, _policy_body(req, vault, policy))


@router.route("DELETE", VAULT + "/backupPolicies/{policyName}", operation=OPS + "/backupPolicies/delete",
              api_versions=BACKUP_VERSIONS)
def delete_policy(req: Request) -> Response:
    vault = _vault(req)
    store = _store(req)
    policy = store.get(f"{vault.id}/backupPolicies/{req.params['policyName']}")
    if policy is None:
        return no_event(Response(204))
    if any((i.properties.get("policyId") or "").lower() == policy.key for i in m.items_of(store, vault)):
        raise BackupError(f"Backup policy '{policy.name}' is used by protected items: assign them another policy first.",
                          code="BMSUserErrorPolicyInUse")
    store.delete(policy.id)
    return Response(200)


# --- discovery -------------------------------------------------------------------------------------
@router.route("POST", FABRIC + "/refreshContainers", operation=OPS + "/backupFabrics/refreshContainers/action",
              api_versions=BACKUP_VERSIONS)
def refresh_containers(req: Request) -> Response:
    vault = _vault(req)
    _fabric(req)
    wanted = _filter(req).get("backupmanagementtype", m.MANAGEMENT_TYPE)
    store = _store(req)

    def done(op: Operation) -> None:
        if wanted.lower() == m.MANAGEMENT_TYPE.lower() and store.get(vault.id) is vault:
            m.discover(store, vault, op.end)

    op = _start(req, vault, on_success=done)
    return Response(202, None, _fabric_monitors(req, vault, op))


def _fabric_operation(req: Request) -> Operation:
    vault = _vault(req)
    _fabric(req)
    return _op(req, vault)


add_operation_monitors(
    router,
    Monitor(_fabric_operation, status_id=lambda req, op: f"{_vault(req).id}/backupFabrics/{m.FABRIC}/operationsStatus/{op.id}",
            status_details=_job_details, running_headers=_self_location),
    status=(FABRIC + "/operationsStatus/{operationId}", OPS + "/backupFabrics/operationsStatus/read"),
    result=(FABRIC + "/operationResults/{operationId}", OPS + "/backupFabrics/operationResults/read"),
    api_versions=BACKUP_VERSIONS)


@router.route("GET", VAULT + "/backupProtectableItems", operation=OPS + "/backupProtectableItems/read",
              api_versions=BACKUP_VERSIONS)
def list_protectable_items(req: Request) -> Response:
    vault = _vault(req)
    f = _filter(req)
    if f.get("backupmanagementtype", m.MANAGEMENT_TYPE).lower() != m.MANAGEMENT_TYPE.lower() \
            or f.get("workloadtype", "VM").lower() != "vm":
        return listing(req, [])
    out = []
    for vm in m.protectable_vms(_store(req), vault):
        rg, name = m.vm_names(vm.id)
        out.append({
            "id": f"{vault.id}/backupFabrics/{m.FABRIC}/protectionContainers/{m.container_name(rg, name)}/protectableItems/"
                  f"{m.item_name(rg, name).lower()}",
            "name": m.item_name(rg, name),
            "type": m.PROTECTABLE_TYPE,
            "properties": {
                "backupManagementType": m.MANAGEMENT_TYPE, "workloadType": "VM", "protectableItemType": m.ITEM_KIND,
                "friendlyName": vm.name, "virtualMachineId": vm.id, "virtualMachineVersion": "Compute",
                "resourceGroup": rg, "protectionState": "NotProtected",
            },
        })
    return listing(req, out)


# --- containers ------------------------------------------------------------------------------------
def _container_body(vault: Resource, rg: str, name: str, vm_id: str, registered: bool) -> dict[str, Any]:
    return {
        "id": f"{vault.id}/backupFabrics/{m.FABRIC}/protectionContainers/{m.container_name(rg, name)}",
        "name": m.container_name(rg, name),
        "type": m.CONTAINER_TYPE,
        "properties": {
            "containerType": m.ITEM_KIND, "backupManagementType": m.MANAGEMENT_TYPE, "friendlyName": name,
            "registrationStatus": "Registered" if registered else "NotRegistered", "healthStatus": "Healthy",
            "virtualMachineId": vm_id, "virtualMachineVersion": "Compute", "resourceGroup": rg,
            "protectableObjectType": m.ITEM_KIND,
        },
    }


@router.route("GET", CONTAINER, operation=OPS + "/backupFabrics/protectionContainers/read", api_versions=BACKUP_VERSIONS)
def get_container(req: Request) -> Response:
    vault = _vault(req)
    _fabric(req)
    parsed = m.parse_container(req.params["containerName"])
    store = _store(req)
    if parsed is not None:
        rg, name = parsed
        item = store.get(m.item_id(vault.id, rg, name))
        if item is not None and m.is_visible(item):
            vm = store.get(item.internal["vmId"])
            return Response(200, _container_body(vault, vm.resource_group if vm else rg, vm.name if vm else name,
                                                 item.internal["vmId"], True))
        vm = store.get(rid(vault.subscription_id, rg, "Microsoft.Compute", "virtualMachines", name))
        if vm is not None and m.is_discovered(vault, vm):
            return Response(200, _container_body(vault, vm.resource_group, vm.name, vm.id, False))
    raise ArmError(f"Protection container '{req.params['containerName']}' was not found in vault '{vault.name}'.",
                   code="BMSUserErrorContainerObjectNotFound", status=404)


@router.route("GET", VAULT + "/backupProtectionContainers", operation=OPS + "/backupProtectionContainers/read",
              api_versions=BACKUP_VERSIONS)
def list_containers(req: Request) -> Response:
    vault = _vault(req)
    f = _filter(req)
    if f.get("backupmanagementtype", m.MANAGEMENT_TYPE).lower() != m.MANAGEMENT_TYPE.lower():
        return listing(req, [])
    out = []
    for item in m.items_of(_store(req), vault):
        if m.is_visible(item):
            rg, name = m.vm_names(item.internal["vmId"])
            out.append(_container_body(vault, rg, name, item.internal["vmId"], True))
    return listing(req, out)


# --- protected items -------------------------------------------------------------------------------
def _render(req: Request, item: Resource) -> dict[str, Any]:
    return m.render_item(_store(req), item, _now(req))


def _item_result(req: Request, item: Resource):
    store, clock = _store(req), req.emulator.clock
    return lambda: Response(200, m.render_item(store, item, clock.timestamp()))


@router.route("PUT", ITEM, operation=ITEM_OPS + "/write", api_versions=BACKUP_VERSIONS)
def put_item(req: Request) -> Response:
    props = req.json().get("properties") or {}
    if not isinstance(props, dict):
        raise BackupError("properties: must be an object.", code="BMSUserErrorInvalidConfigureProtectionRequest",
                          target="properties")
    linked_access_checks(req, protect_linked_checks(props))  # ARM checks them before Backup sees the request
    vault = _vault(req)
    _fabric(req)
    rg, name = _names(req)
    store, now = _store(req), _now(req)
    kind = props.get("protectedItemType")
    if kind and str(kind).lower() != m.ITEM_KIND.lower():
        raise BackupError(f"properties.protectedItemType: '{kind}' is not modelled; Azure VMs are "
                          f"'{m.ITEM_KIND}'.", code="BMSUserErrorInvalidConfigureProtectionRequest")
    item = store.get(m.item_id(vault.id, rg, name))
    source = props.get("sourceResourceId") or (item.internal["vmId"] if item is not None else "")
    parsed = parse_rid(source)
    if parsed is None or parsed["type"].lower() != m.ITEM_KIND.lower() \
            or (parsed["resource_group"].lower(), parsed["name"].lower()) != (rg.lower(), name.lower()):
        raise BackupError(f"properties.sourceResourceId: '{source}' must be the id of the virtual machine '{name}' in "
                          f"resource group '{rg}' that the item name designates.",
                          code="BMSUserErrorInvalidConfigureProtectionRequest", target="properties.sourceResourceId")
    vm_id = source

    if str(props.get("protectionState", "")).lower() == "protectionstopped":
        if item is None or item.internal.get("state") == "enabling":
            if item is not None:
                raise _busy(item)
            raise ArmError(f"Protected item '{req.params['protectedItemName']}' was not found in vault '{vault.name}': "
                           "nothing to stop.", code="BMSUserErrorItemNotFound", status=404)
        if item.internal.get("state") == "stopped":
            return Response(200, _render(req, item))
        if _inflight(req, item):
            raise _busy(item)
        job = store.put(m.new_job(vault, "DisableBackup", item.properties["friendlyName"], item.properties["containerName"], now))

        def stopped(op: Operation) -> None:
            if store.get(item.id) is item:
                m.stop(store, item, op.end)
            m.finish_job(job, op.end)

        op = _start(req, vault, job, on_success=stopped, on_failure=lambda op: m.finish_job(job, op.end, op.error),
                    result=_item_result(req, item))
        item.internal["op"] = op.id
        return Response(202, None, _item_monitors(req, item, op))

    policy_id = props.get("policyId") or ""
    policy = m.policy_of(store, vault, policy_id)
    if policy is None:
        raise BackupError(f"properties.policyId: '{policy_id}' is not a backup policy of vault '{vault.name}'.",
                          code="BMSUserErrorPolicyNotFound", target="properties.policyId")

    if item is not None:
        same = (item.properties.get("policyId") or "").lower() == policy.key
        running = _inflight(req, item)
        if item.internal.get("state") == "enabling":
            if same and running:
                return Response(202, None, _item_monitors(req, item, running))  # a replay of the enabling request
            raise _busy(item)
        if running:
            raise _busy(item)
        if item.internal.get("state") == "ready" and same:
            return Response(200, _render(req, item))  # already protected with this policy: nothing to do
        was_stopped = item.internal.get("state") == "stopped"
        current = store.get(item.properties.get("policyId") or "")
        if not was_stopped and current is not None and m.retention_days(policy.properties) < m.retention_days(current.properties):
            what = "Modifying protection to a policy with reduced retention"
            if g.is_immutable(vault):
                raise g.immutable_refusal(vault, what)
            g.check(req, store, vault, g.UPDATE_ITEM, props.get("resourceGuardOperationRequests"), what)
        if was_stopped:
            vm = store.get(item.internal["vmId"])
            if vm is None:
                raise BackupError(f"The virtual machine '{item.internal['vmId']}' no longer exists: protection can't resume.",
                                  code="BMSUserErrorVmNotFound")
        job = store.put(m.new_job(vault, "ConfigureBackup", item.properties["friendlyName"], item.properties["containerName"], now))

        def reconfigured(op: Operation) -> None:
            if store.get(item.id) is item:
                m.materialize(store, item, op.end)
                m.set_policy(item, policy)
                if was_stopped:
                    m.activate(item, op.end)
            m.finish_job(job, op.end)

        op = _start(req, vault, job, on_success=reconfigured, on_failure=lambda op: m.finish_job(job, op.end, op.error),
                    result=_item_result(req, item))
        item.internal["op"] = op.id
        return Response(202, None, _item_monitors(req, item, op))

    vm = store.get(vm_id)
    m.check_enable(store, vault, vm, vm_id, rg, name)
    item = store.put(m.new_item(vault, vm, policy, now))
    m.set_policy(item, policy)
    job = store.put(m.new_job(vault, "ConfigureBackup", vm.name, item.properties["containerName"], now))

    def enabled(op: Operation) -> None:
        if store.get(item.id) is item:
            m.activate(item, op.end)
        m.finish_job(job, op.end)

    def failed(op: Operation) -> None:
        if store.get(item.id) is item and item.internal.get("state") == "enabling":
            store.delete(item.id)
        m.finish_job(job, op.end, op.error)

    op = _start(req, vault, job, on_success=enabled, on_failure=failed, result=_item_result(req, item))
    item.internal["op"] = op.id
    return Response(202, None, _item_monitors(req, item, op))


@router.route("GET", ITEM, operation=ITEM_OPS + "/read", api_versions=BACKUP_VERSIONS)
def get_item(req: Request) -> Response:
    vault = _vault(req)
    _fabric(req)
    return Response(200, _render(req, _item(req, vault)))


@router.route("DELETE", ITEM, operation=ITEM_OPS + "/delete", api_versions=BACKUP_VERSIONS)
def delete_item(req: Request) -> Response:
    """Stop protection and delete backup data: 202, then the item and its points are gone."""
    vault = _vault(req)
    _fabric(req)
    rg, name = _names(req)
    store, now = _store(req), _now(req)
    item = store.get(m.item_id(vault.id, rg, name))
    if item is None:
        return no_event(Response(204))
    if item.internal.get("state") == "enabling" or _inflight(req, item):
        raise _busy(item)
    if g.is_immutable(vault):  # Learn, immutable vault: "Stop protection with delete data" is blocked
        raise g.immutable_refusal(vault, "Stopping protection with delete data")
    g.check_delete(store, vault, item.id, g.DELETE_ITEM, now, "Stopping protection with delete data")
    job = store.put(m.new_job(vault, "DeleteBackupData", item.properties["friendlyName"], item.properties["containerName"], now))

    def deleted(op: Operation) -> None:
        if store.get(item.id) is item:
            store.delete(item.id)
        m.finish_job(job, op.end)

    op = _start(req, vault, job, on_success=deleted, on_failure=lambda op: m.finish_job(job, op.end, op.error))
    item.internal["op"] = op.id
    return Response(202, None, _vault_monitors(req, vault, op))


def _item_operation(req: Request) -> Operation:
    vault = _vault(req)
    _fabric(req)
    _names(req)
    return _op(req, vault)


def _vault_operation(req: Request) -> Operation:
    return _op(req, _vault(req))


add_operation_monitors(
    router, Monitor(_item_operation, status_details=_job_details, running_headers=_self_location),
    status=(ITEM + "/operationsStatus/{operationId}", ITEM_OPS + "/operationsStatus/read"),
    result=(ITEM + "/operationResults/{operationId}", ITEM_OPS + "/operationResults/read"),
    api_versions=BACKUP_VERSIONS)
add_operation_monitors(
    router,
    Monitor(_vault_operation, status_id=lambda req, op: req.params["operationId"], status_details=_job_details,
            running_headers=lambda req, op: _vault_monitors(req, _vault(req), op)),
    status=(VAULT + "/backupOperations/{operationId}", OPS + "/backupOperations/read"),
    result=(VAULT + "/backupOperationResults/{operationId}", OPS + "/backupOperationResults/read"),
    api_versions=BACKUP_VERSIONS)


@router.route("GET", VAULT + "/backupProtectedItems", operation=OPS + "/backupProtectedItems/read",
              api_versions=BACKUP_VERSIONS)
def list_protected_items(req: Request) -> Response:
    vault = _vault(req)
    f = _filter(req)
    if f.get("backupmanagementtype", m.MANAGEMENT_TYPE).lower() != m.MANAGEMENT_TYPE.lower() \
            or f.get("itemtype", f.get("workloadtype", "VM")).lower() != "vm":
        return listing(req, [])
    out = []
    for item in m.items_of(_store(req), vault):
        if not m.is_visible(item):
            continue
        body = _render(req, item)
        props = body["properties"]
        if "policyname" in f and str(props.get("policyName", "")).lower() != f["policyname"].lower():
            continue
        if "protectionstate" in f and str(props.get("protectionState", "")).lower() != f["protectionstate"].lower():
            continue
        if "containername" in f and f["containername"].lower() not in (props["containerName"].lower(),
                                                                       f"iaasvmcontainer;{props['containerName']}".lower()):
            continue
        if "friendlyname" in f and props["friendlyName"].lower() != f["friendlyname"].lower():
            continue
        out.append(body)
    return listing(req, out)


# --- backup now ------------------------------------------------------------------------------------
@router.route("POST", ITEM + "/backup", operation=ITEM_OPS + "/backup/action", api_versions=BACKUP_VERSIONS)
def trigger_backup(req: Request) -> Response:
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    store, now = _store(req), _now(req)
    if item.internal.get("state") != "ready":
        raise BackupError(f"Protection of '{item.properties['friendlyName']}' is stopped: an on-demand backup needs active "
                          "protection (resume protection first).", code="BMSUserErrorProtectionStopped")
    if _inflight(req, item, "backupOp"):
        raise BackupError(f"A backup of '{item.properties['friendlyName']}' is already in progress. Retry when it has "
                          "completed.", code="UserErrorBackupOperationInProgress")
    vm = store.get(item.internal["vmId"])
    if vm is None:
        raise BackupError(f"The virtual machine '{item.internal['vmId']}' no longer exists.", code="BMSUserErrorVmNotFound")
    props = req.json(required=False).get("properties") or {}
    if props.get("objectType", "IaasVMBackupRequest") != "IaasVMBackupRequest":
        raise BackupError("properties.objectType: 'IaasVMBackupRequest' for an Azure VM.", code="BMSUserErrorInvalidInput")
    expiry = now + 30 * m.DAY
    if props.get("recoveryPointExpiryTimeInUTC"):
        expiry = _parse_time(str(props["recoveryPointExpiryTimeInUTC"]), "recoveryPointExpiryTimeInUTC")
        if expiry <= now:
            raise BackupError("properties.recoveryPointExpiryTimeInUTC: must be in the future.", code="BMSUserErrorInvalidInput")
    capture = m.capture_vm(store, vm)
    job = store.put(m.new_job(vault, "Backup", vm.name, item.properties["containerName"], now))

    def done(op: Operation) -> None:
        if store.get(item.id) is item:
            m.add_point(item, op.start, capture, expiry, "OnDemand", "OnDemand")
        m.finish_job(job, op.end)

    def failed(op: Operation) -> None:
        item.properties["lastBackupStatus"] = "Failed"
        m.finish_job(job, op.end, op.error)

    op = _start(req, vault, job, on_success=done, on_failure=failed)
    item.internal["backupOp"] = op.id
    return Response(202, None, _item_monitors(req, item, op))


# --- recovery points and restores ------------------------------------------------------------------
def _instant_days(req: Request, item: Resource) -> float:
    policy = _store(req).get(item.properties.get("policyId") or "")
    return float((policy.properties.get("instantRpRetentionRangeInDays") if policy else None) or 2)


def _point(req: Request, item: Resource) -> dict[str, Any]:
    return _find_point(req, item, req.params["recoveryPointId"])


def _find_point(req: Request, item: Resource, wanted: str) -> dict[str, Any]:
    m.materialize(_store(req), item, _now(req))
    for point in m.live_points(item, _now(req)):
        if point["name"].lower() == wanted.lower():
            return point
    raise ArmError(f"Recovery point '{wanted}' was not found for the protected item '{item.name}'.",
                   code="BMSUserErrorRecoveryPointNotFound", status=404)


@router.route("GET", ITEM + "/recoveryPoints", operation=ITEM_OPS + "/recoveryPoints/read", api_versions=BACKUP_VERSIONS)
def list_points(req: Request) -> Response:
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    now = _now(req)
    m.materialize(_store(req), item, now)
    f = _filter(req)
    start = _parse_time(f["startdate"], "startDate") if "startdate" in f else None
    end = _parse_time(f["enddate"], "endDate") if "enddate" in f else None
    days = _instant_days(req, item)
    out = [m.render_point(item, p, now, days) for p in reversed(m.live_points(item, now))
           if (start is None or p["time"] >= start) and (end is None or p["time"] <= end)]
    return listing(req, out)


@router.route("GET", RP, operation=ITEM_OPS + "/recoveryPoints/read", api_versions=BACKUP_VERSIONS)
def get_point(req: Request) -> Response:
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    return Response(200, m.render_point(item, _point(req, item), _now(req), _instant_days(req, item)))


def _resource_group_id(store, value: str, field: str) -> tuple[str, str]:
    match = re.fullmatch(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)", value or "", re.IGNORECASE)
    if not match:
        raise BackupError(f"properties.{field}: '{value}' is not a resource group id.", code="UserErrorInvalidRestoreRequest",
                          target=f"properties.{field}")
    try:
        group = store.resource_group(match.group(1), match.group(2))
    except ArmError:
        raise BackupError(f"properties.{field}: resource group '{value}' was not found.",
                          code="UserErrorTargetResourceGroupNotFound", target=f"properties.{field}") from None
    return match.group(1), group.name


def _restore_plan(req: Request, vault: Resource, item: Resource, point: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    """What a restore request would do, checked as Azure Backup checks it (BackupError otherwise): shared by
    the restore itself and by ValidateOperation, which answers the same problems without creating anything."""
    store = _store(req)
    if props.get("objectType") not in ("IaasVMRestoreRequest", "IaasVMRestoreWithRehydrationRequest"):
        raise BackupError("properties.objectType: 'IaasVMRestoreRequest' for an Azure VM.", code="UserErrorInvalidRestoreRequest")
    region = normalize_location(props.get("region") or vault.location)
    if region != normalize_location(vault.location):
        raise BackupError(f"properties.region: '{region}' is not the vault's region '{vault.location}'; Cross Region "
                          "Restore is not enabled on this vault.", code="UserErrorCrossRegionRestoreNotEnabled",
                          target="properties.region")
    source = props.get("sourceResourceId")
    if source and source.lower() != item.internal["vmId"].lower():
        raise BackupError("properties.sourceResourceId: not the VM this item protects.", code="UserErrorInvalidRestoreRequest",
                          target="properties.sourceResourceId")
    # Staging: a storage account id, or, restoring with a managed identity, identityBasedRestoreDetails' target account.
    staging = props.get("storageAccountId") or (props.get("identityBasedRestoreDetails") or {}).get("targetStorageAccountId")
    kind = str(props.get("recoveryType", ""))
    vm_name = item.properties["friendlyName"]
    plan: dict[str, Any] = {"kind": kind, "region": region, "vm_name": vm_name, "target_vm_id": None, "subnet_id": None,
                            "sub": None, "rg": None, "original_vm_id": None,
                            "bag": {"VM Name": vm_name, "Recovery point time": m.iso_z(point["time"])}}
    bag = plan["bag"]
    if kind == "RestoreDisks" and not props.get("targetResourceGroupId"):
        if not staging:
            raise BackupError("properties.targetResourceGroupId (managed disks) or properties.storageAccountId (VHDs) is "
                              "required to restore disks.", code="UserErrorInvalidRestoreRequest",
                              target="properties.targetResourceGroupId")
        # VHDs in a storage account are not modelled: the job records where they would be.
        bag.update({"Job Type": "Recover disks", "Target storage account": str(staging)})
    elif kind == "RestoreDisks":
        plan["sub"], plan["rg"] = _resource_group_id(store, props.get("targetResourceGroupId", ""), "targetResourceGroupId")
        bag.update({"Job Type": "Recover disks", "Target resource group": f"/subscriptions/{plan['sub']}/resourceGroups/{plan['rg']}"})
    elif kind == "AlternateLocation":
        target_vm_id = props.get("targetVirtualMachineId") or ""
        parsed = parse_rid(target_vm_id)
        if parsed is None or parsed["type"].lower() != compute.VM_TYPE.lower():
            raise BackupError(f"properties.targetVirtualMachineId: '{target_vm_id}' is not a virtual machine id.",
                              code="UserErrorInvalidRestoreRequest", target="properties.targetVirtualMachineId")
        sub, rg = _resource_group_id(store, f"/subscriptions/{parsed['subscription']}/resourceGroups/{parsed['resource_group']}",
                                     "targetVirtualMachineId")
        if store.get(target_vm_id) is not None:
            raise BackupError(f"properties.targetVirtualMachineId: a VM '{parsed['name']}' already exists in '{rg}'.",
                              code="UserErrorVmNameAlreadyExists", target="properties.targetVirtualMachineId")
        from ..network.responses import find_subnet

        subnet_id = props.get("subnetId") or ""
        vnet = store.get(subnet_id.rpartition("/subnets/")[0]) if "/subnets/" in subnet_id else None
        if vnet is None or find_subnet(store, subnet_id) is None:
            raise BackupError(f"properties.subnetId: subnet '{subnet_id}' was not found.", code="UserErrorSubnetNotFound",
                              target="properties.subnetId")
        if normalize_location(vnet.location) != region:
            raise BackupError(f"properties.subnetId: the virtual network is in '{vnet.location}', the restore in '{region}'.",
                              code="UserErrorInvalidRestoreRequest", target="properties.subnetId")
        plan.update(target_vm_id=target_vm_id, subnet_id=subnet_id, sub=sub, rg=rg)
        bag.update({"Job Type": "Recover VM", "Target VM Name": parsed["name"],
                    "Target resource group": f"/subscriptions/{sub}/resourceGroups/{rg}"})
    elif kind == "OriginalLocation":
        # Learn "Restore Azure VMs using REST API" (Replace disks in a backed-up VM): the original VM keeps its
        # identity, its disks are replaced by the point's; no example in the specs (see emulator/README.md).
        vm = store.get(item.internal["vmId"])
        if vm is None:
            raise BackupError(f"The original VM '{vm_name}' no longer exists: restore to an alternate location or "
                              "restore disks.", code="UserErrorOriginalVmNotFound", target="properties.recoveryType")
        if not staging:
            raise BackupError("properties.storageAccountId: a staging storage account is required.",
                              code="UserErrorInvalidRestoreRequest", target="properties.storageAccountId")
        plan["original_vm_id"] = vm.id
        bag.update({"Job Type": "Replace disks", "Target VM Name": vm.name})
    else:
        raise BackupError(f"properties.recoveryType: '{kind}' is not modelled (RestoreDisks, AlternateLocation, "
                          "OriginalLocation).", code="UserErrorInvalidRestoreRequest", target="properties.recoveryType")
    return plan


@router.route("POST", RP + "/restore", operation=ITEM_OPS + "/recoveryPoints/restore/action",
              api_versions=BACKUP_VERSIONS)
def trigger_restore(req: Request) -> Response:
    """RestoreDisks: managed disks in the target group; AlternateLocation: disks, a NIC and a new VM;
    OriginalLocation: the original VM's disks replaced. Created through Compute's models when the
    Restore job completes. Azure Backup's checks on the caller come first (``restore_linked_checks``)."""
    props = req.json().get("properties") or {}
    if not isinstance(props, dict):
        raise BackupError("properties: must be an object.", code="UserErrorInvalidRestoreRequest", target="properties")
    linked_access_checks(req, restore_linked_checks(props))
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    point = _point(req, item)
    store, now = _store(req), _now(req)
    plan = _restore_plan(req, vault, item, point, props)
    g.check(req, store, vault, g.TRIGGER_RESTORE, props.get("resourceGuardOperationRequests"), "A restore")
    vm_name, region, bag = plan["vm_name"], plan["region"], plan["bag"]
    target_vm_id, subnet_id, sub, rg = plan["target_vm_id"], plan["subnet_id"], plan["sub"], plan["rg"]
    job = store.put(m.new_job(vault, "Restore", vm_name, item.properties["containerName"], now, bag=bag))
    tags = {"RSVaultBackup": job.name}

    def done(op: Operation) -> None:
        bag = job.properties["extendedInfo"]["propertyBag"]
        if target_vm_id:
            if store.get(target_vm_id) is not None:
                m.finish_job(job, op.end, {"code": "UserErrorVmNameAlreadyExists",
                                           "message": f"A VM '{target_vm_id}' was created meanwhile."})
                return
            vm, disks, nic = m.restore_vm(store, point, target_vm_id, subnet_id, region, op.end, tags)
            vm_agent.boot(req.emulator, vm, op.end, req.method, req.route.operation)  # the restored VM starts
            created = disks + [nic, vm]
            bag["Target VM Id"] = vm.id
        elif plan["original_vm_id"]:
            vm = store.get(plan["original_vm_id"])
            if vm is None:
                m.finish_job(job, op.end, {"code": "UserErrorOriginalVmNotFound",
                                           "message": f"The original VM '{vm_name}' was deleted meanwhile."})
                return
            disks = m.replace_disks(store, point, vm, op.end, tags)
            created = disks
            bag["Target VM Id"] = vm.id
        elif rg is not None:
            disks = m.restore_disks(store, point, vm_name, sub, rg, region, op.end, tags)
            created = disks
        else:
            disks, created = [], []
            bag["Restored VHDs"] = ",".join(f"{d['name']}.vhd" for d in point.get("disks") or [])
        if disks:
            bag["Restored disk ids"] = ",".join(d.id for d in disks)
        for res in created:
            _publish_write(req, res, f"{res.type}/write")
        m.finish_job(job, op.end)

    op = _start(req, vault, job, on_success=done, on_failure=lambda op: m.finish_job(job, op.end, op.error))
    return Response(202, None, _item_monitors(req, item, op))


# --- item-level recovery (file recovery) ------------------------------------------------------------
# Provision and revoke answer 202 with the item's monitors (Provision_Ilr.json, Revoke_Ilr.json); from 2026-08-01
# the scripts come from listInstantItemRecoveryOperationResult, no longer inline in the operation status (the
# excerpt's swagger), so the status carries none. Model: ilr.py. Errors where no contract names one: README.
ILR_REQUEST = "IaasVMILRRegistrationRequest"
ILR_LIST_VERSIONS = tuple(v for v in BACKUP_VERSIONS if v >= "2026-08-01")  # SDK: method_added_on 2026-08-01


def _ilr_key(point: dict[str, Any]) -> str:
    return f"ilrOp:{point['name'].lower()}"


def _no_session(point: dict[str, Any]) -> BackupError:
    return BackupError(f"No item-level recovery session is active on recovery point '{point['name']}': it was never "
                       "provisioned, was revoked, or its 12 hours ended.", code="UserErrorNoActiveIlrSession")


@router.route("POST", RP + "/provisionInstantItemRecovery",
              operation=ITEM_OPS + "/recoveryPoints/provisionInstantItemRecovery/action", api_versions=BACKUP_VERSIONS)
def provision_ilr(req: Request) -> Response:
    """A session on the point for 12 hours when the operation ends (an active one kept, renewed if asked).
    Learn (backup-rbac-rs-vault, "Restore individual files from VM backup"): virtualMachines/write on the source VM."""
    props = req.json().get("properties")
    if not isinstance(props, dict):
        raise BackupError("properties: an IaasVMILRRegistrationRequest is required.", target="properties")
    if props.get("objectType") != ILR_REQUEST:
        raise BackupError(f"properties.objectType: '{ILR_REQUEST}' for an Azure VM.", target="properties.objectType")
    vm_id = props.get("virtualMachineId")
    if not isinstance(vm_id, str) or not vm_id:
        raise BackupError("properties.virtualMachineId: the id of the VM the point was taken of is required.",
                          target="properties.virtualMachineId")
    renew = props.get("renewExistingRegistration")
    renew = False if renew is None else renew
    initiator = props.get("initiatorName")
    if not isinstance(renew, bool):
        raise BackupError("properties.renewExistingRegistration: must be true or false.",
                          target="properties.renewExistingRegistration")
    if initiator is not None and not isinstance(initiator, str):
        raise BackupError("properties.initiatorName: must be a string.", target="properties.initiatorName")
    linked_access_checks(req, [(VM_WRITE, vm_id)])
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    point = _point(req, item)  # the URL's point; the body's recoveryPointId is not read (the example's differs)
    if vm_id.lower() != item.internal["vmId"].lower():
        raise BackupError(f"properties.virtualMachineId: '{vm_id}' is not the VM protected item '{item.name}' backs up.",
                          target="properties.virtualMachineId")
    if _inflight(req, item, _ilr_key(point)):
        raise _busy(item)
    store = _store(req)

    def done(op: Operation) -> None:
        if store.get(item.id) is not item or not any(p["name"] == point["name"] for p in m.live_points(item, op.end)):
            raise OperationFailed({"code": "BMSUserErrorRecoveryPointNotFound",
                                   "message": f"Recovery point '{point['name']}' was deleted meanwhile."})
        ilr.open_session(item, point, op.end, vm_id=item.internal["vmId"], initiator=initiator, renew=renew)

    op = _start(req, vault, on_success=done)
    op.extra.update(ilrProvision=point["name"].lower(), item=item.id.lower())
    item.internal[_ilr_key(point)] = op.id
    return Response(202, None, _item_monitors(req, item, op))


@router.route("POST", RP + "/revokeInstantItemRecovery",
              operation=ITEM_OPS + "/recoveryPoints/revokeInstantItemRecovery/action", api_versions=BACKUP_VERSIONS)
def revoke_ilr(req: Request) -> Response:
    """The session ends when the operation does; none active: 400 (the Azure CLI and PowerShell revoke only
    when the point says ``isInstantIlrSessionActive``)."""
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    point = _point(req, item)
    if _inflight(req, item, _ilr_key(point)):
        raise _busy(item)
    if ilr.session(item, point["name"], _now(req)) is None:
        raise _no_session(point)
    op = _start(req, vault, on_success=lambda op: ilr.close_session(item, point["name"]))
    item.internal[_ilr_key(point)] = op.id
    return Response(202, None, _item_monitors(req, item, op))


@router.route("POST", RP + "/listInstantItemRecoveryOperationResult",
              operation=ITEM_OPS + "/recoveryPoints/listInstantItemRecoveryOperationResult/action",
              api_versions=ILR_LIST_VERSIONS)
def list_ilr_result(req: Request) -> Response:
    """The mount scripts of the session a provision (by its operation id) opened on this point, while it is active."""
    op_id = req.json().get("provisionInstantItemRecoveryOperationId")
    if not isinstance(op_id, str) or not op_id:
        raise BackupError("provisionInstantItemRecoveryOperationId: the operation id of the provision is required.",
                          target="provisionInstantItemRecoveryOperationId")
    vault = _vault(req)
    _fabric(req)
    item = _item(req, vault)
    point = _point(req, item)
    op = req.emulator.operations.get(op_id)
    if op is None or op.extra.get("ilrProvision") != point["name"].lower() or op.extra.get("item") != item.id.lower():
        raise NotFound(f"provisionInstantItemRecoveryOperationId: '{op_id}' is not a provision of item-level recovery "
                       f"on recovery point '{point['name']}'.", code="BMSUserErrorOperationNotFound")
    if op.status == "InProgress":
        raise BackupError(f"Item-level recovery on recovery point '{point['name']}' is still being provisioned: "
                          "look again when its operation has ended.", code="UserErrorIlrProvisionInProgress")
    if op.status != "Succeeded":
        error = op.error or {}
        raise BackupError(error.get("message") or "The provision failed.", code=error.get("code") or "InternalOperationError")
    target = ilr.session(item, point["name"], _now(req))
    if target is None:
        raise _no_session(point)
    scripts = ilr.client_scripts(target, item.properties["friendlyName"], vault.location or "", m.iso_z(target["expiry"]))
    return Response(200, {"clientScripts": scripts})


def _validate(req: Request, vault: Resource, body: dict[str, Any]) -> list[dict[str, Any]]:
    """ValidateOperation's answer: the problems the restore would meet, as validation results (none: valid)."""
    props = body.get("properties") or {}
    if props.get("objectType") != "ValidateIaasVMRestoreOperationRequest":
        raise BackupError("properties.objectType: 'ValidateIaasVMRestoreOperationRequest' for an Azure VM.",
                          code="BMSUserErrorInvalidInput", target="properties.objectType")
    restore = props.get("restoreRequest") or {}
    point_id = body.get("id") or ""
    try:
        # The restore request names the VM and the point; the examples' recovery-point `id` (and the fabric,
        # container, item and point parameters) are accepted and ignored (../shared/azure-api/README.md: the
        # examples' `id` even names another resource group). Without a sourceResourceId, the `id` says which.
        source = restore.get("sourceResourceId")
        if source:
            item = m.item_for_vm(_store(req), vault, source)
            if item is None:
                raise BackupError(f"restoreRequest.sourceResourceId: the VM '{source}' is not protected by vault "
                                  f"'{vault.name}'.", code="BMSUserErrorNotFound", target="restoreRequest.sourceResourceId")
            wanted = str(restore.get("recoveryPointId") or point_id.rsplit("/", 1)[-1])
        else:
            item = _item_from_point_id(req, vault, point_id)
            wanted = point_id.rsplit("/", 1)[-1] or str(restore.get("recoveryPointId", ""))
        point = _find_point(req, item, wanted)
        _restore_plan(req, vault, item, point, restore)
    except ArmError as exc:
        return [{"code": exc.code, "message": exc.message, "recommendations": []}]
    return []


def _item_from_point_id(req: Request, vault: Resource, point_id: str) -> Resource:
    match = re.search(r"/protectionContainers/([^/]+)/protectedItems/([^/]+)/recoveryPoints/", point_id or "", re.IGNORECASE)
    if not match or not point_id.lower().startswith(vault.id.lower() + "/"):
        raise BackupError(f"id: '{point_id}' is not a recovery point of vault '{vault.name}'.",
                          code="BMSUserErrorInvalidInput", target="id")
    item = _store(req).get(f"{vault.id}/backupFabrics/Azure/protectionContainers/{match.group(1)}/protectedItems/{match.group(2)}")
    if item is None:
        raise BackupError(f"id: the protected item '{match.group(2)}' was not found.", code="BMSUserErrorNotFound", target="id")
    return item


@router.route("POST", VAULT + "/backupValidateOperation", operation=OPS + "/backupValidateOperation/action",
              api_versions=BACKUP_VERSIONS)
def validate_operation(req: Request) -> Response:
    vault = _vault(req)
    return Response(200, {"validateOperationResponse": {"validationResults": _validate(req, vault, req.json())}})


@router.route("POST", VAULT + "/backupTriggerValidateOperation", operation=OPS + "/backupTriggerValidateOperation/action",
              api_versions=BACKUP_VERSIONS)
def trigger_validate_operation(req: Request) -> Response:
    """The same check as a long-running operation: 202, then its results at backupValidateOperationResults."""
    vault = _vault(req)
    results = _validate(req, vault, req.json())
    op = _start(req, vault)
    op.extra["validation"] = results
    base = f"{req.base_url()}{vault.id}"
    return Response(202, None, {
        "Azure-AsyncOperation": f"{base}/backupValidateOperationsStatuses/{op.id}?api-version={_version(req)}",
        "Location": f"{base}/backupValidateOperationResults/{op.id}?api-version={_version(req)}",
        **req.emulator.operations.retry_headers(op)})


def _validate_op(req: Request) -> Operation:
    op = _op(req, _vault(req))
    if "validation" not in op.extra:
        raise NotFound(f"The operation '{req.params['operationId']}' is not a validation.", code="BMSUserErrorOperationNotFound")
    return op


@router.route("GET", VAULT + "/backupValidateOperationResults/{operationId}",
              operation=OPS + "/backupValidateOperationResults/read", api_versions=BACKUP_VERSIONS)
def validate_operation_results(req: Request) -> Response:
    op = _validate_op(req)
    if op.status == "InProgress":
        return Response(202, None, {**_self_location(req, op), **req.emulator.operations.retry_headers(op)})
    return Response(200, {"validateOperationResponse": {"validationResults": op.extra["validation"]}})


@router.route("GET", VAULT + "/backupValidateOperationsStatuses/{operationId}",
              operation=OPS + "/backupValidateOperationsStatuses/read", api_versions=BACKUP_VERSIONS)
def validate_operation_status(req: Request) -> Response:
    op = _validate_op(req)
    body: dict[str, Any] = {"id": op.id, "name": op.id, "status": op.status, "startTime": m.iso_z(op.start)}
    if op.status != "InProgress":
        body["endTime"] = m.iso_z(op.end)
        body["properties"] = {"objectType": "OperationStatusValidateOperationExtendedInfo",
                              "validateOperationResponse": {"validationResults": op.extra["validation"]}}
    return Response(200, body)


# --- jobs ------------------------------------------------------------------------------------------
def _job_body(req: Request, job: Resource) -> dict[str, Any]:
    op = req.emulator.operations.get(job.internal.get("op") or "")
    percent = op.percent(_now(req)) if op is not None else None
    return m.render_job(job, _now(req), percent)


@router.route("GET", VAULT + "/backupJobs", operation=OPS + "/backupJobs/read", api_versions=BACKUP_VERSIONS)
def list_jobs(req: Request) -> Response:
    vault = _vault(req)
    f = _filter(req)
    start = _parse_time(f["starttime"], "startTime") if "starttime" in f else None
    end = _parse_time(f["endtime"], "endTime") if "endtime" in f else None
    out = []
    for job in m.jobs_of(_store(req), vault):
        props = job.properties
        if any(k in f and str(props.get(p, "")).lower() != f[k].lower() for k, p in
               (("status", "status"), ("operation", "operation"), ("backupmanagementtype", "backupManagementType"),
                ("entityfriendlyname", "entityFriendlyName"))):
            continue
        if "jobid" in f and job.name.lower() != f["jobid"].lower():
            continue
        began = job.internal.get("start") or job.created
        if (start is not None and began < start) or (end is not None and began > end):
            continue
        out.append(_job_body(req, job))
    return listing(req, out)


@router.route("GET", VAULT + "/backupJobs/{jobName}", operation=OPS + "/backupJobs/read", api_versions=BACKUP_VERSIONS)
def get_job(req: Request) -> Response:
    vault = _vault(req)
    job = _store(req).get(f"{vault.id}/backupJobs/{req.params['jobName']}")
    if job is None:
        raise ArmError(f"Job '{req.params['jobName']}' was not found in vault '{vault.name}'.",
                       code="BMSUserErrorJobNotFound", status=404)
    return Response(200, _job_body(req, job))


# --- backupStatus ----------------------------------------------------------------------------------
@router.route("POST", SUB + "/locations/{azureRegion}/backupStatus",
              operation="Microsoft.RecoveryServices/locations/backupStatus/action", api_versions=BACKUP_VERSIONS)
def get_backup_status(req: Request) -> Response:
    body = req.json()
    resource_id = body.get("resourceId") or ""
    if str(body.get("resourceType", "VM")).lower() != "vm":
        raise BackupError("resourceType: only 'VM' is modelled.", code="BMSUserErrorInvalidInput", target="resourceType")
    parsed = parse_rid(resource_id)
    if parsed is None or parsed["type"].lower() != compute.VM_TYPE.lower():
        raise BackupError(f"resourceId: '{resource_id}' is not a virtual machine id.", code="BMSUserErrorInvalidInput",
                          target="resourceId")
    store = _store(req)
    for _holder, item in m.protections(store, resource_id):
        m.materialize(store, item, _now(req))
    return Response(200, m.backup_status(store, resource_id))
