"""DR drills end to end through the local Functions host: the timer plans, the drill worker chooses the
newest complete second-region copy, isolates a group and a VNet, restores through the restore API's
worker, waits for the VM agent, records RTO and RPO, and tears down only what it made."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.resource.resources import ResourceManagementClient

from shared import tags as T
from tests.app.restore_world import POLICIES, SECOND, protected, start, wiring_wrapping

DRILL = {"every_days": 7, "point": "copy", "all_vms": True, "keep_hours": 0, "keep_failed_hours": 0,
         "ready_timeout_minutes": 1}


def drill_world(az, emu, azurite, tmp_path, monkeypatch, wiring_class: Any = None, saved: dict[str, Any] | None = None,
                **drill: Any) -> dict[str, Any]:
    """The restore world with drills in its policy (``drill``: the spec's fields other than DRILL's); with ``saved``
    (``protected(build=drill_world)``), as a slot protected it (the drill spec plays no part in protection)."""
    from shared import wiring

    suffix = secrets.token_hex(4)
    w = start(az, emu, azurite, tmp_path, monkeypatch, wiring_class=wiring_class or wiring.Wiring, saved=saved,
              VMKEEPER_DRILL_QUEUE=f"drills-{suffix}", VMKEEPER_ALERTS_TABLE=f"alerts{suffix}")
    policy = {**POLICIES["policies"]["full"], "drill": {**DRILL, **drill}}
    (tmp_path / "policies.json").write_text(json.dumps({**POLICIES, "policies": {"full": policy}}))
    w["host"].ensure_queues()
    return w


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    """The drill world one scheduled slot protected, once for the module: a test starts from its own copy."""
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("protected"), build=drill_world)


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch):
    """Not protected yet."""
    w = drill_world(az, emu, azurite, tmp_path, monkeypatch)
    yield w
    w["host"].close()


@pytest.fixture
def protected_world(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    yield w
    w["host"].close()


def groups(az: Any, sub: str) -> set[str]:
    return {g.name for g in az.client(ResourceManagementClient, sub).resource_groups.list()}


def test_a_drill_restores_the_second_region_copy_proves_it_ready_and_leaves_nothing(protected_world, az):
    world = protected_world
    before = groups(az, world["sub"])
    mark = len(az.calls())
    world["host"].fire_timer("plan_drills")
    assert world["host"].run_until_idle(timeout=180)
    (drill,) = world["wiring"].drills.history()
    assert drill.result == "passed" and drill.cleanup == "removed", drill
    assert drill.point_kind == "copy" and drill.rto_seconds > 0 and drill.rpo_seconds >= 0
    row = world["wiring"].drills.ledger.get("drills", drill.id)
    assert row["region"] == SECOND and f"vmkeeper-drill-{drill.id}" in row["group"]
    assert row["point"].startswith("snapshot-set:") or "/restorePointCollections/" in row["point"]
    # teardown: the drill's group is gone, and every other group is as it was
    assert groups(az, world["sub"]) == before
    deletes = [c for c in az.calls(mark) if c["method"] == "DELETE"]
    assert deletes and all(f"/resourcegroups/vmkeeper-drill-{drill.id}" in c["path"].lower() for c in deletes), deletes
    assert len([c for c in deletes if c["path"].lower().endswith(f"/resourcegroups/vmkeeper-drill-{drill.id}")]) >= 1
    with pytest.raises(ResourceNotFoundError):
        list(az.client(ResourceManagementClient, world["sub"]).resources.list_by_resource_group(
            f"vmkeeper-drill-{drill.id}"))

    # the same period planned again: the same drill, nothing new
    world["host"].fire_timer("plan_drills")
    assert world["host"].run_until_idle(timeout=60)
    assert [d.id for d in world["wiring"].drills.history()] == [drill.id]


def test_no_point_to_drill_is_a_failed_drill_with_one_alert(world, az):
    """Before any protection there is no copy: the drill fails (nothing was made, nothing to tear down)."""
    from azure.data.tables import TableClient

    world["host"].fire_timer("plan_drills")
    assert world["host"].run_until_idle(timeout=60)
    (drill,) = world["wiring"].drills.history()
    assert drill.result == "failed" and "no complete copy point" in drill.reason and drill.cleanup == "removed"
    outbox = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                                world["settings"]["VMKEEPER_ALERTS_TABLE"])
    events = [json.loads(r["event"]) for r in outbox.list_entities()]
    assert [(e["type"], e["subject"]) for e in events] == [("vmkeeper.drill.failed", world["vm_id"].lower())]


def test_teardown_never_deletes_a_group_that_is_not_the_drills(protected_world, az):
    """A group of the drill's name without the drill's tag (someone else's) is refused, not deleted."""
    world = protected_world
    world["host"].fire_timer("plan_drills")
    (drill,) = world["wiring"].drills.history()
    rm = az.client(ResourceManagementClient, world["sub"])
    rm.resource_groups.create_or_update(f"vmkeeper-drill-{drill.id}", {"location": SECOND, "tags": {"owner": "db"}})
    ledger = world["wiring"].drills.ledger
    row = ledger.get("drills", drill.id)
    ledger.record("drills", drill.id, {k: v for k, v in row.items() if k not in ("PartitionKey", "RowKey", "item", "updated")}
                  | {"step": "teardown", "group": f"/subscriptions/{world['sub']}/resourceGroups/vmkeeper-drill-{drill.id}",
                     "state": "failed", "teardownAfter": "2000-01-01T00:00:00Z", "spec": row["spec"]})
    assert world["host"].run_until_idle(timeout=60)
    assert rm.resource_groups.get(f"vmkeeper-drill-{drill.id}").tags == {"owner": "db"}
    (after,) = world["wiring"].drills.history()
    assert after.cleanup == "refused" and T.DRILL_ID in after.reason


class CrashInto:
    """The ledger as a worker dying right after a step's work in Azure, before it could record the drill's
    next step: the first save moving the drill into ``step`` raises, once."""

    def __init__(self, table: Any, step: str):
        self.table, self.step, self.crashed = table, step, False

    def upsert_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
        if not self.crashed and entity.get("PartitionKey") == "drills" and entity.get("step") == self.step:
            self.crashed = True
            raise ConnectionResetError(f"test: the worker died before recording step {self.step}")
        return self.table.upsert_entity(entity, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@pytest.mark.parametrize("step", ["restore", "boot", "teardown", "done"])
def test_a_crash_mid_drill_resumes_and_makes_nothing_twice(az, emu, azurite, tmp_path, monkeypatch, saved, step):
    crashes: list[CrashInto] = []

    def crash(table: Any) -> CrashInto:  # the ledger dying once before recording ``step``
        crashes.append(CrashInto(table, step))
        return crashes[-1]

    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved,
                    wiring_class=wiring_wrapping("VMKEEPER_LEDGER_TABLE", crash))
    try:
        before = groups(az, w["sub"])
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=180)
        assert any(c.crashed for c in crashes)
        (drill,) = w["wiring"].drills.history()
        assert drill.result == "passed" and drill.cleanup == "removed", drill
        made = [c for c in az.calls(mark) if c["method"] == "PUT" and c["status"] in (200, 201, 202)
                and "/virtualmachines/" in c["path"].lower()]
        assert len(made) == 1  # one drilled VM, whatever the crash
        assert groups(az, w["sub"]) == before
    finally:
        w["host"].close()


def test_a_vm_that_never_becomes_ready_fails_the_drill_keeps_it_for_a_while_then_removes_it(
        az, emu, azurite, tmp_path, monkeypatch, saved):
    from azure.data.tables import TableClient

    from shared.drill.planner import vm_name

    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved, ready_timeout_minutes=0.1,
                    keep_failed_hours=0.002)
    try:
        before = groups(az, w["sub"])
        az.vm_agent_fault(vm_name("vm-00000"))  # the drilled VM boots, its agent never reports Ready
        w["host"].fire_timer("plan_drills")
        history = w["wiring"].drills.history
        deadline = time.monotonic() + 120
        while history()[0].result != "failed":
            assert time.monotonic() < deadline, history()
            w["host"].poll_once()
        (drill,) = history()
        assert drill.cleanup == "kept" and "not ready" in drill.reason and "agent" in drill.reason
        group = f"vmkeeper-drill-{drill.id}"
        kept = az.client(ResourceManagementClient, w["sub"]).resources.list_by_resource_group(group)
        assert any(r.name == vm_name("vm-00000") for r in kept)  # kept for inspection
        outbox = TableClient.from_connection_string(w["settings"]["AzureWebJobsStorage"],
                                                    w["settings"]["VMKEEPER_ALERTS_TABLE"])
        assert [json.loads(r["event"])["type"] for r in outbox.list_entities()] == ["vmkeeper.drill.failed"]

        assert w["host"].run_until_idle(timeout=120)  # keep_failed_hours passes: torn down
        (drill,) = history()
        assert drill.result == "failed" and drill.cleanup == "removed"
        row = w["wiring"].drills.ledger.get("drills", drill.id)
        assert row["removedAt"] >= row["teardownAfter"]
        assert groups(az, w["sub"]) == before
    finally:
        w["host"].close()


def test_teardown_looks_at_the_deleting_group_when_arm_says_not_before(protected_world, az):
    """ARM answers a group delete with a Retry-After: the drill's next look at the group comes then (one
    look finds it gone), not every 2 s while the group is still being deleted."""
    world = protected_world
    az.settings(lro={"per_type": {"Microsoft.Resources/subscriptions/resourceGroups": 5}, "retry_after_ms": None})
    mark = len(az.calls())
    world["host"].fire_timer("plan_drills")
    assert world["host"].run_until_idle(timeout=180)
    (drill,) = world["wiring"].drills.history()
    assert drill.result == "passed" and drill.cleanup == "removed", drill
    group = f"/resourcegroups/vmkeeper-drill-{drill.id}"
    calls = [c for c in az.calls(mark) if c["path"].split("?")[0].lower().endswith(group)]
    (delete,) = [c for c in calls if c["method"] == "DELETE"]
    looks = [c for c in calls if c["method"] == "GET" and c["time"] > delete["time"]]
    assert len(looks) == 1 and looks[0]["status"] == 404, [(c["status"], c["time"] - delete["time"]) for c in looks]
    assert looks[0]["time"] - delete["time"] >= 5
