"""Scheduled protection end to end: the timer plans a slot over three subscriptions (Resource
Graph), jobs fan out over an Azurite queue (delivered twice: at-least-once), workers run them under
the shared write budget with 5% injected 429/500/503: every due VM gets exactly one artifact set
for the slot, no job is lost (done or poisoned with a reason, counted), and a second run of the slot
creates nothing."""

from __future__ import annotations

import base64
import importlib
import json
import os
import random
import uuid
from collections import Counter, defaultdict

import pytest

from devtools.fleet import VMKEEPER_TAG_SETS
from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared.schedule.service import job_key
from tests.app.chaos import ChaosWiring

# The 200 VMs per subscription (about two minutes); fewer with VMKEEPER_FLEET_VMS_PER_SUB for a quick run.
VMS_PER_SUB = int(os.environ.get("VMKEEPER_FLEET_VMS_PER_SUB", "200"))
POLICIES = {"version": 1, "default": "bronze", "policies": {
    "gold": {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"}, "restore_point": {"consistency": "CrashConsistent"}},
    "silver": {"schedule": {"every_hours": 12}, "snapshots": {"luns": "all", "include_os_disk": False}},
    "bronze": {"schedule": {"every_hours": 24}, "snapshots": {"luns": [0]}},
}}


FAN_OUT = {"on": False}  # while the timer fans jobs out, every message it sends arrives twice


@pytest.fixture
def fleet_host(az, azurite, tmp_path, monkeypatch):
    import function_app
    from shared import wiring

    subs = az.seed(subscriptions=3, resource_groups=2, vms=3 * VMS_PER_SUB, data_disks=[1, 3], regions=["westeurope"],
                   seed=5, tag_sets=VMKEEPER_TAG_SETS)["subscriptions"]
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(POLICIES))
    suffix = uuid.uuid4().hex[:8]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": ",".join(subs),
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}",
                "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}", "VMKEEPER_BUDGET_TABLE": f"budget{suffix}",
                "VMKEEPER_SCHEDULE": "0 0 * * * *", "VMKEEPER_WRITES_PER_SECOND": "100", "VMKEEPER_WRITE_BURST": "200",
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # At-least-once delivery: every job's first message (the planner's fan-out) arrives twice.
    wiring.use(ChaosWiring(random.Random(5), Counter(), fail=0, duplicate=1.0, delay=0,
                           only=lambda content: FAN_OUT["on"], credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    yield host, subs, settings
    host.close()


def artifacts(az, subs):
    from azure.mgmt.compute import ComputeManagementClient

    sets, snaps, points = defaultdict(set), Counter(), Counter()
    for sub in subs:
        compute = az.client(ComputeManagementClient, sub)
        for s in compute.snapshots.list():
            vm = s.tags["vmkeeper-vm"]
            sets[vm].add(s.tags["vmkeeper-set"])
            snaps[vm] += 1
        for rpc in compute.restore_point_collections.list_all():
            full = compute.restore_point_collections.get(rpc.id.split("/")[4], rpc.name, expand="restorePoints")
            points[rpc.tags["vmkeeper-vm"]] += len(full.restore_points or [])
    return sets, snaps, points


def test_a_slot_over_three_subscriptions_with_duplicates_and_faults(az, fleet_host, azurite):
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    host, subs, settings = fleet_host
    az.faults([{"kind": kind, "operation": "Microsoft.Compute/(snapshots|restorePointCollections.*)/(write|read)",
                "probability": 0.017} for kind in ("429", "500", "503")], seed=21)
    FAN_OUT["on"] = True
    try:
        host.fire_timer("plan_slot")  # every message twice (ChaosWiring): at-least-once delivery
    finally:
        FAN_OUT["on"] = False
    host.fire_timer("plan_slot")  # a second firing sends nothing already out
    assert host.run_until_idle(timeout=400 + 6 * VMS_PER_SUB)
    fired = sum(r["fired"] for r in az.admin("GET", "faults")["rules"])
    az.faults([])
    assert fired > 0
    ledger = TableClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_LEDGER_TABLE"])
    rows = list(ledger.query_entities("PartitionKey ge 'jobs@' and PartitionKey lt 'jobsA'"))
    poison = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"] + "-poison")
    poisoned = {}
    while batch := list(poison.receive_messages(max_messages=32, visibility_timeout=300)):
        for m in batch:
            body = json.loads(base64.b64decode(m.content))
            poisoned[job_key(body["message"]["job"])] = body["reason"]
    done = {r["item"] for r in rows if r["outcome"] == "done"}
    # The seeded tags cycle gold (2 jobs: snapshots + restore point), silver, bronze, untagged (default), opt-out.
    expected = 3 * VMS_PER_SUB // 5 * (2 + 1 + 1 + 1 + 0)
    print(f"\nslot: {expected} jobs planned: {len(done)} done, {len(set(poisoned) - done)} poisoned with a reason"
          f" ({len(set(poisoned) & done)} more were duplicates of done jobs); {fired} faults injected")
    assert len(done | set(poisoned)) == expected  # none lost: every job done, or poisoned
    assert all(poisoned.values())  # … with its reason
    sets, snaps, points = artifacts(az, subs)
    opted_out = 3 * VMS_PER_SUB // 5  # one VM in five carries the opt-out tag in the seeded fleet
    assert len(sets) == 3 * VMS_PER_SUB - opted_out
    assert all(len(s) == 1 for s in sets.values())  # exactly one artifact set per VM for the slot
    assert all(n <= 1 for n in points.values())
    before = (dict(snaps), dict(points))
    host.fire_timer("plan_slot")  # the same slot again
    assert host.run_until_idle(timeout=120)
    _, snaps_again, points_again = artifacts(az, subs)
    assert (dict(snaps_again), dict(points_again)) == before
    # The run ledger: each timer firing with its counts; the re-run found the done jobs done.
    runs = sorted(ledger.query_entities("PartitionKey eq 'runs'"), key=lambda r: r["item"])
    assert [(r["jobs"], r["enqueued"], r["already_done"]) for r in runs] == [
        (expected, expected, 0), (expected, 0, 0), (expected, 0, len(done))]
    assert [r["already_enqueued"] for r in runs] == [0, expected, expected - len(done)]
