"""Auto-protect: event-to-protected latency (p50, p95) in the emulator, against the floor — the sum
of the emulated operation durations on every VM's path (VM creation, enabling protection). The gap is what vmkeeper adds: event delivery, queue hops, and the whole-second
visibility delays of re-enqueued checks (Storage queues count in seconds; no function sleeps)."""

from __future__ import annotations

import importlib
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime

VMS = 40
OPERATION_SECONDS = 1.0  # every emulated long-running operation takes this long
# VM creation and enabling protection are always on a VM's path; a discovery refresh often is not
# (one refresh discovers every VM that exists by then), so the floor leaves it out.
CRITICAL_PATH = 2


def run() -> list[dict]:
    from azure.data.tables import TableClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    import function_app
    from devtools.fleet import VMKEEPER_TAG_SETS
    from devtools.functions_host import LocalFunctionsHost
    from devtools.processes import azurite
    from emulator.recoveryservices.models import seed_vaults
    from emulator.testing import StaticCredential, in_process
    from shared import wiring
    from shared.azure.ledger import Ledger
    from tests.app.test_autoprotect import create_vm

    with in_process() as (az, emu), azurite() as storage:
        sub = az.seed(subscriptions=1, resource_groups=1, vms=1, regions=["westeurope"],
                      tag_sets=VMKEEPER_TAG_SETS)["subscriptions"][0]
        az.settings(lro={"default_seconds": OPERATION_SECONDS}, throttle={"enabled": False})
        vaults = seed_vaults(emu, sub, "rg-backup", ["westeurope"])
        table = f"bench{uuid.uuid4().hex[:8]}"
        policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-bench-"), "policies.json")
        with open(policy_file, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "policies": {"gold": {"schedule": {"every_hours": 24}, "snapshots": {},
                                                           "backup_policy": "DefaultPolicy"}}}, fh)
        settings = {
            "AzureWebJobsStorage": storage.connection_string, "VMKEEPER_VAULTS": json.dumps(vaults),
            "VMKEEPER_POLICY_FILE": policy_file,
            "VMKEEPER_PROTECT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}", "VMKEEPER_PROTECT_TABLE": table,
            "VMKEEPER_JOBS_QUEUE": f"benchjobs-{uuid.uuid4().hex[:8]}",
            "VMKEEPER_PROTECT_RETRY_SECONDS": "1", "VMKEEPER_PROTECT_RETRY_MAX_SECONDS": "1",
            "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
        }
        os.environ.update(settings)
        wiring.use(wiring.Wiring(credential=StaticCredential()))
        host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
        host.ensure_queues()
        az.admin("POST", "eventSubscriptions", {"endpoint": host.serve_event_grid("vm_events"), "subscriptionId": sub})
        host.start()
        compute = az.client(ComputeManagementClient, sub)
        resources = az.client(ResourceManagementClient, sub)
        started: dict[str, float] = {}
        for i in range(VMS):
            name = f"lat-{i:03d}"
            started[f"/subscriptions/{sub}/resourcegroups/rg-vm-00/providers/microsoft.compute/virtualmachines/{name}"] = time.time()
            create_vm(az, compute, resources, sub, name)
            time.sleep(0.1)
        ledger = Ledger(TableClient.from_connection_string(storage.connection_string, table))
        deadline = time.monotonic() + 300
        latencies: dict[str, float] = {}
        while time.monotonic() < deadline and len(latencies) < VMS:
            for row in ledger.vms():
                if row["vmId"] in started and row["outcome"] == "protected":
                    latencies[row["vmId"]] = datetime.fromisoformat(row["updated"]).timestamp() - started[row["vmId"]]
            time.sleep(0.5)
        host.close()
    assert len(latencies) == VMS, f"{len(latencies)} of {VMS} protected"
    values = sorted(latencies.values())
    p50 = statistics.median(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * len(values))) - 1)]
    floor = CRITICAL_PATH * OPERATION_SECONDS
    return [
        {"name": "autoprotect.event_to_protected_p50", "figure": p50, "unit": "s",
         "baseline": "sum of emulated operation durations (VM create + enable)", "baseline_figure": floor,
         "ratio": p50 / floor, "detail": {"vms": VMS, "operation_seconds": OPERATION_SECONDS}},
        {"name": "autoprotect.event_to_protected_p95", "figure": p95, "unit": "s",
         "baseline": "sum of emulated operation durations (VM create + enable)", "baseline_figure": floor,
         "ratio": p95 / floor, "detail": {"vms": VMS, "operation_seconds": OPERATION_SECONDS}},
    ]
