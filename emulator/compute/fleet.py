"""Seed a fleet straight into the store: subscriptions × resource groups × VMs with NICs, OS and
data disks, tags and regions. Deterministic for a given seed; no events (it is pre-existing).
Served as the admin API's ``POST /_emulator/seed``, which Compute adds to the admin API (see
``ADMIN`` in responses.py). The default tags are neutral: a caller that needs its own tags passes
``tag_sets``."""

from __future__ import annotations

import random
import uuid
from typing import Any

from ..core.arm import normalize_location
from ..network.responses import new_nic, new_vnet
from . import models as compute

DEFAULT_REGIONS = ["westeurope", "northeurope", "eastus"]
DEFAULT_TAG_SETS: list[dict[str, str]] = [
    {"env": "prod", "tier": "web"},
    {"env": "prod", "tier": "data"},
    {"env": "dev", "tier": "web"},
    {"env": "dev"},
    {"env": "test"},
]
SIZES = ["Standard_D2s_v5", "Standard_D4s_v5", "Standard_E4s_v5", "Standard_B2ms"]
FIELDS = {"subscriptions", "resource_groups", "vms", "regions", "data_disks", "tag_sets", "seed", "vm_prefix"}


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
    return {"subscriptions": subs, "resourceGroups": len(layout), "vms": len(vm_ids), "disks": disk_count,
            "regions": regions}
