"""Retention: decisions for 100,000 artifacts — time and peak memory — with the growth from
10,000 to 100,000 measured in the same run (ratio of per-artifact cost; 1.0 = linear).

Goals, recorded in each result's detail: under 1.0 s and under 200 MiB for 100,000 artifacts, with
near-linear growth from 10,000."""

from __future__ import annotations

import gc
import random
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

GOAL_SECONDS = 1.0
GOAL_MIB = 200.0


def history(n: int, seed: int = 7) -> tuple[list, dict, set, datetime]:
    from shared import tags as T
    from shared.retention.engine import RESTORE_POINT, SNAPSHOT, Artifact, RetentionPolicy

    rng = random.Random(seed)
    now = datetime(2026, 11, 25, tzinfo=UTC)
    policies = {"gold": RetentionPolicy(keep_last=6, keep_daily=7, keep_weekly=4, keep_monthly=12, max_age=timedelta(days=400)),
                "bronze": RetentionPolicy(keep_last=7)}
    artifacts, vms = [], set()
    per_vm = 60  # about two months of daily sets of 2-3 disks and a restore point
    vm_count = max(1, n // per_vm)
    for v in range(vm_count):
        vm = f"/subscriptions/00000000-0000-0000-0000-{v % 3:012d}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm{v}"
        if rng.random() < 0.95:
            vms.add(vm)
        policy = "gold" if v % 2 else "bronze"
        for day in range(per_vm // 3):
            slot = now - timedelta(days=day, hours=rng.random())
            base = {T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm, T.ARTIFACT_POLICY: policy,
                    T.SLOT: slot.isoformat(), T.SET: f"{v}-{day}"}
            for disk in range(2):  # tagged as the workers do: the set's size, each snapshot's LUN
                artifacts.append(Artifact(id=f"{vm}/snap{day}-{disk}".replace("virtualmachines", "snapshots"), kind=SNAPSHOT,
                                          tags={**base, T.SET_SIZE: "2", T.LUN: str(disk)}, created=slot,
                                          region="westeurope", good=True))
            artifacts.append(Artifact(id=f"{vm}-rpc/restorePoints/rp{day}".replace("virtualmachines", "restorePointCollections"),
                                      kind=RESTORE_POINT, tags=base, created=slot, region="westeurope", good=rng.random() > 0.02))
    return artifacts[:n], policies, vms, now


def measure(n: int) -> tuple[float, int, int]:
    from shared.retention.engine import decide

    artifacts, policies, vms, now = history(n)
    gc.collect()
    start = time.perf_counter()
    decisions = decide(artifacts, policies, vms, now)
    seconds = time.perf_counter() - start
    del decisions
    gc.collect()
    tracemalloc.start()  # a second run for memory: tracing slows the first one's clock
    decisions = decide(artifacts, policies, vms, now)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(decisions) == len(artifacts)
    return seconds, peak, len(artifacts)


def run() -> list[dict]:
    small_s, small_mem, small_n = measure(10_000)
    big_s, big_mem, big_n = measure(100_000)
    per_small, per_big = small_s / small_n, big_s / big_n
    return [
        {"name": "retention.decide_100k_seconds", "figure": big_s, "unit": "s",
         "baseline": "10,000 artifacts scaled ×10 (linear growth)", "baseline_figure": per_small * big_n,
         "ratio": per_big / per_small, "detail": {"artifacts": big_n, "seconds_10k": small_s,
                                                  "goal": GOAL_SECONDS, "meets_goal": big_s < GOAL_SECONDS}},
        {"name": "retention.decide_100k_peak_memory", "figure": big_mem / 2**20, "unit": "MiB",
         "baseline": "10,000 artifacts scaled ×10 (linear growth)", "baseline_figure": small_mem / 2**20 * big_n / small_n,
         "ratio": (big_mem / big_n) / (small_mem / small_n), "detail": {"artifacts": big_n, "peak_10k_mib": small_mem / 2**20,
                                                                        "goal": GOAL_MIB, "meets_goal": big_mem / 2**20 < GOAL_MIB}},
    ]
