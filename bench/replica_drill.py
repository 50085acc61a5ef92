"""Replica drills: 10 VMs replicated by the app's own enable path (the ``replication_sweep`` timer, fast emulated
operations), then one replica drill each (``drill.point: replica``), from the ``plan_drills`` timer to every
drill's group removed (median of 3 runs over the same replicated fleet), against the floor — the emulated waits
a replica drill must sit through, one after the other: Site Recovery's test failover (its job, which makes and
boots the test VM), the test VM's agent getting Ready, the test failover's cleanup (its job), then the drill
group's delete, each ``OPERATION_SECONDS``. The drills run side by side, so a run's floor is one drill's. The gap
is what vmkeeper adds: queue hops, polls of ASR's operations (at their Retry-After, whole seconds), reads, table
writes.

Not in the floor, because the emulator answers them at once: the drill group's and VNet's PUTs (ARM answers a
group at once too; a VNet PUT there is a short LRO), the reads of the replicated items and recovery points, the
target group's listing and Resource Graph's listing of what is left. ARM throttling is off here."""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from bench import asr_world

VMS = int(os.environ.get("VMKEEPER_BENCH_REPLICA_DRILL_VMS", "10"))
OPERATION_SECONDS = float(os.environ.get("VMKEEPER_BENCH_REPLICA_DRILL_OPERATION_SECONDS", "5"))  # every emulated LRO
RUNS = int(os.environ.get("VMKEEPER_BENCH_REPLICA_DRILL_RUNS", "3"))
TIMEOUT = float(os.environ.get("VMKEEPER_BENCH_REPLICA_DRILL_TIMEOUT", "600"))  # seconds: longer is a failed run
DRILL = {"every_days": 7, "point": "replica", "all_vms": True, "keep_hours": 0, "keep_failed_hours": 0,
         "ready_timeout_minutes": 10}
FLOOR_STEPS = 4  # test failover, agent Ready, cleanup, group delete


def policy(sub: str, every_days: int = 7) -> dict[str, Any]:
    return {"schedule": {"every_hours": 24}, "snapshots": {}, "replication": asr_world.block(sub),
            "drill": {**DRILL, "every_days": every_days}}


def _phases(row: dict[str, Any]) -> dict[str, float | None]:
    """Where one drill's time went, from its ledger row."""
    s = asr_world.seconds_between
    return {"choose": s(row.get("planned"), row.get("began")),
            "isolate": s(row.get("began"), row.get("requested")),
            "test_failover": s(row.get("requested"), row.get("restored")),
            "boot": s(row.get("restored"), row.get("readyAt")),
            "cleanup": s(row.get("readyAt"), row.get("cleanupDone")),
            "cleanup_verified": s(row.get("cleanupDone"), row.get("tfoCleaned")),
            "group_delete": s(row.get("tfoCleaned"), row.get("removedAt"))}


def _stuck(history: list, w: dict[str, Any]) -> str:
    lines = [f"drill {d.id}: {json.dumps(w['wiring'].drills.ledger.get('drills', d.id), default=str)}"
             for d in history if d.cleanup != "removed"]
    return "\n".join(lines + [f"poisoned: {asr_world.poisoned(w, 'VMKEEPER_DRILL_QUEUE')[:5]}",
                              f"failed invocations: {asr_world.failed_invocations(w)}"])


def run() -> list[dict]:
    from devtools.processes import azurite

    settings = {"VMKEEPER_DRILL_QUEUE": "bdrills-{suffix}", "VMKEEPER_DRILL_SCHEDULE": "0 0 3 * * *",
                "VMKEEPER_RESTORE_QUEUE": "brestore-{suffix}", "VMKEEPER_RESTORE_TABLE": "brestore{suffix}"}
    walls, rows = [], {}
    with azurite() as storage, asr_world.world(storage, VMS, policy, settings, emulator={
            "lro": {"default_seconds": 0.05, "retry_after_ms": 20},
            "siterecovery": {"initial_replication_seconds": 0.1}}) as w:
        host, az, drills = w["host"], w["az"], w["wiring"].drills
        host.start()
        asr_world.replicate_all(w, VMS, TIMEOUT)  # the replicas the drills test (each with a recovery point)
        az.settings(lro={"default_seconds": OPERATION_SECONDS, "retry_after_ms": None},
                    vm_agent={"ready_after_seconds": OPERATION_SECONDS})
        for n in range(RUNS):
            # Another period for every VM (a drill's id derives from every_days and its period): new drills.
            with open(w["policy_file"], "w", encoding="utf-8") as fh:
                json.dump({"version": 1, "default": "dr", "policies": {"dr": policy(w["sub"], 7 + n)}}, fh)
            seen = {d.id for d in drills.history()}
            began = time.monotonic()
            host.fire_timer("plan_drills")
            while True:
                history = [d for d in drills.history() if d.id not in seen]
                if len(history) == VMS and all(d.cleanup in ("removed", "refused") for d in history):
                    break
                if time.monotonic() - began > TIMEOUT:
                    raise AssertionError(_stuck(history, w))
                time.sleep(0.05)
            walls.append(round(time.monotonic() - began, 3))
            print(f"   run {n + 1}: {walls[-1]:.2f} s", flush=True)
            assert all(d.result == "passed" and d.cleanup == "removed" for d in history), history
            for d in history:
                rows[d.id] = {**drills.ledger.get("drills", d.id), "rto": d.rto_seconds, "rpo": d.rpo_seconds}
    phases = [_phases(r) for r in rows.values()]
    wall = statistics.median(walls)
    floor = FLOOR_STEPS * OPERATION_SECONDS
    return [{"name": "replica_drill.ten_vms_plan_to_removed", "figure": wall, "unit": "s",
             "baseline": "emulated floor: the test failover's job, the test VM's agent Ready, the cleanup's job, "
                         "the drill group's delete",
             "baseline_figure": floor, "ratio": wall / floor,
             "detail": {"vms": VMS, "operation_seconds": OPERATION_SECONDS, "runs": walls, "median_of": RUNS,
                        "rto_seconds_range": [min(r["rto"] for r in rows.values()), max(r["rto"] for r in rows.values())],
                        "phase_seconds": {k: asr_world.spread([p[k] for p in phases]) for k in phases[0]}}}]
