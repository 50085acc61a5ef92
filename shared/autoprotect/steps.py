"""Auto-protect: enrol a VM in Azure Backup in its region's vault with the Azure Backup policy of
its vmkeeper policy (the policy document's ``backup_policy``, the policy chosen by the VM's tags or
the document's default); stop protection (retaining data) when the VM is deleted.

``decide_*`` functions are pure (what to do, and why); ``Protector`` does it through the SDK, one
idempotent step per call, and returns an Outcome: a step that must wait (the VM is still
Creating, discovery hasn't seen it, enabling is in progress) answers ``Retry`` instead of
sleeping, and the queue adapter looks again later. Every write uses Azure's deterministic names
(container ``IaasVMContainer;iaasvmcontainerv2;{rg};{vm}``, item ``VM;iaasvmcontainerv2;{rg};{vm}``),
so duplicate and replayed messages can't enrol a VM twice.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from .. import resource_ids
from ..azure.retry_after import retry_after_seconds
from ..membership import not_member_reason
from ..policy.document import PolicyError, PolicySet, load_policy_file
from ..ports import Arm
from ..queue import messages as jobs
from ..queue.messages import Done, Failed, Outcome, Retry
from ..settings import ProtectSettings

log = logging.getLogger("vmkeeper.protect")

KIND = "protect"
PROTECTED_STATES = {"protected", "irpending"}


# --- pure decisions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyChoice:
    """The Azure Backup policy a VM gets from the policy document; None when auto-protect leaves it
    out of Azure Backup, ``skip`` saying why (the outcome recorded) and ``reason`` in words."""

    backup_policy: str | None
    reason: str
    policy: str | None = None  # the vmkeeper policy, as the document writes its name
    skip: str | None = None  # "opted_out", "no_policy", "no_backup_policy", "bad_tag" or "not_fleet"
    error: str | None = None  # a bad tag value: reported, the VM skipped


def decide_policy(tags: dict[str, str] | None, policies: PolicySet) -> PolicyChoice:
    """The VM's vmkeeper policy (its tag, the opt-out tag, or the document's default) → that
    policy's ``backup_policy``: the document is the one source of truth for both. A VM a restore or a drill
    made is no fleet member (shared/membership.py): left out of Azure Backup."""
    outside = not_member_reason(tags)
    if outside:
        return PolicyChoice(None, outside, skip="not_fleet")
    resolution = policies.for_vm(tags)
    if resolution.error:
        return PolicyChoice(None, resolution.reason, skip="bad_tag", error=resolution.error)
    if resolution.policy is None:
        return PolicyChoice(None, resolution.reason, skip="opted_out" if resolution.opted_out else "no_policy")
    policy = resolution.policy
    if not policy.backup_policy:
        return PolicyChoice(None, f"{resolution.reason}: policy '{policy.name}' names no backup_policy, so the VM "
                                  "is not enrolled in Azure Backup", policy.name, skip="no_backup_policy")
    return PolicyChoice(policy.backup_policy, resolution.reason, policy.name)


class PolicyDocument:
    """The policy document, read again when its file changes (a deployment may replace it)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._policies: PolicySet | None = None

    def get(self) -> PolicySet:
        stat = os.stat(self.path)
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp or self._policies is None:
                self._policies, self._stamp = load_policy_file(self.path), stamp
            return self._policies


def container_name(resource_group: str, vm_name: str) -> str:
    return f"IaasVMContainer;iaasvmcontainerv2;{resource_group.lower()};{vm_name.lower()}"


def item_name(resource_group: str, vm_name: str) -> str:
    return f"VM;iaasvmcontainerv2;{resource_group.lower()};{vm_name.lower()}"


def vault_parts(vault_id: str) -> tuple[str, str, str]:
    ref = resource_ids.vault(vault_id)
    if ref is None:
        raise ValueError(f"not a vault id: {vault_id}")
    return ref


def new_message(action: str, vm_id: str, event_id: str, event_time: str) -> dict[str, Any]:
    return {"v": 1, "kind": KIND, "action": action, "vm_id": vm_id.lower(), "event_id": event_id,
            "event_time": event_time, "step": "start", "attempt": 0}


def parse_vm_id(vm_id: str) -> tuple[str, str, str]:
    ref = resource_ids.vm(vm_id)
    if ref is None:
        raise jobs.BadMessage(f"message.vm_id: not a virtual machine id ({vm_id!r})")
    return ref


# --- effects ----------------------------------------------------------------------------------
class Protector:
    """One step of a protection job, through ARM's compute and backup clients."""

    def __init__(self, settings: ProtectSettings, clients: Arm):
        self.settings = settings
        self.clients = clients
        self.policies = PolicyDocument(settings.policy_file)

    def handle(self, message: dict[str, Any]) -> Outcome:
        if message.get("action") == "unprotect":
            return self.unprotect(message)
        if message.get("action") != "protect":
            raise jobs.BadMessage(f"message.action: must be protect or unprotect (got {message.get('action')!r})")
        return self.protect(message)

    def _retry(self, message: dict[str, Any], reason: str, *, after: int | None = None, **changes: Any) -> Outcome:
        """Look again later: after ARM's advice (``after``, an operation's Retry-After) when it gave
        some, else after the backoff."""
        attempt = message.get("attempt", 0)
        if attempt + 1 >= self.settings.max_attempts:
            return Failed(f"gave up after {attempt + 1} attempts: {reason}")
        delay = after or jobs.backoff(attempt, self.settings.retry_seconds, self.settings.retry_max_seconds)
        return Retry(delay, reason, dict(changes, attempt=attempt + 1))

    @staticmethod
    def _answer(seen: dict[str, Any]) -> Any:
        """A raw-response hook: the status of ARM's (last) answer and its Retry-After, into ``seen``."""
        def hook(response: Any) -> None:
            http = response.http_response
            seen["status"] = http.status_code
            seen["retry_after"] = retry_after_seconds(http.headers)
        return hook

    def protect(self, message: dict[str, Any]) -> Outcome:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

        sub, rg, name = parse_vm_id(message["vm_id"])
        compute = self.clients.compute(sub)
        try:
            vm = compute.virtual_machines.get(rg, name)
        except ResourceNotFoundError:
            return Done("vm_gone", {"note": "the VM no longer exists (deleted, or an out-of-order event)"})
        if (vm.provisioning_state or "").lower() in ("creating", "updating"):
            changes = {"step": message.get("step", "start")}
            if (vm.provisioning_state or "").lower() == "creating" and not message.get("discovery"):
                # Start discovery while the VM is being created (once per job): a refresh that ends
                # after provisioning finds the VM, sparing the enabling step a refresh round of its own.
                # One that ends too soon costs an idempotent call; that step refreshes as before.
                changes["discovery"] = self._discover_early(vm)
            return self._retry(message, f"VM is {vm.provisioning_state}", **changes)
        if (vm.provisioning_state or "").lower() == "deleting":
            return Done("vm_gone", {"note": "the VM is being deleted"})
        try:
            policies = self.policies.get()
        except (PolicyError, OSError) as exc:
            log.error("VM %s: the policy document can't be read: %s", vm.id, exc)
            return Failed(f"VMKEEPER_POLICY_FILE: {exc}")
        choice = decide_policy(vm.tags, policies)
        if choice.error:
            log.error("VM %s skipped: %s", vm.id, choice.error)
            return Done("bad_tag", {"error": choice.error})
        if choice.backup_policy is None:
            log.info("VM %s not enrolled: %s", vm.id, choice.reason)
            detail = {"reason": choice.reason, "vmkeeper_policy": choice.policy} if choice.policy else {"reason": choice.reason}
            return Done(choice.skip or "not_enrolled", detail)
        region = (vm.location or "").replace(" ", "").lower()
        vault_id = self.settings.vaults.get(region)
        if vault_id is None:
            log.error("VM %s: no vault configured for region %s (VMKEEPER_VAULTS)", vm.id, region)
            return Failed(f"no Recovery Services vault configured for region '{region}' (VMKEEPER_VAULTS)")
        vault_sub, vault_rg, vault = vault_parts(vault_id)
        backup = self.clients.backup(vault_sub)
        container, item = container_name(rg, name), item_name(rg, name)

        if message.get("step") == "verify":
            return self._verify(message, backup, vault_rg, vault, container, item, vault_id, choice)

        # The vault's protectable list names the VM once discovered, with its protection state: one that
        # says NotProtected needs no backupStatus call (protected by no vault); otherwise ask backupStatus.
        protectable = self._protectable_state(backup, vault_rg, vault, vm.id)
        if protectable != "notprotected":
            status = self.clients.backup(sub).backup_status.get(
                region, BackupStatusRequest(resource_type="VM", resource_id=vm.id))
            if (status.protection_status or "").lower() == "protected":
                if (status.vault_id or "").lower() == vault_id.lower():
                    return Done("already_protected", {"vault": vault_id, "policy": status.policy_name})
                return Done("protected_elsewhere", {"vault": status.vault_id, "policy": status.policy_name})

        if protectable is None:
            # Discovery: Azure sees a new VM only after a refresh. Refresh (idempotent) and look again later.
            seen: dict[str, Any] = {}
            backup.protection_containers.refresh(vault, vault_rg, "Azure", filter="backupManagementType eq 'AzureIaasVM'",
                                                 raw_response_hook=self._answer(seen))
            return self._retry(message, "VM not yet discoverable by the vault: refreshed containers",
                               after=seen.get("retry_after"), step="start")

        from azure.mgmt.recoveryservicesbackup.models import (
            AzureIaaSComputeVMProtectedItem,
            ProtectedItemResource,
        )

        body = ProtectedItemResource(properties=AzureIaaSComputeVMProtectedItem(
            source_resource_id=vm.id, policy_id=f"{vault_id}/backupPolicies/{choice.backup_policy}"))
        seen = {}
        backup.protected_items.begin_create_or_update(vault, vault_rg, "Azure", container, item, body, polling=False,
                                                      raw_response_hook=self._answer(seen))
        if seen.get("status") in (200, 201):  # done already (a replay, or the vault answered at once): verify now
            return self._verify(message, backup, vault_rg, vault, container, item, vault_id, choice)
        # Enabling protection is long-running: look again when the operation says, instead of waiting here.
        return Retry(seen.get("retry_after") or max(1, self.settings.retry_seconds), "protection enabling", {"step": "verify"})

    def _discover_early(self, vm: Any) -> str:
        """Refresh the containers of the vault of a VM being created, if it is to be enrolled."""
        try:
            choice = decide_policy(vm.tags, self.policies.get())
        except (PolicyError, OSError):
            return "skipped"  # reported once the VM is ready
        vault_id = self.settings.vaults.get((vm.location or "").replace(" ", "").lower())
        if choice.backup_policy is None or vault_id is None:
            return "skipped"
        vault_sub, vault_rg, vault = vault_parts(vault_id)
        self.clients.backup(vault_sub).protection_containers.refresh(
            vault, vault_rg, "Azure", filter="backupManagementType eq 'AzureIaasVM'")
        return "started"

    def _protectable_state(self, backup: Any, vault_rg: str, vault: str, vm_id: str) -> str | None:
        """The VM's protection state (lower case) as the vault's protectable list gives it; None when
        the vault has not discovered the VM."""
        for protectable in backup.backup_protectable_items.list(vault, vault_rg, filter="backupManagementType eq 'AzureIaasVM'"):
            # Read the wire fields: the SDK may deserialize the item as its base class.
            if (protectable.properties.get("virtualMachineId") or "").lower() == vm_id.lower():
                return (protectable.properties.get("protectionState") or "").lower()
        return None

    def _verify(self, message: dict[str, Any], backup: Any, vault_rg: str, vault: str, container: str, item: str,
                vault_id: str, choice: PolicyChoice) -> Outcome:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            protected = backup.protected_items.get(vault, vault_rg, "Azure", container, item)
        except ResourceNotFoundError:
            return self._retry(message, "protected item not there yet", step="start")
        state = (protected.properties.get("protectionState") or "").lower()
        if state not in PROTECTED_STATES:
            return self._retry(message, f"protection state is {state or 'unknown'}", step="verify")
        detail = {"vault": vault_id, "policy": choice.backup_policy, "vmkeeper_policy": choice.policy, "item": item}
        if self.settings.backup_now:
            from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

            backup.backups.trigger(vault, vault_rg, "Azure", container, item,
                                   BackupRequestResource(properties=IaasVMBackupRequest()))
            detail["backup_now"] = "triggered"
        return Done("protected", detail)

    def unprotect(self, message: dict[str, Any]) -> Outcome:
        """The VM was deleted: stop protection, retaining its recovery points (never deleted here)."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.mgmt.recoveryservicesbackup.models import (
            AzureIaaSComputeVMProtectedItem,
            ProtectedItemResource,
        )

        sub, rg, name = parse_vm_id(message["vm_id"])
        try:
            vm = self.clients.compute(sub).virtual_machines.get(rg, name)
        except ResourceNotFoundError:
            vm = None
        if vm is not None:
            if (vm.provisioning_state or "").lower() == "deleting":  # the event comes when the delete is accepted
                return self._retry(message, "VM is still being deleted")
            return Done("vm_exists", {"note": "the VM exists again: nothing to stop"})
        container, item = container_name(rg, name), item_name(rg, name)
        others: list[dict[str, str]] = []
        for vault_id in sorted(set(self.settings.vaults.values())):
            vault_sub, vault_rg, vault = vault_parts(vault_id)
            backup = self.clients.backup(vault_sub)
            try:
                protected = backup.protected_items.get(vault, vault_rg, "Azure", container, item)
            except ResourceNotFoundError:
                continue
            # The item's name holds only the group and the VM's name: it may protect another VM (the
            # same names in another subscription). Stop only the deleted VM's own; read the wire field.
            source = protected.properties.get("sourceResourceId") or ""
            if source.lower() != message["vm_id"].lower():
                others.append({"vault": vault_id, "item": item, "source": source})
                continue
            state = (protected.properties.get("protectionState") or "").lower()
            if state == "protectionstopped":
                return Done("already_stopped", {"vault": vault_id})
            if not self.settings.stop_protection_on_delete:
                return Done("left_protected", {"vault": vault_id, "note": "VMKEEPER_STOP_PROTECTION_ON_DELETE=false"})
            body = ProtectedItemResource(properties=AzureIaaSComputeVMProtectedItem(
                source_resource_id=message["vm_id"], policy_id="", protection_state="ProtectionStopped"))
            backup.protected_items.begin_create_or_update(vault, vault_rg, "Azure", container, item, body, polling=False)
            return Done("protection_stopped", {"vault": vault_id, "data": "retained"})
        if others:
            sources = ", ".join(o["source"] or "(none given)" for o in others)
            log.warning("VM %s deleted: the item named like it protects %s; left alone", message["vm_id"], sources)
            return Done("other_vm", {"reason": f"the item '{item}' protects another VM ({sources}), not the deleted "
                                               "VM: left alone", "items": others})
        return Done("not_protected", {"note": "no vault protects this VM"})
