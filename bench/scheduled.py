"""Scheduled protection: one slot over a fleet (3 subscriptions × 40 VMs × ~2.5 disks, ARM's
throttle scaled down so it binds) — wall time ÷ the throttle-bound minimum (writes needed ÷ the
write refill rate, per subscription, subscriptions in parallel), ARM reads and writes per disk, peak
memory — and the same fleet through two baselines in the same run: a sequential runbook-style
loop (snapshot, wait, next) and an unpaced thread pool."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor

SUBSCRIPTIONS, VMS_PER_SUB = 3, 40
WRITE_BURST, WRITE_RATE = 20, 20.0  # ARM's 200 / 10 per s, scaled so the throttle binds within the run
POLICIES = {"version": 1, "default": "all", "policies": {"all": {"schedule": {"every_hours": 1}, "snapshots": {"luns": "all"}}}}


def _fleet(az) -> list[str]:
    subs = az.seed(subscriptions=SUBSCRIPTIONS, resource_groups=2, vms=SUBSCRIPTIONS * VMS_PER_SUB, data_disks=[1, 2],
                   regions=["westeurope"], tag_sets=[{}], seed=9)["subscriptions"]
    az.settings(lro={"default_seconds": 0.2, "retry_after_ms": 100},
                throttle={"limits": {"writes": {"capacity": WRITE_BURST, "rate": WRITE_RATE}}})
    return subs


def _disks(az, subs):
    from azure.mgmt.compute import ComputeManagementClient

    out = []
    for sub in subs:
        for vm in az.client(ComputeManagementClient, sub).virtual_machines.list_all():
            out += [(sub, vm.id.split("/")[4], vm.storage_profile.os_disk.managed_disk.id)]
            out += [(sub, vm.id.split("/")[4], d.managed_disk.id) for d in vm.storage_profile.data_disks]
    return out


def _calls(az, since: int) -> tuple[int, int]:
    calls = az.calls(since)
    return (sum(1 for c in calls if c["method"] == "GET"), sum(1 for c in calls if c["method"] in ("PUT", "PATCH", "POST")))


def _snapshot(name: str, disk: str):
    from azure.mgmt.compute.models import CreationData, Snapshot

    return Snapshot(location="westeurope", incremental=True, creation_data=CreationData(create_option="Copy", source_resource_id=disk))


def run_vmkeeper(az, storage, subs) -> dict:
    import function_app
    from emulator.functions_host import LocalFunctionsHost

    policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-bench-"), "policies.json")
    with open(policy_file, "w", encoding="utf-8") as fh:
        json.dump(POLICIES, fh)
    suffix = uuid.uuid4().hex[:8]
    os.environ.update({"VMKEEPER_SUBSCRIPTIONS": ",".join(subs), "VMKEEPER_POLICY_FILE": policy_file,
                       "VMKEEPER_SCHEDULE": "0 0 * * * *", "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                       "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
                       "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_WRITE_BURST": str(WRITE_BURST),
                       "VMKEEPER_WRITES_PER_SECOND": str(int(WRITE_RATE))})
    host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1, workers=16)
    host.ensure_queues()
    since = len(az.calls())
    tracemalloc.start()
    start = time.perf_counter()
    host.fire_timer("plan_slot")
    assert host.run_until_idle(timeout=900, idle_sleep=0.05)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    failed = sum(1 for i in host.invocations if not i["ok"])
    host.close()
    reads, writes = _calls(az, since)
    return {"seconds": seconds, "reads": reads, "writes": writes, "peak": peak, "failed_steps": failed}


def run_sequential(az, disks) -> float:
    from azure.mgmt.compute import ComputeManagementClient

    start = time.perf_counter()
    for i, (sub, rg, disk) in enumerate(disks):
        client = az.client(ComputeManagementClient, sub, polling_interval=0)
        client.snapshots.begin_create_or_update(rg, f"seq-{i}", _snapshot(f"seq-{i}", disk)).result()  # snapshot, wait, next
    return time.perf_counter() - start


def run_unpaced(az, disks) -> tuple[float, int]:
    from azure.mgmt.compute import ComputeManagementClient

    clients = {sub: az.client(ComputeManagementClient, sub, polling_interval=0) for sub in {d[0] for d in disks}}
    errors = []

    def one(item) -> None:
        i, (sub, rg, disk) = item
        try:
            clients[sub].snapshots.begin_create_or_update(rg, f"pool-{i}", _snapshot(f"pool-{i}", disk)).result()
        except Exception as exc:  # noqa: BLE001 (counted: the baseline's failures are part of its figure)
            errors.append(exc)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(one, enumerate(disks)))
    return time.perf_counter() - start, len(errors)


def run() -> list[dict]:
    from emulator.processes import azurite
    from emulator.testing import StaticCredential, in_process
    from shared import azure_clients

    with in_process() as (az, _emu), azurite() as storage:
        subs = _fleet(az)
        disks = _disks(az, subs)
        os.environ.update({"AzureWebJobsStorage": storage.connection_string, "VMKEEPER_ARM_ENDPOINT": az.base_url,
                           "VMKEEPER_ARM_CA_BUNDLE": az.ca_path})
        azure_clients.use_credential(StaticCredential())
        ours = run_vmkeeper(az, storage, subs)
        per_sub = len(disks) / len(subs)
        minimum = max(0.0, per_sub - WRITE_BURST) / WRITE_RATE  # subscriptions refill in parallel
        az.admin("PATCH", "settings", {"throttle": {"limits": {"writes": {"capacity": WRITE_BURST, "rate": WRITE_RATE}}}})
        sequential = run_sequential(az, disks)
        unpaced, unpaced_errors = run_unpaced(az, disks)
    return [
        {"name": "scheduled.slot_wall_over_throttle_minimum", "figure": ours["seconds"], "unit": "s",
         "baseline": "throttle-bound minimum: (writes per subscription - burst) / refill rate", "baseline_figure": minimum,
         "ratio": ours["seconds"] / minimum if minimum else float("inf"),
         "detail": {"disks": len(disks), "reads_per_disk": ours["reads"] / len(disks),
                    "writes_per_disk": ours["writes"] / len(disks), "peak_python_mib": ours["peak"] / 2**20,
                    "failed_steps": ours["failed_steps"]}},
        {"name": "scheduled.slot_vs_sequential_runbook", "figure": ours["seconds"], "unit": "s",
         "baseline": "sequential loop: snapshot, wait, next", "baseline_figure": sequential,
         "ratio": ours["seconds"] / sequential, "detail": {"disks": len(disks)}},
        {"name": "scheduled.slot_vs_unpaced_pool", "figure": ours["seconds"], "unit": "s",
         "baseline": "32 unpaced threads with the SDK's retries", "baseline_figure": unpaced,
         "ratio": ours["seconds"] / unpaced, "detail": {"disks": len(disks), "unpaced_failures": unpaced_errors}},
    ]
