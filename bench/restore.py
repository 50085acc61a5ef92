"""On-demand restore: a 4-disk snapshot set into a new VM, from the POST to the restore's succeeded
state, against the floor — the emulated operation durations on its path: the disks, created in
parallel, then the VM (the NIC is synchronous in ARM and in the emulator). The gap is what vmkeeper
adds: the request's checks, the queue hop to the worker, table writes between steps, ARM calls."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
import uuid

OPERATION_SECONDS = 5.0  # every emulated long-running operation of the restore takes this long
DATA_DISKS = 3  # with the OS disk: a 4-disk set
RUNS = 3


def run() -> list[dict]:
    from azure.mgmt.resource.resources import ResourceManagementClient

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from devtools.processes import azurite
    from emulator.testing import StaticCredential, in_process
    from shared import wiring
    from shared.access import OPERATOR, encode_principal

    principal = encode_principal("00000000-0000-0000-0000-00000000be9c", [OPERATOR], name="bench")
    with in_process() as (az, emu), azurite() as storage:
        sub = az.seed(subscriptions=1, resource_groups=1, vms=1, data_disks=[DATA_DISKS, DATA_DISKS],
                      regions=["westeurope"], tag_sets=[{}], seed=5)["subscriptions"][0]
        az.settings(lro={"default_seconds": 0.05, "retry_after_ms": 20}, throttle={"enabled": False})
        az.client(ResourceManagementClient, sub).resource_groups.create_or_update("rg-restore", {"location": "westeurope"})
        policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-bench-"), "policies.json")
        with open(policy_file, "w", encoding="utf-8") as fh:
            json.dump({"version": 1, "default": "s", "policies": {"s": {"schedule": {"every_hours": 1},
                                                                       "snapshots": {"luns": "all"}}}}, fh)
        suffix = uuid.uuid4().hex[:8]
        settings = {
            "AzureWebJobsStorage": storage.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
            "VMKEEPER_POLICY_FILE": policy_file, "VMKEEPER_JOBS_QUEUE": f"bjobs-{suffix}",
            "VMKEEPER_PROTECT_QUEUE": f"bprotect-{suffix}", "VMKEEPER_RESTORE_QUEUE": f"brestore-{suffix}",
            "VMKEEPER_RESTORE_TABLE": f"brestore{suffix}", "VMKEEPER_LEDGER_TABLE": f"bledger{suffix}",
            "VMKEEPER_BUDGET_TABLE": f"bbudget{suffix}", "VMKEEPER_SCHEDULE": "0 0 * * * *",
            "VMKEEPER_RESTORE_SCOPES": f"/subscriptions/{sub}/resourceGroups/rg-restore,/subscriptions/{sub}/resourceGroups/rg-vm-00",
            "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
        }
        os.environ.update(settings)
        wiring.use(wiring.Wiring(credential=StaticCredential()))
        host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
        host.ensure_queues()
        host.fire_timer("plan_slot")
        assert host.run_until_idle(timeout=120)
        headers = {"x-functions-key": host.function_key, "X-MS-CLIENT-PRINCIPAL": principal}
        points = host.http("GET", f"/api/vms/{sub}/rg-vm-00/vm-00000/recovery-points", headers=headers).json()["value"]
        (snapshot_set,) = [p for p in points if p["kind"] == "snapshot_set"]
        assert len(snapshot_set["disks"]) == 1 + DATA_DISKS
        az.settings(lro={"default_seconds": OPERATION_SECONDS, "retry_after_ms": None})
        host.start()
        walls, steps = [], []
        for i in range(RUNS):
            body = {"vm": f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000",
                    "recovery_point": snapshot_set["id"],
                    "target": {"type": "vm", "resource_group": f"/subscriptions/{sub}/resourceGroups/rg-restore",
                               "vm_name": f"bench-{i}", "subnet": f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/"
                                                                  "Microsoft.Network/virtualNetworks/vnet-westeurope/subnets/default"}}
            began = time.monotonic()
            accepted = host.http("POST", "/api/restores", headers=headers, body=json.dumps(body).encode())
            assert accepted.status == 202, accepted.body
            while True:
                state = host.http("GET", accepted.headers["Location"], headers=headers).json()
                if state["state"] in ("succeeded", "failed"):
                    break
                time.sleep(0.02)
            walls.append(time.monotonic() - began)
            assert state["state"] == "succeeded", state
            steps.append({s["name"]: s["seconds"] for s in state["steps"]})
        host.close()
    wall = sorted(walls)[len(walls) // 2]
    floor = 2 * OPERATION_SECONDS
    return [{"name": "restore.snapshot_set_to_new_vm", "figure": wall, "unit": "s",
             "baseline": "emulated operation floor: disks in parallel, then the VM", "baseline_figure": floor,
             "ratio": wall / floor, "detail": {"disks": 1 + DATA_DISKS, "operation_seconds": OPERATION_SECONDS,
                                               "runs": walls, "median_of": RUNS, "steps_seconds": steps}}]
