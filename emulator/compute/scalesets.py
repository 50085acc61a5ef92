"""Virtual machine scale sets, on plain state, in their two orchestration modes (REST reference "Virtual Machine
Scale Sets - Create Or Update", "Virtual Machines - Create Or Update" and Learn "Orchestration modes for Virtual
Machine Scale Sets", "Choosing the right number of fault domains"; no official example is stored here):

- **Flexible**: the set's instances are ordinary VMs (``Microsoft.Compute/virtualMachines``, named
  ``{set}_{8 hex}``) carrying ``properties.virtualMachineScaleSet.id``, with their own disks and NICs, listed, read
  and deleted as any VM. A scale-out (``sku.capacity`` raised, with a ``virtualMachineProfile``) makes them as a VM
  PUT would (Creating, then Succeeded and booted when the set's operation ends), and ARM reports each VM's write.
  A VM PUT may name the set (``virtualMachineScaleSet``) to join it.
- **Uniform**: the instances are ``Microsoft.Compute/virtualMachineScaleSets/virtualMachines`` (``…/virtualMachines/
  {instanceId}``, named ``{set}_{instanceId}``), listed under the set and in Resource Graph's ``ComputeResources``
  table; no VM PUT can join a Uniform set.

``platformFaultDomainCount``: Flexible 1-3 regional (default 1), 1 zonal; Uniform 1-5 regional (default 5), 1 or 5
zonal; neither it nor the orchestration mode can change. A VM's ``platformFaultDomain`` is allowed only in a set whose
count is greater than 1, from 0 to count - 1 (omitted: the platform balances); it cannot change once the VM exists.
Error codes and wording are the emulator's (no official error example).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from ..core.arm import normalize_location, rid
from ..core.clock import iso
from ..core.errors import ArmError, InvalidParameter
from ..core.resource import Deletion
from ..core.state import Resource, Store
from ..network.responses import find_subnet, new_nic
from . import models as m

VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
VMSS_VM_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
FLEXIBLE, UNIFORM = "Flexible", "Uniform"
MODES = (FLEXIBLE, UNIFORM)
# (mode, zonal) -> (allowed platformFaultDomainCount values, default)
FAULT_DOMAIN_COUNTS = {(FLEXIBLE, False): ((1, 2, 3), 1), (FLEXIBLE, True): ((1,), 1),
                       (UNIFORM, False): ((1, 2, 3, 4, 5), 5), (UNIFORM, True): ((1, 5), 1)}
MAX_CAPACITY = 1000


def mode_of(vmss: Resource) -> str:
    return vmss.properties.get("orchestrationMode", UNIFORM)


def fault_domain_count(vmss: Resource) -> int:
    return int(vmss.properties.get("platformFaultDomainCount") or 1)


def members(store: Store, vmss: Resource) -> list[Resource]:
    """The set's instances: its Flexible VMs (by their reference) or its Uniform instances (its children)."""
    if mode_of(vmss) == UNIFORM:
        return store.of_type(VMSS_VM_TYPE, vmss.id)
    key = vmss.id.lower()
    return [vm for vm in store.of_type(m.VM_TYPE, f"/subscriptions/{vmss.subscription_id}")
            if ((vm.properties.get("virtualMachineScaleSet") or {}).get("id") or "").lower() == key]


# --- the set ---------------------------------------------------------------------------------------------
def check_set(body: dict[str, Any], existing: Resource | None) -> tuple[str, int, int]:
    """The orchestration mode, fault domain count and capacity a PUT asks for, checked as ARM does."""
    props = body.get("properties") or {}
    mode = props.get("orchestrationMode") or (mode_of(existing) if existing else UNIFORM)
    if mode not in MODES:
        raise InvalidParameter(f"properties.orchestrationMode: '{mode}' is not valid (Flexible, Uniform).",
                               target="properties.orchestrationMode")
    if existing is not None and mode != mode_of(existing):
        raise ArmError("Changing property 'orchestrationMode' is not allowed.", code="PropertyChangeNotAllowed",
                       status=409, target="properties.orchestrationMode")
    zonal = bool(body.get("zones") or (existing.extra.get("zones") if existing else None))
    allowed, default = FAULT_DOMAIN_COUNTS[(mode, zonal)]
    count = props.get("platformFaultDomainCount")
    if existing is not None:
        if count is not None and int(count) != fault_domain_count(existing):
            raise ArmError("Changing property 'platformFaultDomainCount' is not allowed.",
                           code="PropertyChangeNotAllowed", status=409, target="properties.platformFaultDomainCount")
        count = fault_domain_count(existing)
    if count is None:
        count = default
    if not isinstance(count, int) or count not in allowed:
        raise InvalidParameter(f"properties.platformFaultDomainCount: {count} is not valid for a {mode} scale set "
                               f"{'with zones' if zonal else 'without zones'} ({', '.join(map(str, allowed))}).",
                               target="properties.platformFaultDomainCount")
    capacity = (body.get("sku") or {}).get("capacity")
    if capacity is None:
        capacity = int((existing.extra.get("sku") or {}).get("capacity") or 0) if existing else 0
    if not isinstance(capacity, int) or not 0 <= capacity <= MAX_CAPACITY:
        raise InvalidParameter(f"sku.capacity: must be an integer from 0 to {MAX_CAPACITY}.", target="sku.capacity")
    profile = props.get("virtualMachineProfile") or (existing.properties.get("virtualMachineProfile") if existing else None)
    if capacity and not profile:
        raise InvalidParameter("properties.virtualMachineProfile: required to make instances (sku.capacity > 0).",
                               target="properties.virtualMachineProfile")
    return mode, count, capacity


def new_set(sub: str, rg: str, name: str, location: str, now: float, *, mode: str, fault_domains: int,
            sku: dict[str, Any], profile: dict[str, Any] | None, tags: dict[str, str] | None,
            zones: list[str] | None = None) -> Resource:
    props: dict[str, Any] = {"orchestrationMode": mode, "platformFaultDomainCount": fault_domains,
                             "provisioningState": "Succeeded", "uniqueId": str(uuid.uuid4()), "timeCreated": iso(now)}
    if mode == UNIFORM:
        props.update({"upgradePolicy": {"mode": "Manual"}, "overprovision": False, "singlePlacementGroup": True})
    else:
        props["singlePlacementGroup"] = False
    if profile:
        props["virtualMachineProfile"] = _stored_profile(profile)
    extra: dict[str, Any] = {"sku": {"name": sku.get("name") or "Standard_D2s_v5", "tier": sku.get("tier") or "Standard",
                                     "capacity": int(sku.get("capacity") or 0)}}
    if zones:
        extra["zones"] = zones
    return Resource(rid(sub, rg, m.PROVIDER, "virtualMachineScaleSets", name), VMSS_TYPE, name, location, tags, props,
                    extra, {"next_instance": 0}, now)


def _stored_profile(profile: dict[str, Any]) -> dict[str, Any]:
    profile = dict(profile)
    if "osProfile" in profile:  # a secret is never shown again
        profile["osProfile"] = {k: v for k, v in profile["osProfile"].items() if k != "adminPassword"}
    return profile


def _subnet_of(profile: dict[str, Any]) -> str | None:
    for config in (profile.get("networkProfile") or {}).get("networkInterfaceConfigurations") or []:
        for ipc in (config.get("properties") or {}).get("ipConfigurations") or []:
            subnet = ((ipc.get("properties") or {}).get("subnet") or {}).get("id")
            if subnet:
                return subnet
    return None


def check_profile(store: Store, profile: dict[str, Any] | None, location: str) -> None:
    if not profile:
        return
    storage = profile.get("storageProfile") or {}
    if not storage.get("imageReference") and not storage.get("osDisk"):
        raise InvalidParameter("properties.virtualMachineProfile.storageProfile: an imageReference is required.",
                               target="properties.virtualMachineProfile.storageProfile")
    subnet = _subnet_of(profile)
    target = "properties.virtualMachineProfile.networkProfile.networkInterfaceConfigurations"
    if subnet is None:
        raise InvalidParameter(f"{target}: a network interface configuration with an IP configuration in a subnet is "
                               "required.", target=target)
    if find_subnet(store, subnet) is None:
        raise InvalidParameter(f"{target}: subnet '{subnet}' was not found.", code="InvalidResourceReference", target=target)
    vnet = store.get(subnet.rpartition("/subnets/")[0])
    if vnet is not None and normalize_location(vnet.location) != location:
        raise InvalidParameter(f"{target}: the virtual network is in '{vnet.location}', the scale set in '{location}'.",
                               code="InvalidResourceReference", target=target)


# --- instances -------------------------------------------------------------------------------------------
def _disks_of(vmss: Resource, base: str, now: float, owner: str) -> tuple[dict[str, Any], list[Resource]]:
    """The storageProfile of one instance made from the set's model, and its managed disks (attached to ``owner``)."""
    profile = vmss.properties.get("virtualMachineProfile") or {}
    storage = profile.get("storageProfile") or {}
    os_spec = storage.get("osDisk") or {}
    sku = (os_spec.get("managedDisk") or {}).get("storageAccountType", "Premium_LRS")
    size = int(os_spec.get("diskSizeGB") or 30)
    os_type = os_spec.get("osType") or "Linux"
    sub, rg, location = vmss.subscription_id, vmss.resource_group, vmss.location or ""
    os_disk = m.new_disk(sub, rg, f"{base}_OsDisk_1_{uuid.uuid4().hex}", location, now, size_gb=size, sku=sku,
                         creation={"createOption": "FromImage", "imageReference": storage.get("imageReference") or {}},
                         os_type=os_type)
    disks, data = [os_disk], []
    for spec in storage.get("dataDisks") or []:
        lun = int(spec.get("lun", len(data)))
        disk = m.new_disk(sub, rg, f"{base}_disk{lun}_{uuid.uuid4().hex[:12]}", location, now,
                          size_gb=int(spec.get("diskSizeGB") or 32),
                          sku=(spec.get("managedDisk") or {}).get("storageAccountType", sku))
        disks.append(disk)
        data.append({"lun": lun, "name": disk.name, "createOption": "Empty", "caching": "None",
                     "managedDisk": {"storageAccountType": disk.extra["sku"]["name"], "id": disk.id},
                     "diskSizeGB": disk.properties["diskSizeGB"], "deleteOption": "Delete"})
    for disk in disks:
        m.attach_disk(disk, owner)
    stored = {"imageReference": storage.get("imageReference") or {},
              "osDisk": {"osType": os_type, "name": os_disk.name, "createOption": "FromImage", "caching": "ReadWrite",
                         "managedDisk": {"storageAccountType": sku, "id": os_disk.id}, "diskSizeGB": size,
                         "deleteOption": "Delete"},
              "dataDisks": data}
    return stored, disks


def _next_fault_domain(store: Store, vmss: Resource) -> int | None:
    """The platform's choice when a VM names none: the least used fault domain (None: a count of 1, max spreading)."""
    count = fault_domain_count(vmss)
    if count <= 1:
        return None
    used = [0] * count
    for vm in members(store, vmss):
        fd = vm.properties.get("platformFaultDomain")
        if isinstance(fd, int) and 0 <= fd < count:
            used[fd] += 1
    return used.index(min(used))


def check_join(store: Store, props: dict[str, Any], location: str, existing: Resource | None) -> tuple[Resource | None, int | None]:
    """A VM PUT's ``virtualMachineScaleSet`` and ``platformFaultDomain``, checked as ARM does: the set exists, is
    Flexible and in the VM's region; the fault domain only with a count above 1, within it; neither changes on an
    existing VM. Returns (the set, the VM's fault domain) — (None, None) for a VM in no set."""
    ref = (props.get("virtualMachineScaleSet") or {}).get("id")
    fd = props.get("platformFaultDomain")
    if existing is not None:
        had = ((existing.properties.get("virtualMachineScaleSet") or {}).get("id") or "")
        if ref is not None and ref.lower() != had.lower():
            raise ArmError("Changing property 'virtualMachineScaleSet' is not allowed: a VM joins a scale set only when "
                           "it is created.", code="PropertyChangeNotAllowed", status=409,
                           target="properties.virtualMachineScaleSet.id")
        if fd is not None and fd != existing.properties.get("platformFaultDomain"):
            raise ArmError("Changing property 'platformFaultDomain' is not allowed.", code="PropertyChangeNotAllowed",
                           status=409, target="properties.platformFaultDomain")
        return store.get(had) if had else None, existing.properties.get("platformFaultDomain")
    if ref is None:
        if fd is not None:
            raise InvalidParameter("properties.platformFaultDomain: applies only to a VM in a scale set "
                                   "(virtualMachineScaleSet).", target="properties.platformFaultDomain")
        return None, None
    vmss = store.get(ref)
    if vmss is None or vmss.type != VMSS_TYPE:
        raise InvalidParameter(f"properties.virtualMachineScaleSet.id: scale set '{ref}' was not found.",
                               code="NotFound", target="properties.virtualMachineScaleSet.id")
    if mode_of(vmss) != FLEXIBLE:
        raise InvalidParameter(f"properties.virtualMachineScaleSet.id: scale set '{vmss.name}' has orchestration mode "
                               f"{mode_of(vmss)}: only a Flexible scale set takes a VM created on its own.",
                               code="OperationNotAllowed", target="properties.virtualMachineScaleSet.id")
    if normalize_location(vmss.location) != location:
        raise InvalidParameter(f"properties.virtualMachineScaleSet.id: scale set '{vmss.name}' is in '{vmss.location}', "
                               f"the VM in '{location}': a VM joins a scale set of its own region.",
                               code="InvalidParameter", target="properties.virtualMachineScaleSet.id")
    count = fault_domain_count(vmss)
    if fd is not None:
        if count <= 1:
            raise InvalidParameter(f"properties.platformFaultDomain: scale set '{vmss.name}' has platformFaultDomainCount "
                                   f"{count}: a fault domain may be named only when it is greater than 1.",
                                   target="properties.platformFaultDomain")
        if not isinstance(fd, int) or isinstance(fd, bool) or not 0 <= fd < count:
            raise InvalidParameter(f"properties.platformFaultDomain: {fd} is out of range: scale set '{vmss.name}' has "
                                   f"{count} fault domains (0 to {count - 1}).", target="properties.platformFaultDomain")
        return vmss, fd
    return vmss, _next_fault_domain(store, vmss)


def join(vm: Resource, vmss: Resource | None, fd: int | None) -> None:
    if vmss is None:
        return
    vm.properties["virtualMachineScaleSet"] = {"id": vmss.id}
    if fd is not None:
        vm.properties["platformFaultDomain"] = fd


def flexible_vm(store: Store, vmss: Resource, now: float, state: str = "Creating",
                suffix: str | None = None) -> tuple[Resource, list[Resource]]:
    """One Flexible instance from the set's model: a VM named ``{set}_{8 hex}`` (``suffix``: those 8, else random),
    its disks and NIC (to be put in the store by the caller, with the VM). Its tags are the set's."""
    profile = vmss.properties.get("virtualMachineProfile") or {}
    name = f"{vmss.name}_{suffix or uuid.uuid4().hex[:8]}"
    sub, rg, location = vmss.subscription_id, vmss.resource_group, vmss.location or ""
    vm_id = rid(sub, rg, m.PROVIDER, "virtualMachines", name)
    storage, disks = _disks_of(vmss, name, now, vm_id)
    nic = new_nic(sub, rg, f"{name}-nic", location, _subnet_of(profile) or "", None, now)
    nic.properties["virtualMachine"] = {"id": vm_id}
    network = {"networkInterfaces": [{"id": nic.id, "properties": {"primary": True, "deleteOption": "Delete"}}]}
    os_profile = dict(profile.get("osProfile") or {})
    prefix = os_profile.pop("computerNamePrefix", None) or vmss.name[:9]
    os_profile.setdefault("computerName", f"{prefix}{uuid.uuid4().hex[:6]}")
    vm = m.new_vm(sub, rg, name, location, now, size=(vmss.extra.get("sku") or {}).get("name") or "Standard_D2s_v5",
                  storage=storage, network=network, tags=dict(vmss.tags) if vmss.tags else None, os_profile=os_profile,
                  zones=vmss.extra.get("zones"), state=state)
    join(vm, vmss, _next_fault_domain(store, vmss))
    return vm, [*disks, nic]


def uniform_instance(vmss: Resource, now: float) -> tuple[Resource, list[Resource]]:
    """One Uniform instance: ``…/virtualMachines/{instanceId}`` named ``{set}_{instanceId}``, and its disks."""
    instance = str(vmss.internal.get("next_instance", 0))
    vmss.internal["next_instance"] = int(instance) + 1
    vm_id = f"{vmss.id}/virtualMachines/{instance}"
    storage, disks = _disks_of(vmss, f"{vmss.name}_{instance}", now, vm_id)
    fd = int(instance) % fault_domain_count(vmss)
    props = {"latestModelApplied": True, "vmId": str(uuid.uuid4()), "provisioningState": "Succeeded",
             "hardwareProfile": {"vmSize": (vmss.extra.get("sku") or {}).get("name")}, "storageProfile": storage,
             "osProfile": {"computerName": f"{vmss.name[:9]}{int(instance):06x}"}, "timeCreated": iso(now)}
    extra = {"instanceId": instance, "sku": {"name": (vmss.extra.get("sku") or {}).get("name"),
                                             "tier": (vmss.extra.get("sku") or {}).get("tier")}}
    return Resource(vm_id, VMSS_VM_TYPE, f"{vmss.name}_{instance}", vmss.location,
                    dict(vmss.tags) if vmss.tags else None, props, extra, {"platformFaultDomain": fd}, now), disks


def scale(store: Store, vmss: Resource, capacity: int, now: float, state: str = "Creating",
          rng: Any = None) -> tuple[list[Resource], list[Resource]]:
    """Brings the set to ``capacity`` instances: (instances made, instances to remove — newest first). What is made
    is put in the store here; what goes is removed by the caller (a Flexible VM as a VM delete does). ``rng``: a
    ``random.Random`` naming Flexible VMs (a seeded fleet's names are the same every time)."""
    current = sorted(members(store, vmss), key=lambda r: (r.created, r.key))
    made: list[Resource] = []
    for _ in range(max(0, capacity - len(current))):
        if mode_of(vmss) == FLEXIBLE:
            suffix = f"{rng.getrandbits(32):08x}" if rng is not None else None
            vm, parts = flexible_vm(store, vmss, now, state, suffix)
        else:
            vm, parts = uniform_instance(vmss, now)
        for part in parts:
            store.put(part)
        store.put(vm)
        made.append(vm)
    gone = list(reversed(current[capacity:])) if capacity < len(current) else []
    vmss.extra.setdefault("sku", {})["capacity"] = capacity
    return made, gone


def remove_instance(store: Store, instance: Resource) -> None:
    """An instance the set removes (a scale-in, the set's delete): its disks and NIC go with it."""
    if instance.type == m.VM_TYPE:
        m.begin_delete_vm(store, instance).done()
        return
    for disk_id in m.vm_disk_ids(instance):
        store.delete(disk_id)
    store.delete(instance.id)


def begin_delete_set(store: Store, vmss: Resource, on_removed: Callable[[Resource], None] = lambda r: None) -> Deletion:
    """Deleting a scale set deletes its instances (a Flexible set's VMs too), then the set."""
    vmss.properties["provisioningState"] = "Deleting"

    def done() -> None:
        for instance in members(store, vmss):
            remove_instance(store, instance)
            on_removed(instance)
        store.delete(vmss.id)

    def failed() -> None:
        vmss.properties["provisioningState"] = "Failed"

    return Deletion(vmss.location or "", done, failed)
