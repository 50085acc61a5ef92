"""A retention pass against local Azure: the engine's decisions applied through the real SDK,
with deferred deletion (mark, then delete), holds, locks, dry run and faults on deletes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from azure.mgmt.compute.models import CreationData, Snapshot
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.locks.models import ManagementLockObject

from emulator.testing import StaticCredential
from shared import tags as T
from shared.azure import pacing
from shared.azure.ledger import Ledger
from shared.retention.engine import RetentionPolicy
from shared.retention.service import Retention
from shared.wiring import Wiring


@pytest.fixture
def world(az, emu, sub, compute, azurite):
    from azure.data.tables import TableClient

    vm = compute.virtual_machines.get("rg-vm-00", "vm-00000")
    disks = [vm.storage_profile.os_disk.managed_disk.id] + [d.managed_disk.id for d in vm.storage_profile.data_disks]

    def snapshot_set(slot: str, extra: dict | None = None, owned: bool = True) -> list[str]:
        names = []
        for i, disk in enumerate(disks):
            tags = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.ARTIFACT_POLICY: "gold", T.SLOT: slot,
                    T.SET: f"set-{slot}"} if owned else {"owner": "someone-else"}
            tags.update(extra or {})
            name = f"s-{slot[:13].replace(':', '')}-{i}"
            compute.snapshots.begin_create_or_update("rg-vm-00", name, Snapshot(
                location=vm.location, tags=tags, incremental=True,
                creation_data=CreationData(create_option="Copy", source_resource_id=disk))).result()
            names.append(name)
            az.advance(61)  # stay under 7 incremental snapshots per disk per 5 minutes
        return names

    table = lambda name: TableClient.from_connection_string(azurite.connection_string, f"{name}{uuid.uuid4().hex[:8]}")  # noqa: E731
    ledger = Ledger(table("ledger"))
    budget = pacing.WriteBudget(table("budget"), rate=50, burst=100)
    arm = Wiring({"VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path},
                 credential=StaticCredential(), arm_options={"retry_backoff_factor": 0.01}).arm
    retention = Retention(arm, ledger, budget, [sub])

    def run(now_offset_hours: float, dry_run: bool = False, policy: RetentionPolicy | None = None):
        now = emu.clock.now() + timedelta(hours=now_offset_hours)
        policies = {"gold": policy or RetentionPolicy(keep_last=1, deferral=timedelta(hours=24))}
        return retention.run(now, policies, dry_run=dry_run)

    def names() -> set[str]:
        az.advance(1)  # deletes are long-running: let the accepted ones finish (the emulator's clock)
        return {s.name for s in compute.snapshots.list_by_resource_group("rg-vm-00")}

    return {"snapshot_set": snapshot_set, "run": run, "names": names, "ledger": ledger, "vm": vm}


def test_mark_then_delete_only_expired_owned_sets(world, compute):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    new = world["snapshot_set"]("2026-11-21T00:00:00Z")
    foreign = world["snapshot_set"]("2026-11-19T00:00:00Z", owned=False)
    _, first = world["run"](0)
    assert first.marked == len(old) and first.deleted == 0
    assert all(T.EXPIRING in compute.snapshots.get("rg-vm-00", n).tags for n in old)
    _, early = world["run"](1)  # within the 24 h deferral: nothing goes
    assert early.deleted == 0 and world["names"]() >= set(old)
    _, second = world["run"](25)
    assert second.deleted == len(old)
    assert world["names"]() == set(new) | set(foreign)
    _, third = world["run"](26)
    assert third.deleted == 0 and third.marked == 0  # running again deletes nothing more


def test_hold_and_lock_stop_a_deletion_and_dry_run_deletes_nothing(world, az, sub, compute):
    held = world["snapshot_set"]("2026-11-18T00:00:00Z", extra={T.HOLD: "case-42"})
    locked = world["snapshot_set"]("2026-11-19T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    snap = compute.snapshots.get("rg-vm-00", locked[0])
    az.client(ManagementLockClient, sub).management_locks.create_or_update_by_scope(
        snap.id, "legal", ManagementLockObject(level="CanNotDelete"))
    decisions, dry = world["run"](0, dry_run=True)
    assert dry.marked == 0 and dry.deleted == 0
    by_id = {d.artifact_id.rsplit("/", 1)[-1]: d for d in decisions}
    assert {by_id[n].rule for n in held} == {"hold"}
    assert by_id[locked[0]].rule == "locked" and by_id[locked[1]].rule == "set_member_kept"
    world["run"](0)
    world["run"](30)
    assert world["names"]() >= set(held) | set(locked)


def test_faults_on_deletes_delete_nothing_twice_and_nothing_wrong(world, az):
    old = world["snapshot_set"]("2026-11-20T00:00:00Z")
    new = world["snapshot_set"]("2026-11-21T00:00:00Z")
    world["run"](0)
    az.faults([{"kind": "500", "method": "DELETE", "probability": 0.5},
               {"kind": "reset", "method": "DELETE", "probability": 0.2}], seed=3)
    for hours in (25, 26, 27, 28, 29, 30):
        world["run"](hours)
    az.faults([])
    world["run"](31)
    assert world["names"]() == set(new)
    deletes = [c for c in az.calls() if c["method"] == "DELETE" and c["status"] in (200, 202)]
    assert len({c["path"].lower() for c in deletes}) == len(deletes) == len(old)


def test_the_timer_function_runs_a_dry_pass_from_app_settings(world, az, sub, azurite, tmp_path, monkeypatch):
    import importlib
    import json

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from emulator.testing import StaticCredential
    from shared import wiring

    world["snapshot_set"]("2026-11-20T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps({"version": 1, "default": "gold", "policies": {
        "gold": {"schedule": {"every_hours": 24}, "snapshots": {"luns": "all"}, "retention": {"keep_last": 1}}}}))
    ledger_table = f"ledger{uuid.uuid4().hex[:8]}"
    for name, value in {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                        "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_RETENTION_DRY_RUN": "true",
                        "VMKEEPER_LEDGER_TABLE": ledger_table, "VMKEEPER_RETENTION_SCHEDULE": "0 0 3 * * *",
                        "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path}.items():
        monkeypatch.setenv(name, value)
    wiring.use(wiring.Wiring(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string)
    before = world["names"]()
    host.fire_timer("retention_pass")
    host.close()
    assert world["names"]() == before  # a dry run deletes nothing and marks nothing
    from azure.data.tables import TableClient

    rows = list(TableClient.from_connection_string(azurite.connection_string, ledger_table).list_entities())
    assert len(rows) == len(before) and all(r["dryRun"] for r in rows)


def test_retention_lifts_only_its_own_expired_locks(world, az, sub, compute):
    own = world["snapshot_set"]("2026-11-18T00:00:00Z", extra={T.LOCK_UNTIL: "2026-11-19T00:00:00Z"})
    foreign = world["snapshot_set"]("2026-11-19T00:00:00Z")
    world["snapshot_set"]("2026-11-21T00:00:00Z")
    locks = az.client(ManagementLockClient, sub).management_locks
    for name in own:
        locks.create_or_update_by_scope(compute.snapshots.get("rg-vm-00", name).id, T.OWN_LOCK,
                                        ManagementLockObject(level="CanNotDelete"))
    locks.create_or_update_by_scope(compute.snapshots.get("rg-vm-00", foreign[0]).id, "legal",
                                    ManagementLockObject(level="CanNotDelete"))
    world["run"](0)
    world["run"](25)
    names = world["names"]()
    assert not set(own) & names  # expired, ours, lock date passed: lifted and deleted
    assert set(foreign) <= names  # someone else's lock: never lifted
    assert [lk.name for lk in locks.list_at_subscription_level()] == ["legal"]
