"""Auto-protect: enrol a VM in Azure Backup in its region's vault with the Azure Backup policy of
its vmkeeper policy (the policy document's ``backup_policy``, the policy chosen by the VM's tags or
the document's default); stop protection (retaining data) when the VM is deleted.

Create-only: the protected item is read before it is written. A missing item is created; the VM's own item
in ``ProtectionStopped`` (data retained) is resumed with the policy (Azure's documented resume: a PUT of the
item with its policy, the one PUT over an existing item); an item protected under another policy (the
operator's choice), one protecting another VM, or one in any other state is left alone and reported.
A VM deleted and created again keeps its ARM id; its ``vmId`` (one per instance) tells the two apart in logs
and outcomes, and a delete event for a VM that exists again (an older instance's, delivered late) stops nothing.

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
from ..membership import not_member_reason, read_outside
from ..names import container_name, item_name  # Azure Backup's names for a VM's container and item
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


def decide_policy(tags: dict[str, str] | None, policies: PolicySet, vm_id: str | None = None,
                  test_failover_vms: dict[str, str] | None = None) -> PolicyChoice:
    """The VM's vmkeeper policy (its tag, the opt-out tag, or the document's default) → that
    policy's ``backup_policy``: the document is the one source of truth for both. A VM a restore, a drill or a
    test failover made is no fleet member (shared/membership.py): left out of Azure Backup."""
    outside = not_member_reason(tags, vm_id, test_failover_vms)
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


# Azure Backup's protection states of a protected item (ProtectedItem.protectionState), lower case.
STOPPED = "protectionstopped"


def decide_existing(item: dict[str, Any] | None, vm_id: str, policy_id: str) -> str:
    """What to do about the item named like the VM's in its region's vault, from its wire properties
    (None: there is none): ``create``; ``resume`` (the VM's own item, stopped with its data retained);
    ``protected`` (the VM's own, protected with this policy); ``other_policy`` (protected under another
    policy: the operator's choice, left alone); ``other_vm`` (it protects another VM: the same group and
    name in another subscription); ``left_alone`` (any other state: not ours to change)."""
    if item is None:
        return "create"
    if (item.get("sourceResourceId") or item.get("virtualMachineId") or "").lower() != vm_id.lower():
        return "other_vm"
    state = (item.get("protectionState") or "").lower()
    if state == STOPPED:
        return "resume"
    if state in PROTECTED_STATES:
        return "protected" if (item.get("policyId") or "").lower() == policy_id.lower() else "other_policy"
    return "left_alone"


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
        if choice.backup_policy is not None and message.get("step") != "verify":
            # Enrolled only once Site Recovery's items say it is no test failover's VM (shared/membership.py).
            try:
                choice = decide_policy(vm.tags, policies, vm.id, read_outside(self.clients, self.settings.vaults))
            except Exception as exc:  # noqa: BLE001 (a vault unread: looked at again, never enrolled on doubt)
                return self._retry(message, f"Site Recovery's replicated items not read ({type(exc).__name__}: {exc})")
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
            return self._verify(message, backup, vault_rg, vault, container, item, vault_id, choice, vm)

        # The vault's protectable list names the VM once discovered, with its protection state: one that
        # says NotProtected needs no backupStatus call (protected by no vault); otherwise ask backupStatus.
        protectable = self._protectable_state(backup, vault_rg, vault, vm.id)
        if protectable != "notprotected":
            status = self.clients.backup(sub).backup_status.get(
                region, BackupStatusRequest(resource_type="VM", resource_id=vm.id))
            if (status.protection_status or "").lower() == "protected":
                if (status.vault_id or "").lower() == vault_id.lower():
                    return self._already(vm, vault_id, status.policy_name, choice)
                return Done("protected_elsewhere", {"vault": status.vault_id, "policy": status.policy_name})
            held = status.vault_id or ""
            if held and held.lower() != vault_id.lower() and (status.protection_status or "").lower() == "notprotected":
                # Stopped in another vault that keeps its data: Azure protects a VM in one vault only.
                log.error("VM %s: its protection is stopped in %s, which keeps its data: not enrolled in %s", vm.id,
                          held, vault_id)
                return Failed(f"the VM's protection is stopped in another vault ({held}), which keeps its data: "
                              f"a VM is protected by one vault only, so it can't be enrolled in {vault_id}")

        # Create-only: read the item before writing it (a stopped item is listed as protectable no more).
        policy_id = f"{vault_id}/backupPolicies/{choice.backup_policy}"
        existing = self._item(backup, vault_rg, vault, container, item)
        action = decide_existing(existing, vm.id, policy_id)
        if action == "create" and protectable is None:
            # Discovery: Azure sees a new VM only after a refresh. Refresh (idempotent) and look again later.
            seen: dict[str, Any] = {}
            backup.protection_containers.refresh(vault, vault_rg, "Azure", filter="backupManagementType eq 'AzureIaasVM'",
                                                 raw_response_hook=self._answer(seen))
            return self._retry(message, "VM not yet discoverable by the vault: refreshed containers",
                               after=seen.get("retry_after"), step="start")
        if action == "other_vm":  # the VM can't be enrolled under its name: as loud as any VM left unprotected
            source = (existing or {}).get("sourceResourceId") or "(none given)"
            log.error("VM %s: the item '%s' in %s protects %s: left alone", vm.id, item, vault_id, source)
            return Failed(f"the protected item '{item}' in {vault_id} protects another VM ({source}): left alone, "
                          "so this VM is not protected")
        if action in ("protected", "other_policy"):
            return self._already(vm, vault_id, (existing or {}).get("policyName") or policy_id.rsplit("/", 1)[-1], choice)
        if action == "left_alone":
            state = (existing or {}).get("protectionState")
            log.warning("VM %s: its item in %s is %s: left alone", vm.id, vault_id, state)
            return Done("left_alone", {"vault": vault_id, "item": item, "state": state,
                                       "reason": f"the protected item is {state}: vmkeeper changes it not"})

        from azure.mgmt.recoveryservicesbackup.models import (
            AzureIaaSComputeVMProtectedItem,
            ProtectedItemResource,
        )

        resumed = action == "resume"
        if resumed:
            log.info("VM %s (vmId %s): its item in %s is ProtectionStopped: resuming with %s", vm.id, vm.vm_id,
                     vault_id, choice.backup_policy)
        body = ProtectedItemResource(properties=AzureIaaSComputeVMProtectedItem(source_resource_id=vm.id, policy_id=policy_id))
        seen = {}
        backup.protected_items.begin_create_or_update(vault, vault_rg, "Azure", container, item, body, polling=False,
                                                      raw_response_hook=self._answer(seen))
        changes = {"step": "verify", **({"resumed": True} if resumed else {})}
        if seen.get("status") in (200, 201):  # done already (a replay, or the vault answered at once): verify now
            return self._verify(dict(message, **changes), backup, vault_rg, vault, container, item, vault_id, choice, vm)
        # Enabling protection is long-running: look again when the operation says, instead of waiting here.
        return Retry(seen.get("retry_after") or max(1, self.settings.retry_seconds), "protection enabling", changes)

    @staticmethod
    def _already(vm: Any, vault_id: str, policy: str | None, choice: PolicyChoice) -> Outcome:
        """The VM is protected in its vault already: left as it is. Under another policy than the document's
        (an operator's choice) it is left alone too, and said so."""
        detail = {"vault": vault_id, "policy": policy, "vm_instance": vm.vm_id}
        if policy and choice.backup_policy and policy.lower() != choice.backup_policy.lower():
            log.warning("VM %s is protected in %s under %s, not the document's %s: left alone", vm.id, vault_id, policy,
                        choice.backup_policy)
            detail.update(document_policy=choice.backup_policy,
                          note="protected under another policy than the policy document's: left alone")
        return Done("already_protected", detail)

    @staticmethod
    def _item(backup: Any, vault_rg: str, vault: str, container: str, item: str) -> dict[str, Any] | None:
        """The protected item's wire properties, None when the vault has no such item."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(backup.protected_items.get(vault, vault_rg, "Azure", container, item).properties)
        except ResourceNotFoundError:
            return None

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
                vault_id: str, choice: PolicyChoice, vm: Any) -> Outcome:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            protected = backup.protected_items.get(vault, vault_rg, "Azure", container, item)
        except ResourceNotFoundError:
            return self._retry(message, "protected item not there yet", step="start")
        state = (protected.properties.get("protectionState") or "").lower()
        if state not in PROTECTED_STATES:
            return self._retry(message, f"protection state is {state or 'unknown'}", step="verify")
        detail = {"vault": vault_id, "policy": choice.backup_policy, "vmkeeper_policy": choice.policy, "item": item,
                  "vm_instance": vm.vm_id, "resumed": bool(message.get("resumed"))}
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

        _, rg, name = parse_vm_id(message["vm_id"])
        if message.get("step") == "stopping":
            return self._stopping(message)
        vm = self._vm(message["vm_id"])
        if vm is not None:
            if (vm.provisioning_state or "").lower() == "deleting":  # the event comes when the delete is accepted
                return self._retry(message, "VM is still being deleted")
            # ARM ids name a VM, not an instance: Event Grid does not order deliveries, so a VM deleted and
            # created again under its name may see the old instance's delete event after the new one exists.
            log.info("VM %s: delete event %s is an older instance's: the VM exists (vmId %s), its protection stays",
                     message["vm_id"], message.get("event_id"), vm.vm_id)
            return Done("vm_exists", {"note": "the VM exists again (another instance): nothing to stop",
                                      "vm_instance": vm.vm_id})
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
            seen: dict[str, Any] = {}
            backup.protected_items.begin_create_or_update(vault, vault_rg, "Azure", container, item, body, polling=False,
                                                          raw_response_hook=self._answer(seen))
            # Stopping is long-running: a VM created again under the name meanwhile finds its item still
            # Protected and is done, then loses its protection when the stop lands. Follow the stop to its end.
            stopping = dict(message, step="stopping", vault=vault_id, attempt=0)
            if seen.get("status") in (200, 201):
                return self._stopping(stopping)
            return Retry(seen.get("retry_after") or max(1, self.settings.retry_seconds), "protection stopping",
                         {"step": "stopping", "vault": vault_id, "attempt": 0})
        if others:
            sources = ", ".join(o["source"] or "(none given)" for o in others)
            log.warning("VM %s deleted: the item named like it protects %s; left alone", message["vm_id"], sources)
            return Done("other_vm", {"reason": f"the item '{item}' protects another VM ({sources}), not the deleted "
                                               "VM: left alone", "items": others})
        return Done("not_protected", {"note": "no vault protects this VM"})

    def _vm(self, vm_id: str) -> Any:
        """The VM as Compute has it now, None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        sub, rg, name = parse_vm_id(vm_id)
        try:
            return self.clients.compute(sub).virtual_machines.get(rg, name)
        except ResourceNotFoundError:
            return None

    def _stopping(self, message: dict[str, Any]) -> Outcome:
        """The deleted VM's stop was sent: once it has landed, a VM that exists again under the name (a new
        instance, created while the stop ran) is protected: the job becomes its protection job."""
        _, rg, name = parse_vm_id(message["vm_id"])
        vault_id = str(message.get("vault") or "")
        if vault_id.lower() not in {v.lower() for v in self.settings.vaults.values()}:
            raise jobs.BadMessage(f"message.vault: not a configured vault ({vault_id!r})")
        vault_sub, vault_rg, vault = vault_parts(vault_id)
        existing = self._item(self.clients.backup(vault_sub), vault_rg, vault, container_name(rg, name), item_name(rg, name))
        state = ((existing or {}).get("protectionState") or "").lower()
        if existing is not None and state != STOPPED:
            return self._retry(message, f"protection stopping (the item is {state or 'in no state'})", step="stopping")
        vm = self._vm(message["vm_id"])
        if vm is not None and (vm.provisioning_state or "").lower() != "deleting":
            log.warning("VM %s exists again (vmId %s) while its old instance's protection was stopped: protecting it",
                        message["vm_id"], vm.vm_id)
            return Retry(1, "the VM exists again: protect it", {"action": "protect", "step": "start", "attempt": 0})
        return Done("protection_stopped", {"vault": vault_id, "data": "retained"})
