"""Site Recovery enable: 100 VMs tagged ``vmkeeper-dr: critical``, from the ``replication_sweep`` timer to every VM's
replication ``Protected`` and recorded (median of 3 runs, each a fresh emulator, so the vault starts empty),
against the floor — the emulated waits the first VM must sit through, one after the other: its infrastructure,
made once, level by level (the fabrics and the replication policy; the protection containers and the network
mapping; the container mappings), each level one ``OPERATION_SECONDS`` operation; then its item's enable job
(``OPERATION_SECONDS``) and its initial replication (``INITIAL_REPLICATION_SECONDS``: the emulator's own default,
60 s). Every other VM's item is enabled side by side once the infrastructure is there, so a run's floor is one VM's
path. The gap is what vmkeeper adds: the sweep, queue hops, polls of ASR's operations (at their Retry-After, whole
seconds), reads, table writes — about the same few seconds whatever the durations (``overhead_seconds`` in the
result: the ratio for other durations follows from it).

Not in the floor, because the emulator answers them at once: the isolated recovery VNet's PUT (a short LRO in
ARM), the eligibility read, the Resource Graph listing and every other read. ARM throttling is off here."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench import asr_world
from emulator.siterecovery.items import DEFAULT_INITIAL_REPLICATION_SECONDS

VMS = int(os.environ.get("VMKEEPER_BENCH_REPLICATION_VMS", "100"))
OPERATION_SECONDS = float(os.environ.get("VMKEEPER_BENCH_REPLICATION_OPERATION_SECONDS", "5"))  # every emulated LRO
INITIAL_REPLICATION_SECONDS = float(os.environ.get("VMKEEPER_BENCH_REPLICATION_IR_SECONDS")
                                    or DEFAULT_INITIAL_REPLICATION_SECONDS)  # the emulator's default
LEVELS = 3  # infrastructure levels one after the other (shared/replication/plan.py)
RUNS = int(os.environ.get("VMKEEPER_BENCH_REPLICATION_RUNS", "3"))
TIMEOUT = float(os.environ.get("VMKEEPER_BENCH_REPLICATION_TIMEOUT", "600"))  # seconds: longer is a failed run
APP = "vmkeeper/"  # the app's User-Agent


def policy(sub: str) -> dict[str, Any]:
    return {"schedule": {"every_hours": 24}, "snapshots": {}, "replication": asr_world.block(sub)}


def _phases(calls: list[dict[str, Any]], began: float, protected: dict[str, float]) -> dict[str, Any]:
    """Where a run's time went, from the emulator's call log (the app's calls, their times) and the rows."""
    from shared.replication import names

    ours = [c for c in calls if APP in (c.get("userAgent") or "")]

    def first(method: str, segment: str) -> float | None:
        times = [c["time"] for c in ours if c["method"] == method and segment in c["path"].lower()
                 and c["status"] in (200, 201, 202)]
        return min(times) if times else None
    levels = {"fabrics": first("PUT", "/replicationfabrics/vmk-"), "containers": first("PUT", "/replicationprotectioncontainers/"),
              "container_mappings": first("PUT", "/replicationprotectioncontainermappings/")}
    per_vm: dict[str, dict[str, float | None]] = {}
    for vm_id, done in protected.items():
        name, item = vm_id.rsplit("/", 1)[-1], names.protected_item(vm_id).lower()
        looked = [c["time"] for c in ours if c["method"] == "GET" and c["path"].lower().endswith(f"/virtualmachines/{name}")]
        put = [c["time"] for c in ours if c["method"] == "PUT" and c["path"].lower().endswith(f"/replicationprotecteditems/{item}")]
        start, sent = (min(looked) if looked else None), (min(put) if put else None)
        per_vm[vm_id] = {
            "sweep_to_first_look": asr_world.seconds_between(began, start),
            "first_look_to_item_sent": asr_world.seconds_between(start, sent),
            "item_sent_to_protected": asr_world.seconds_between(sent, done),
            # the emulated enable job and initial replication end at sent + their spans: later is our look's lag
            "protected_to_recorded": None if sent is None else round(
                done - (sent + OPERATION_SECONDS + INITIAL_REPLICATION_SECONDS), 3)}
    phases = {k: asr_world.spread([p[k] for p in per_vm.values()]) for k in next(iter(per_vm.values()))}
    return {"levels_first_put_after_sweep": {k: asr_world.seconds_between(began, v) for k, v in levels.items()},
            "per_vm": phases, "app_calls": len(ours),
            "app_calls_by_method": {m: sum(1 for c in ours if c["method"] == m) for m in ("GET", "PUT", "POST", "DELETE")}}


def run() -> list[dict]:
    from devtools.processes import azurite

    walls, details = [], []
    with azurite() as storage:
        for _ in range(RUNS):
            with asr_world.world(storage, VMS, policy, emulator={
                    "lro": {"default_seconds": OPERATION_SECONDS, "retry_after_ms": None},
                    "siterecovery": {"initial_replication_seconds": INITIAL_REPLICATION_SECONDS}}) as w:
                w["host"].start()
                mark = len(w["az"].calls())
                began = time.time()
                protected = asr_world.replicate_all(w, VMS, TIMEOUT)
                wall = max(protected.values()) - began
                walls.append(round(wall, 3))
                details.append({"wall": round(wall, 3), **_phases(w["az"].calls(mark), began, protected),
                                "host_invocations": len(w["host"].invocations)})
                print(f"   run {len(walls)}: {wall:.2f} s", flush=True)
    wall = statistics.median(walls)
    floor = (LEVELS + 1) * OPERATION_SECONDS + INITIAL_REPLICATION_SECONDS
    return [{"name": "replication.enable_100_vms_sweep_to_protected", "figure": wall, "unit": "s",
             "baseline": "emulated floor: the first VM's path — its infrastructure made once, 3 levels one after "
                         "the other (fabrics and policy; containers and network mapping; container mappings), "
                         "its item's enable job, its initial replication; the other items in parallel after",
             "baseline_figure": floor, "ratio": wall / floor,
             "detail": {"vms": VMS, "operation_seconds": OPERATION_SECONDS,
                        "initial_replication_seconds": INITIAL_REPLICATION_SECONDS, "runs": walls, "median_of": RUNS,
                        "overhead_seconds": round(wall - floor, 3), "run_details": details}}]
