"""Scheduled jobs over time, through the function app's queue worker (the local Functions host,
Azurite, the emulator): a re-sent job writes over nothing that exists (an operator's hold survives,
and retention keeps the set), and a long job that makes progress between isolated ARM errors is not
poisoned by their sum, while errors in a row still are, with one alert.

The jobs queue's delays pass on the emulator's clock (``WarpWiring``): a copy of hours is looked at
as often as in Azure, in a second of test."""

from __future__ import annotations

import base64
import importlib
import json
import uuid
from datetime import datetime, timedelta

import pytest

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from shared import tags as T
from shared import wiring

REGION, COPY_REGION = "westeurope", "northeurope"
SEED = 7  # the faults' draws: more than five isolated 500s over the long job, never five in a row


class WarpQueue:
    """A queue whose visibility delays pass on the emulator's clock: a message sent to be visible in
    n seconds moves the emulated clock n seconds and is visible at once (one job at a time)."""

    def __init__(self, queue, az):
        self.queue, self.az = queue, az

    def send_message(self, content, visibility_timeout=None, **kwargs):
        if visibility_timeout:
            self.az.advance(visibility_timeout)
        return self.queue.send_message(content, **kwargs)

    def __getattr__(self, name):
        return getattr(self.queue, name)


class WarpStorage:
    def __init__(self, storage, az):
        self.storage, self.az = storage, az

    def queue(self, name: str):
        real = self.storage.queue(name)
        return real if name.endswith("-poison") else WarpQueue(real, self.az)

    def table(self, name: str):
        return self.storage.table(name)


class WarpWiring(wiring.Wiring):
    """The app's own wiring, its job queues' delays on the emulator's clock."""

    def __init__(self, az, **kwargs):
        super().__init__(**kwargs)
        self._az = az

    @property
    def storage(self):
        real = super().storage
        return self._once("warp-storage", lambda: WarpStorage(real, self._az))


def emulated_now(az) -> datetime:
    return datetime.fromisoformat(az.admin("GET", "clock")["now"])


def start(az, azurite, tmp_path, monkeypatch, sub: str, policies: dict):
    """The function app on the local host with its app settings (fresh queues and tables), wired as
    in Azure but for the job queue's delays (WarpWiring): (host, settings, wiring)."""
    import function_app

    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(policies))
    suffix = uuid.uuid4().hex[:8]
    settings = {"AzureWebJobsStorage": azurite.connection_string, "VMKEEPER_SUBSCRIPTIONS": sub,
                "VMKEEPER_POLICY_FILE": str(policy_file), "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
                "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}", "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
                "VMKEEPER_BUDGET_TABLE": f"budget{suffix}", "VMKEEPER_ALERTS_TABLE": f"alerts{suffix}",
                "VMKEEPER_SCHEDULE": "0 */15 * * * *", "VMKEEPER_COPY_TIMEOUT_HOURS": "1",
                "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    app = wiring.use(WarpWiring(az, credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    return host, settings, app


@pytest.fixture
def world(az, azurite, tmp_path, monkeypatch):
    """One VM (an OS and a data disk) whose weekly policy copies to a second region, the app on the
    local host: (host, wiring, subscription, settings)."""
    sub = az.seed(subscriptions=1, resource_groups=1, vms=1, data_disks=[1, 1], regions=[REGION],
                  tag_sets=[{}], seed=19)["subscriptions"][0]
    weekday = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"][emulated_now(az).weekday()]
    policies = {"version": 1, "default": "weekly", "policies": {"weekly": {
        "schedule": {"weekly_on": weekday, "at": "00:00"}, "snapshots": {"luns": "all"},
        "copy": {"region": COPY_REGION}, "retention": {"keep_last": 1, "deferral": "PT1H"}}}}
    host, settings, app = start(az, azurite, tmp_path, monkeypatch, sub, policies)
    yield host, app, sub, settings
    host.close()


def poisoned(azurite, settings) -> list[dict]:
    from azure.storage.queue import QueueClient

    poison = QueueClient.from_connection_string(azurite.connection_string, settings["VMKEEPER_JOBS_QUEUE"] + "-poison")
    return [json.loads(base64.b64decode(m.content)) for m in poison.peek_messages(max_messages=32)]


def test_a_re_sent_job_keeps_an_operators_hold_and_retention_keeps_the_set(az, world, azurite):
    """Defect: the planner re-sends a job not done once overdue (failed included), and the snapshot
    step PUT every snapshot of the set again: a PUT replaces every tag, so the operator's hold was
    gone and retention deleted the set. The re-sent job reads first and writes over nothing."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import SnapshotUpdate

    host, app, sub, settings = world
    compute = az.client(ComputeManagementClient, sub)
    az.faults([{"kind": "lro_failed", "method": "PUT", "path": f"-{COPY_REGION}", "count": 1}])  # the copy ends Failed
    first = emulated_now(az)
    assert app.schedule.plan_and_enqueue(first)["enqueued"] == 1
    assert host.run_until_idle(timeout=60)
    az.faults([])
    (failed,) = poisoned(azurite, settings)
    assert failed["reason"].endswith("ended Failed"), failed
    ours = sorted((s for s in compute.snapshots.list_by_resource_group("rg-vm-00")
                   if T.is_managed(s.tags) and s.location == REGION), key=lambda s: s.name)
    assert len(ours) == 2 and len({s.tags[T.SET] for s in ours}) == 1  # the set itself was made

    # An operator puts the set on legal hold (tags of their own too).
    for s in ours:
        compute.snapshots.begin_update("rg-vm-00", s.name, SnapshotUpdate(
            tags={**s.tags, T.HOLD: "legal-42", "case": "42"})).result()
    since = len(az.calls())
    resend = app.schedule.plan_and_enqueue(first + timedelta(hours=8))  # the weekly slot still; the job overdue
    assert resend["resent"] == 1
    assert host.run_until_idle(timeout=60)
    writes = [c for c in az.calls(since) if c["method"] in ("PUT", "PATCH")
              and any(c["path"].lower().split("?")[0].endswith(f"/snapshots/{s.name.lower()}") for s in ours)]
    assert writes == []  # read, found, left as they are
    for s in ours:
        tags = compute.snapshots.get("rg-vm-00", s.name).tags
        assert tags[T.HOLD] == "legal-42" and tags["case"] == "42", tags
    # The copy that ended Failed is not started over either: the job fails again, saying so.
    assert [p["reason"] for p in poisoned(azurite, settings)][-1].endswith("ended Failed")

    # A week on: the next slot's set is taken (and copied), and retention keeps only one... and the held one.
    week = first + timedelta(days=7)
    az.advance(max(0.0, (week - emulated_now(az)).total_seconds()))
    assert app.schedule.plan_and_enqueue(week)["enqueued"] == 1
    assert host.run_until_idle(timeout=60)
    newer = [s for s in compute.snapshots.list_by_resource_group("rg-vm-00")
             if T.is_managed(s.tags) and s.location == REGION and s.tags[T.SET] != ours[0].tags[T.SET]]
    assert len(newer) == 2
    rules = {}
    for _ in range(3):  # mark, then past the deferral, then once more
        az.advance(2 * 3600)
        decisions, _applied = app.retention.run(emulated_now(az))
        rules.update({d.artifact_id.rsplit("/", 1)[-1]: d.rule for d in decisions})
    az.advance(60)
    left = {s.name: s.tags for s in compute.snapshots.list_by_resource_group("rg-vm-00")}
    for s in ours:
        assert s.name in left and left[s.name][T.HOLD] == "legal-42"
        assert rules[s.name] == "hold"  # kept for its hold (keep_last 1 alone would delete it)


def test_a_long_job_is_not_poisoned_by_isolated_errors_but_errors_in_a_row_still_poison_it(az, world, azurite):
    """Defect: the queue runner counted a job's errors over its whole life, so a long job (here a set's
    two copies of six hours each, looked at some eighty times) that made progress between isolated ARM
    500s was poisoned at its fifth. Errors count in a row: progress clears them; five in a row still
    poison the job, with one alert."""
    from shared.alerts import events as A
    from shared.queue.runner import MAX_ERRORS
    from shared.schedule.service import job_key, jobs_partition

    host, app, sub, settings = world
    az.settings(lro={"per_type": {"Microsoft.Compute/snapshots/copy": 2160}})  # each copy: 6 emulated hours
    az.faults([{"kind": "500", "method": "GET", "path": "/snapshots/", "probability": 0.1}], seed=SEED)
    start = emulated_now(az)
    since = len(az.calls())
    assert app.schedule.plan_and_enqueue(start)["enqueued"] == 1
    assert host.run_until_idle(timeout=120)
    fired = az.admin("GET", "faults")["rules"][0]["fired"]
    az.faults([])
    looks = [c for c in az.calls(since) if c["method"] == "GET" and f"-{COPY_REGION}" in c["path"]]
    assert poisoned(azurite, settings) == []
    assert len(looks) > 40 and fired > MAX_ERRORS  # a long job, with more errors over its life than the bound
    rows = list(app.schedule.ledger.rows(jobs_partition(slot_of(app, start))))
    assert [r["outcome"] for r in rows] == ["done"], rows

    # Five errors in a row (the next week's job, its first reads): poisoned, with one alert.
    week = start + timedelta(days=7)
    az.advance(max(0.0, (week - emulated_now(az)).total_seconds()))
    az.faults([{"kind": "500", "method": "GET", "path": "/snapshots/", "count": MAX_ERRORS}])
    assert app.schedule.plan_and_enqueue(week)["enqueued"] == 1
    assert host.run_until_idle(timeout=120)
    az.faults([])
    (gone,) = poisoned(azurite, settings)
    assert "500" in gone["reason"] or "Internal" in gone["reason"], gone
    slot = slot_of(app, week)
    alerts = [a for a in app.alerts.recent(datetime(2000, 1, 1).astimezone()) if a["data"].get("slot") == slot]
    assert [(a["type"], a["data"]["cause"]) for a in alerts] == [(A.JOB_POISONED, "poisoned")]
    (row,) = app.schedule.ledger.rows(jobs_partition(slot))
    assert row["outcome"] == "failed" and row["item"] == job_key(gone["message"]["job"])


def slot_of(app, now: datetime) -> str:
    from shared.policy.document import load_policy_file
    from shared.schedule.planner import slot_for

    return slot_for(load_policy_file(app.fleet_settings.policy_file).policies["weekly"].schedule, now).isoformat()
