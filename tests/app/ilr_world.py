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
    from emulator.compute.fleet import put_one_vm

    return put_one_vm(emu, sub, rg, name, region, os_type)


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
