"""DR drills: 10 VMs × (OS disk + 3 data disks), protected by a scheduled slot (second-region copies)
through the local host, then one drill each, from the ``plan_drills`` timer to every drill's group
removed, against the floor — the emulated operations a drill must wait for, one after the other: the
disks (in parallel), the VM, then the resource group's delete. The drills run side by side, so the
run's floor is one drill's. The gap is what vmkeeper adds: queue hops, polls, table writes, reads.

Not in the floor, because the emulator answers them at once as ARM mostly does: the group and VNet
PUTs, the NIC PUT, the boot (the emulator's VM agent is Ready once the VM is provisioned), Resource
Graph's listing of what is left."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
import uuid
from datetime import datetime

OPERATION_SECONDS = float(os.environ.get("VMKEEPER_BENCH_DRILL_OPERATION_SECONDS", "5"))  # every emulated LRO
VMS, DATA_DISKS = 10, 3
REGION, SECOND = "westeurope", "northeurope"
POLICIES = {"version": 1, "default": "full", "policies": {"full": {
    "schedule": {"every_hours": 1}, "snapshots": {"luns": "all", "include_os_disk": True},
    "restore_point": {"consistency": "CrashConsistent"}, "copy": {"region": SECOND},
    "drill": {"every_days": 7, "point": "copy", "all_vms": True, "keep_hours": 0, "keep_failed_hours": 0,
              "ready_timeout_minutes": 10}}}}
TIMEOUT = float(os.environ.get("VMKEEPER_BENCH_DRILL_TIMEOUT", "600"))  # seconds: longer is a failed run


def _seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds(), 3)


def _phases(row: dict, restore: dict | None) -> dict:
    """Where one drill's time went, from its ledger row (and its restore's record)."""
    out = {"choose": _seconds(row.get("planned"), row.get("began")),
           "isolate": _seconds(row.get("began"), row.get("requested")),
           "restore": _seconds(row.get("requested"), row.get("restored")),
           "boot": _seconds(row.get("restored"), row.get("readyAt")),
           "teardown": _seconds(row.get("readyAt"), row.get("removedAt"))}
    if restore:
        steps = restore.get("steps") or []
        out["restore_steps"] = {s["name"]: s["seconds"] for s in steps}
        last = max((s["finished_at"] for s in steps if s.get("finished_at")), default=None)
        out["restore_queue_hop"] = _seconds(row.get("requested"), min((s["started_at"] for s in steps), default=None))
        out["restore_done_to_drill_saw_it"] = _seconds(last, row.get("restored"))
    return out


def _stuck(history: list, wired: object, host: object) -> str:
    """What the drills that did not end were doing: their rows, their restores, the host's failures."""
    lines = []
    for d in history:
        if d.cleanup in ("removed", "refused"):
            continue
        row = wired.drills.ledger.get("drills", d.id)
        record = wired.restores.records.get(row["restore"]) if row.get("restore") else None
        lines.append(f"drill {d.id}: {json.dumps(row, default=str)}\n  restore: {record}")
    failed = [i for i in host.invocations if not i.get("ok")]
    return "\n".join(lines + [f"failed invocations: {json.dumps(failed[-20:], default=str)}"])


def run() -> list[dict]:
    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from devtools.processes import azurite
    from emulator.testing import StaticCredential, in_process
    from shared import wiring

    with in_process() as (az, emu), azurite() as storage:
        sub = az.seed(subscriptions=1, resource_groups=2, vms=VMS, data_disks=[DATA_DISKS, DATA_DISKS],
                      regions=[REGION], tag_sets=[{}], seed=13)["subscriptions"][0]
        az.settings(lro={"default_seconds": 0.05, "retry_after_ms": 20}, throttle={"enabled": False})
        policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-bench-"), "policies.json")
        with open(policy_file, "w", encoding="utf-8") as fh:
            json.dump(POLICIES, fh)
        suffix = uuid.uuid4().hex[:8]
        settings = {
            "AzureWebJobsStorage": storage.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
            "VMKEEPER_POLICY_FILE": policy_file, "VMKEEPER_JOBS_QUEUE": f"bjobs-{suffix}",
            "VMKEEPER_PROTECT_QUEUE": f"bprotect-{suffix}", "VMKEEPER_RESTORE_QUEUE": f"brestore-{suffix}",
            "VMKEEPER_RESTORE_TABLE": f"brestore{suffix}", "VMKEEPER_LEDGER_TABLE": f"bledger{suffix}",
            "VMKEEPER_BUDGET_TABLE": f"bbudget{suffix}", "VMKEEPER_SCHEDULE": "0 0 * * * *",
            "VMKEEPER_DRILL_QUEUE": f"bdrills-{suffix}", "VMKEEPER_DRILL_SCHEDULE": "0 0 3 * * *",
            "VMKEEPER_ALERTS_TABLE": f"balerts{suffix}",
            "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
        }
        os.environ.update(settings)
        wired = wiring.use(wiring.Wiring(credential=StaticCredential()))
        host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
        host.ensure_queues()
        host.fire_timer("plan_slot")  # the copies the drills restore
        assert host.run_until_idle(timeout=300)

        az.settings(lro={"default_seconds": OPERATION_SECONDS, "retry_after_ms": None},
                    vm_agent={"ready_after_seconds": OPERATION_SECONDS})
        host.start()
        drills = wired.drills
        began = time.monotonic()
        host.fire_timer("plan_drills")
        while True:
            history = drills.history()
            if len(history) == VMS and all(d.cleanup in ("removed", "refused") for d in history):
                break
            if time.monotonic() - began > TIMEOUT:
                host.close()
                raise AssertionError(_stuck(history, wired, host))
            time.sleep(0.05)
        wall = time.monotonic() - began
        host.close()
        rows = {d.id: drills.ledger.get("drills", d.id) for d in history}
        restores = {i: wired.restores.records.get(r["restore"]) for i, r in rows.items() if r.get("restore")}
    assert all(d.result == "passed" and d.cleanup == "removed" for d in history), history
    phases = {i: _phases(r, restores[i].__dict__ if restores.get(i) else None) for i, r in rows.items()}
    names = ("choose", "isolate", "restore", "boot", "teardown", "restore_queue_hop", "restore_done_to_drill_saw_it")
    mean = {n: round(sum(p.get(n) or 0 for p in phases.values()) / len(phases), 3) for n in names}
    most = {n: max(p.get(n) or 0 for p in phases.values()) for n in names}
    floor = 4 * OPERATION_SECONDS
    return [{"name": "drill.ten_vms_plan_to_removed", "figure": wall, "unit": "s",
             "baseline": "emulated floor: disks in parallel, the VM, its agent Ready, the group's delete",
             "baseline_figure": floor, "ratio": wall / floor,
             "detail": {"vms": VMS, "disks_per_vm": 1 + DATA_DISKS, "operation_seconds": OPERATION_SECONDS,
                        "points": sorted({"snapshot_set" if rows[i]["point"].startswith("snapshot-set:")
                                          else "restore_point" for i in rows}),
                        "rto_seconds": sorted(d.rto_seconds for d in history),
                        "mean_phase_seconds": mean, "max_phase_seconds": most}}]
