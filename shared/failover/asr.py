"""Site Recovery as vmkeeper's failovers and recovery plans read and drive it (SDK 2.x, api-version 2025-08-01).

Replicated items are found by reading Azure: ``replicationProtectedItems`` of every vault in ``VMKEEPER_VAULTS``
(the target-region vault among them), whoever enabled them. Models are read as their REST JSON (``as_dict()``:
camelCase, as the swagger names them), so A2A's provider-specific details read the same as the rest.

Writes are sent without polling (``polling=False``): the caller keeps the operation's monitor
(``Azure-AsyncOperation``) and its ``Retry-After``, and looks again on a later queue delivery."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..azure.retry_after import retry_after_seconds
from ..ports import Arm

TEST_FAILOVER, CLEANUP, PLANNED, UNPLANNED, COMMIT, REPROTECT = (
    "TestFailover", "TestFailoverCleanup", "PlannedFailover", "UnplannedFailover", "Commit", "ReverseReplicate")
# What a plan in the middle of a DR operation allows: its membership waits until the operation is through.
PENDING_OPERATIONS = frozenset({CLEANUP, COMMIT, REPROTECT})
ADDABLE_STATES = frozenset({"Protected", "InitialReplicationInProgress"})  # items a plan may take in


def _id_parts(resource_id: str) -> dict[str, str]:
    from azure.mgmt.core.tools import parse_resource_id

    return parse_resource_id(resource_id or "")


@dataclass(frozen=True)
class Vault:
    id: str
    subscription: str
    group: str
    name: str

    @classmethod
    def of(cls, vault_id: str) -> Vault:
        p = _id_parts(vault_id)
        return cls(vault_id, p["subscription"].lower(), p["resource_group"], p["name"])


@dataclass(frozen=True)
class Item:
    """A replicated VM: its item, where it replicates from and to, and what ASR allows now."""

    id: str
    vault: Vault
    fabric: str
    container: str
    name: str
    vm_id: str  # the VM it replicates now (after a reprotect: the failed-over one)
    other_vm_id: str  # the VM on the other side, once there is one (``recoveryFabricObjectId``)
    friendly_name: str
    primary_fabric_id: str
    recovery_fabric_id: str
    state: str  # protectionState
    active: str  # activeLocation: Primary | Recovery
    allowed: tuple[str, ...]
    recovery_group: str  # recoveryAzureResourceGroupId: where a failover makes the VM
    test_failover_state: str
    scenario: str  # currentScenario.scenarioName ("None" when idle)
    job_id: str

    @property
    def steady(self) -> bool:
        """Replicating from where it began, no DR operation half-way: a plan may change around it."""
        return self.active == "Primary" and not (set(self.allowed) & PENDING_OPERATIONS) and self.scenario in ("", "None")

    def vm_ids(self) -> set[str]:
        return {v.lower() for v in (self.vm_id, self.other_vm_id) if v}

    @classmethod
    def named(cls, vault: Vault, item_id: str, friendly_name: str = "") -> Item:
        """Just enough of an item to act on it (its names), from its id."""
        return cls.of(vault, {"id": item_id, "properties": {"friendlyName": friendly_name}})

    @classmethod
    def of(cls, vault: Vault, doc: dict[str, Any]) -> Item:
        p = _id_parts(doc["id"])
        props = doc.get("properties") or {}
        a2a = props.get("providerSpecificDetails") or {}
        scenario = props.get("currentScenario") or {}
        fabric_id = re.split("/replicationProtectionContainers/", doc["id"], maxsplit=1, flags=re.IGNORECASE)[0]
        return cls(doc["id"], vault, p.get("child_name_1", ""), p.get("child_name_2", ""), p.get("child_name_3", ""),
                   a2a.get("fabricObjectId") or "", a2a.get("recoveryFabricObjectId") or "",
                   props.get("friendlyName") or p.get("child_name_3", ""), fabric_id, props.get("recoveryFabricId") or "",
                   props.get("protectionState") or "", props.get("activeLocation") or "",
                   tuple(props.get("allowedOperations") or ()), a2a.get("recoveryAzureResourceGroupId") or "",
                   props.get("testFailoverState") or "None", scenario.get("scenarioName") or "None",
                   scenario.get("jobId") or "")


@dataclass(frozen=True)
class Group:
    type: str  # Shutdown | Failover | Boot
    items: tuple[str, ...]  # item ids
    vms: tuple[str, ...]  # the plan's virtualMachineId per item, as stored
    start_actions: tuple[Any, ...] = ()
    end_actions: tuple[Any, ...] = ()

    def to_input(self) -> dict[str, Any]:
        return {"groupType": self.type,
                "replicationProtectedItems": [{"id": i, "virtualMachineId": v} for i, v in zip(self.items, self.vms,
                                                                                               strict=True)],
                "startGroupActions": list(self.start_actions), "endGroupActions": list(self.end_actions)}


@dataclass(frozen=True)
class Plan:
    id: str
    vault: Vault
    name: str
    primary_fabric_id: str
    recovery_fabric_id: str
    groups: tuple[Group, ...]
    allowed: tuple[str, ...]
    scenario: str  # currentScenario.scenarioName, "" when idle
    scenario_status: str
    job_id: str

    @property
    def boot_groups(self) -> list[Group]:
        return [g for g in self.groups if g.type == "Boot"]

    @property
    def idle(self) -> bool:
        return self.scenario in ("", "None") and not (set(self.allowed) & PENDING_OPERATIONS)

    @classmethod
    def of(cls, vault: Vault, doc: dict[str, Any]) -> Plan:
        props = doc.get("properties") or {}
        groups = []
        for g in props.get("groups") or []:
            members = g.get("replicationProtectedItems") or []
            groups.append(Group(g.get("groupType") or "", tuple(m.get("id") or "" for m in members),
                                tuple(m.get("virtualMachineId") or "" for m in members),
                                tuple(g.get("startGroupActions") or ()), tuple(g.get("endGroupActions") or ())))
        scenario = props.get("currentScenario") or {}
        return cls(doc["id"], vault, doc.get("name") or "", props.get("primaryFabricId") or "",
                   props.get("recoveryFabricId") or "", tuple(groups), tuple(props.get("allowedOperations") or ()),
                   scenario.get("scenarioName") or "", props.get("currentScenarioStatus") or "",
                   scenario.get("jobId") or "")


@dataclass
class Sent:
    """What an accepted action's answer said: its monitor and when to look again."""

    operation_url: str = ""
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class SiteRecovery:
    def __init__(self, arm: Arm, arm_endpoint: str = ""):
        self.arm = arm
        self.arm_host = (urlsplit(arm_endpoint).hostname or "").lower()

    def _client(self, vault: Vault) -> Any:
        return self.arm.site_recovery(vault.subscription)

    # --- reading ----------------------------------------------------------------------------------
    def items(self, vault: Vault) -> list[Item]:
        return [Item.of(vault, i.as_dict()) for i in self._client(vault).replication_protected_items.list(
            vault.group, vault.name)]

    def plans(self, vault: Vault) -> list[Plan]:
        return [Plan.of(vault, p.as_dict()) for p in self._client(vault).replication_recovery_plans.list(
            vault.group, vault.name)]

    def plan(self, vault: Vault, name: str) -> Plan | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return Plan.of(vault, self._client(vault).replication_recovery_plans.get(vault.group, vault.name,
                                                                                      name).as_dict())
        except ResourceNotFoundError:
            return None

    def item(self, item: Item) -> Item:
        v = item.vault
        return Item.of(v, self._client(v).replication_protected_items.get(v.group, v.name, item.fabric, item.container,
                                                                          item.name).as_dict())

    def job(self, vault: Vault, name: str) -> dict[str, Any]:
        return self._client(vault).replication_jobs.get(vault.group, vault.name, name).as_dict()

    def jobs(self, vault: Vault) -> list[dict[str, Any]]:
        return [j.as_dict() for j in self._client(vault).replication_jobs.list(vault.group, vault.name)]

    def points(self, item: Item) -> list[dict[str, Any]]:
        v = item.vault
        return [p.as_dict() for p in self._client(v).recovery_points.list_by_replication_protected_items(
            v.group, v.name, item.fabric, item.container, item.name)]

    def operation(self, vault: Vault, url: str) -> tuple[dict[str, Any], int | None]:
        """An operation's status (``Azure-AsyncOperation``) and ARM's advice on when to look again. Only a URL on
        Resource Manager's own host is followed: the client's token goes nowhere else."""
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        host = (urlsplit(url).hostname or "").lower()
        if urlsplit(url).scheme != "https" or (self.arm_host and host != self.arm_host):
            raise ValueError(f"operation monitor {url[:200]!r} is not on Resource Manager ({self.arm_host})")
        answer = self._client(vault).send_request(HttpRequest("GET", url))
        if answer.status_code != 200:
            raise HttpResponseError(response=answer)
        return answer.json(), retry_after_seconds(answer.headers)

    # --- writing ----------------------------------------------------------------------------------
    def create_plan(self, vault: Vault, name: str, primary_fabric_id: str, recovery_fabric_id: str,
                    groups: list[Group]) -> Sent:
        sent = Sent()
        self._client(vault).replication_recovery_plans.begin_create(vault.group, vault.name, name, {"properties": {
            "primaryFabricId": primary_fabric_id, "recoveryFabricId": recovery_fabric_id,
            "failoverDeploymentModel": "ResourceManager", "groups": [g.to_input() for g in groups]}},
            polling=False, raw_response_hook=_hook(sent))
        return sent

    def update_plan(self, vault: Vault, name: str, groups: list[Group]) -> Sent:
        """ASR's update of a plan's membership: its groups, all of them, as they are to be (PATCH)."""
        sent = Sent()
        self._client(vault).replication_recovery_plans.begin_update(vault.group, vault.name, name, {"properties": {
            "groups": [g.to_input() for g in groups]}}, polling=False, raw_response_hook=_hook(sent))
        return sent

    def act_on_plan(self, vault: Vault, plan: str, operation: str, body: dict[str, Any] | None) -> Sent:
        ops = self._client(vault).replication_recovery_plans
        sent = Sent()
        kwargs = {"polling": False, "raw_response_hook": _hook(sent)}
        call = {TEST_FAILOVER: ops.begin_test_failover, CLEANUP: ops.begin_test_failover_cleanup,
                PLANNED: ops.begin_planned_failover, UNPLANNED: ops.begin_unplanned_failover}.get(operation)
        if call is not None:
            call(vault.group, vault.name, plan, body, **kwargs)
        elif operation == COMMIT:
            ops.begin_failover_commit(vault.group, vault.name, plan, **kwargs)
        elif operation == REPROTECT:
            ops.begin_reprotect(vault.group, vault.name, plan, **kwargs)
        else:
            raise ValueError(f"operation: {operation!r}")
        return sent

    def act_on_item(self, item: Item, operation: str, body: dict[str, Any] | None) -> Sent:
        v = item.vault
        ops = self._client(v).replication_protected_items
        sent = Sent()
        args = (v.group, v.name, item.fabric, item.container, item.name)
        kwargs = {"polling": False, "raw_response_hook": _hook(sent)}
        call = {TEST_FAILOVER: ops.begin_test_failover, CLEANUP: ops.begin_test_failover_cleanup,
                PLANNED: ops.begin_planned_failover, UNPLANNED: ops.begin_unplanned_failover,
                REPROTECT: ops.begin_reprotect}.get(operation)
        if call is not None:
            call(*args, body, **kwargs)
        elif operation == COMMIT:
            ops.begin_failover_commit(*args, **kwargs)
        else:
            raise ValueError(f"operation: {operation!r}")
        return sent


def _hook(sent: Sent) -> Any:
    def hook(response: Any) -> None:
        headers = response.http_response.headers
        sent.operation_url = headers.get("Azure-AsyncOperation") or sent.operation_url
        sent.retry_after = retry_after_seconds(headers)
        sent.headers = {k: v for k, v in headers.items() if k.lower() in ("azure-asyncoperation", "location")}
    return hook
