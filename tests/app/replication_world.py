"""Site Recovery enabled the way vmkeeper enables it (issue 21), for the worlds that start from replicated VMs
(the replica drills' and the failovers'): the DR side an operator deploys (the target-region vault, as
infra/backup/vault.bicep makes it, and the target resource group), a policy's ``replication`` block, the VMs tagged
``vmkeeper-dr: critical``, and the app's own ``replication_sweep`` timer and ``replication_worker`` queue on the
local Functions host (tests/app/test_replication.py tests that path itself), followed until every VM's row in the
ledger says ``protected``. Names are the app's (shared/replication/names.py)."""

from __future__ import annotations

import time
from typing import Any

from shared import tags as T
from shared.replication import names

SOURCE, TARGET = "westeurope", "northeurope"
VAULT_RG, VAULT, TARGET_RG = "rg-dr", "vault-dr", "rg-dr-target"
SRC_FABRIC, TGT_FABRIC = names.fabric(SOURCE), names.fabric(TARGET)
SRC_CONTAINER, TGT_CONTAINER = names.container(SOURCE), names.container(TARGET)
CRITICAL = {T.DR: T.DR_CRITICAL}


def vault_id(sub: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{VAULT_RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"


def cache_account(sub: str) -> str:
    """The source region's cache account (Standard, the vault's identity its Blob Data Contributor: infra/dr)."""
    return f"/subscriptions/{sub}/resourceGroups/{VAULT_RG}/providers/Microsoft.Storage/storageAccounts/vmkcache{SOURCE}"


def dr_side(az: Any, emu: Any, sub: str) -> str:
    """The target-region vault and the target group, as the deployment leaves them; returns the vault's id."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    from emulator.recoveryservices.models import seed_vault

    made = seed_vault(emu, sub, VAULT_RG, VAULT, TARGET)
    az.client(ResourceManagementClient, sub).resource_groups.create_or_update(TARGET_RG, {"location": TARGET})
    return made


def block(sub: str, network: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A policy's ``replication`` block: VMs tagged critical, to TARGET, into TARGET_RG (``network``: default an
    isolated VNet vmkeeper makes there)."""
    return {"target_region": TARGET, "target_resource_group": f"/subscriptions/{sub}/resourceGroups/{TARGET_RG}",
            "network": network or {"isolated": True}, "cache_storage_accounts": {SOURCE: cache_account(sub)}, **extra}


def app_settings(suffix: str) -> dict[str, str]:
    """The replication worker's queue and timer, waiting as little as the app allows (Site Recovery's operations
    are emulated fast: their Retry-After is below a second, so the app's own minimum of 1 s is the wait)."""
    return {"VMKEEPER_REPLICATION_QUEUE": f"replication-{suffix}", "VMKEEPER_REPLICATION_SCHEDULE": "0 10,40 * * * *",
            "VMKEEPER_REPLICATION_RETRY_SECONDS": "1", "VMKEEPER_REPLICATION_RETRY_MAX_SECONDS": "1"}


def site_recovery(az: Any, sub: str) -> Any:
    """A plain SiteRecoveryManagementClient (no vmkeeper user agent: the tests' reads are not the app's)."""
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    return az.client(SiteRecoveryManagementClient, sub, polling_interval=0)


def tag_critical(az: Any, sub: str, vm_id: str) -> None:
    """``vmkeeper-dr: critical`` merged into the VM's tags (the others kept)."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    az.client(ResourceManagementClient, sub).tags.begin_update_at_scope(
        vm_id, {"operation": "Merge", "properties": {"tags": CRITICAL}}).result()


def rows(settings: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The app's replication rows in its ledger, by VM id (lower case)."""
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    ledger = Ledger(TableClient.from_connection_string(settings["AzureWebJobsStorage"], settings["VMKEEPER_LEDGER_TABLE"]))
    return {r["vmId"]: r for r in ledger.rows("replication")}


def enable(host: Any, settings: dict[str, str], vm_ids: list[str], timeout: float = 90) -> dict[str, str]:
    """The sweep fired once, the host run until each VM's replication is ``protected`` (the worker polls
    Site Recovery to Protected: the emulated initial replication must be short). Returns each VM's item id."""
    import json

    host.fire_timer("replication_sweep")
    wanted, deadline = [v.lower() for v in vm_ids], time.monotonic() + timeout
    while True:
        host.run_until_idle(timeout=max(1.0, deadline - time.monotonic()))
        found = rows(settings)
        outcomes = {v: (found.get(v) or {}).get("outcome") for v in wanted}
        if all(o == "protected" for o in outcomes.values()):
            return {v: json.loads(found[v]["detail"])["item_id"] for v in wanted}
        assert time.monotonic() < deadline and not any(o and o != "protected" for o in outcomes.values()), (
            outcomes, [found.get(v) for v in wanted], host.invocations[-6:])
