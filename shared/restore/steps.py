"""The steps of a restore, against ARM. Each one is idempotent: it looks first (GET), writes only
what is missing, under the name the plan gave it, and never waits on Azure — a write in progress is
looked at again on a later delivery (``Wait``). So a step that runs twice (a crash, a redelivered
message) creates nothing twice, and a name taken by something that is not this restore's stops the
restore instead of adopting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import tags as T
from ..access import parse_id
from ..azure.retry_after import retry_after_seconds
from ..instants import format_instant, parse_instant
from ..ports import Arm
from . import plan as P

WAIT = 1  # seconds before looking again when ARM gives no Retry-After
JOB_WAIT = 10  # a Backup restore job is looked at no more often than this
REPOST_AFTER = timedelta(minutes=10)  # a restore POST whose job never showed up is sent again after this


@dataclass
class Next:
    """The step is done."""

    created: list[str] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Wait:
    """Look again in ``delay`` seconds (0: at once, after saving ``context``)."""

    delay: int
    note: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fail:
    reason: str
    code: str = "RestoreFailed"
    context: dict[str, Any] = field(default_factory=dict)  # kept for the next try (an end step tried again)


Result = Next | Wait | Fail


def _parts(resource_id: str) -> tuple[str, str, str]:
    from azure.mgmt.core.tools import parse_resource_id

    p = parse_resource_id(resource_id)
    return p["subscription"], p["resource_group"], p["name"]


def _missing(exc: Exception) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


def _power(view: Any) -> str:
    for status in (view.get("statuses") if isinstance(view, dict) else getattr(view, "statuses", None)) or []:
        code = status.get("code") if isinstance(status, dict) else status.code
        if code and code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return "unknown"


def _data_disks(vm: Any) -> list[dict[str, Any]]:
    """A VM's data disks as a PATCH lists them to keep them as they are (LUN, Attach, the managed disk, caching)."""
    out = []
    for d in (vm.storage_profile.data_disks if vm.storage_profile else None) or []:
        entry: dict[str, Any] = {"lun": d.lun, "createOption": "Attach",
                                 "managedDisk": {"id": d.managed_disk.id if d.managed_disk else ""}}
        if d.caching:
            entry["caching"] = str(d.caching)
        out.append(entry)
    return out


def _patch_data_disks(compute: Any, rg: str, name: str, vm: Any, entries: list[dict[str, Any]], **kwargs: Any) -> bool:
    """PATCH the VM's data-disk list — which replaces the list — only if the VM is still as read (If-Match its ETag):
    a disk someone attached since the read would otherwise be dropped. False when ARM answers 412 (the VM changed):
    the caller reads it again and decides again."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError, ResourceModifiedError

    try:
        compute.virtual_machines.begin_update(rg, name, {"properties": {"storageProfile": {"dataDisks": entries}}},
                                              etag=getattr(vm, "etag", None), match_condition=MatchConditions.IfNotModified,
                                              polling=False, **kwargs)
    except ResourceModifiedError:
        return False
    except HttpResponseError as exc:
        if exc.status_code == 412:
            return False
        raise
    return True


def _os_disk_of(vm: Any) -> str:
    profile = vm.storage_profile
    return (profile.os_disk.managed_disk.id if profile and profile.os_disk and profile.os_disk.managed_disk else "") or ""


def describe_vm(vm: dict[str, Any] | None, context: dict[str, Any]) -> str:
    """The VM after an undone os_disk restore, in a sentence for the restore's error and its restore.failed alert."""
    if vm is None:
        return "The VM's state could not be read: look at it."
    old = context.get("old_os_disk_id") or ""
    was = "running" if context.get("was_running") else "not running"
    if old and vm["os_disk_id"].lower() == old.lower():
        disk = f"on its old OS disk {old}"
    else:
        disk = (f"on OS disk {vm['os_disk_id'] or '(none)'}, not its old one {old or '(not noted)'}, which is kept, tagged "
                f"{T.REPLACED_BY_RESTORE}")
    return f"VM {vm['id'].rsplit('/', 1)[-1]} is {vm['power']} {disk} (it was {was} before the restore)."


def vault_restore_body(plan: P.Plan) -> dict[str, Any]:
    """Azure Backup's IaasVMRestoreRequest for the plan (REST shape)."""
    v = plan.vault or {}
    body: dict[str, Any] = {"objectType": "IaasVMRestoreRequest", "recoveryPointId": v["point_id"].rsplit("/", 1)[-1],
                            "recoveryType": v["recovery_type"], "sourceResourceId": v["source_vm_id"],
                            "storageAccountId": v["staging_storage_account"], "region": v["region"],
                            "createNewCloudService": False, "originalStorageAccountOption": False,
                            "encryptionDetails": {"encryptionEnabled": False}}
    if v["recovery_type"] in ("RestoreDisks", "AlternateLocation"):
        body["targetResourceGroupId"] = v["resource_group"]
    if v["recovery_type"] == "AlternateLocation":
        body["targetVirtualMachineId"] = f"{v['resource_group']}/providers/Microsoft.Compute/virtualMachines/{v['vm_name']}"
        body["subnetId"] = v["subnet_id"]
        body["virtualNetworkId"] = v["subnet_id"].rsplit("/subnets/", 1)[0]
    return body


class RestoreSteps:
    def __init__(self, arm: Arm, clock: Any = None):
        self.arm = arm
        self.clock = clock or (lambda: datetime.now(UTC))

    def run(self, step: str, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        return getattr(self, step)(restore_id, plan, context)

    def _hook(self, seen: dict[str, int]) -> Any:
        def hook(response: Any) -> None:
            after = retry_after_seconds(response.http_response.headers)
            if after is not None:
                seen["after"] = min(seen.get("after", after), after)
        return hook

    def _ours(self, resource: Any, restore_id: str, what: str) -> Fail | None:
        tags = (resource.get("tags") if isinstance(resource, dict) else getattr(resource, "tags", None)) or {}
        if tags.get(T.RESTORE) != restore_id:
            return Fail(f"{what} exists and is not this restore's (tag {T.RESTORE}={tags.get(T.RESTORE)!r}): "
                        "nothing was overwritten", "NameTaken")
        return None

    def _settle(self, existing: Any, restore_id: str, kind: str, resource_id: str) -> Result:
        """A resource of the plan found already there: not ours → Fail; Failed → Fail; made → Next; else Wait."""
        if fail := self._ours(existing, restore_id, f"{kind} {resource_id}"):
            return fail
        state = (existing.provisioning_state or "").lower()
        if state == "failed":
            return Fail(f"{kind} {resource_id} ended Failed")
        name = resource_id.rsplit("/", 1)[-1]
        return Next([resource_id]) if state == "succeeded" else Wait(WAIT, f"{kind} {name} is {state}")

    # --- managed disks ---------------------------------------------------------------------------
    def create_disks(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """Every disk of the plan at once (in parallel, as ARM runs them): PUT what is missing, then wait for all."""
        from concurrent.futures import ThreadPoolExecutor

        seen: dict[str, int] = {}

        def one(disk: dict[str, Any]) -> str | Fail | None:
            """None: ready; the name: still being made; Fail: not this restore's, or failed."""
            sub, rg, name = _parts(disk["id"])
            compute = self.arm.compute(sub)
            try:
                existing = compute.disks.get(rg, name)
            except Exception as exc:
                if not _missing(exc):
                    raise
                tags = {T.RESTORE: restore_id}
                if plan.lease:  # made for a while: says until when on itself too (records are not the only word)
                    tags[T.RESTORE_EXPIRES] = plan.lease["expires_at"]
                body: dict[str, Any] = {
                    "location": plan.region, "tags": tags,
                    "properties": {"creationData": {"createOption": disk["create_option"],
                                                    "sourceResourceId": disk["source_id"]}}}
                if disk.get("sku"):
                    body["sku"] = {"name": disk["sku"]}
                if disk.get("os_type"):
                    body["properties"]["osType"] = disk["os_type"]
                compute.disks.begin_create_or_update(rg, name, body, polling=False, raw_response_hook=self._hook(seen))
                return name
            settled = self._settle(existing, restore_id, "disk", disk["id"])
            return settled if isinstance(settled, Fail) else (None if isinstance(settled, Next) else name)

        with ThreadPoolExecutor(max_workers=min(8, max(1, len(plan.disks)))) as pool:
            looks = list(pool.map(one, plan.disks))
        if fail := next((x for x in looks if isinstance(x, Fail)), None):
            return fail
        waiting = [x for x in looks if isinstance(x, str)]
        if waiting:
            return Wait(seen.get("after", WAIT), f"disks being created: {', '.join(waiting)}")
        return Next([d["id"] for d in plan.disks])

    # --- a file recovery: disks attached to the operator's VM, for a while ------------------------------
    def attach_disks(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """The plan's disks attached to the operator's VM at their planned LUNs (caching ReadOnly: read, not
        written), in one PATCH that lists the VM's own data disks as they are, sent If-Match the VM's ETag as read (the
        list given replaces the VM's: a disk attached since the read would be dropped; on 412 the VM is read again and
        it is decided again). A planned LUN some other disk took
        since the plan stops it (nothing attached); the end steps then delete what was made."""
        sub, rg, name = _parts(plan.vm["id"])
        compute = self.arm.compute(sub)
        vm = compute.virtual_machines.get(rg, name)
        current = _data_disks(vm)
        on_vm = {d["managedDisk"]["id"].lower(): d for d in current}
        missing = [d for d in plan.disks if d["id"].lower() not in on_vm]
        state = (vm.provisioning_state or "").lower()
        if not missing:
            if state == "failed":
                return Fail(f"VM {name} ended Failed after the recovery's disks were attached")
            if state in ("updating", "creating"):
                return Wait(WAIT, f"VM {name} is {state}")
            return Next([d["id"] for d in plan.disks])
        if state in ("updating", "creating") and context.get("attach_sent"):
            return Wait(WAIT, f"VM {name} is {state}")
        taken = {d["lun"]: d["managedDisk"]["id"] for d in current}
        clash = [d for d in missing if d["attach_lun"] in taken]
        if clash:
            return Fail(f"VM {name}: LUN {clash[0]['attach_lun']} is now used by {taken[clash[0]['attach_lun']]}: "
                        "nothing was attached", "LunTaken")
        sends = int(context.get("attach_sent") or 0) + 1
        if sends > 3:
            return Fail(f"VM {name}: ARM accepted attaching the recovery's disks {sends - 1} times, the VM has them not")
        entries = current + [{"lun": d["attach_lun"], "createOption": "Attach", "caching": "ReadOnly",
                     "managedDisk": {"id": d["id"]}} for d in missing]
        seen: dict[str, int] = {}
        if not _patch_data_disks(compute, rg, name, vm, entries, raw_response_hook=self._hook(seen)):
            return Wait(0, f"VM {name} changed since it was read (412): reading it again")
        return Wait(seen.get("after", WAIT), f"VM {name}: the recovery's disks being attached", {"attach_sent": sends})

    def remove_disks(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """The end of a file recovery or an export: every disk of the plan that exists and carries this restore's
        tag — and nothing else — detached from the VM it is on (the VM's other disks listed as they are, If-Match the
        ETag read: a disk attached meanwhile is kept, the VM read again on 412), its
        access revoked, then deleted; looked at again until none is left. A disk of the plan's name without the tag
        is not this restore's: left alone, and said."""
        from . import lease

        found: dict[str, Any] = {}
        for disk in plan.disks:
            sub, rg, name = _parts(disk["id"])
            try:
                found[disk["id"].lower()] = self.arm.compute(sub).disks.get(rg, name)
            except Exception as exc:
                if not _missing(exc):
                    raise
        tags = {i: dict(d.tags or {}) for i, d in found.items()}
        mine = lease.ours([d["id"] for d in plan.disks], tags, restore_id, T.RESTORE)
        foreign = [i for i in found if i not in {m.lower() for m in mine}]
        waiting: list[str] = []
        changed = False  # a VM changed between our read and our write: read again at once
        on_vms: dict[str, list[str]] = {}
        for disk_id in mine:
            disk = found[disk_id.lower()]
            state = (disk.provisioning_state or "").lower()
            if state in ("creating", "updating", "deleting"):
                waiting.append(f"{disk.name} is {state}")
            elif disk.managed_by:
                on_vms.setdefault(disk.managed_by, []).append(disk.id)
            elif (disk.disk_state or "").lower() == "activesas":
                sub, rg, name = _parts(disk.id)
                self.arm.compute(sub).disks.begin_revoke_access(rg, name, polling=False)
                waiting.append(f"{name}: access being revoked")
            else:
                sub, rg, name = _parts(disk.id)
                self.arm.compute(sub).disks.begin_delete(rg, name, polling=False)
                waiting.append(f"{name} being deleted")
        for vm_id, disk_ids in on_vms.items():
            sub, rg, name = _parts(vm_id)
            compute = self.arm.compute(sub)
            vm = compute.virtual_machines.get(rg, name)
            if (vm.provisioning_state or "").lower() in ("updating", "creating"):
                waiting.append(f"VM {name} is {(vm.provisioning_state or '').lower()}")
                continue
            entries = lease.detached_list(_data_disks(vm), disk_ids)
            if _patch_data_disks(compute, rg, name, vm, entries):
                waiting.append(f"VM {name}: {len(disk_ids)} disk(s) being detached")
            else:
                changed = True
                waiting.append(f"VM {name} changed since it was read (412): reading it again")
        if waiting:
            note = "; ".join(waiting)
            return Wait(0 if changed else WAIT, note[:500], {"foreign": foreign} if foreign else {})
        return Next(context={"removed": True, **({"foreign": foreign} if foreign else {})})

    # --- a vault point's files: Azure Backup's item-level recovery (shared/restore/ilr.py) -------------------
    def provision_ilr(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """The point's session for the plan's hours (Azure's call names the backed-up VM, not the operator's)."""
        from . import ilr

        v = plan.vault or {}
        return ilr.provision(self.arm, v["point_id"], v["source_vm_id"], context, now=self.clock(),
                             hours=(plan.lease or {}).get("hours"), initiator=None)

    def revoke_ilr(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """The end of a vault file recovery: the session revoked if this restore opened it (lease.revokes); one that
        was active before it asked is someone else's, left for Azure to end at its 12 hours (and said)."""
        from . import ilr, lease

        if not lease.revokes(context):
            left = bool(context.get("ilr_was_active"))
            return Next(context={"ilr_left_active": left})
        result = ilr.revoke(self.arm, (plan.vault or {})["point_id"], context)
        if isinstance(result, Next):
            result.context["ilr_left_active"] = False
        return result

    # --- an export's SAS (asked by its caller through the API: never stored) -------------------------------
    def grant_read(self, restore_id: str, disk_id: str, seconds: int) -> str:
        """A read SAS on the export's disk, if it carries this restore's tag (else nothing is granted)."""
        sub, rg, name = _parts(disk_id)
        compute = self.arm.compute(sub)
        disk = compute.disks.get(rg, name)
        if (disk.tags or {}).get(T.RESTORE) != restore_id:
            raise PermissionError(f"disk {disk_id} is not this restore's: no access granted")
        return compute.disks.begin_grant_access(rg, name, {"access": "Read", "durationInSeconds": seconds}).result().access_sas

    def has_access(self, disk_id: str) -> bool:
        sub, rg, name = _parts(disk_id)
        try:
            return (self.arm.compute(sub).disks.get(rg, name).disk_state or "").lower() == "activesas"
        except Exception:  # noqa: BLE001  (unknown: taken as granted, so the caller is not handed a second one)
            return True

    # --- a new VM --------------------------------------------------------------------------------
    def create_nic(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        nic = plan.nic or {}
        sub, rg, name = _parts(nic["id"])
        network = self.arm.network(sub)
        try:
            existing = network.network_interfaces.get(rg, name)
        except Exception as exc:
            if not _missing(exc):
                raise
            body = {"location": plan.region, "tags": {T.RESTORE: restore_id},
                    "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                        "subnet": {"id": nic["subnet_id"]}, "privateIPAllocationMethod": "Dynamic", "primary": True}}]}}
            made = network.network_interfaces.begin_create_or_update(rg, name, body, polling=False).result()
            if (getattr(made, "provisioning_state", "") or "").lower() == "succeeded":  # ARM often makes a NIC at once
                return Next([nic["id"]])
            return Wait(WAIT, f"NIC {name} being created")
        return self._settle(existing, restore_id, "NIC", nic["id"])

    def create_vm(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        vm = plan.vm or {}
        sub, rg, name = _parts(vm["id"])
        compute = self.arm.compute(sub)
        seen: dict[str, int] = {}
        try:
            existing = compute.virtual_machines.get(rg, name)
        except Exception as exc:
            if not _missing(exc):
                raise
            os_disk = next(d for d in plan.disks if d["lun"] is None)
            storage: dict[str, Any] = {
                "osDisk": {"createOption": "Attach", "managedDisk": {"id": os_disk["id"]},
                           **({"osType": os_disk["os_type"]} if os_disk.get("os_type") else {})},
                "dataDisks": [{"lun": d["lun"], "createOption": "Attach", "managedDisk": {"id": d["id"]}}
                              for d in plan.disks if d["lun"] is not None]}
            # An attached OS disk brings its OS: no osProfile, no imageReference (ARM answers 400 to either).
            body = {"location": plan.region, "tags": {T.RESTORE: restore_id},
                    "properties": {"hardwareProfile": {"vmSize": vm["size"]}, "storageProfile": storage,
                                   "networkProfile": {"networkInterfaces": [{"id": plan.nic["id"],
                                                                             "properties": {"primary": True}}]}}}
            if vm.get("scale_set"):  # joins a Flexible scale set, as asked (by default a VM stands alone)
                body["properties"]["virtualMachineScaleSet"] = {"id": vm["scale_set"]}
                if vm.get("platform_fault_domain") is not None:
                    body["properties"]["platformFaultDomain"] = vm["platform_fault_domain"]
            compute.virtual_machines.begin_create_or_update(rg, name, body, polling=False,
                                                            raw_response_hook=self._hook(seen))
            return Wait(seen.get("after", WAIT), f"VM {name} being created")
        return self._settle(existing, restore_id, "VM", vm["id"])

    # --- the OS disk of an existing VM ------------------------------------------------------------
    def deallocate_vm(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        sub, rg, name = _parts(plan.vm["id"])
        compute = self.arm.compute(sub)
        power = _power(compute.virtual_machines.instance_view(rg, name))
        if "was_running" not in context:
            # Remembered before anything changes them: to start the VM again, and to put its disk back on failure.
            # The disk must be the one the plan found (and the allow-list admitted): it is tagged and swapped out.
            current = _os_disk_of(compute.virtual_machines.get(rg, name))
            planned = (plan.vm or {}).get("old_os_disk_id") or ""
            if planned and current.lower() != planned.lower():
                return Fail(f"VM {name}'s OS disk is now {current or '(none)'}, not {planned} as when the restore was "
                            "planned: nothing was changed", "Conflict")
            return Wait(0, f"VM {name} is {power}", {"was_running": power in ("running", "starting"),
                                                     "old_os_disk_id": current})
        if power == "deallocated":
            return Next()
        if power == "deallocating":
            return Wait(WAIT, f"VM {name} is deallocating")
        seen: dict[str, int] = {}
        compute.virtual_machines.begin_deallocate(rg, name, polling=False, raw_response_hook=self._hook(seen))
        return Wait(seen.get("after", WAIT), f"VM {name} deallocating")

    def swap_os_disk(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        sub, rg, name = _parts(plan.vm["id"])
        compute = self.arm.compute(sub)
        new_id = plan.disks[0]["id"]
        vm = compute.virtual_machines.get(rg, name)
        current = _os_disk_of(vm)
        if current.lower() == new_id.lower():
            state = (vm.provisioning_state or "").lower()
            if state == "failed":
                return Fail(f"VM {name} ended Failed after its OS disk was swapped")
            return Next() if state == "succeeded" else Wait(WAIT, f"VM {name} is {state}")
        if "old_os_disk_id" not in context:  # a restore planned before deallocate_vm noted it
            return Wait(0, f"VM {name} has OS disk {current}", {"old_os_disk_id": current})
        if context.get("swap_sent"):
            state = (vm.provisioning_state or "").lower()
            if state in ("updating", "creating"):
                return Wait(WAIT, f"VM {name} is {state}")
            if state == "failed":
                return Fail(f"VM {name} ended Failed: its OS disk is still {current}")
            # Done updating, yet the old disk: the swap was lost (or undone); send it once more.
        sends = int(context.get("swap_sent") or 0) + 1
        if sends > 3:
            return Fail(f"VM {name}: ARM accepted the OS disk swap {sends - 1} times, the VM kept {current}")
        seen: dict[str, int] = {}
        compute.virtual_machines.begin_update(rg, name, {"properties": {"storageProfile": {"osDisk": {
            "managedDisk": {"id": new_id}}}}}, polling=False, raw_response_hook=self._hook(seen))
        return Wait(seen.get("after", WAIT), f"VM {name}: OS disk being swapped", {"swap_sent": sends})

    def tag_old_os_disk(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """The disk being replaced is kept, tagged with the restore that replaces it (Merge: no other tag changes).
        Tagged before the swap, so that a swap that fails half-way never leaves it a detached disk nobody names."""
        from azure.mgmt.resource.resources.models import Tags, TagsPatchResource

        old = context.get("old_os_disk_id") or (plan.vm or {}).get("old_os_disk_id")
        if not old:
            return Next()
        sub = _parts(old)[0]
        self.arm.resources(sub).tags.begin_update_at_scope(
            old, TagsPatchResource(operation="Merge", properties=Tags(tags={T.REPLACED_BY_RESTORE: restore_id}))).result()
        return Next()

    def put_back_os_disk(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """The undo of a failed swap: the VM's old OS disk attached again (PATCH, as the swap). The restored disk is
        kept (it is this restore's, tagged so)."""
        old = context.get("old_os_disk_id")
        if not old:  # never noted: nothing was swapped
            return Next()
        sub, rg, name = _parts(plan.vm["id"])
        compute = self.arm.compute(sub)
        vm = compute.virtual_machines.get(rg, name)
        state = (vm.provisioning_state or "").lower()
        if state in ("updating", "creating"):
            return Wait(WAIT, f"VM {name} is {state}")
        current = _os_disk_of(vm)
        if current.lower() == old.lower():
            return Next()
        restored = plan.disks[0]["id"]
        if current.lower() != restored.lower():  # someone attached another disk since: theirs to keep
            return Fail(f"VM {name}'s OS disk is now {current or '(none)'}, neither its old {old} nor this restore's "
                        f"{restored}: left as it is", "Conflict")
        sends = int(context.get("put_back_sent") or 0) + 1
        if sends > 3:
            return Fail(f"VM {name}: ARM accepted putting its old OS disk back {sends - 1} times, the VM kept {current}")
        seen: dict[str, int] = {}
        compute.virtual_machines.begin_update(rg, name, {"properties": {"storageProfile": {"osDisk": {
            "managedDisk": {"id": old}}}}}, polling=False, raw_response_hook=self._hook(seen))
        return Wait(seen.get("after", WAIT), f"VM {name}: its old OS disk being put back", {"put_back_sent": sends})

    def vm_state(self, plan: P.Plan) -> dict[str, Any]:
        """The VM of an os_disk restore as it is: power, provisioning state and OS disk."""
        sub, rg, name = _parts(plan.vm["id"])
        compute = self.arm.compute(sub)
        vm = compute.virtual_machines.get(rg, name)
        return {"id": plan.vm["id"], "power": _power(compute.virtual_machines.instance_view(rg, name)),
                "provisioning_state": vm.provisioning_state, "os_disk_id": _os_disk_of(vm)}

    def start_vm(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        if not context.get("was_running"):
            return Next()
        sub, rg, name = _parts(plan.vm["id"])
        compute = self.arm.compute(sub)
        power = _power(compute.virtual_machines.instance_view(rg, name))
        if power == "running":
            return Next()
        if power == "starting":
            return Wait(WAIT, f"VM {name} is starting")
        seen: dict[str, int] = {}
        compute.virtual_machines.begin_start(rg, name, polling=False, raw_response_hook=self._hook(seen))
        return Wait(seen.get("after", WAIT), f"VM {name} starting")

    # --- Azure Backup ----------------------------------------------------------------------------
    def _vault(self, plan: P.Plan) -> tuple[Any, str, str, Any]:
        v = plan.vault or {}
        point = parse_id(v["point_id"], "vault_point")
        sub, rg, vault = _parts(v["vault_id"])
        return self.arm.backup(sub), rg, vault, point

    def _restore_jobs(self, plan: P.Plan) -> list[str]:
        """The vault's Restore jobs of the source VM, newest first (job names)."""
        backup, rg, vault, _ = self._vault(plan)
        vm_name = parse_id(plan.vault["source_vm_id"], "vm").name.lower()
        jobs = [j for j in backup.backup_jobs.list(vault, rg, filter="operation eq 'Restore'")
                if (j.properties.entity_friendly_name or "").lower() == vm_name]
        jobs.sort(key=lambda j: j.properties.start_time or datetime.min.replace(tzinfo=UTC), reverse=True)
        return [j.name for j in jobs]

    def trigger_vault_restore(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        """One POST to Azure Backup, and its job found by what was not there before: the VM's Restore
        jobs are noted first, so a crash after the POST finds the job instead of sending it again."""
        from azure.mgmt.recoveryservicesbackup.models import IaasVMRestoreRequest, RestoreRequestResource

        if "known_jobs" not in context:
            return Wait(0, "noting the VM's restore jobs", {"known_jobs": self._restore_jobs(plan), "sent_at": None})
        new = [j for j in self._restore_jobs(plan) if j not in set(context["known_jobs"])]
        if new:
            return Next(context={"job": new[0]})
        sent = parse_instant(context.get("sent_at"))
        if sent is not None:
            if self.clock() - sent < REPOST_AFTER:
                return Wait(WAIT, "the restore was sent; its job is not listed yet")
            return Wait(0, "no job came of the restore sent: sending it again", {"sent_at": None})
        from azure.core.exceptions import HttpResponseError

        backup, rg, vault, point = self._vault(plan)
        request = RestoreRequestResource(properties=IaasVMRestoreRequest(vault_restore_body(plan)))
        try:
            backup.restores.begin_trigger(vault, rg, "Azure", point.parts["container"], point.parts["item"],
                                          point.name, request, polling=False)
        except HttpResponseError as exc:
            code = exc.error.code if exc.error else ""
            message = exc.error.message if exc.error else str(exc)
            if "resourceguard" in f"{code} {message}".lower():
                # Multi-user authorization: the vault's Resource Guard protects restores (a proxy added after the
                # request was accepted). vmkeeper holds nothing on the guard, by design: sending it again can't pass.
                return Fail(f"Azure Backup refused the restore: the vault's Resource Guard protects it ({code}): "
                            f"{message}"[:2000], "ResourceGuard")
            if exc.status_code != 403:
                raise
            # A permission Azure Backup checks on vmkeeper's identity is missing (e.g. storageAccounts/write on a
            # staging account infra/ does not grant: LinkedAuthorizationFailed). Sending it again grants nothing.
            code = exc.error.code if exc.error else "Forbidden"
            message = exc.error.message if exc.error else str(exc)
            return Fail(f"Azure Backup refused the restore ({code}): {message}"[:2000], "Forbidden")
        return Wait(1, "restore sent to Azure Backup", {"sent_at": format_instant(self.clock())})

    def follow_backup_job(self, restore_id: str, plan: P.Plan, context: dict[str, Any]) -> Result:
        backup, rg, vault, _ = self._vault(plan)
        job = backup.job_details.get(vault, rg, context["job"])
        props = job.properties
        status = (props.status or "").lower()
        if status in ("inprogress", "cancelling", "notstarted", ""):
            return Wait(JOB_WAIT if props.duration and props.duration.total_seconds() > 60 else WAIT,
                        f"Backup job {context['job']} is {props.status}")
        if status not in ("completed", "completedwithwarnings"):
            errors = "; ".join(f"{e.error_code}: {e.error_string}" for e in (props.error_details or []))
            return Fail(f"Backup job {context['job']} {props.status}" + (f": {errors}" if errors else ""), "BackupJobFailed")
        bag = ((props.extended_info.property_bag if props.extended_info else None) or {})
        created = [part for value in bag.values() for part in str(value).split(",")
                   if part.lower().startswith("/subscriptions/") and part.count("/") >= 8]
        return Next(created)
