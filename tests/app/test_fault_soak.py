"""Fault soak: the whole app over several days of the emulator's clock — auto-protect, scheduled
slots (snapshot sets and restore points, copied to a second region), retention passes — while
ARM fails 5–20% of calls (429, 500, 503, connection resets, long-running operations that end
Failed), queue sends are duplicated, delayed or lost with the worker (it died between its ARM
write and its queue update: the host redelivers what it was running), and operators add holds,
locks and tags of their own at random moments. Then, with the faults off, it asserts what a
backup tool must never do:

- a VM enrolled twice, or not at all;
- a due slot with neither one complete set per VM and kind nor a poisoned job with its reason;
- a held, locked, foreign or newest complete artifact deleted;
- a tag someone else wrote, lost.

The timers' services are called with the emulator's clock (the timer adapters pass the wall
clock; everything else goes through the local Functions host, Azurite and the emulator).
``make test`` runs a short soak; ``pytest -m slow`` the long one.
"""

from __future__ import annotations

import base64
import importlib
import json
import random
import time
import uuid
from datetime import datetime

import pytest

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import tags as T
from shared import wiring
from tests.app.chaos import ChaosWiring, retried
from tests.app.test_autoprotect import vm_event

REGION, COPY_REGION = "westeurope", "northeurope"
HOURS = 12  # a slot every 12 h
POLICY = {"version": 1, "default": "gold", "policies": {"gold": {
    "schedule": {"every_hours": HOURS}, "snapshots": {"luns": "all"},
    "restore_point": {"consistency": "CrashConsistent"}, "copy": {"region": COPY_REGION},
    "retention": {"keep_last": 2, "deferral": "PT6H", "orphan_grace": "P1D"}, "backup_policy": "DefaultPolicy"}}}


def soak(az, emu, azurite, tmp_path, monkeypatch, *, vms: int, days: int, seed: int) -> None:
    from azure.data.tables import TableClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import RestorePointCollectionUpdate, SnapshotUpdate
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient
    from azure.mgmt.resource.locks import ManagementLockClient
    from azure.mgmt.resource.locks.models import ManagementLockObject
    from azure.storage.queue import QueueClient

    import function_app
    from emulator.recoveryservices.models import seed_vaults
    from shared.policy.document import load_policy_file
    from shared.schedule.planner import DiskRef, collection_name, restore_point_name, slot_for, snapshot_name
    from shared.schedule.service import jobs_partition

    rng = random.Random(seed)
    sub = az.seed(subscriptions=1, resource_groups=1, vms=vms, data_disks=[1, 2], regions=[REGION],
                  tag_sets=[{"vmkeeper-policy": "gold"}], seed=seed, vm_prefix="soak")["subscriptions"][0]
    vaults = seed_vaults(emu, sub, "rg-backup", [REGION, COPY_REGION])
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(POLICY))
    suffix = uuid.uuid4().hex[:8]
    settings = {
        "AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
        "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_VAULTS": json.dumps(vaults),
        "VMKEEPER_BACKUP_POLICIES": json.dumps({"gold": "DefaultPolicy"}),  # (retired: the policy document says)
        "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}", "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}",
        "VMKEEPER_PROTECT_TABLE": f"protect{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
        "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_SCHEDULE": "0 0 */12 * * *",
        "VMKEEPER_RETENTION_SCHEDULE": "0 30 */12 * * *", "VMKEEPER_PROTECT_RETRY_SECONDS": "1",
        "VMKEEPER_PROTECT_RETRY_MAX_SECONDS": "2", "VMKEEPER_ARM_ENDPOINT": az.base_url,
        "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    tally: dict[str, int] = {"killed": 0, "delayed": 0, "duplicated": 0}
    app = wiring.use(ChaosWiring(rng, tally, credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    compute = az.client(ComputeManagementClient, sub, retry_total=0)
    locks = az.client(ManagementLockClient, sub, retry_total=0).management_locks
    backup = az.client(RecoveryServicesBackupClient, sub)
    fleet = [vm for vm in compute.virtual_machines.list_all()]
    faults = [{"kind": kind, "operation": "Microsoft\\.(Compute|RecoveryServices)/.*", "probability": p}
              for kind, p in (("429", 0.04), ("500", 0.03), ("503", 0.03), ("reset", 0.03), ("lro_failed", 0.02))]

    def now() -> datetime:
        return datetime.fromisoformat(az.admin("GET", "clock")["now"])

    # Someone else's snapshot, and what operators do to ours: never to be lost.
    foreign_ids = set()
    for vm in fleet[:2]:
        disk = vm.storage_profile.os_disk.managed_disk.id
        snap = retried(lambda d=disk, v=vm: compute.snapshots.begin_create_or_update(
            "rg-soak-00", f"ops-{v.name}", {"location": REGION, "tags": {"owner": "ops"}, "properties": {
                "incremental": True, "creationData": {"createOption": "Copy", "sourceResourceId": d}}}).result())
        foreign_ids.add(snap.id.lower())
    holds: dict[str, int] = {}  # artifact id → the call at which the hold was in place
    locked: dict[str, int] = {}
    foreign_tags: dict[str, tuple[str, str]] = {}

    def operators_meddle() -> None:
        snaps = [s for s in retried(lambda: list(compute.snapshots.list_by_resource_group("rg-soak-00")))
                 if T.is_managed(s.tags)]
        rpcs = [c for c in retried(lambda: list(compute.restore_point_collections.list("rg-soak-00")))
                if T.is_managed(c.tags)]
        for s in rng.sample(snaps, min(2, len(snaps))):
            action = rng.choice(["hold", "lock", "tag"])
            fresh = retried(lambda s=s: compute.snapshots.get("rg-soak-00", s.name))
            if action == "lock":
                retried(lambda s=s: locks.create_or_update_by_scope(s.id, "ops-legal", ManagementLockObject(level="CanNotDelete")))
                locked[s.id.lower()] = len(az.calls())
                continue
            extra = {T.HOLD: ""} if action == "hold" else {"cost-center": f"cc-{rng.randint(1, 99)}"}
            retried(lambda s=s, f=fresh, e=extra: compute.snapshots.begin_update(
                "rg-soak-00", s.name, SnapshotUpdate(tags={**(f.tags or {}), **e})).result())
            if action == "hold":
                holds[s.id.lower()] = len(az.calls())
            else:
                foreign_tags[s.id.lower()] = next(iter(extra.items()))
        for c in rng.sample(rpcs, min(1, len(rpcs))):
            fresh = retried(lambda c=c: compute.restore_point_collections.get("rg-soak-00", c.name))
            extra = rng.choice([{T.HOLD: "case-1"}, {"owner-team": "dba"}])
            retried(lambda c=c, f=fresh, e=extra: compute.restore_point_collections.update(
                "rg-soak-00", c.name, RestorePointCollectionUpdate(tags={**(f.tags or {}), **e})))
            if T.HOLD in extra:
                holds[c.id.lower()] = len(az.calls())
            else:
                foreign_tags[c.id.lower()] = next(iter(extra.items()))

    schedule = load_policy_file(policy_file).policies["gold"].schedule
    az.faults(faults, seed=seed)
    # Auto-protect: every VM's write event, delivered at least once (and again after a failure).
    for vm in fleet:
        event = vm_event(vm.id, sub)
        for _ in range(rng.choice([1, 2])):
            retried(lambda e=event: host.deliver_event("vm_events", e))
    slots, timings = [], []
    t_protect = time.monotonic()
    assert host.run_until_idle(timeout=300)
    timings.append(("protect", round(time.monotonic() - t_protect, 1)))
    for _ in range(days * 24 // HOURS):
        az.advance(HOURS * 3600)
        moment = now()
        slots.append(slot_for(schedule, moment))
        t0 = time.monotonic()
        retried(lambda m=moment: app.schedule.plan_and_enqueue(m))
        assert host.run_until_idle(timeout=300)
        t1 = time.monotonic()
        operators_meddle()
        az.advance(3600)
        t2 = time.monotonic()
        retried(lambda: app.retention.run(now()))
        timings.append((round(t1 - t0, 1), round(t2 - t1, 1), round(time.monotonic() - t2, 1)))
    fired = sum(r["fired"] for r in az.admin("GET", "faults")["rules"])
    az.faults([])
    assert fired > 0  # the faults really happened
    assert host.run_until_idle(timeout=300)
    for _ in range(2):  # quiet passes: whatever was due is applied
        az.advance(7 * 3600)
        app.retention.run(now())
    host.close()
    calls = az.calls()

    # 1. Every VM enrolled, once.
    items = [i for vault_id in vaults.values()
             for i in backup.backup_protected_items.list(vault_id.split("/")[8], vault_id.split("/")[4])]
    enrolled = [i.properties.source_resource_id.lower() for i in items]
    assert sorted(enrolled) == sorted(vm.id.lower() for vm in fleet), "every VM enrolled exactly once"

    # 2. Every due slot: one complete set per VM and kind, or a poisoned job with its reason.
    poison = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"] + "-poison")
    poisoned: dict[tuple[str, str, str], str] = {}
    for m in poison.receive_messages(max_messages=32, messages_per_page=32):
        body = json.loads(base64.b64decode(m.content))
        job = body["message"].get("job", {})
        poisoned[(job.get("vm_id", ""), job.get("type", ""), job.get("slot", ""))] = body["reason"]
    assert all(poisoned.values()), "a poisoned job carries its reason"
    ledger = TableClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_LEDGER_TABLE"])
    put_ok = {c["path"].lower() for c in calls if c["method"] == "PUT" and c["status"] in (200, 201, 202)}
    missing = []
    done_sets = 0
    for slot in slots:
        slot_text = slot.isoformat()
        rows = {r["item"]: r for r in ledger.query_entities(f"PartitionKey eq '{jobs_partition(slot_text)}'")}
        for vm in fleet:
            disks = [DiskRef(vm.storage_profile.os_disk.managed_disk.id, "", None)] + [
                DiskRef(d.managed_disk.id, "", d.lun) for d in vm.storage_profile.data_disks]
            for kind, names in (("snapshot_set", [f"/snapshots/{snapshot_name(vm.name, d, slot)}" for d in disks]),
                                ("restore_point", [f"/restorepointcollections/{collection_name(vm.id, vm.name)}"
                                                   f"/restorepoints/{restore_point_name(vm.id, slot)}"])):
                key = f"{vm.id.lower()}|{kind}|{slot_text}"
                if rows.get(key, {}).get("outcome") == "done":
                    made = all(any(p.endswith(n.lower()) for p in put_ok) for n in names)
                    done_sets += made
                    if not made:
                        missing.append((key, "done but not all members were made"))
                elif (vm.id.lower(), kind, slot_text) not in poisoned:
                    missing.append((key, rows.get(key, {}).get("outcome", "no outcome")))
    assert not missing, missing

    # 3. Nothing held, locked, foreign or newest-complete deleted.
    deleted = [(i, c["path"].lower().split("?")[0]) for i, c in enumerate(calls)
               if c["method"] == "DELETE" and c["status"] in (200, 202, 204) and "/locks/" not in c["path"].lower()]
    wrong = []
    for i, path in deleted:
        for rid, at in list(holds.items()) + list(locked.items()):
            if at <= i and (path == rid or path.startswith(rid + "/")):
                wrong.append((path, "held or locked"))
        if any(path == f for f in foreign_ids):
            wrong.append((path, "foreign"))
    existing = {s.id.lower() for s in compute.snapshots.list_by_resource_group("rg-soak-00")}
    for vm in fleet:
        newest = next((s for s in reversed(slots) if (vm.id.lower(), "snapshot_set", s.isoformat()) not in poisoned), None)
        if newest is not None:
            names = [snapshot_name(vm.name, DiskRef(vm.storage_profile.os_disk.managed_disk.id, "", None), newest)]
            if not any(e.endswith("/" + n.lower()) for e in existing for n in names):
                trail = [(c["method"], c["status"], c["path"].split("/")[-1][-14:]) for c in calls if names[0].lower() in c["path"].lower()]
                row = next(iter(ledger.query_entities(
                    f"PartitionKey eq '{jobs_partition(newest.isoformat())}' and item eq "
                    f"'{vm.id.lower()}|snapshot_set|{newest.isoformat()}'")), {})
                wrong.append((names[0], "newest complete set deleted", row.get("outcome"), row.get("reason"), trail))
    assert not wrong, wrong

    # 4. No tag someone else wrote, lost.
    lost = []
    for rid, (name, value) in foreign_tags.items():
        res = next((s for s in compute.snapshots.list_by_resource_group("rg-soak-00") if s.id.lower() == rid), None) \
            if "/snapshots/" in rid else next((c for c in compute.restore_point_collections.list("rg-soak-00")
                                                if c.id.lower() == rid), None)
        if res is not None and (res.tags or {}).get(name) != value:
            lost.append((rid, name))
    for rid in holds:
        res = next((s for s in compute.snapshots.list_by_resource_group("rg-soak-00") if s.id.lower() == rid), None)
        if res is not None and T.HOLD not in (res.tags or {}):
            lost.append((rid, T.HOLD))
    assert not lost, lost

    print(f"\nsoak: {len(fleet)} VMs, {len(slots)} slots over {days} days: {len(enrolled)} enrolled once; "
          f"{done_sets} sets complete, {len(poisoned)} jobs poisoned with a reason; {len(deleted)} deletes, "
          f"0 held/locked/foreign/newest deleted ({len(holds)} holds, {len(locked)} locks, {len(foreign_tags)} tags "
          f"of others kept); {fired} ARM faults, queue chaos {tally}; seconds {timings}")


def test_a_short_fault_soak(az, emu, azurite, tmp_path, monkeypatch):
    soak(az, emu, azurite, tmp_path, monkeypatch, vms=4, days=2, seed=1)


@pytest.mark.slow
def test_a_long_fault_soak(az, emu, azurite, tmp_path, monkeypatch):
    soak(az, emu, azurite, tmp_path, monkeypatch, vms=20, days=5, seed=2)
