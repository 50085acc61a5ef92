"""Site Recovery's infrastructure objects on plain state: fabrics (one per Azure region), protection
containers, container mappings (a source container paired with a target one under a policy), A2A
replication policies and network mappings. What each is made of, the rules ASR states for them, and how
each is drawn on the wire (ids as ``/Subscriptions/…``, as ASR answers them)."""

from __future__ import annotations

import uuid
from typing import Any

from ..core.arm import normalize_location, parse_rid
from ..core.errors import ArmError
from ..core.state import Resource, Store

PROVIDER = "Microsoft.RecoveryServices"
VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
FABRIC_TYPE = VAULT_TYPE + "/replicationFabrics"
CONTAINER_TYPE = FABRIC_TYPE + "/replicationProtectionContainers"
MAPPING_TYPE = CONTAINER_TYPE + "/replicationProtectionContainerMappings"
NETWORK_TYPE = FABRIC_TYPE + "/replicationNetworks"
NETWORK_MAPPING_TYPE = NETWORK_TYPE + "/replicationNetworkMappings"
ITEM_TYPE = CONTAINER_TYPE + "/replicationProtectedItems"
POINT_TYPE = ITEM_TYPE + "/recoveryPoints"
POLICY_TYPE = VAULT_TYPE + "/replicationPolicies"
PLAN_TYPE = VAULT_TYPE + "/replicationRecoveryPlans"
JOB_TYPE = VAULT_TYPE + "/replicationJobs"
ELIGIBILITY_TYPE = "Microsoft.RecoveryServices/replicationEligibilityResults"

A2A = "A2A"
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,259}"
NAME_RULE = "Site Recovery object names are 1-260 characters: letters, digits, '_', '.', '-', starting with a letter or digit."
# A2A policy bounds (Learn "Azure-to-Azure support matrix" / portal): history up to 15 days, app-consistent
# snapshots every 1-12 hours (0: none), crash-consistent points every 5 minutes.
MAX_HISTORY_MINUTES = 15 * 24 * 60
CRASH_MINUTES = 5


class AsrError(ArmError):
    """An error as Site Recovery answers it: ASR's code, its message, and (as ``additionalInfo`` of type
    ``SiteRecoveryErrorDetails``) the possible causes and recommended action ASR's errors carry."""

    status = 400

    def __init__(self, message: str, *, code: str, possible_causes: str | None = None,
                 recommended_action: str | None = None, target: str | None = None, status: int | None = None):
        super().__init__(message, code=code, target=target, status=status)
        self.possible_causes = possible_causes
        self.recommended_action = recommended_action

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.possible_causes or self.recommended_action:
            body["error"]["additionalInfo"] = [{"type": "SiteRecoveryErrorDetails", "info": {
                "possibleCauses": self.possible_causes or "", "recommendedAction": self.recommended_action or ""}}]
        return body

    def as_operation_error(self) -> dict[str, Any]:
        """The same error as a failed operation's status carries it (code and message only)."""
        message = self.message
        if self.recommended_action:
            message += f" Recommended action: {self.recommended_action}"
        return {"code": self.code, "message": message}


def not_found(kind: str, name: str, vault: Resource) -> AsrError:
    return AsrError(f"The {kind} '{name}' was not found in vault '{vault.name}'.", code="NotFound", status=404,
                    recommended_action=f"Check that the {kind} exists and retry.")


def wire_id(resource_id: str) -> str:
    """ASR spells its own ids ``/Subscriptions/…`` (ids are case-insensitive; callers must not mind)."""
    if resource_id.lower().startswith("/subscriptions/"):
        return "/Subscriptions/" + resource_id[len("/subscriptions/"):]
    return resource_id


def new_id() -> str:
    return str(uuid.uuid4())


def body_of(resource: Resource, properties: dict[str, Any]) -> dict[str, Any]:
    return {"id": wire_id(resource.id), "name": resource.name, "type": resource.type, "properties": properties}


def same_id(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and a.lower().rstrip("/") == b.lower().rstrip("/")


def vault_of(store: Store, resource_id: str) -> Resource | None:
    head = resource_id.lower().split("/replication", 1)[0]
    return store.get(head)


# --- fabrics ------------------------------------------------------------------------------------------
def fabric_location(fabric: Resource) -> str:
    return fabric.internal["location"]


def check_fabric_input(store: Store, vault: Resource, name: str, body: dict[str, Any]) -> str:
    """The region of an A2A fabric (``customDetails: {instanceType: Azure, location}``); one fabric per region."""
    details = (body.get("properties") or {}).get("customDetails") or {}
    kind = details.get("instanceType")
    if kind != "Azure":
        raise AsrError(f"properties.customDetails.instanceType: '{kind}' is not served here: an Azure-to-Azure fabric "
                       "is 'Azure' with the region as 'location'.", code="InvalidFabricCreationInput",
                       target="properties.customDetails.instanceType")
    location = normalize_location(details.get("location"))
    if not location:
        raise AsrError("properties.customDetails.location: the Azure region of the fabric is required.",
                       code="InvalidFabricCreationInput", target="properties.customDetails.location")
    for other in store.of_type(FABRIC_TYPE, vault.id):
        if other.name.lower() != name.lower() and fabric_location(other) == location:
            raise AsrError(f"A fabric for location '{location}' already exists in vault '{vault.name}': '{other.name}'.",
                           code="FabricAlreadyExistsForLocation", target="properties.customDetails.location",
                           recommended_action=f"Use the fabric '{other.name}'.")
    return location


def new_fabric(vault: Resource, name: str, location: str, now: float) -> Resource:
    return Resource(f"{vault.id}/replicationFabrics/{name}", FABRIC_TYPE, name, None, None, {},
                    {}, {"location": location, "internalIdentifier": new_id(), "state": "creating"}, now)


def render_fabric(store: Store, fabric: Resource) -> dict[str, Any]:
    containers = [wire_id(c.id) for c in store.of_type(CONTAINER_TYPE, fabric.id)]
    return body_of(fabric, {
        "friendlyName": fabric.name,
        "encryptionDetails": {"kekState": "None"},
        "rolloverEncryptionDetails": {"kekState": "None"},
        "internalIdentifier": fabric.internal["internalIdentifier"],
        "bcdrState": "Valid",
        "customDetails": {"instanceType": "Azure", "location": fabric_location(fabric), "containerIds": containers,
                          "zones": [], "extendedLocations": [], "locationDetails": []},
        "healthErrorDetails": [],
        "health": "Normal",
    })


# --- protection containers ---------------------------------------------------------------------------------
def check_container_input(body: dict[str, Any]) -> None:
    inputs = (body.get("properties") or {}).get("providerSpecificInput")
    if inputs is None:
        return
    if not isinstance(inputs, list) or any(not isinstance(i, dict) or i.get("instanceType") != A2A for i in inputs):
        raise AsrError("properties.providerSpecificInput: a list of {\"instanceType\": \"A2A\"} for an Azure-to-Azure "
                       "container.", code="InvalidContainerCreationInput", target="properties.providerSpecificInput")


def new_container(fabric: Resource, name: str, now: float) -> Resource:
    return Resource(f"{fabric.id}/replicationProtectionContainers/{name}", CONTAINER_TYPE, name, None, None, {}, {},
                    {"state": "creating"}, now)


def fabric_of(store: Store, child: Resource) -> Resource:
    return store.get(child.id.lower().split("/replicationprotectioncontainers/")[0])


def container_of(store: Store, child: Resource) -> Resource:
    return store.get(child.id.lower().split("/replicationprotecteditems/")[0].split("/replicationprotectioncontainermappings/")[0])


def mappings_in(store: Store, vault: Resource) -> list[Resource]:
    return store.of_type(MAPPING_TYPE, vault.id)


def render_container(store: Store, container: Resource) -> dict[str, Any]:
    fabric = fabric_of(store, container)
    vault = vault_of(store, container.id)
    sources = [m for m in mappings_in(store, vault) if m.id.lower().startswith(container.key + "/")]
    targets = [m for m in mappings_in(store, vault) if same_id(m.internal["target"], container.id)]
    items = store.of_type(ITEM_TYPE, container.id)
    role = "Primary" if sources else ("Recovery" if targets else "")
    return body_of(container, {
        "fabricFriendlyName": fabric.name,
        "friendlyName": container.name,
        "fabricType": "Azure",
        "protectedItemCount": len(items),
        "pairingStatus": "Paired" if sources or targets else "NotPaired",
        "role": role,
        "fabricSpecificDetails": {"instanceType": "Azure"},
    })


# --- replication policies ---------------------------------------------------------------------------------
def _int_field(details: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = details.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AsrError(f"properties.providerSpecificInput.{name}: {value!r} is not an integer from {low} to {high}.",
                       code="InvalidPolicyInput", target=f"properties.providerSpecificInput.{name}")
    return value


def check_policy_input(body: dict[str, Any], current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The A2A policy settings of a create (``providerSpecificInput``) or update (``replicationProviderSettings``)."""
    props = body.get("properties") or {}
    key = "providerSpecificInput" if "providerSpecificInput" in props or current is None else "replicationProviderSettings"
    details = props.get(key) or {}
    kind = details.get("instanceType")
    if kind != A2A:
        raise AsrError(f"properties.{key}.instanceType: '{kind}' is not served here: an Azure-to-Azure replication "
                       "policy is 'A2A'.", code="InvalidPolicyInput", target=f"properties.{key}.instanceType")
    current = current or {}
    history = _int_field(details, "recoveryPointHistory", 0, MAX_HISTORY_MINUTES, current.get("recoveryPointHistory", 1440))
    app = _int_field(details, "appConsistentFrequencyInMinutes", 0, 720, current.get("appConsistentFrequencyInMinutes", 240))
    if app and app < 60:
        raise AsrError("properties.providerSpecificInput.appConsistentFrequencyInMinutes: 0 (none) or 60 to 720 minutes.",
                       code="InvalidPolicyInput", target="properties.providerSpecificInput.appConsistentFrequencyInMinutes")
    if app and app > history:
        raise AsrError("properties.providerSpecificInput.appConsistentFrequencyInMinutes: app-consistent snapshots must "
                       "be more frequent than the recovery point retention (recoveryPointHistory).",
                       code="InvalidPolicyInput", target="properties.providerSpecificInput.appConsistentFrequencyInMinutes")
    crash = _int_field(details, "crashConsistentFrequencyInMinutes", CRASH_MINUTES, CRASH_MINUTES, CRASH_MINUTES)
    sync = details.get("multiVmSyncStatus", current.get("multiVmSyncStatus"))
    sync = {"enable": "Enable", "enabled": "Enable", "disable": "Disable", "disabled": "Disable"}.get(str(sync).lower())
    if sync is None:
        raise AsrError("properties.providerSpecificInput.multiVmSyncStatus: 'Enable' or 'Disable' (required).",
                       code="InvalidPolicyInput", target="properties.providerSpecificInput.multiVmSyncStatus")
    return {"recoveryPointHistory": history, "appConsistentFrequencyInMinutes": app,
            "crashConsistentFrequencyInMinutes": crash, "multiVmSyncStatus": sync}


def new_policy(vault: Resource, name: str, settings: dict[str, Any], now: float) -> Resource:
    return Resource(f"{vault.id}/replicationPolicies/{name}", POLICY_TYPE, name, None, None, {}, {},
                    {"settings": settings, "state": "creating"}, now)


def render_policy(policy: Resource) -> dict[str, Any]:
    s = policy.internal["settings"]
    return body_of(policy, {"friendlyName": policy.name, "providerSpecificDetails": {
        "instanceType": A2A,
        "recoveryPointThresholdInMinutes": 60,
        "recoveryPointHistory": s["recoveryPointHistory"],
        "appConsistentFrequencyInMinutes": s["appConsistentFrequencyInMinutes"],
        "multiVmSyncStatus": s["multiVmSyncStatus"] + "d",
        "crashConsistentFrequencyInMinutes": s["crashConsistentFrequencyInMinutes"],
    }})


def policy_in(store: Store, vault: Resource, policy_id: str | None) -> Resource | None:
    if not policy_id or not policy_id.lower().startswith(vault.key + "/replicationpolicies/"):
        return None
    policy = store.get(policy_id)
    return policy if policy is not None and policy.internal["state"] == "ready" else None


# --- container mappings ------------------------------------------------------------------------------------
def check_mapping_input(store: Store, vault: Resource, source: Resource, body: dict[str, Any]) -> tuple[Resource, Resource]:
    """(target container, policy) of a mapping: the target in another fabric of the vault, an A2A policy."""
    props = body.get("properties") or {}
    specific = props.get("providerSpecificInput") or {}
    if specific.get("instanceType") != A2A:
        raise AsrError(f"properties.providerSpecificInput.instanceType: '{specific.get('instanceType')}' is not served "
                       "here: an Azure-to-Azure mapping is 'A2A'.", code="InvalidContainerMappingInput",
                       target="properties.providerSpecificInput.instanceType")
    target_id = props.get("targetProtectionContainerId") or ""
    target = store.get(target_id) if target_id.lower().startswith(vault.key + "/") else None
    if target is None or target.type.lower() != CONTAINER_TYPE.lower() or target.internal["state"] != "ready":
        raise AsrError(f"properties.targetProtectionContainerId: '{target_id}' is not a protection container of vault "
                       f"'{vault.name}'.", code="InvalidContainerMappingInput", target="properties.targetProtectionContainerId")
    if fabric_location(fabric_of(store, target)) == fabric_location(fabric_of(store, source)):
        raise AsrError("properties.targetProtectionContainerId: the target container is in the source container's "
                       "region; Azure-to-Azure replication pairs two regions.", code="InvalidContainerMappingInput",
                       target="properties.targetProtectionContainerId")
    policy = policy_in(store, vault, props.get("policyId"))
    if policy is None:
        raise AsrError(f"properties.policyId: '{props.get('policyId')}' is not a replication policy of vault "
                       f"'{vault.name}'.", code="InvalidContainerMappingInput", target="properties.policyId")
    return target, policy


def new_mapping(source: Resource, name: str, target: Resource, policy: Resource, auto_update: str, now: float) -> Resource:
    return Resource(f"{source.id}/replicationProtectionContainerMappings/{name}", MAPPING_TYPE, name, None, None, {}, {},
                    {"target": target.id, "policy": policy.id, "agentAutoUpdateStatus": auto_update, "state": "creating"},
                    now)


def render_mapping(store: Store, mapping: Resource) -> dict[str, Any]:
    source = container_of(store, mapping)
    target = store.get(mapping.internal["target"])
    policy = store.get(mapping.internal["policy"])
    target_fabric = fabric_of(store, target) if target is not None else None
    return body_of(mapping, {
        "targetProtectionContainerId": wire_id(mapping.internal["target"]),
        "targetProtectionContainerFriendlyName": target.name if target is not None else "",
        "providerSpecificDetails": {"instanceType": A2A, "agentAutoUpdateStatus": mapping.internal["agentAutoUpdateStatus"]},
        "health": "Normal",
        "healthErrorDetails": [],
        "policyId": wire_id(mapping.internal["policy"]),
        "state": "Paired" if mapping.internal["state"] == "ready" else "PairingInProgress",
        "sourceProtectionContainerFriendlyName": source.name,
        "sourceFabricFriendlyName": fabric_of(store, source).name,
        "targetFabricFriendlyName": target_fabric.name if target_fabric is not None else "",
        "policyFriendlyName": policy.name if policy is not None else "",
    })


def mapping_for(store: Store, vault: Resource, container: Resource, policy_id: str,
                target_id: str | None) -> Resource | None:
    """The ready mapping from ``container`` under that policy (to ``target_id`` if given)."""
    for m in store.of_type(MAPPING_TYPE, container.id):
        if m.internal["state"] == "ready" and same_id(m.internal["policy"], policy_id) \
                and (not target_id or same_id(m.internal["target"], target_id)):
            return m
    return None


# --- network mappings ---------------------------------------------------------------------------------------
def check_network_mapping_input(store: Store, vault: Resource, fabric: Resource, body: dict[str, Any]) -> dict[str, Any]:
    """An A2A network mapping: the primary VNet in the fabric's region, the recovery VNet in the recovery fabric's."""
    props = body.get("properties") or {}
    specific = props.get("fabricSpecificDetails") or {}
    if specific.get("instanceType") != "AzureToAzure":
        raise AsrError(f"properties.fabricSpecificDetails.instanceType: '{specific.get('instanceType')}' is not served "
                       "here: an Azure-to-Azure network mapping is 'AzureToAzure' with 'primaryNetworkId'.",
                       code="InvalidNetworkMappingInput", target="properties.fabricSpecificDetails.instanceType")
    recovery_fabric_name = props.get("recoveryFabricName") or ""
    recovery_fabric = store.get(f"{vault.id}/replicationFabrics/{recovery_fabric_name}") if recovery_fabric_name else None
    if recovery_fabric is None or recovery_fabric.internal["state"] != "ready":
        raise AsrError(f"properties.recoveryFabricName: '{recovery_fabric_name}' is not a fabric of vault '{vault.name}'.",
                       code="InvalidNetworkMappingInput", target="properties.recoveryFabricName")
    checked = {}
    for field, value, want in (("fabricSpecificDetails.primaryNetworkId", specific.get("primaryNetworkId"), fabric),
                               ("recoveryNetworkId", props.get("recoveryNetworkId"), recovery_fabric)):
        vnet = store.get(value or "")
        parsed = parse_rid(value or "")
        if vnet is None or parsed is None or parsed["type"].lower() != "microsoft.network/virtualnetworks":
            raise AsrError(f"properties.{field}: virtual network '{value}' was not found.", code="InvalidNetworkMappingInput",
                           target=f"properties.{field}")
        if normalize_location(vnet.location) != fabric_location(want):
            raise AsrError(f"properties.{field}: the virtual network is in '{vnet.location}', the fabric '{want.name}' in "
                           f"'{fabric_location(want)}'.", code="InvalidNetworkMappingInput", target=f"properties.{field}")
        checked[field] = vnet
    return {"primary": checked["fabricSpecificDetails.primaryNetworkId"].id,
            "recovery": checked["recoveryNetworkId"].id, "recoveryFabric": recovery_fabric.id}


def new_network_mapping(fabric: Resource, network: str, name: str, spec: dict[str, Any], now: float) -> Resource:
    return Resource(f"{fabric.id}/replicationNetworks/{network}/replicationNetworkMappings/{name}", NETWORK_MAPPING_TYPE,
                    name, None, None, {}, {}, dict(spec, state="creating"), now)


def render_network_mapping(store: Store, nm: Resource) -> dict[str, Any]:
    fabric = store.get(nm.id.lower().split("/replicationnetworks/")[0])
    recovery_fabric = store.get(nm.internal["recoveryFabric"])
    network_id = nm.id.rsplit("/replicationNetworkMappings/", 1)[0]
    return body_of(nm, {
        "state": "Paired" if nm.internal["state"] == "ready" else "PairingInProgress",
        "primaryNetworkFriendlyName": nm.internal["primary"].rsplit("/", 1)[-1],
        "primaryNetworkId": nm.internal["primary"],
        "primaryFabricFriendlyName": fabric.name if fabric is not None else "",
        "recoveryNetworkFriendlyName": nm.internal["recovery"].rsplit("/", 1)[-1],
        "recoveryNetworkId": nm.internal["recovery"],
        "recoveryFabricArmId": wire_id(nm.internal["recoveryFabric"]),
        "recoveryFabricFriendlyName": recovery_fabric.name if recovery_fabric is not None else "",
        "fabricSpecificSettings": {"instanceType": "AzureToAzure",
                                   "primaryFabricLocation": fabric_location(fabric) if fabric is not None else "",
                                   "recoveryFabricLocation": fabric_location(recovery_fabric) if recovery_fabric else ""},
        "networkId": wire_id(network_id),
    })


def recovery_network_for(store: Store, vault: Resource, source_vnet_id: str, recovery_fabric: Resource) -> str | None:
    """The recovery VNet a network mapping pairs with ``source_vnet_id`` towards ``recovery_fabric``."""
    for nm in store.of_type(NETWORK_MAPPING_TYPE, vault.id):
        if nm.internal["state"] == "ready" and same_id(nm.internal["primary"], source_vnet_id) \
                and same_id(nm.internal["recoveryFabric"], recovery_fabric.id):
            return nm.internal["recovery"]
    return None
