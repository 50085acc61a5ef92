"""`make demo`: start local Azure (Azurite + the ARM emulator, each a child process on free
127.0.0.1 ports), seed a fleet, and print an inventory summary from a Resource Graph query.

Everything stops when the demo ends: no stray processes."""

from __future__ import annotations

import sys
import time
from collections import Counter

FLEET = {"subscriptions": 3, "resource_groups": 4, "vms": 150, "data_disks": [1, 4],
         "regions": ["westeurope", "northeurope", "eastus", "westus2"], "seed": 2026}


def main() -> int:
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.mgmt.resourcegraph.models import QueryRequest
    from azure.storage.queue import QueueServiceClient

    from emulator.processes import azurite, emulator_process
    from emulator.testing import LocalAzure

    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.2f}s] {message}", flush=True)

    with azurite() as storage, emulator_process() as info:
        say(f"Azurite on 127.0.0.1 (queue :{storage.queue_port}, table :{storage.table_port}), telemetry off")
        say(f"ARM emulator at {info['base_url']} (CA {info['ca_path']})")
        queues = QueueServiceClient.from_connection_string(storage.connection_string)
        for name in ("vmkeeper-jobs", "vmkeeper-jobs-poison"):
            queues.create_queue(name)
        say("queues ready: " + ", ".join(q.name for q in queues.list_queues()))

        az = LocalAzure(info["base_url"], info["ca_path"])
        fleet = az.seed(**FLEET)
        say(f"seeded {fleet['vms']} VMs with {fleet['disks']} disks in {len(fleet['subscriptions'])} subscriptions")

        graph = az.client(ResourceGraphClient)
        query = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
                 "| project id, subscriptionId, location, policy = tostring(tags['vmkeeper-policy']), "
                 "optout = tostring(tags['vmkeeper-optout']), disks = array_length(properties.storageProfile.dataDisks)")
        rows, token = [], None
        while True:
            page = graph.resources(QueryRequest(subscriptions=fleet["subscriptions"], query=query,
                                                options={"$skipToken": token} if token else None))
            rows += page.data
            token = page.skip_token
            if not token:
                break
        say(f"Resource Graph returned {len(rows)} VMs")

        print("\nInventory by region and vmkeeper policy")
        table = Counter((r["location"], "opt-out" if r["optout"] == "true" else (r["policy"] or "(default)")) for r in rows)
        policies = sorted({p for _, p in table})
        print(f"  {'region':<14}" + "".join(f"{p:>11}" for p in policies) + f"{'total':>8}")
        for region in sorted({loc for loc, _ in table}):
            counts = [table[(region, p)] for p in policies]
            print(f"  {region:<14}" + "".join(f"{c:>11}" for c in counts) + f"{sum(counts):>8}")
        disks = Counter(r["disks"] for r in rows)
        print("\nData disks per VM: " + ", ".join(f"{n} disks: {disks[n]} VMs" for n in sorted(disks)))
        per_sub = Counter(r["subscriptionId"] for r in rows)
        print("VMs per subscription: " + ", ".join(f"{s[:8]}…: {n}" for s, n in sorted(per_sub.items())))
        calls = az.calls()
        print(f"\nARM calls made: {len(calls)} ({Counter(c['operation'] for c in calls).most_common(1)[0][0]})")
    say("local Azure stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
