"""A vault point to recover files from: a Windows or Linux VM (straight in the emulator's store, as the fleet seed
makes VMs), protected by a vault, with a recovery point taken an hour ago. Shared by the emulator's item-level
recovery tests and the app's (shared/restore/ilr.py)."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.recoveryservices import models as rs

RG = "rg-ilr"
REGION = "westeurope"


@dataclass(frozen=True)
class VaultPoint:
    vault_id: str
    vault: str
    item_id: str
    container: str
    item: str
    point: str
    vm_id: str

    @property
    def id(self) -> str:
        return f"{self.item_id}/recoveryPoints/{self.point}"

    def sdk_args(self) -> tuple[str, str, str, str, str, str]:
        """(vault, group, fabric, container, item, point) as item_level_recovery_connections.provision/revoke take them."""
        return self.vault, RG, "Azure", self.container, self.item, self.point


def put_vm(emu, sub: str, name: str, os_type: str, rg: str = RG, region: str = REGION) -> str:
    from emulator.compute import models as cm
    from emulator.network.responses import new_nic, new_vnet

    with emu.lock:
        store, now = emu.store, emu.clock.timestamp()
        store.add_subscription(sub)
        if rg.lower() not in store.subscription(sub).resource_groups:
            store.put_resource_group(sub, rg, region)
        vnet = store.put(new_vnet(sub, rg, f"vnet-{name}", region, ["10.0.0.0/16"],
                                  [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}], None, now))
        nic = store.put(new_nic(sub, rg, f"{name}-nic", region, vnet.properties["subnets"][0]["id"], None, now))
        disk = cm.new_disk(sub, rg, f"{name}-osdisk", region, now, size_gb=64, creation={"createOption": "FromImage"},
                           os_type=os_type)
        storage = {"osDisk": {"osType": os_type, "name": disk.name, "createOption": "FromImage",
                              "managedDisk": {"id": disk.id, "storageAccountType": "Premium_LRS"}, "diskSizeGB": 64},
                   "dataDisks": []}
        vm = cm.new_vm(sub, rg, name, region, now, size="Standard_D2s_v5", storage=storage,
                       network={"networkInterfaces": [{"id": nic.id}]}, tags=None, state="Succeeded")
        cm.attach_disk(disk, vm.id)
        store.put(disk)
        nic.properties["virtualMachine"] = {"id": vm.id}
        store.put(vm)
        return vm.id


def vault_point(emu, sub: str, vm: str = "vm-files", os_type: str = "Linux") -> VaultPoint:
    vm_id = put_vm(emu, sub, vm, os_type)
    vault_id = rs.seed_vault(emu, sub, RG, "vault-ilr", REGION)
    item_id = rs.seed_protected_item(emu, vault_id, vm_id)
    point = rs.seed_recovery_point(emu, item_id, age_seconds=3600)
    return VaultPoint(vault_id, "vault-ilr", item_id, rs.container_name(RG, vm), rs.item_name(RG, vm), point, vm_id)


def session(emu, vp: VaultPoint) -> dict | None:
    """The emulator's record of the point's item-level recovery session, if one is active (reading state only)."""
    from emulator.recoveryservices import ilr

    with emu.lock:
        item = emu.store.get(vp.item_id)
        found = ilr.session(item, vp.point, emu.clock.timestamp()) if item is not None else None
        return dict(found) if found else None
