"""Site Recovery replication of a world's VM (tests/app/restore_world.py's), arranged through the app: the DR side an
operator deploys (the target-region vault, the target group), the policy's ``replication`` block
(``POLICY_BLOCK``), the VM tagged ``vmkeeper-dr: critical``, then the app's own ``replication_sweep`` timer and its
``replication_worker`` queue on the local Functions host (tests/app/test_replication.py tests that path itself) until
the VM's replicated item is sent; with ``wait``, through its initial replication to ``Protected``. Names are the
app's (shared/replication/names.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from shared.replication import names
from tests.app import replication_world as R

SOURCE, TARGET = R.SOURCE, R.TARGET
RG, VAULT, TARGET_RG = R.VAULT_RG, R.VAULT, R.TARGET_RG
IR_SECONDS = 60  # the emulated initial replication


def policy_block(sub: str) -> dict[str, Any]:
    """The ``replication`` block of the world's policy: its VMs tagged critical, to TARGET, an isolated VNet."""
    return R.block(sub)


def app_settings(suffix: str) -> dict[str, str]:
    """The replication worker's queue and waits (for ``restore_world.start``'s ``extra``)."""
    return R.app_settings(suffix)


def dr_vault(az: Any, emu: Any, world: dict[str, Any], monkeypatch: Any) -> str:
    """The target-region vault, made known to the app as VMKEEPER_VAULTS names it (read on the settings' first use,
    so before the first evaluation or sweep), with the target group."""
    vault_id = R.dr_side(az, emu, world["sub"])
    az.settings(siterecovery={"initial_replication_seconds": IR_SECONDS})
    vaults = json.dumps({TARGET: vault_id})
    monkeypatch.setenv("VMKEEPER_VAULTS", vaults)
    world["settings"]["VMKEEPER_VAULTS"] = vaults
    world["dr_vault"] = vault_id
    return vault_id


def site_recovery(az: Any, world: dict[str, Any]) -> Any:
    return R.site_recovery(az, world["sub"])


def tag_critical(az: Any, world: dict[str, Any]) -> None:
    """``vmkeeper-dr: critical`` merged into the VM's tags (the others kept)."""
    R.tag_critical(az, world["sub"], world["vm_id"])


def _run(world: dict[str, Any], done: Any, what: str, timeout: float = 60) -> Any:
    """The host's queues polled (the worker's steps) until ``done()`` gives something."""
    deadline = time.monotonic() + timeout
    while not (found := done()):
        assert time.monotonic() < deadline, (what, world["host"].invocations[-6:])
        if not world["host"].poll_once():
            time.sleep(0.1)
    return found


def replicate(az: Any, world: dict[str, Any], *, wait: bool = True) -> str:
    """The world's VM replicated by the app (the sweep finds it, the worker enables it); without ``wait`` the job is
    left following its initial replication (the emulator's clock decides when that ends); with ``wait``, the clock
    moves past it and the job records ``protected``. Returns the replicated item's id."""
    world["host"].fire_timer("replication_sweep")
    item = _run(world, lambda: _item(az, world), "the VM's replicated item sent")
    world["replicated_item"] = item.id
    if wait:
        az.advance(IR_SECONDS + 1)
        row = _run(world, lambda: (R.rows(world["settings"]).get(world["vm_id"].lower()) or {}).get("outcome")
                   == "protected", "the VM's replication recorded protected")
        assert row and replicated_item(az, world).properties.protection_state == "Protected"
    return item.id


def _item(az: Any, world: dict[str, Any]) -> Any:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return replicated_item(az, world)
    except ResourceNotFoundError:
        return None


def replicated_item(az: Any, world: dict[str, Any]) -> Any:
    return site_recovery(az, world).replication_protected_items.get(
        RG, VAULT, names.fabric(SOURCE), names.container(SOURCE), names.protected_item(world["vm_id"]))


def stall(az: Any, world: dict[str, Any], stalled: bool = True) -> None:
    """The emulator's admin switch: the item's replication stops (or resumes) making recovery points."""
    az.admin("POST", "siterecovery/stall", {"protectedItemId": world["replicated_item"], "stalled": stalled})
