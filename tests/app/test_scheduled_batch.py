"""Several VMs' jobs in one queue message (shared/batch.py), through the local Functions host,
Azurite and the emulator: each VM keeps its own fate. A VM whose writes keep failing is retried
alone and then poisoned with its reason, a malformed entry is poisoned alone, and the others are
done, each exactly once."""

from __future__ import annotations

import base64
import importlib
import json
import uuid

import pytest

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import wiring

POLICIES = {"version": 1, "default": "all", "policies": {"all": {"schedule": {"every_hours": 1}, "snapshots": {"luns": "all"}}}}


def start_app(az, azurite, tmp_path, monkeypatch, sub: str, policies: dict, **extra: str):
    """The function app on the local host with its app settings (a policy document, fresh queues and
    tables, ``extra`` settings on top), wired through shared/wiring.py: (host, settings, wiring)."""
    import function_app

    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(policies))
    suffix = uuid.uuid4().hex[:8]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
                "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_SCHEDULE": "0 0 * * * *",
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path, **extra}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    app = wiring.use(wiring.Wiring(credential=StaticCredential()))
    h = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    h.ensure_queues()
    return h, settings, app


@pytest.fixture
def host(az, azurite, tmp_path, monkeypatch):

    sub = az.seed(subscriptions=1, resource_groups=1, vms=5, data_disks=[1, 1], regions=["westeurope"],
                  tag_sets=[{}], seed=3)["subscriptions"][0]
    h, settings, _ = start_app(az, azurite, tmp_path, monkeypatch, sub, POLICIES)
    yield h, sub, settings
    h.close()


def test_one_message_many_vms_each_with_its_own_fate(az, host, azurite):
    from azure.data.tables import TableClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.storage.queue import QueueClient

    h, sub, settings = host
    h.fire_timer("plan_slot")
    queue = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"])
    sent = list(queue.peek_messages(max_messages=32))
    assert len(sent) == 1  # five VMs, one message
    body = json.loads(base64.b64decode(sent[0].content))
    assert [e["job"]["vm_id"].split("/")[-1] for e in body["batch"]] == [f"vm-{i:05d}" for i in range(5)]

    # Rewrite the message: the second VM's entry loses its job type; the fourth VM's disks always fail.
    queue.clear_messages()
    body["batch"][1]["job"]["type"] = "tape"
    queue.send_message(base64.b64encode(json.dumps(body).encode()).decode())
    az.faults([{"kind": "500", "path": "/snapshots/vmk-vm-00003-", "probability": 1.0}])
    assert h.run_until_idle(timeout=120)
    az.faults([])

    poison = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"] + "-poison")
    reasons = {}
    for m in poison.receive_messages(max_messages=32):
        entry = json.loads(base64.b64decode(m.content))
        reasons[entry["message"]["job"]["vm_id"].split("/")[-1]] = entry["reason"]
    assert set(reasons) == {"vm-00001", "vm-00003"}
    assert reasons["vm-00001"].startswith("message.batch[1].job.type:")
    assert "500" in reasons["vm-00003"] or "Internal" in reasons["vm-00003"]

    names = [s.name for s in az.client(ComputeManagementClient, sub).snapshots.list()]
    per_vm = {f"vm-{i:05d}": sum(1 for n in names if n.startswith(f"vmk-vm-{i:05d}-")) for i in range(5)}
    assert per_vm == {"vm-00000": 2, "vm-00001": 0, "vm-00002": 2, "vm-00003": 0, "vm-00004": 2}

    ledger = TableClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_LEDGER_TABLE"])
    outcomes = {r["item"].split("|")[0].split("/")[-1]: r["outcome"]
                for r in ledger.query_entities("PartitionKey ge 'jobs@' and PartitionKey lt 'jobsA'")}
    assert outcomes == {"vm-00000": "done", "vm-00002": "done", "vm-00003": "failed", "vm-00004": "done"}
    assert all(i["ok"] for i in h.invocations)  # one VM's trouble never failed (redelivered) the whole message

    # A late duplicate of a finished job that keeps failing is dropped, not poisoned: the job is done.
    late = dict(body, batch=[body["batch"][0]])
    queue.send_message(base64.b64encode(json.dumps(late).encode()).decode())
    az.faults([{"kind": "503", "path": "/snapshots/vmk-vm-00000-", "probability": 1.0}])
    assert h.run_until_idle(timeout=120)
    az.faults([])
    assert poison.get_queue_properties().approximate_message_count == len(reasons)  # nothing more poisoned


def test_big_jobs_are_packed_by_size_and_the_run_never_fails_for_them(az, azurite, tmp_path, monkeypatch):
    """Defect: 8 VMs with 24 data disks each (copy and lock on) encoded to ~55 KB, over a queue
    message; the timer raised, those jobs never went out and the run was never recorded."""
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    from shared.queue.messages import MAX_MESSAGE_BYTES

    sub = az.seed(subscriptions=1, resource_groups=1, vms=8, data_disks=[24, 24], regions=["westeurope"],
                  tag_sets=[{}], seed=5, vm_prefix="a-rather-long-virtual-machine-name-for-packing")["subscriptions"][0]
    h, settings, _ = start_app(az, azurite, tmp_path, monkeypatch, sub, {"version": 1, "default": "big", "policies": {
        "big": {"schedule": {"every_hours": 1}, "snapshots": {"luns": "all"}, "copy": {"region": "northeurope"},
                "lock_days": 3}}},
        VMKEEPER_WRITE_BURST="10000")  # every message visible at once, to be read here
    try:
        h.fire_timer("plan_slot")
    finally:
        h.close()
    queue = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"])
    bodies = [base64.b64decode(m.content) for m in queue.peek_messages(max_messages=32)]
    assert len(bodies) > 1 and all(len(b) <= MAX_MESSAGE_BYTES for b in bodies)
    vms = [e["job"]["vm_id"] for b in bodies for e in json.loads(b)["batch"]]
    assert len(vms) == len(set(vms)) == 8  # every VM's job went out, once
    ledger = TableClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_LEDGER_TABLE"])
    (run,) = list(ledger.query_entities("PartitionKey eq 'runs'"))
    assert run["enqueued"] == 8 and run["poisoned"] == 0


def test_a_job_too_big_for_any_message_is_set_aside_not_sent():
    from shared.queue.messages import MAX_MESSAGE_BYTES, chunk, size

    small = [{"job": {"vm_id": f"vm-{i}", "pad": "x" * 10_000}} for i in range(9)]
    huge = {"job": {"vm_id": "vm-huge", "pad": "x" * MAX_MESSAGE_BYTES}}
    batches, too_big = chunk(small[:4] + [huge] + small[4:], max_count=8)
    assert too_big == [huge]
    assert [len(b) for b in batches] == [4, 4, 1]  # four of 10 KB fit a message; the order is kept
    assert all(sum(size(e) for e in b) < MAX_MESSAGE_BYTES for b in batches)
    assert [e["job"]["vm_id"] for b in batches for e in b] == [f"vm-{i}" for i in range(9)]


def test_each_firing_sends_only_what_is_not_out_yet_or_overdue(az, azurite, tmp_path, monkeypatch):
    """Defect: every planner firing re-sent the slot's unfinished jobs with new write promises, so
    slots longer than the planning interval snowballed. A job out is sent again only once overdue."""
    from datetime import UTC, datetime, timedelta

    from azure.mgmt.compute import ComputeManagementClient
    from azure.storage.queue import QueueClient


    sub = az.seed(subscriptions=1, resource_groups=1, vms=3, data_disks=[1, 1], regions=["westeurope"],
                  tag_sets=[{}], seed=11)["subscriptions"][0]
    h, settings, app = start_app(az, azurite, tmp_path, monkeypatch, sub, {"version": 1, "default": "weekly", "policies": {
        "weekly": {"schedule": {"weekly_on": "sunday", "at": "03:00"}, "snapshots": {"luns": "all"}}}},
        VMKEEPER_SCHEDULE="0 */15 * * * *", VMKEEPER_COPY_TIMEOUT_HOURS="1")  # overdue after 2 h
    schedule = app.schedule
    queue = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"])
    t = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)  # a Monday: the slot is Sunday 03:00 all week
    try:
        assert schedule.plan_and_enqueue(t)["enqueued"] == 3
        queue.clear_messages()  # the messages are lost (a storage incident)
        later = schedule.plan_and_enqueue(t + timedelta(minutes=30))
        assert later["enqueued"] == 0 and later["already_enqueued"] == 3  # out already: not sent again
        overdue = schedule.plan_and_enqueue(t + timedelta(hours=3))
        assert overdue["enqueued"] == overdue["resent"] == 3  # lost long enough: sent again
        assert schedule.plan_and_enqueue(t + timedelta(hours=3, minutes=15))["enqueued"] == 0
        assert h.run_until_idle(timeout=120)
        done = schedule.plan_and_enqueue(t + timedelta(hours=6))
        assert done["enqueued"] == 0 and done["already_done"] == 3
    finally:
        h.close()
    names = [s.name for s in az.client(ComputeManagementClient, sub).snapshots.list()]
    assert len(names) == 6  # three VMs, OS + one data disk each, once
    poison = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"] + "-poison")
    assert poison.get_queue_properties().approximate_message_count == 0


def test_a_set_copied_disk_after_disk_is_not_re_sent_while_its_copies_may_still_run(az, azurite, tmp_path, monkeypatch):
    """Defect: a job not done counted as overdue one disk's copy timeout and an hour after it went out,
    but a set copies its disks one after another (each up to the timeout): a two-disk set still copying
    its second disk was sent again (the planner decides: shared/schedule/planner.py overdue_after)."""
    from datetime import UTC, datetime, timedelta

    sub = az.seed(subscriptions=1, resource_groups=1, vms=1, data_disks=[1, 1], regions=["westeurope"],
                  tag_sets=[{}], seed=13)["subscriptions"][0]
    h, _, app = start_app(az, azurite, tmp_path, monkeypatch, sub, {"version": 1, "default": "weekly", "policies": {
        "weekly": {"schedule": {"weekly_on": "sunday", "at": "03:00"}, "snapshots": {"luns": "all"},
                   "copy": {"region": "northeurope"}}}},
        VMKEEPER_SCHEDULE="0 */15 * * * *", VMKEEPER_COPY_TIMEOUT_HOURS="1")
    t = datetime(2026, 11, 30, 10, 5, tzinfo=UTC)  # a Monday: the slot is Sunday 03:00 all week
    try:
        assert app.schedule.plan_and_enqueue(t)["enqueued"] == 1
        still = app.schedule.plan_and_enqueue(t + timedelta(hours=3))  # its second copy may still run
        assert still["resent"] == 0 and still["already_enqueued"] == 1
        lost = app.schedule.plan_and_enqueue(t + timedelta(hours=5))  # past both copies and every step's bound
        assert lost["resent"] == 1
    finally:
        h.close()
