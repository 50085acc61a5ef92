"""A world to restore from, made by vmkeeper itself: one VM (an OS disk and two data disks) protected on
schedule — a snapshot set and a restore point, each copied to the second region — through the local
Functions host, Azurite and the emulator. The restore tests and the demo's story start here."""

from __future__ import annotations

import importlib
import json
import time
import uuid
from typing import Any

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import wiring
from shared.access import OPERATOR, READER, encode_principal

REGION, SECOND = "westeurope", "northeurope"
POLICIES = {"version": 1, "default": "full", "policies": {"full": {
    "schedule": {"every_hours": 1}, "snapshots": {"luns": "all", "include_os_disk": True},
    "restore_point": {"consistency": "CrashConsistent"}, "copy": {"region": SECOND}}}}
OPERATOR_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000aa", [OPERATOR], name="ops@example.com")
READER_PRINCIPAL = encode_principal("00000000-0000-0000-0000-0000000000bb", [READER], name="audit@example.com")


def start(az: Any, emu: Any, azurite: Any, tmp_path: Any, monkeypatch: Any, *, vault: bool = False,
          wiring_class: type = wiring.Wiring, credential: Any = None, saved: dict[str, Any] | None = None,
          **extra: str) -> dict[str, Any]:
    """The app on the local host over the seeded world; with ``vault``, the VM also has an Azure Backup
    recovery point in its region's vault (VMKEEPER_VAULTS names it). ``wiring_class``: the app's wiring,
    or a test's subclass of it (parts that misbehave); ``credential``: the app's identity (default: the
    tests' own static one); ``extra``: more settings, ``{sub}`` standing for the seeded subscription. With ``saved`` (from ``save``), the world a slot already protected instead: its
    emulator state, and its app tables' rows in this world's own tables."""
    import function_app

    if saved is None:
        summary = az.seed(subscriptions=1, resource_groups=2, vms=1, data_disks=[2, 2], regions=[REGION, SECOND],
                          tag_sets=[{}], seed=11)
        sub = summary["subscriptions"][0]
    else:
        assert vault == bool(saved["vaults"]), "a saved world has a vault if it was started with one"
        emu.load_state(saved["state"])
        sub = saved["sub"]
    extra = {k: v.replace("{sub}", sub) for k, v in extra.items()}  # a setting naming the seeded subscription
    world: dict[str, Any] = {"sub": sub, "vm_id": f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/"
                                                  "Microsoft.Compute/virtualMachines/vm-00000"}
    if vault and saved is None:
        extra["VMKEEPER_VAULTS"] = json.dumps({REGION: protect_in_vault(world, emu, az)})
    elif vault:
        from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

        extra["VMKEEPER_VAULTS"] = saved["vaults"]
        world["vault_id"] = json.loads(saved["vaults"])[REGION]
        world["backup"] = az.client(RecoveryServicesBackupClient, sub, polling_interval=0)
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(POLICIES))
    suffix = uuid.uuid4().hex[:8]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}", "VMKEEPER_RESTORE_QUEUE": f"restores-{suffix}",
                "VMKEEPER_RESTORE_TABLE": f"restores{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
                "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_SCHEDULE": "0 0 * * * *",
                "VMKEEPER_RESTORE_SCOPES": f"/subscriptions/{sub}/resourceGroups/rg-restore,"
                                           f"/subscriptions/{sub}/resourceGroups/rg-vm-00,"
                                           f"/subscriptions/{sub}/resourceGroups/rg-vm-01",
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path, **extra}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wired = wiring.use(wiring_class(credential=credential or StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    if saved is None:
        from azure.mgmt.resource.resources import ResourceManagementClient

        az.client(ResourceManagementClient, sub).resource_groups.create_or_update("rg-restore", {"location": REGION})
    else:
        fill_tables(azurite.connection_string, settings, saved["tables"])
    return {**world, "host": host, "settings": settings, "wiring": wired,
            "subnet": {r: f"/subscriptions/{sub}/resourceGroups/rg-vm-{i:02d}/providers/Microsoft.Network/"
                          f"virtualNetworks/vnet-{r}/subnets/default" for i, r in enumerate((REGION, SECOND))}}


def protect_once(world: dict[str, Any]) -> None:
    """One scheduled slot, run to the end: the set, the restore point and their copies."""
    world["host"].fire_timer("plan_slot")
    assert world["host"].run_until_idle(timeout=120)


def protected(local_azure: Any, azurite: Any, tmp_path: Any, build: Any = None, **kwargs: Any) -> dict[str, Any]:
    """A world ``build`` starts (``start`` by default, with ``kwargs``) and one slot protects, saved (``save``) for
    tests to start from with ``start(saved=...)``: a module's tests each start from their own copy of it, in a
    fresh emulator, instead of each running a slot of its own (seconds each: its steps wait whole seconds in
    the queue). Built on a fresh emulator; its app settings are undone and its host closed before it returns."""
    return saved_after(local_azure, azurite, tmp_path, build or start, protect_once, **kwargs)


def saved_after(local_azure: Any, azurite: Any, tmp_path: Any, build: Any, then: Any = None,
                **kwargs: Any) -> dict[str, Any]:
    """A world ``build`` starts (with ``kwargs``) and ``then(world)`` brings to rest, saved (``save``) on a fresh
    emulator; its app settings are undone and its host closed before it returns."""
    import pytest

    from tests.conftest import FAST

    az, emu = local_azure
    az.reset()
    az.settings(**FAST)
    with pytest.MonkeyPatch.context() as mp:
        w = build(az, emu, azurite, tmp_path, mp, **kwargs)
        try:
            if then is not None:
                then(w)
            return save(w, emu, tmp_path / "saved.json")
        finally:
            w["host"].close()


def save(world: dict[str, Any], emu: Any, path: Any) -> dict[str, Any]:
    """The world as it stands, for ``start(saved=...)``: the emulator's state (written to ``path``) and the rows
    of the app's tables by their setting. Only a world at rest is saved: its queues empty, no handler running."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    connection, settings = world["settings"]["AzureWebJobsStorage"], world["settings"]
    for setting, name in settings.items():
        for queue in (name, f"{name}-poison") if setting.endswith("_QUEUE") else ():
            try:
                left = QueueClient.from_connection_string(connection, queue).get_queue_properties().approximate_message_count
            except ResourceNotFoundError:
                continue
            assert left == 0, f"{queue}: {left} message(s): not a world at rest"
    tables = {}
    for setting, name in settings.items():
        if setting.endswith("_TABLE"):
            try:
                tables[setting] = [dict(row) for row in TableClient.from_connection_string(connection, name).list_entities()]
            except ResourceNotFoundError:  # never used: made on first use, by the app
                pass
    emu.save_state(str(path))
    return {"state": str(path), "sub": world["sub"], "vaults": settings.get("VMKEEPER_VAULTS"), "tables": tables}


def fill_tables(connection: str, settings: dict[str, str], tables: dict[str, list[dict[str, Any]]]) -> None:
    from azure.data.tables import TableClient

    for setting, rows in tables.items():
        table = TableClient.from_connection_string(connection, settings[setting])
        table.create_table()
        for row in rows:
            table.create_entity(row)


def protect_in_vault(world: dict[str, Any], emu: Any, az: Any) -> str:
    """The VM enrolled in Azure Backup in its region's vault with one recovery point (backup now)."""
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
    from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

    from emulator.recoveryservices.models import seed_protected_item, seed_vaults
    from shared.autoprotect.steps import container_name, item_name

    vault_id = seed_vaults(emu, world["sub"], "rg-backup", [REGION])[REGION]
    seed_protected_item(emu, vault_id, world["vm_id"])
    backup = az.client(RecoveryServicesBackupClient, world["sub"], polling_interval=0)
    vault = vault_id.split("/")[-1]
    backup.backups.trigger(vault, "rg-backup", "Azure", container_name("rg-vm-00", "vm-00000"),
                           item_name("rg-vm-00", "vm-00000"), BackupRequestResource(properties=IaasVMBackupRequest()))
    # Backup now is a job: its recovery point is there once the job has ended (waited for, as an operator would).
    deadline = time.monotonic() + 60
    while True:
        (job,) = backup.backup_jobs.list(vault, "rg-backup", filter="operation eq 'Backup'")
        if job.properties.status != "InProgress":
            assert job.properties.status == "Completed", job.properties.status
            break
        assert time.monotonic() < deadline, "the backup job has not ended"
        time.sleep(0.05)
    world["backup"], world["vault_id"] = backup, vault_id
    return vault_id


def storage_account_id(sub: str) -> str:
    """A staging account for Azure Backup restores (the emulator records it; it holds no VHDs)."""
    return f"/subscriptions/{sub}/resourceGroups/rg-restore/providers/Microsoft.Storage/storageAccounts/vmkstaging"


def old_snapshot_set(az: Any, world: dict[str, Any], age: Any, policy: str = "full") -> str:
    """A complete snapshot set of the VM from ``age`` (a timedelta) ago, named and tagged as vmkeeper names
    and tags one (arranged with plain SDK clients); returns its set id (its names: ``world["set_names"][id]``)."""
    from datetime import UTC, datetime

    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import CreationData, Snapshot

    from shared import tags as T
    from shared.names import set_id as set_id_of
    from shared.names import snapshot_name
    from shared.schedule.planner import DiskRef

    c = az.client(ComputeManagementClient, world["sub"], polling_interval=0)
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    disks = [(None, vm.storage_profile.os_disk.managed_disk.id)] + [(d.lun, d.managed_disk.id)
                                                                    for d in vm.storage_profile.data_disks]
    slot = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:00:00Z")
    at = datetime.strptime(slot, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    set_id = set_id_of(vm.id, at)  # the set the slot's own job would make: a later run of the slot adopts it
    for lun, disk in disks:
        tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: policy, T.SLOT: slot,
                T.SET: set_id, T.SET_SIZE: str(len(disks)), T.LUN: str(lun)}
        name = snapshot_name(vm.name, DiskRef(disk, "", lun), at)
        world.setdefault("set_names", {}).setdefault(set_id, []).append(name)  # OS disk first, then by LUN
        c.snapshots.begin_create_or_update("rg-vm-00", name, Snapshot(
            location=vm.location, tags=tags, incremental=True,
            creation_data=CreationData(create_option="Copy", source_resource_id=disk))).result()
        az.advance(61)  # under 7 incremental snapshots per disk per 5 minutes
    return set_id


def wiring_wrapping(setting: str, wrap: Any) -> type:
    """The app's wiring with one table, the one the app setting ``setting`` names, handed through ``wrap``: a
    test's stand-in for a worker dying or racing at that table's writes. Every other table and queue is real."""

    class Wrapped(wiring.Wiring):
        @property
        def storage(self) -> Any:
            real, env = super().storage, self.env

            class Storage:
                def queue(self, name: str) -> Any:
                    return real.queue(name)

                def table(self, name: str) -> Any:
                    return wrap(real.table(name)) if name == env[setting] else real.table(name)
            return self._once("wrapped-storage", Storage)
    return Wrapped


class CrashAfter:
    """The restores table as a worker dying right after ``step`` finished in Azure, before it could
    record it: the first save that would mark the step done raises, once (once for every wrapper sharing
    ``died``)."""

    def __init__(self, table: Any, step: str, died: dict[str, bool] | None = None):
        self.table, self.step, self.crashed = table, step, False
        self.died = died if died is not None else {"once": False}

    def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        steps = json.loads(entity.get("steps") or "[]")
        if not self.died["once"] and any(s["name"] == self.step and s.get("finished_at") for s in steps):
            self.crashed = self.died["once"] = True
            raise ConnectionResetError(f"test: the worker died after {self.step}, before saving")
        return self.table.update_entity(entity, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


def crash_after(step: str) -> tuple[Any, dict[str, bool]]:
    """(a wrapper for ``wiring_wrapping("VMKEEPER_RESTORE_TABLE", …)``, whether the worker died yet)."""
    died = {"once": False}
    return (lambda table: CrashAfter(table, step, died)), died
