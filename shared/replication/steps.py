"""Site Recovery jobs, one step at a time through the SDK: enable a VM's replication (to ``Protected``), and
disable it when the VM is deleted.

Every step reads before it writes and writes only what is missing, under the names of
shared/replication/names.py: a replayed or duplicate job finds everything there and creates nothing. An object
of vmkeeper's name that exists is used as it is, never written over. A step never waits: a write ASR accepts
(202) hands back its ``Azure-AsyncOperation``; the job is re-queued with ASR's ``Retry-After`` and the next step
reads that status (only a status URL of the vault on the configured ARM endpoint is ever followed).

Enable (``action: enable``): the VM (still being created: later; gone: done) → which block applies
(shared/replication/select.py) → the VM's own item, if there is one (Protected: done) → eligibility
(``replicationEligibilityResults/default``, read before anything is made: an ineligible VM is reported with
Azure's reason and recommended action) → the infrastructure, level by level (shared/replication/plan.py) →
the item → its ``protectionState`` polled to ``Protected``, within ``VMKEEPER_REPLICATION_TIMEOUT_HOURS``.

Disable (``action: disable``, the VM deleted): only vmkeeper's own item of the VM is disabled (``…/remove``);
an item someone else made is left alone. When ASR refuses because the source VM is not running or gone
(error 150144), the item is purged (DELETE: the replica disks go, nothing is done on the source), and the
outcome says so. A VM that exists again (a late delete event of an older instance) keeps its replication.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from .. import membership, resource_ids
from ..autoprotect.steps import PolicyDocument
from ..azure.retry_after import retry_after_seconds
from ..policy.document import PolicyError
from ..ports import Arm
from ..queue import messages as jobs
from ..queue.messages import Done, Failed, Outcome, Retry
from ..settings import ReplicationSettings
from . import names, plan, select

log = logging.getLogger("vmkeeper.replication")

KIND = "replicate"
OPERATIONS = "replication-operations"  # ledger partition: the operation making each shared object, by vault and object
# Ledger partition: which job makes the isolated recovery VNet. ARM's VNet PUT is create-or-update (no create-only
# condition documented for it): of the jobs that all found it missing, only the claim's owner writes it; the others
# wait for it and use what it made. A claim whose owner wrote nothing within CLAIM_STALE_SECONDS is taken over.
CLAIMS, CLAIM_STALE_SECONDS = "replication-claims", 300


def new_message(action: str, vm_id: str, event_id: str, event_time: str) -> dict[str, Any]:
    return {"v": 1, "kind": KIND, "action": action, "vm_id": vm_id.lower(), "event_id": event_id,
            "event_time": event_time, "step": "start", "attempt": 0}


def _vault(vault_id: str) -> tuple[str, str, str]:
    ref = resource_ids.vault(vault_id)
    if ref is None:
        raise ValueError(f"not a vault id: {vault_id}")
    return ref


def _error(exc: Any) -> dict[str, Any]:
    """An HttpResponseError as ASR's error: code, message, target, and its recommended action."""
    err = getattr(exc, "error", None)
    out = {"code": getattr(err, "code", None) or "", "message": getattr(err, "message", None) or str(exc),
           "target": getattr(err, "target", None)}
    for info in getattr(err, "additional_info", None) or []:
        details = getattr(info, "info", None) or {}
        if isinstance(details, dict) and details.get("recommendedAction"):
            out["recommended_action"] = details["recommendedAction"]
            out["possible_causes"] = details.get("possibleCauses")
    return out


class Replicator:
    def __init__(self, settings: ReplicationSettings, arm: Arm, arm_endpoint: str, ledger: Any = None):
        self.settings, self.clients, self.arm_endpoint = settings, arm, arm_endpoint.rstrip("/")
        self.policies = PolicyDocument(settings.policy_file)
        self.ledger = ledger  # shared/azure/ledger.py Ledger: where the operations making shared objects are noted
        self._noted_urls: dict[str, str] = {}

    def handle(self, message: dict[str, Any]) -> Outcome:
        vm_id = str(message["vm_id"])
        if resource_ids.vm(vm_id) is None:
            raise jobs.BadMessage(f"message.vm_id: not a virtual machine's id ({vm_id[:300]!r})")
        action = message.get("action")
        if action == "enable":
            return self.enable(message)
        if action == "disable":
            return self.disable(message)
        raise jobs.BadMessage(f"message.action: 'enable' or 'disable' (got {action!r})")

    # --- shared parts ------------------------------------------------------------------------------------
    def _retry(self, message: dict[str, Any], reason: str, *, after: int | None = None, **changes: Any) -> Outcome:
        attempt = message.get("attempt", 0)
        if attempt + 1 >= self.settings.max_attempts:
            return Failed(f"gave up after {attempt + 1} attempts: {reason}")
        delay = after or jobs.backoff(attempt, self.settings.retry_seconds, self.settings.retry_max_seconds)
        return Retry(delay, reason, dict(changes, attempt=attempt + 1))

    @staticmethod
    def _answer(seen: dict[str, Any]) -> Any:
        """A raw-response hook: ARM's answer to a write (status, the operation's monitor, Retry-After)."""
        def hook(response: Any) -> None:
            http = response.http_response
            seen["status"] = http.status_code
            seen["monitor"] = http.headers.get("Azure-AsyncOperation") or http.headers.get("Location")
            seen["retry_after"] = retry_after_seconds(http.headers)
        return hook

    def _write(self, what: str, begin: Any, *args: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Send one write (``begin``: an SDK ``begin_*``); (the operation to follow or None when it is done
        already, None) — or (None, ASR's refusal)."""
        from azure.core.exceptions import HttpResponseError

        seen: dict[str, Any] = {}
        try:
            begin(*args, polling=False, raw_response_hook=self._answer(seen))
        except HttpResponseError as exc:
            refused = _error(exc)
            refused["status"] = exc.status_code
            return None, refused
        if seen.get("status") == 202 and seen.get("monitor"):
            return {"what": what, "url": seen["monitor"], "after": seen.get("retry_after")}, None
        return None, None

    def _poll(self, message: dict[str, Any], vault_id: str) -> tuple[str, int | None, list[str]]:
        """The job's pending operations: ("running" | "succeeded" | "failed", ASR's Retry-After, the failures)."""
        state, after, failures, _ = self._poll_ops(message.get("ops") or [], vault_id)
        return state, after, failures

    def _poll_ops(self, ops: list[dict[str, Any]], vault_id: str) -> tuple[str, int | None, list[str], list[dict[str, Any]]]:
        """Operations' states: ("running" | "succeeded" | "failed", ASR's Retry-After, the failures, those still
        running). An operation ``borrowed`` from another job (that job made the object) that failed or is no longer
        known has simply ended: the object is looked at again, and made by this job if it is missing."""
        from azure.core.rest import HttpRequest

        vault_sub = _vault(vault_id)[0]
        client = self.clients.site_recovery(vault_sub)
        after, failures, running = None, [], []
        for op in ops:
            url = str(op.get("url") or "")
            if not plan.status_url_ok(url, self.arm_endpoint, vault_id):
                raise jobs.BadMessage(f"message.ops: {url[:300]!r} is not an operation of vault {vault_id} on "
                                      f"{self.arm_endpoint}")
            response = client.send_request(HttpRequest("GET", url))
            if "/operationresults/" in url.lower():  # a Location monitor: 202 while running
                state = "running" if response.status_code == 202 else (
                    "succeeded" if response.status_code in (200, 204) else "failed")
                error = None if state != "failed" else {"code": str(response.status_code), "message": response.text()[:500]}
            elif op.get("borrowed") and response.status_code != 200:
                state, error = "gone", None
            else:
                response.raise_for_status()
                state, error = plan.operation_state(response.json())
            op["ended"] = None if state == "running" else state
            if state == "running":
                running.append(op)
                after = max(after or 0, retry_after_seconds(response.headers) or 0) or after
            elif state == "failed" and not op.get("borrowed"):
                failures.append(f"{op.get('what')}: {plan.error_text(error)}")
                op["error"] = error
        if failures:
            return "failed", None, failures, running
        return ("running" if running else "succeeded"), after, [], running

    # --- objects another job is making ---------------------------------------------------------------------
    def _note(self, vault_id: str, ops: list[dict[str, Any]]) -> None:
        """The operations making the vault's shared objects, noted in the ledger (once per operation and
        process) for the jobs that find an object there but not ready yet: they follow its operation."""
        if self.ledger is None:
            return
        for op in ops:
            key = f"{vault_id}|{op['what']}".lower()
            if self._noted_urls.get(key) == op["url"]:
                continue
            self.ledger.record(OPERATIONS, key, {"vault": vault_id.lower(), "what": op["what"], "url": op["url"]})
            self._noted_urls[key] = op["url"]

    def _wait_for(self, message: dict[str, Any], vault_id: str, objects: list[plan.Obj], reason: str,
                  **changes: Any) -> Outcome:
        """Wait for ``objects``, which another job is making: at its operations' Retry-After while one of them
        runs (its monitor, noted in the ledger); else (its operation just ended, or is not noted yet: that job is
        between its write and its note) looked at again in a second, then less and less often."""
        if self.ledger is None:
            return self._retry(message, reason, **changes)
        keys = {f"{vault_id}|{o.key}".lower() for o in objects}
        noted = [{"what": r["what"], "url": r["url"], "borrowed": True}
                 for r in self.ledger.existing_rows(OPERATIONS) if str(r.get("item") or "") in keys
                 and plan.status_url_ok(str(r.get("url") or ""), self.arm_endpoint, vault_id)]
        if noted:
            _, after, _, running = self._poll_ops(noted, vault_id)
            if running:
                return self._retry(message, f"{reason} (following {', '.join(o['what'] for o in running)})",
                                   after=after or 1, **changes, ops=running, unfollowed=0)
        tries = int(message.get("unfollowed") or 0)
        return self._retry(message, reason, after=jobs.backoff(tries, 1, self.settings.retry_max_seconds),
                           **changes, unfollowed=tries + 1)

    def _vm(self, vm_id: str) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        ref = resource_ids.vm(vm_id)
        try:
            return self.clients.compute(ref.subscription_id).virtual_machines.get(ref.resource_group, ref.name)
        except ResourceNotFoundError:
            return None

    # --- enable ------------------------------------------------------------------------------------------
    def _vm_now(self, message: dict[str, Any]) -> tuple[Any, Outcome | None]:
        """The VM, read now; or why the job goes no further with it."""
        vm = self._vm(message["vm_id"])
        if vm is None:
            return None, Done("vm_gone", {"note": "the VM no longer exists (deleted, or an out-of-order event)"})
        provisioning = (vm.provisioning_state or "").lower()
        if provisioning == "deleting":
            return None, Done("vm_gone", {"note": "the VM is being deleted"})
        if provisioning in ("creating", "updating"):
            return None, self._retry(message, f"VM is {vm.provisioning_state}")
        return vm, None

    def enable(self, message: dict[str, Any]) -> Outcome:
        # A step that only makes the vault's shared objects or follows operations goes by the VM as the job's
        # first step read it ("seen"); the VM is read again right before its item is sent (and each look after).
        seen = message.get("seen") if message.get("eligible") and message.get("step") != "verify" else None
        vm = None
        if seen is None:
            vm, stop = self._vm_now(message)
            if stop is not None:
                return stop
            seen = {"tags": dict(vm.tags or {}), "location": vm.location or "", "instance": vm.vm_id}
        try:
            policies = self.policies.get()
        except (PolicyError, OSError) as exc:
            return Failed(f"VMKEEPER_POLICY_FILE: {exc}")
        test_vms = None
        if not message.get("eligible") and message.get("step", "start") == "start":  # the job's first decision
            try:  # a test failover's VM is no fleet member (shared/membership.py): Site Recovery's items say
                test_vms = membership.read_outside(self.clients, self.settings.vaults)
            except Exception as exc:  # noqa: BLE001 (a vault unread: looked at again, nothing made on doubt)
                return self._retry(message, f"Site Recovery's replicated items not read ({type(exc).__name__}: {exc})")
        choice = select.decide(seen["tags"], seen["location"], policies, message["vm_id"], test_vms)
        if choice.spec is None:
            detail = {"reason": choice.reason, **({"vmkeeper_policy": choice.policy} if choice.policy else {})}
            (log.warning if choice.skip in select.MISTAKES else log.info)("VM %s not replicated: %s", message["vm_id"],
                                                                           choice.reason)
            return Done(choice.skip or "not_selected", detail)
        spec = choice.spec
        vault_id = self.settings.vaults.get(spec.target_region)
        if vault_id is None:
            return Failed(f"VMKEEPER_VAULTS: no Recovery Services vault for the target region '{spec.target_region}' "
                          f"of policy '{choice.policy}' (Site Recovery needs one there)")
        if message.get("ops"):
            state, after, failures, running = self._poll_ops(message["ops"], vault_id)
            if state == "running":  # only those still running are looked at again
                return Retry(after or max(1, self.settings.retry_seconds), "Site Recovery operations running",
                             {"ops": running})
            if state == "failed":
                log.error("VM %s: enabling replication failed: %s", message["vm_id"], "; ".join(failures))
                return Failed("Site Recovery refused or failed: " + "; ".join(failures))
            done = {str(o.get("what")) for o in message["ops"] if o.get("ended") == "succeeded"}
            message = {k: v for k, v in message.items() if k != "ops"}
            if message.get("recheck") and set(message["recheck"]) <= done:  # made, each by an operation that succeeded
                message.update(level=int(message.get("level") or 0) + 1, recheck=None)
        vault_sub, vault_rg, vault = _vault(vault_id)
        asr = self.clients.site_recovery(vault_sub)
        region = names.region(seen["location"])
        known: dict[str, str] = {}  # objects' states read in this step already: not read again
        fabrics = message.get("fabrics")
        if not fabrics:
            fabrics, found = self._fabrics(asr, vault_rg, vault, (region, spec.target_region))
            known = {f"fabric:{name}": "ready" if r in found else "missing" for r, name in fabrics.items()}
        item_name = names.protected_item(message["vm_id"])
        item_args = (vault_rg, vault, fabrics[region], names.container(region), item_name)
        base = {"vault": vault_id, "item": item_name, "target_region": spec.target_region,
                "vmkeeper_policy": choice.policy, "vm_instance": seen["instance"]}

        if message.get("step") == "verify":
            return self._verify(message, asr, item_args, vm, base)
        if not message.get("eligible"):  # the job's first look; a later step looks again right before the item
            existing = self._item(asr, item_args)
            if existing is not None:
                return self._existing(message, existing, vm, base)
            problems = self._eligibility(vm)
            if problems:
                first = problems[0]
                log.error("VM %s is not eligible for Site Recovery: %s (%s)", vm.id, first["message"],
                          first.get("recommended_action"))
                return Done("ineligible", dict(base, **first, errors=problems))
        source_vnet = message.get("source_vnet") or self._source_vnet(vm)  # read once a job
        if source_vnet is None:
            return Failed("the VM has no network interface on a subnet: Site Recovery maps the VM's VNet")
        network = plan.target_network(spec, source_vnet)
        if network is None:
            return Failed(f"policies.{choice.policy}.replication.network.mappings: no mapping for the VM's VNet "
                          f"{source_vnet}")
        chain = plan.chain(vault_id, region, spec, fabrics, source_vnet, network)
        changes: dict[str, Any] = {"eligible": True, "fabrics": fabrics, "step": "start", "source_vnet": source_vnet,
                                   "seen": seen}
        for i, level in enumerate(chain.levels):
            if i < message.get("level", 0):
                continue  # made (or found) by an earlier step of this job
            recheck = message.get("recheck") if i == message.get("level", 0) else None
            if recheck is not None:  # the rest of the level is there: its operations succeeded
                level = tuple(o for o in level if o.key in recheck)
            outcome = self._level(message, asr, vault_rg, vault, chain, i, level, changes, known)
            if outcome is not None:
                return outcome
            changes.update(level=i + 1, recheck=None)
        if vm is None:  # the VM as it is now, before its item is sent: decided again
            vm, stop = self._vm_now(message)
            if stop is not None:
                return stop
            now = select.decide(vm.tags, vm.location or "", policies)
            if (now.policy, now.spec, now.cache_account) != (choice.policy, choice.spec, choice.cache_account) or \
                    names.region(vm.location or "") != region:
                return Retry(1, "the VM's tags or location changed: looked at again from the start",
                             {"step": "start", "eligible": False, "level": 0, "recheck": None, "fabrics": None,
                              "source_vnet": None, "seen": None})
            base["vm_instance"] = vm.vm_id
        if message.get("eligible"):  # read first in this step: nothing is written over
            existing = self._item(asr, item_args)
            if existing is not None:
                return self._existing(message, existing, vm, base)
        return self._enable_item(message, asr, item_args, chain, spec, choice.cache_account or "", vm, base, changes)

    def _fabrics(self, asr: Any, vault_rg: str, vault: str, regions: tuple[str, ...]) -> tuple[dict[str, str], set[str]]:
        """Each region's fabric in the vault: vmkeeper's name, or the vault's own fabric for that region (A2A
        allows one per region: the portal's is used as it is); and the regions whose fabric is there."""
        from azure.core.exceptions import ResourceNotFoundError

        found: dict[str, str] = {}
        for r in regions:
            try:
                asr.replication_fabrics.get(vault_rg, vault, names.fabric(r))
                found[r] = names.fabric(r)
            except ResourceNotFoundError:
                pass
        if len(found) < len(regions):
            for fabric in asr.replication_fabrics.list(vault_rg, vault):
                location = names.region(str((fabric.properties.custom_details or {}).get("location") or ""))
                if location in regions and location not in found:
                    found[location] = fabric.name
        return {r: found.get(r) or names.fabric(r) for r in regions}, set(found)

    def _state(self, asr: Any, vault_rg: str, vault: str, chain: plan.Chain, obj: plan.Obj) -> str:
        """"ready", "creating" (a VNet still provisioning) or "missing"."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            if obj.kind == "fabric":
                asr.replication_fabrics.get(vault_rg, vault, *obj.path)
            elif obj.kind == "container":
                asr.replication_protection_containers.get(vault_rg, vault, *obj.path)
            elif obj.kind == "policy":
                asr.replication_policies.get(vault_rg, vault, *obj.path)
            elif obj.kind == "mapping":
                mapping = asr.replication_protection_container_mappings.get(vault_rg, vault, *obj.path)
                return "ready" if (mapping.properties.state or "").lower() == "paired" else "creating"
            elif obj.kind == "network_mapping":
                try:
                    asr.replication_network_mappings.get(vault_rg, vault, *obj.path)
                except ResourceNotFoundError:
                    return "ready" if self._mapped(asr, vault_rg, vault, chain) else "missing"
            elif obj.kind == "vnet":
                sub, rg, name = obj.path
                vnet = self.clients.network(sub).virtual_networks.get(rg, name)
                return "ready" if (vnet.provisioning_state or "Succeeded").lower() == "succeeded" else "creating"
        except ResourceNotFoundError:
            return "missing"
        return "ready"

    @staticmethod
    def _mapped(asr: Any, vault_rg: str, vault: str, chain: plan.Chain) -> bool:
        """The vault maps the VM's VNet towards the target region already, under another name: used as it is."""
        source = str(chain.levels[1][-1].body["properties"]["fabricSpecificDetails"]["primaryNetworkId"]).lower()
        for mapping in asr.replication_network_mappings.list(vault_rg, vault):
            p = mapping.properties
            recovery_fabric = str(p.recovery_fabric_arm_id or "").rstrip("/").rsplit("/", 1)[-1].lower()
            if str(p.primary_network_id or "").lower() == source and recovery_fabric == chain.target_fabric.lower():
                return True
        return False

    def _level(self, message: dict[str, Any], asr: Any, vault_rg: str, vault: str, chain: plan.Chain, index: int,
               level: tuple[plan.Obj, ...], changes: dict[str, Any], known: dict[str, str]) -> Outcome | None:
        """Create the missing objects of level ``index`` together (``level``: those of it still to look at;
        ``known``: states read in this step already); None when they are all there."""
        states = {o.key: known.get(o.key) or self._state(asr, vault_rg, vault, chain, o) for o in level}
        missing = [o for o in level if states[o.key] == "missing"]
        if not missing:
            creating = [o for o in level if states[o.key] == "creating"]
            if creating:  # looked at again, alone, once the operations followed end
                return self._wait_for(message, chain.vault_id, creating, "Site Recovery objects still being made",
                                      **dict(changes, level=index, recheck=[o.key for o in creating]))
            return None
        ops, waits, fails = [], [], []
        for obj in missing:
            if obj.kind == "vnet" and not self._claim(message, obj):
                log.info("VM %s: another job is making %s: waiting for it, not writing it", message["vm_id"], obj.key)
                continue  # looked at again with the VNets this step writes (below): used as it is once there
            op, refused = self._write(*self._begin(asr, vault_rg, vault, obj))
            if refused is not None:
                reason = f"{obj.key}: {refused['code']}: {refused['message']}"
                wait = obj.kind != "vnet" and plan.refusal(refused.get("status"), refused["code"], refused.get("target"))
                (waits if wait == "wait" else fails).append(reason)  # a VNet's 404: the target group is missing
                continue
            if op is not None and obj.kind != "vnet":  # a VNet's own state says when it is there
                ops.append(op)
            log.info("VM %s: creating %s", message["vm_id"], obj.key)
        if fails:
            return Failed("Site Recovery refused: " + "; ".join(fails))
        self._note(chain.vault_id, ops)
        if waits:  # what they name is still being made: this level's objects and those below; all looked at again
            below = [o for lv in chain.levels[:index + 1] for o in lv]
            return self._wait_for(message, chain.vault_id, below, "waiting on objects being made: " + "; ".join(waits),
                                  **dict(changes, level=index, recheck=None))
        # Once their operations succeed the objects written are there: the next step looks again only at a VNet
        # written (followed by its own state, not by an operation of the vault's).
        vnets = [o.key for o in missing if o.kind == "vnet"]
        later = dict(changes, level=index, recheck=vnets) if vnets else dict(changes, level=index + 1, recheck=None)
        if ops:
            after = max((o.get("after") or 0) for o in ops) or max(1, self.settings.retry_seconds)
            return Retry(after, f"creating {', '.join(o.key for o in missing)}",
                         dict(later, ops=[{k: v for k, v in o.items() if k != "after"} for o in ops], attempt=0,
                              unfollowed=0))
        tries = int(message.get("unfollowed") or 0)  # nothing of the vault's to follow (a VNet): soon, then less often
        return self._retry(message, f"creating {', '.join(o.key for o in missing)}",
                           after=jobs.backoff(tries, 1, self.settings.retry_max_seconds), **later, unfollowed=tries + 1)

    def _claim(self, message: dict[str, Any], obj: plan.Obj) -> bool:
        """Whether this job may write ``obj``, found missing: the ledger's claim on it is this job's (CLAIMS)."""
        if self.ledger is None:
            return True
        owner = f"{str(message['vm_id']).lower()}|{message.get('event_id') or ''}"
        return self.ledger.claim(CLAIMS, obj.key, owner, time.time(), CLAIM_STALE_SECONDS)

    def _begin(self, asr: Any, vault_rg: str, vault: str, obj: plan.Obj) -> tuple[Any, ...]:
        """(what, the SDK's begin_* call, its arguments) that creates ``obj``."""
        if obj.kind == "vnet":
            sub, rg, name = obj.path
            return obj.key, self.clients.network(sub).virtual_networks.begin_create_or_update, rg, name, obj.body
        operations = {"fabric": asr.replication_fabrics, "container": asr.replication_protection_containers,
                      "policy": asr.replication_policies, "mapping": asr.replication_protection_container_mappings,
                      "network_mapping": asr.replication_network_mappings}[obj.kind]
        return obj.key, operations.begin_create, vault_rg, vault, *obj.path, obj.body

    def _enable_item(self, message: dict[str, Any], asr: Any, item_args: tuple[str, ...], chain: plan.Chain,
                     spec: Any, cache: str, vm: Any, base: dict[str, Any], changes: dict[str, Any]) -> Outcome:
        storage = vm.storage_profile
        if storage.os_disk.managed_disk is None or any(d.managed_disk is None for d in storage.data_disks or []):
            return Failed("the VM has unmanaged disks: vmkeeper replicates VMs on managed disks only")
        disks = [storage.os_disk.managed_disk.id] + [d.managed_disk.id for d in storage.data_disks or []]
        body = plan.enable_input(chain, spec, vm.id, disks, cache)
        op, refused = self._write("item:" + item_args[-1], asr.replication_protected_items.begin_create, *item_args, body)
        if refused is not None:
            if refused["code"] == "VmAlreadyProtected":  # another item (not vmkeeper's) replicates it: left alone
                log.warning("VM %s is replicated by another item already: %s", vm.id, refused["message"])
                return Done("replicated_elsewhere", dict(base, reason=refused["message"]))
            if refused["code"] == "A2AOperatingSystemNotSupported":
                return Done("ineligible", dict(base, **{k: refused.get(k) for k in (
                    "code", "message", "possible_causes", "recommended_action")}))
            if plan.refusal(refused.get("status"), refused["code"], refused.get("target")) == "wait":
                return self._wait_for(message, chain.vault_id, [o for lv in chain.levels for o in lv],
                                      f"item: {refused['code']}: {refused['message']}", **changes)
            log.error("VM %s: enabling replication refused: %s", vm.id, refused["message"])
            return Failed(f"enabling replication refused: {refused['code']}: {refused['message']}"
                          + (f" Recommended action: {refused['recommended_action']}" if refused.get("recommended_action") else ""))
        log.info("VM %s: replication enabling (%s → %s)", vm.id, chain.source_region, chain.target_region)
        verify = dict(changes, step="verify", since=time.time(), polls=0, attempt=0)
        if op is None:  # nothing to follow: the item itself says (its first look soon: shared/replication/plan.py)
            return Retry(1, "replication enabling", verify)
        return Retry(op.get("after") or max(1, self.settings.retry_seconds), "replication enabling",
                     dict(verify, ops=[{k: v for k, v in op.items() if k != "after"}]))

    @staticmethod
    def _item(asr: Any, item_args: tuple[str, ...]) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return asr.replication_protected_items.get(*item_args)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _details(item: Any) -> dict[str, Any]:
        return dict(item.properties.provider_specific_details or {})

    def _existing(self, message: dict[str, Any], item: Any, vm: Any, base: dict[str, Any]) -> Outcome:
        source = str(self._details(item).get("fabricObjectId") or "")
        recovery = str(self._details(item).get("recoveryFabricObjectId") or "")
        if source.lower() != vm.id.lower() and recovery.lower() == vm.id.lower():
            # A failover made another VM production and a reprotect replicates it back onto this one: the item
            # covers both; nothing to enable (a failback makes this VM the source again).
            return Done("failover_pair", dict(base, item_id=item.id, replicates=source,
                                              note="the VM's item replicates the VM its failover made, back onto it"))
        if source.lower() != vm.id.lower():
            log.error("VM %s: the item %s replicates %s: left alone", vm.id, item.id, source)
            return Failed(f"the replicated item '{item.name}' replicates another VM ({source or 'none given'}): "
                          "left alone, so this VM is not replicated")
        state = (item.properties.protection_state or "").lower()
        if state == plan.PROTECTED:
            return Done("already_protected", dict(base, item_id=item.id))
        if state in plan.ENABLING:  # on its way (sent by an earlier delivery of this job, or another job): followed
            since = float(message.get("since") or time.time())
            after, first = plan.next_look(time.time(), since, self._details(item).get("monitoringPercentageCompletion"),
                                          None, self.settings.retry_max_seconds)
            return Retry(after, f"replication is {item.properties.protection_state}",
                         {"step": "verify", "since": since, "polls": 0, "attempt": 0, "progress": first})
        return Done("left_alone", dict(base, item_id=item.id, state=item.properties.protection_state,
                                       note="the VM's item is in a state vmkeeper does not change (a failover?)"))

    def _verify(self, message: dict[str, Any], asr: Any, item_args: tuple[str, ...], vm: Any,
                base: dict[str, Any]) -> Outcome:
        item = self._item(asr, item_args)
        if item is None:  # its enable failed and ASR removed it: start again (and be told why)
            return self._retry(message, "the replicated item is not there", step="start")
        source = str(self._details(item).get("fabricObjectId") or "")
        if source.lower() != vm.id.lower():
            return self._existing(message, item, vm, base)
        state = item.properties.protection_state or ""
        if state.lower() == plan.PROTECTED:
            details = self._details(item)
            log.info("VM %s: replication Protected (%s)", vm.id, item.id)
            return Done("protected", dict(base, item_id=item.id, replication_policy=item.properties.policy_friendly_name,
                                          recovery_region=details.get("recoveryFabricLocation")))
        if state.lower() not in plan.ENABLING:
            return self._existing(message, item, vm, base)
        since = float(message.get("since") or time.time())
        if time.time() - since > self.settings.timeout_hours * 3600:
            progress = self._details(item).get("monitoringPercentageCompletion")
            return Failed(f"replication not Protected after {self.settings.timeout_hours} h: {state}"
                          + (f", initial replication {progress}%" if progress is not None else ""))
        polls = int(message.get("polls") or 0)
        progress = self._details(item).get("monitoringPercentageCompletion")
        after, first = plan.next_look(time.time(), since, progress, message.get("progress"),
                                      self.settings.retry_max_seconds)
        return Retry(after, f"replication is {state}" + (f", initial replication {progress}%" if progress is not None else ""),
                     {"polls": polls + 1, "since": since, "progress": first})

    def _eligibility(self, vm: Any) -> list[dict[str, Any]]:
        """Azure's reasons the VM can't be replicated (none: it can), each with its recommended action."""
        ref = resource_ids.vm(vm.id)
        result = self.clients.site_recovery(ref.subscription_id).replication_eligibility_results.get(
            ref.resource_group, ref.name)
        return [{"code": e.code, "message": e.message, "possible_causes": e.possible_causes,
                 "recommended_action": e.recommended_action, "status": e.status}
                for e in (result.properties.errors if result.properties else None) or []]

    def _source_vnet(self, vm: Any) -> str | None:
        """The VNet of the VM's primary NIC's primary IP configuration."""
        refs = list((vm.network_profile.network_interfaces if vm.network_profile else None) or [])
        if not refs:
            return None
        nic_ref = next((r for r in refs if r.primary), refs[0])
        parts = resource_ids.parts(nic_ref.id)
        nic = self.clients.network(parts["subscription"]).network_interfaces.get(parts["resource_group"], parts["name"])
        configs = list(nic.ip_configurations or [])
        config = next((c for c in configs if c.primary), configs[0] if configs else None)
        subnet = config.subnet.id if config is not None and config.subnet is not None else None
        return subnet.split("/subnets/")[0] if subnet and "/subnets/" in subnet else None

    # --- disable -----------------------------------------------------------------------------------------
    def disable(self, message: dict[str, Any]) -> Outcome:
        step = message.get("step", "start")
        if step in ("disabling", "purging"):
            return self._disabling(message, step)
        vm = self._vm(message["vm_id"])
        if vm is not None and (vm.provisioning_state or "").lower() != "deleting":
            log.warning("VM %s: a delete event of an older instance; the VM exists (vmId %s): its replication stays",
                        message["vm_id"], vm.vm_id)
            return Done("vm_exists", {"note": "the VM exists again: nothing disabled", "vm_instance": vm.vm_id})
        ours, others = self._items_of(message["vm_id"])
        if not ours:
            detail: dict[str, Any] = {"note": "no item of vmkeeper's replicates this VM"}
            if others:
                log.warning("VM %s deleted: replicated by items vmkeeper did not make, left alone: %s",
                            message["vm_id"], ", ".join(others))
                detail["left_alone"] = others
            return Done("not_replicated", detail)
        vault_id, item = ours[0]
        vault_sub, vault_rg, vault = _vault(vault_id)
        fabric, container, name = plan.item_parts(item.id)
        args = (vault_rg, vault, fabric, container, name)
        op, refused = self._write(f"disable:{name}", self.clients.site_recovery(vault_sub).replication_protected_items
                                  .begin_delete, *args, {"properties": {"disableProtectionReason": "NotSpecified"}})
        where = {"vault": vault_id, "fabric": fabric, "container": container, "name": name}
        if refused is not None:
            if refused.get("status") == 404:
                return Done("not_replicated", {"note": "the item is gone"})
            return self._retry(message, f"disable refused: {refused['code']}: {refused['message']}")
        log.info("VM %s deleted: disabling its replication (%s)", message["vm_id"], item.id)
        if op is None:
            return Done("replication_disabled", {**where, "item_id": item.id})
        return Retry(op.get("after") or max(1, self.settings.retry_seconds), "replication disabling",
                     {"step": "disabling", "item": where, "attempt": 0,
                      "ops": [{k: v for k, v in op.items() if k != "after"}]})

    def _items_of(self, vm_id: str) -> tuple[list[tuple[str, Any]], list[str]]:
        """The replicated items of the VM in every configured vault: (vmkeeper's, the ids of others')."""
        ours, others = [], []
        for vault_id in sorted({v.lower(): v for v in self.settings.vaults.values()}.values()):
            vault_sub, vault_rg, vault = _vault(vault_id)
            for item in self.clients.site_recovery(vault_sub).replication_protected_items.list(vault_rg, vault):
                source = str(self._details(item).get("fabricObjectId") or "")
                if source.lower() != vm_id.lower():
                    continue
                if names.is_ours(item.name, vm_id):
                    ours.append((vault_id, item))
                else:
                    others.append(item.id)
        return ours, others

    def _disabling(self, message: dict[str, Any], step: str) -> Outcome:
        where = message.get("item") or {}
        vault_id = str(where.get("vault") or "")
        if vault_id.lower() not in {v.lower() for v in self.settings.vaults.values()}:
            raise jobs.BadMessage(f"message.item.vault: not a configured vault ({vault_id[:300]!r})")
        name = str(where.get("name") or "")
        if not names.is_ours(name, message["vm_id"]):
            raise jobs.BadMessage(f"message.item.name: {name[:300]!r} is not vmkeeper's item of the VM")
        state, after, failures = self._poll(message, vault_id)
        if state == "running":
            return Retry(after or max(1, self.settings.retry_seconds), f"replication {step}", {"ops": message["ops"]})
        if state == "succeeded":
            if step == "purging":
                log.warning("VM %s deleted: Site Recovery refused to disable its replication (%s); purged instead",
                            message["vm_id"], message.get("refused"))
                return Done("replication_purged", {**where, "refused": message.get("refused"),
                                                   "note": "disable refused: the item was purged (replica disks "
                                                           "deleted; nothing done on the source VM, which is gone)"})
            return Done("replication_disabled", where)
        errors = [op.get("error") for op in message.get("ops") or [] if op.get("error")]
        if step == "disabling" and any(plan.is_not_running(e) for e in errors):
            vault_sub, vault_rg, vault = _vault(vault_id)
            refused_text = "; ".join(failures)
            op, refused = self._write(f"purge:{name}", self.clients.site_recovery(vault_sub)
                                      .replication_protected_items.begin_purge, vault_rg, vault, where["fabric"],
                                      where["container"], name)
            log.warning("VM %s deleted: %s; purging the item", message["vm_id"], refused_text)
            if refused is not None:
                return Failed(f"disable refused ({refused_text}), and purge too: {refused['code']}: {refused['message']}")
            if op is None:
                return Done("replication_purged", {**where, "refused": refused_text})
            return Retry(op.get("after") or max(1, self.settings.retry_seconds), "replication purging",
                         {"step": "purging", "refused": refused_text, "attempt": 0,
                          "ops": [{k: v for k, v in op.items() if k != "after"}]})
        return Failed(f"{'disabling' if step == 'disabling' else 'purging'} replication failed: " + "; ".join(failures))
