"""Inventory: seed 10,000 VMs and page through them with Resource Graph.

Figures: rows/s through Resource Graph ($skipToken pages of 1,000) against the baseline of
per-subscription VirtualMachines_ListAll calls (nextLink pages of 100), both against the same
emulator process in the same run; and the emulator's peak memory with the fleet loaded against
its own idle footprint."""

from __future__ import annotations

import time

VMS = 10_000
SUBSCRIPTIONS = 3


def run() -> list[dict]:
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.mgmt.resourcegraph.models import QueryRequest

    from devtools.fleet import VMKEEPER_TAG_SETS
    from devtools.processes import emulator_process
    from emulator.testing import LocalAzure

    with emulator_process() as info:
        az = LocalAzure(info["base_url"], info["ca_path"])
        idle = az.admin("GET", "stats")["peakRssBytes"]
        fleet = az.seed(subscriptions=SUBSCRIPTIONS, resource_groups=10, vms=VMS, data_disks=[1, 4], seed=1,
                        tag_sets=VMKEEPER_TAG_SETS)
        # Throttling is ARM's, not what this measures: lift it so both paths run at full speed.
        az.settings(throttle={"enabled": False})

        graph = az.client(ResourceGraphClient)
        query = "Resources | where type =~ 'microsoft.compute/virtualmachines' | project id, name, location, tags"
        start, rows, token, pages = time.perf_counter(), 0, None, 0
        while True:
            page = graph.resources(QueryRequest(subscriptions=fleet["subscriptions"], query=query,
                                                options={"$skipToken": token} if token else None))
            rows, token, pages = rows + len(page.data), page.skip_token, pages + 1
            if not token:
                break
        graph_seconds = time.perf_counter() - start
        assert rows == VMS, rows

        start, listed = time.perf_counter(), 0
        for sub in fleet["subscriptions"]:
            listed += sum(1 for _ in az.client(ComputeManagementClient, sub).virtual_machines.list_all())
        list_seconds = time.perf_counter() - start
        assert listed == VMS, listed
        peak = az.admin("GET", "stats")["peakRssBytes"]

    graph_rate, list_rate = rows / graph_seconds, listed / list_seconds
    return [
        {"name": "inventory.resource_graph_rows_per_s", "figure": graph_rate, "unit": "rows/s",
         "baseline": "VirtualMachines_ListAll per subscription (pages of 100)", "baseline_figure": list_rate,
         "ratio": graph_rate / list_rate, "detail": {"vms": VMS, "pages": pages, "seconds": graph_seconds}},
        {"name": "inventory.emulator_peak_memory", "figure": peak / 2**20, "unit": "MiB",
         "baseline": "the same emulator process idle, before seeding", "baseline_figure": idle / 2**20,
         "ratio": peak / idle, "detail": {"vms": VMS, "disks": fleet["disks"]}},
    ]
