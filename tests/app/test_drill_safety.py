"""DR drills where they meet the operator and the rest of the fleet, end to end through the local Functions host,
Azurite and the emulator with the real SDK clients: a drill never adopts a group of its name it did not make;
its teardown keeps a held group, one holding what the drill did not make, and a locked one (one alert each, tried
again by later passes, never poisoned in silence); and the VM a drill made is no fleet VM (not scheduled, not
drilled, not judged, not enrolled) unless an operator opts it in."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.locks import ManagementLockClient
from azure.mgmt.resource.resources import ResourceManagementClient

from shared import tags as T
from shared.alerts import events as A
from tests.app.restore_world import SECOND, protected
from tests.app.test_drill import drill_world, groups

KEEP_HOURS = 0.002  # 7.2 s: time for the test to step in between "passed" and the teardown


def alerts(w: dict[str, Any]) -> list[dict[str, Any]]:
    outbox = TableClient.from_connection_string(w["settings"]["AzureWebJobsStorage"], w["settings"]["VMKEEPER_ALERTS_TABLE"])
    return [json.loads(r["event"]) for r in outbox.list_entities()]


def waiting(w: dict[str, Any], queue: str) -> int:
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(w["settings"]["AzureWebJobsStorage"], queue)
    try:
        return client.get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return 0


def poisoned(w: dict[str, Any]) -> int:
    return waiting(w, w["settings"]["VMKEEPER_DRILL_QUEUE"] + "-poison")


def drain(w: dict[str, Any], setting: str) -> None:
    """Run the host until the queue ``setting`` names is empty (the drill's own message waits out its keep)."""
    until(w, lambda: waiting(w, w["settings"].get(setting) or w["host"].resolve(f"%{setting}%")) == 0)


def until(w: dict[str, Any], check: Any, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, w["wiring"].drills.history()
        if not w["host"].poll_once():
            time.sleep(0.2)


def row_of(w: dict[str, Any], drill: str) -> dict[str, Any]:
    return w["wiring"].drills.ledger.get("drills", drill)


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    """The drill world one scheduled slot protected, once for the module: a test starts from its own copy."""
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("protected"), build=drill_world)


def drilled(w: dict[str, Any]) -> dict[str, Any]:
    """In a protected world, plan the drills and run until the drill passed (its group kept for ``keep_hours``)."""
    w["host"].fire_timer("plan_drills")
    until(w, lambda: (w["wiring"].drills.history() or [None])[0] is not None
          and w["wiring"].drills.history()[0].result == "passed")
    (drill,) = w["wiring"].drills.history()
    return row_of(w, drill.id)


def vnet(prefix: str) -> Any:
    """An operator's VNet (no vmkeeper tag)."""
    from azure.mgmt.network.models import AddressSpace, VirtualNetwork

    return VirtualNetwork(location=SECOND, address_space=AddressSpace(address_prefixes=[prefix]), tags={"owner": "ops"})


def kept_alerts(w: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in alerts(w) if e["type"] == A.DRILL_KEPT]


def test_a_drill_never_adopts_a_group_of_its_name_that_it_did_not_make(az, emu, azurite, tmp_path, monkeypatch, saved):
    """An operator's group happens to have the drill's name: the drill fails saying why, and the group, its tags
    and what is in it are untouched (no write to it at all); the drill's teardown deletes nothing."""
    from shared.drill.planner import drill_id, group_name, period_of

    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    try:
        sub = w["sub"]
        name = group_name(drill_id(w["vm_id"].lower(), period_of(datetime.now(UTC), 7), 7))
        rm = az.client(ResourceManagementClient, sub)
        rm.resource_groups.create_or_update(name, {"location": SECOND, "tags": {"owner": "db"}})
        az.client(NetworkManagementClient, sub, polling_interval=0).virtual_networks.begin_create_or_update(
            name, "db-net", vnet("10.9.0.0/16")).result()
        mark = len(az.calls())
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)

        (drill,) = w["wiring"].drills.history()
        assert drill.result == "failed" and "is not this drill's" in drill.reason and name in drill.reason
        assert rm.resource_groups.get(name).tags == {"owner": "db"}
        assert [r.name for r in rm.resources.list_by_resource_group(name)] == ["db-net"]
        writes = [c for c in az.calls(mark) if c["method"] in ("PUT", "PATCH", "DELETE", "POST")
                  and f"/resourcegroups/{name.lower()}" in c["path"].lower()]
        assert writes == []
        (failed,) = [e for e in alerts(w) if e["type"] == A.DRILL_FAILED]
        assert "is not this drill's" in failed["data"]["reason"]
    finally:
        w["host"].close()


@pytest.mark.parametrize("intrusion", ["hold", "foreign"])
def test_a_teardown_keeps_a_held_group_or_one_holding_what_the_drill_did_not_make(
        az, emu, azurite, tmp_path, monkeypatch, saved, intrusion):
    """While the drilled VM is kept, an operator holds the group (``vmkeeper-hold``) or moves a resource of theirs
    into it: the teardown deletes nothing, says so once, and a later pass, the hold lifted or the resource moved
    out, removes the group."""
    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved, keep_hours=KEEP_HOURS)
    try:
        before = groups(az, w["sub"])
        row = drilled(w)
        name = row["group"].rsplit("/", 1)[-1]
        rm = az.client(ResourceManagementClient, w["sub"])
        net = az.client(NetworkManagementClient, w["sub"], polling_interval=0)
        if intrusion == "hold":
            rm.resource_groups.update(name, {"tags": {**rm.resource_groups.get(name).tags, T.HOLD: "legal-42"}})
        else:  # created there stands for moved there: either way, not the drill's
            net.virtual_networks.begin_create_or_update(name, "ops-net", vnet("10.8.0.0/16")).result()
        assert w["host"].run_until_idle(timeout=120)

        (drill,) = w["wiring"].drills.history()
        cause = "held" if intrusion == "hold" else "foreign"
        assert drill.result == "passed" and drill.cleanup == cause, drill
        left = {r.name for r in rm.resources.list_by_resource_group(name)}
        assert row["drilledVm"].rsplit("/", 1)[-1] in left and "vnet-drill" in left  # nothing of it deleted
        (kept,) = kept_alerts(w)
        assert kept["data"]["cleanup"] == cause and kept["subject"] == w["vm_id"].lower()
        assert (T.HOLD in kept["data"]["reason"]) if intrusion == "hold" else ("ops-net" in kept["data"]["reason"])

        w["host"].fire_timer("plan_drills")  # a later pass: still kept, not said again
        assert w["host"].run_until_idle(timeout=60)
        assert w["wiring"].drills.history()[0].cleanup == cause and len(kept_alerts(w)) == 1
        assert name in groups(az, w["sub"])

        if intrusion == "hold":  # the operator lifts the hold, or takes their resource away
            tags = rm.resource_groups.get(name).tags
            rm.resource_groups.update(name, {"tags": {k: v for k, v in tags.items() if k != T.HOLD}})
        else:
            net.virtual_networks.begin_delete(name, "ops-net").result()
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)
        assert w["wiring"].drills.history()[0].cleanup == "removed"
        assert groups(az, w["sub"]) == before and poisoned(w) == 0
    finally:
        w["host"].close()


@pytest.mark.parametrize("obstacle", ["lock", "failing_delete"])
def test_a_teardown_that_cannot_finish_says_so_once_and_is_tried_again_by_later_passes(
        az, emu, azurite, tmp_path, monkeypatch, saved, obstacle):
    """``lock``: a CanNotDelete lock inside the drill's group (vmkeeper's own on a drilled VM's snapshots, once):
    the group's delete answers 409 ScopeLocked. ``failing_delete``: ARM accepts each delete and it ends Failed, the
    group still there. Either way the teardown is not poisoned in silence nor sent for ever: one
    ``vmkeeper.drill.kept``, nothing in the poison queue, and each later pass tries again until it can."""
    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved, keep_hours=KEEP_HOURS)
    try:
        before = groups(az, w["sub"])
        row = drilled(w)
        locks = az.client(ManagementLockClient, w["sub"])
        if obstacle == "lock":
            locks.management_locks.create_or_update_by_scope(row["drilledVm"], "ops-lock", {"level": "CanNotDelete"})
        else:
            az.faults([{"kind": "lro_failed", "method": "DELETE", "path": "/resourcegroups/vmkeeper-drill-[^/]*$",
                        "probability": 1.0}])
        assert w["host"].run_until_idle(timeout=120)

        (drill,) = w["wiring"].drills.history()
        assert drill.cleanup == "blocked", drill
        (kept,) = kept_alerts(w)
        assert ("ScopeLocked" in kept["data"]["reason"]) if obstacle == "lock" else ("3 deletes" in kept["data"]["reason"])
        assert poisoned(w) == 0 and not [e for e in alerts(w) if e["type"] == A.JOB_POISONED]
        assert [f.type for f in w["wiring"].reports.data().failures] == [A.DRILL_KEPT]  # the report shows it too

        w["host"].fire_timer("plan_drills")  # a later pass: refused again, said once
        assert w["host"].run_until_idle(timeout=60)
        assert w["wiring"].drills.history()[0].cleanup == "blocked" and len(kept_alerts(w)) == 1
        assert name_of(row) in groups(az, w["sub"])

        if obstacle == "lock":
            locks.management_locks.delete_by_scope(row["drilledVm"], "ops-lock")
        else:
            az.faults([])
        w["host"].fire_timer("plan_drills")
        assert w["host"].run_until_idle(timeout=120)
        assert w["wiring"].drills.history()[0].cleanup == "removed"
        assert groups(az, w["sub"]) == before and poisoned(w) == 0
    finally:
        az.faults([])
        w["host"].close()


def name_of(row: dict[str, Any]) -> str:
    return row["group"].rsplit("/", 1)[-1]


def test_the_vm_a_drill_made_is_no_fleet_vm_until_an_operator_opts_it_in(az, emu, azurite, tmp_path, monkeypatch,
                                                                          saved):
    """The drilled VM, kept for an hour: the next slot plans nothing for it (no snapshot, restore point or lock in
    the drill's group), the next drill pass drills it not, compliance does not judge it, auto-protect leaves it
    out. Tagged ``vmkeeper-fleet: true`` by an operator, the scheduler protects it like any VM."""
    from azure.mgmt.compute import ComputeManagementClient

    from tests.app.test_autoprotect import vm_event

    monkeypatch.setenv("VMKEEPER_COMPLIANCE_SCHEDULE", "0 */30 * * * *")
    w = drill_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved, keep_hours=1)
    try:
        row = drilled(w)
        vm_id, name = row["drilledVm"], row["group"].rsplit("/", 1)[-1]

        def writes_in_group(mark: int) -> list[str]:
            return [c["path"] for c in az.calls(mark) if c["method"] in ("PUT", "PATCH", "POST")
                    and f"/resourcegroups/{name.lower()}/" in c["path"].lower()]

        mark = len(az.calls())
        w["host"].fire_timer("plan_slot")  # the scheduler
        drain(w, "VMKEEPER_JOBS_QUEUE")
        assert writes_in_group(mark) == []

        w["host"].fire_timer("plan_drills")  # the drill planner: the source's drill only, no drill of the drill
        assert [d.vm_id for d in w["wiring"].drills.history()] == [w["vm_id"].lower()]

        w["host"].fire_timer("compliance_evaluation")  # compliance judges the fleet's VMs only
        assert [v.vm_id.lower() for v in w["wiring"].compliance.recorded().vms] == [w["vm_id"].lower()]

        w["host"].deliver_event("vm_events", vm_event(vm_id, w["sub"]))  # auto-protect
        drain(w, "VMKEEPER_PROTECT_QUEUE")
        assert w["wiring"].autoprotect.ledger.vm(vm_id)["outcome"] == "not_fleet"

        compute = az.client(ComputeManagementClient, w["sub"], polling_interval=0)
        vm = compute.virtual_machines.get(name, vm_id.rsplit("/", 1)[-1])
        compute.virtual_machines.begin_update(name, vm.name, {"tags": {**vm.tags, T.FLEET: "true"}}).result()
        mark = len(az.calls())
        w["host"].fire_timer("plan_slot")  # opted in: protected as any VM
        drain(w, "VMKEEPER_JOBS_QUEUE")
        assert any("/snapshots/" in p.lower() for p in writes_in_group(mark)), writes_in_group(mark)
    finally:
        w["host"].close()
