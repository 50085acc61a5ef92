"""Scheduled protection: one slot over a fleet (3 subscriptions × 1,000 VMs × ~2.5 disks, ARM's
throttle scaled so the slot takes about a minute) — wall time ÷ the throttle-bound minimum (writes
needed ÷ the write refill rate, per subscription, subscriptions in parallel), ARM reads and writes
per disk, peak memory — and the same fleet through two baselines in the same run: a sequential
runbook-style loop (snapshot, wait, next) and an unpaced thread pool.

The emulator runs in its own process (as ARM is not in ours). ARM's published limits are a
bucket of 200 writes refilled at 10/s and 250 reads at 25/s per subscription; both are scaled by
the same factor. ``VMKEEPER_BENCH_VMS_PER_SUB`` and ``VMKEEPER_BENCH_SCALE`` change the fleet and
the factor; the baselines run over a sample of the disks (a sequential loop over 7,500 disks would
take an hour) and report disks per second."""

from __future__ import annotations

import importlib
import json
import os
import resource
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

SUBSCRIPTIONS = 3
VMS_PER_SUB = int(os.environ.get("VMKEEPER_BENCH_VMS_PER_SUB", "1000"))
SCALE = float(os.environ.get("VMKEEPER_BENCH_SCALE", "3"))  # × ARM's limits: ~2,500 writes per subscription in ~a minute
WRITE_BURST, WRITE_RATE = round(200 * SCALE), 10.0 * SCALE
# vmkeeper's budget: ARM's refill rate, and ARM's bucket less one second of refill, headroom for
# the moments between promising writes and making them.
OUR_BURST = round(WRITE_BURST - WRITE_RATE)
READ_BURST, READ_RATE = round(250 * SCALE), 25.0 * SCALE
BASELINE_SAMPLE = 300  # disks through each baseline
POLICIES = {"version": 1, "default": "all", "policies": {"all": {"schedule": {"every_hours": 1}, "snapshots": {"luns": "all"}}}}


def _fleet(az) -> list[str]:
    subs = az.seed(subscriptions=SUBSCRIPTIONS, resource_groups=10, vms=SUBSCRIPTIONS * VMS_PER_SUB, data_disks=[1, 2],
                   regions=["westeurope"], tag_sets=[{}], seed=9)["subscriptions"]
    az.settings(lro={"default_seconds": 0.2, "retry_after_ms": 100}, throttle=THROTTLE)
    return subs


THROTTLE = {"enabled": True, "limits": {"writes": {"capacity": WRITE_BURST, "rate": WRITE_RATE},
                                        "reads": {"capacity": READ_BURST, "rate": READ_RATE}}}


def _disks(az, subs):
    from azure.mgmt.compute import ComputeManagementClient

    out = []
    for sub in subs:
        for vm in az.client(ComputeManagementClient, sub).virtual_machines.list_all():
            out += [(sub, vm.id.split("/")[4], vm.storage_profile.os_disk.managed_disk.id)]
            out += [(sub, vm.id.split("/")[4], d.managed_disk.id) for d in vm.storage_profile.data_disks]
    return out


def _calls(az, since: int) -> tuple[int, int]:
    """(reads, writes) as ARM counts them: a Resource Graph query is a POST but reads."""
    calls = az.calls(since)
    graph = [c for c in calls if "microsoft.resourcegraph" in c["path"].lower()]
    writes = sum(1 for c in calls if c["method"] in ("PUT", "PATCH", "POST", "DELETE")) - len(graph)
    return sum(1 for c in calls if c["method"] == "GET") + len(graph), writes


def _snapshot(name: str, disk: str):
    from azure.mgmt.compute.models import CreationData, Snapshot

    return Snapshot(location="westeurope", incremental=True, creation_data=CreationData(create_option="Copy", source_resource_id=disk))


def run_vmkeeper(az, storage, subs) -> dict:
    import function_app
    from devtools.functions_host import LocalFunctionsHost

    policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-bench-"), "policies.json")
    with open(policy_file, "w", encoding="utf-8") as fh:
        json.dump(POLICIES, fh)
    suffix = uuid.uuid4().hex[:8]
    os.environ.update({"VMKEEPER_SUBSCRIPTIONS": ",".join(subs), "VMKEEPER_POLICY_FILE": policy_file,
                       "VMKEEPER_SCHEDULE": "0 0 * * * *", "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                       "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
                       "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_WRITE_BURST": str(OUR_BURST),
                       "VMKEEPER_WRITES_PER_SECOND": str(int(WRITE_RATE))})
    host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
    host.ensure_queues()
    since = len(az.calls())
    start = time.perf_counter()
    planned: list[float] = []
    # The timer runs beside the queue trigger, as in the Functions host: the first jobs start while
    # the timer still records what it sent.
    timer = threading.Thread(target=lambda: (host.fire_timer("plan_slot"), planned.append(time.perf_counter() - start)))
    timer.start()
    while timer.is_alive():
        host.run_until_idle(timeout=1800)
        time.sleep(0.05)
    assert planned, "the plan_slot timer failed"
    assert host.run_until_idle(timeout=1800)
    seconds, planned = time.perf_counter() - start, planned[0]
    failed = sum(1 for i in host.invocations if not i["ok"])
    jobs = sum(1 for i in host.invocations if i["ok"] and i["function"] == "protection_worker")
    host.close()
    redelivered = sum(1 for i in host.invocations if (i.get("dequeue_count") or 1) > 1)
    poisoned = azure_queue_count(storage, os.environ["VMKEEPER_JOBS_QUEUE"] + "-poison")
    reads, writes = _calls(az, since)
    return {"seconds": seconds, "planned_seconds": planned, "reads": reads, "writes": writes, "failed_steps": failed,
            "poisoned": poisoned, "steps": jobs, "redelivered": redelivered, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def azure_queue_count(storage, name: str) -> int:
    from azure.storage.queue import QueueClient

    return QueueClient.from_connection_string(storage.connection_string, name).get_queue_properties().approximate_message_count


def run_sequential(az, disks) -> float:
    """Disks per second of a runbook-style loop: snapshot, wait for it, next."""
    from azure.mgmt.compute import ComputeManagementClient

    start = time.perf_counter()
    for i, (sub, rg, disk) in enumerate(disks):
        client = az.client(ComputeManagementClient, sub, polling_interval=0)
        client.snapshots.begin_create_or_update(rg, f"seq-{i}", _snapshot(f"seq-{i}", disk)).result()
    return len(disks) / (time.perf_counter() - start)


def run_unpaced(az, disks) -> tuple[float, int]:
    """Seconds for the whole fleet through 32 threads, each PUT then polled by the SDK, with its
    retries (429 included) and no budget; and how many snapshots failed."""
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
    from devtools.processes import azurite, emulator_process
    from emulator.testing import LocalAzure, StaticCredential
    from shared import wiring

    with emulator_process() as info, azurite() as storage:
        az = LocalAzure(info["base_url"], info["ca_path"])
        subs = _fleet(az)
        disks = _disks(az, subs)
        os.environ.update({"AzureWebJobsStorage": storage.connection_string, "VMKEEPER_ARM_ENDPOINT": az.base_url,
                           "VMKEEPER_ARM_CA_BUNDLE": az.ca_path})
        wiring.use(wiring.Wiring(credential=StaticCredential()))
        ours = run_vmkeeper(az, storage, subs)
        per_sub = len(disks) / len(subs)
        minimum = max(0.0, per_sub - WRITE_BURST) / WRITE_RATE  # subscriptions refill in parallel
        az.settings(throttle=THROTTLE)  # full buckets again for each baseline
        unpaced, unpaced_errors = run_unpaced(az, disks)
        az.settings(throttle=THROTTLE)
        sample = disks[:: max(1, len(disks) // BASELINE_SAMPLE)][:BASELINE_SAMPLE]
        sequential = len(disks) / run_sequential(az, sample)  # seconds for the whole fleet at the sample's pace
    fleet = {"subscriptions": len(subs), "vms": len(subs) * VMS_PER_SUB, "disks": len(disks),
             "writes": {"burst": WRITE_BURST, "per_second": WRITE_RATE}, "reads": {"burst": READ_BURST, "per_second": READ_RATE}}
    return [
        {"name": "scheduled.slot_wall_over_throttle_minimum", "figure": ours["seconds"], "unit": "s",
         "baseline": "throttle-bound minimum: (writes per subscription - burst) / refill rate", "baseline_figure": minimum,
         "ratio": ours["seconds"] / minimum if minimum else float("inf"),
         "detail": {**fleet, "plan_and_enqueue_seconds": ours["planned_seconds"],
                    "reads_per_disk": ours["reads"] / len(disks), "writes_per_disk": ours["writes"] / len(disks),
                    "peak_rss_mib": ours["peak_rss"] / 2**20, "job_steps": ours["steps"],
                    "failed_steps": ours["failed_steps"], "poisoned_jobs": ours["poisoned"]}},
        {"name": "scheduled.slot_vs_sequential_runbook", "figure": ours["seconds"], "unit": "s",
         "baseline": f"sequential loop: snapshot, wait, next (paced on {len(sample)} disks, scaled to the fleet)",
         "baseline_figure": sequential, "ratio": ours["seconds"] / sequential, "detail": fleet},
        {"name": "scheduled.slot_vs_unpaced_pool", "figure": ours["seconds"], "unit": "s",
         "baseline": "32 unpaced threads with the SDK's retries, the whole fleet", "baseline_figure": unpaced,
         "ratio": ours["seconds"] / unpaced, "detail": {**fleet, "unpaced_failures": unpaced_errors}},
    ]
