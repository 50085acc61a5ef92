"""Seed a fleet straight into the store: subscriptions × resource groups × VMs with NICs, OS and
data disks, tags and regions. Deterministic for a given seed; no events (it is pre-existing).
Served as the admin API's ``POST /_emulator/seed``, which Compute adds to the admin API (see
``ADMIN`` in responses.py). The default tags are neutral: a caller that needs its own tags passes
``tag_sets``.

``scale_sets``: a list of ``{"name", "orchestration_mode": "Flexible" | "Uniform", "capacity", "fault_domains",
"tags", "data_disks", "group"}`` (``group``: the index of the seeded group it goes in, default 0): each a scale set
with ``capacity`` instances made from its model (compute/scalesets.py): a Flexible set's are VMs (counted in
``vms``), a Uniform set's are its instances."""

from __future__ import annotations

import random
import uuid
from typing import Any

from ..core.arm import normalize_location
from ..network.responses import new_nic, new_vnet
from . import models as compute
from . import scalesets

DEFAULT_REGIONS = ["westeurope", "northeurope", "eastus"]
DEFAULT_TAG_SETS: list[dict[str, str]] = [
    {"env": "prod", "tier": "web"},
    {"env": "prod", "tier": "data"},
    {"env": "dev", "tier": "web"},
    {"env": "dev"},
    {"env": "test"},
]
SIZES = ["Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5", "Standard_B2ms"]
FIELDS = {"subscriptions", "resource_groups", "vms", "regions", "data_disks", "tag_sets", "seed", "vm_prefix",
          "scale_sets"}
SCALE_SET_FIELDS = {"name", "orchestration_mode", "capacity", "fault_domains", "tags", "data_disks", "group"}


def _subscription_ids(spec: Any, rng: random.Random) -> list[str]:
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError("seed.subscriptions: must be >= 1")
        return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(spec)]
    if isinstance(spec, list) and spec and all(isinstance(s, str) for s in spec):
        return spec
    raise ValueError("seed.subscriptions: a count or a list of subscription ids")


def seed_fleet(emulator: Any, spec: dict[str, Any]) -> dict[str, Any]:
    unknown = set(spec) - FIELDS
    if unknown:
        raise ValueError(f"seed: unknown field(s) {sorted(unknown)} (known: {sorted(FIELDS)})")
    rng = random.Random(spec.get("seed", 0))
    subs = _subscription_ids(spec.get("subscriptions", 1), rng)
    groups = int(spec.get("resource_groups", 2))
    total_vms = int(spec.get("vms", 10))
    regions = [normalize_location(r) for r in spec.get("regions") or DEFAULT_REGIONS]
    low, high = spec.get("data_disks", [1, 4])
    if not 0 <= low <= high <= 64:
        raise ValueError("seed.data_disks: [min, max] with 0 <= min <= max <= 64")
    tag_sets = spec.get("tag_sets") or DEFAULT_TAG_SETS
    prefix = spec.get("vm_prefix", "vm")
    if groups < 1 or total_vms < 0:
        raise ValueError("seed.resource_groups must be >= 1 and seed.vms >= 0")
    store, now = emulator.store, emulator.clock.timestamp()

    layout = []  # (sub, rg name, region)
    for sub_id in subs:
        store.add_subscription(sub_id)
        for g in range(groups):
            region = regions[(len(layout)) % len(regions)]
            rg_name = f"rg-{prefix}-{g:02d}"
            store.put_resource_group(sub_id, rg_name, region, {"owner": "platform"})
            vnet = new_vnet(sub_id, rg_name, f"vnet-{region}", region, ["10.0.0.0/16"],
                            [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/20"}}], None, now)
            store.put(vnet)
            layout.append((sub_id, rg_name, region, vnet.properties["subnets"][0]["id"]))

    vm_ids, disk_count = [], 0
    for i in range(total_vms):
        sub_id, rg_name, region, subnet_id = layout[i % len(layout)]
        name = f"{prefix}-{i:05d}"
        tags = dict(tag_sets[i % len(tag_sets)])
        nic = new_nic(sub_id, rg_name, f"{name}-nic", region, subnet_id, None, now)
        store.put(nic)
        os_disk = compute.new_disk(sub_id, rg_name, f"{name}-osdisk", region, now, size_gb=64,
                                   creation={"createOption": "FromImage"}, os_type="Linux")
        data = []
        for lun in range(rng.randint(low, high)):
            disk = compute.new_disk(sub_id, rg_name, f"{name}-data{lun}", region, now, size_gb=rng.choice([32, 128, 256, 512]),
                                    creation={"createOption": "Empty"})
            data.append((lun, disk))
        storage = {
            "imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
            "osDisk": {"osType": "Linux", "name": os_disk.name, "createOption": "FromImage", "caching": "ReadWrite",
                       "managedDisk": {"storageAccountType": "Premium_LRS", "id": os_disk.id}, "diskSizeGB": 64,
                       "deleteOption": "Delete"},
            "dataDisks": [{"lun": lun, "name": d.name, "createOption": "Empty", "caching": "None",
                           "managedDisk": {"storageAccountType": "Premium_LRS", "id": d.id},
                           "diskSizeGB": d.properties["diskSizeGB"], "deleteOption": "Delete"} for lun, d in data],
        }
        network = {"networkInterfaces": [{"id": nic.id, "properties": {"primary": True, "deleteOption": "Delete"}}]}
        vm = compute.new_vm(sub_id, rg_name, name, region, now, size=rng.choice(SIZES), storage=storage, network=network,
                            tags=tags, os_profile={"computerName": name, "adminUsername": "azureuser"}, state="Succeeded")
        for disk in [os_disk] + [d for _, d in data]:
            compute.attach_disk(disk, vm.id)
            store.put(disk)
        nic.properties["virtualMachine"] = {"id": vm.id}
        store.put(vm)
        vm_ids.append(vm.id)
        disk_count += 1 + len(data)
    sets = []
    for n, set_spec in enumerate(spec.get("scale_sets") or []):
        made, disks = _seed_scale_set(store, layout, set_spec, n, now, rng)
        sets.append(made)
        disk_count += disks
        if made["orchestrationMode"] == scalesets.FLEXIBLE:
            vm_ids.extend(made["instances"])
    return {"subscriptions": subs, "resourceGroups": len(layout), "vms": len(vm_ids), "disks": disk_count,
            "regions": regions, "scaleSets": sets}


def _seed_scale_set(store: Any, layout: list[tuple[str, str, str, str]], spec: Any, n: int, now: float,
                    rng: random.Random) -> tuple[dict[str, Any], int]:
    where = f"seed.scale_sets[{n}]"
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{where}: an object with a name")
    unknown = set(spec) - SCALE_SET_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)} (known: {sorted(SCALE_SET_FIELDS)})")
    mode = spec.get("orchestration_mode", scalesets.FLEXIBLE)
    group = int(spec.get("group", 0))
    if mode not in scalesets.MODES or not 0 <= group < len(layout):
        raise ValueError(f"{where}: orchestration_mode Flexible or Uniform, group an index of the seeded groups")
    sub_id, rg_name, region, subnet_id = layout[group]
    allowed, default = scalesets.FAULT_DOMAIN_COUNTS[(mode, False)]
    fault_domains = int(spec.get("fault_domains", default))
    if fault_domains not in allowed:
        raise ValueError(f"{where}.fault_domains: one of {allowed} for a {mode} scale set")
    data = [{"lun": lun, "diskSizeGB": 32, "createOption": "Empty"} for lun in range(int(spec.get("data_disks", 1)))]
    profile = {"storageProfile": {"imageReference": {"publisher": "Canonical", "offer": "ubuntu-24_04-lts",
                                                     "sku": "server", "version": "latest"},
                                  "osDisk": {"createOption": "FromImage", "osType": "Linux", "diskSizeGB": 64,
                                             "managedDisk": {"storageAccountType": "Premium_LRS"}},
                                  "dataDisks": data},
               "osProfile": {"computerNamePrefix": spec["name"][:9], "adminUsername": "azureuser"},
               "networkProfile": {"networkInterfaceConfigurations": [{"name": "nic", "properties": {
                   "primary": True, "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet_id}}}]}}]}}
    vmss = scalesets.new_set(sub_id, rg_name, spec["name"], region, now, mode=mode, fault_domains=fault_domains,
                             sku={"name": "Standard_D2s_v5", "capacity": 0}, profile=profile,
                             tags=dict(spec.get("tags") or {}) or None)
    store.put(vmss)
    made, _ = scalesets.scale(store, vmss, int(spec.get("capacity", 2)), now, state="Succeeded", rng=rng)
    disks = sum(len(scalesets.m.vm_disk_ids(i)) for i in made)
    return {"id": vmss.id, "orchestrationMode": mode, "instances": [i.id for i in made]}, disks


def put_one_vm(emulator: Any, sub: str, rg: str, name: str, region: str, os_type: str = "Linux") -> str:
    """Arrange one provisioned VM (its own VNet, NIC and a 64 GB OS disk, no data disks) straight in the store, as
    the fleet seed does; for tests that need a VM of a given OS or place apart from the seeded fleet."""
    with emulator.lock:
        store, now = emulator.store, emulator.clock.timestamp()
        store.add_subscription(sub)
        if rg.lower() not in store.subscription(sub).resource_groups:
            store.put_resource_group(sub, rg, region)
        vnet = store.put(new_vnet(sub, rg, f"vnet-{name}", region, ["10.0.0.0/16"],
                                  [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}], None, now))
        nic = store.put(new_nic(sub, rg, f"{name}-nic", region, vnet.properties["subnets"][0]["id"], None, now))
        disk = compute.new_disk(sub, rg, f"{name}-osdisk", region, now, size_gb=64,
                                creation={"createOption": "FromImage"}, os_type=os_type)
        storage = {"osDisk": {"osType": os_type, "name": disk.name, "createOption": "FromImage",
                              "managedDisk": {"id": disk.id, "storageAccountType": "Premium_LRS"}, "diskSizeGB": 64},
                   "dataDisks": []}
        vm = compute.new_vm(sub, rg, name, region, now, size="Standard_D2s_v5", storage=storage,
                            network={"networkInterfaces": [{"id": nic.id}]}, tags=None, state="Succeeded")
        compute.attach_disk(disk, vm.id)
        store.put(disk)
        nic.properties["virtualMachine"] = {"id": vm.id}
        store.put(vm)
        return vm.id
