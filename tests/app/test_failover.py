"""Recovery plans and failovers end to end: three VMs replicating with Site Recovery (tests/app/replication_world.py,
arranged with the real SDK client), the plans' timer and the failover API on the local Functions host, the queue
worker on Azurite, the real SiteRecoveryManagementClient against the emulator. Every answer is checked against the
OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import tags as T
from shared.alerts import events as A
from tests.app.replication_world import (
    RG,
    SRC_FABRIC,
    TARGET,
    VAULT,
    api,
    app_calls,
    boot_order,
    plan,
    start,
    writes,
)


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch):
    w = start(az, emu, azurite, tmp_path, monkeypatch)
    w["az"] = az
    yield w
    w["host"].close()


def sweep(world: dict[str, Any]) -> None:
    world["host"].fire_timer("keep_recovery_plans")
    world["az"].advance(1)  # the plan's create or update job ends


def alerts(world: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                               world["settings"]["VMKEEPER_ALERTS_TABLE"])
    return [json.loads(r["event"]) for r in table.list_entities() if r["type"] == kind]


def failover(world: dict[str, Any], body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POST, run the queue to the end, GET: the finished failover."""
    answer = api(world, "POST", "/api/failovers", body, **kwargs)
    assert answer.status == 202, answer.body
    assert answer.headers["Location"] == f"/api/failovers/{answer.json()['id']}" and int(answer.headers["Retry-After"]) > 0
    assert world["host"].run_until_idle(timeout=120)
    done = api(world, "GET", answer.headers["Location"])
    assert done.status == 200
    return done.json()


def test_the_sweep_keeps_one_plan_for_3_vms_in_2_boot_groups_and_a_rerun_creates_nothing(world, az):
    mark = len(az.calls())
    sweep(world)
    made = [c for c in writes(az, mark)]
    assert [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in made] == [("PUT", "vmkeeper-app-billing")]
    assert boot_order(world) == [["vm-00000", "vm-00001"], ["vm-00002"]]  # "Billing" is "billing"
    p = plan(world).properties
    assert p.primary_fabric_id.lower().endswith(f"/replicationfabrics/{SRC_FABRIC}")
    assert [g.group_type for g in p.groups] == ["Shutdown", "Failover", "Boot", "Boot"]

    again = len(az.calls())
    sweep(world)
    assert writes(az, again) == []  # in step: nothing written
    assert app_calls(az, again)  # (it did look)

    # Membership follows the tags: vm-00002 joins group 1, so the plan has one Boot group (an update, not a create).
    world["compute"].virtual_machines.begin_update("rg-vm-00", "vm-00002", {"tags": {
        T.APP: "billing", T.APP_GROUP: "1"}}).result()
    changed = len(az.calls())
    sweep(world)
    assert [c["method"] for c in writes(az, changed)] == ["PATCH"]
    assert boot_order(world) == [["vm-00000", "vm-00001", "vm-00002"]]


def test_a_bad_group_tag_is_an_error_naming_the_tag_and_the_vm_keeps_its_place(world, az):
    sweep(world)
    world["compute"].virtual_machines.begin_update("rg-vm-00", "vm-00002", {"tags": {
        T.APP: "billing", T.APP_GROUP: "second"}}).result()
    mark = len(az.calls())
    sweep(world)
    sweep(world)
    assert writes(az, mark) == []  # nothing lost: vm-00002 stays in group 2
    assert boot_order(world) == [["vm-00000", "vm-00001"], ["vm-00002"]]
    (told,) = alerts(world, A.RECOVERY_PLAN_PROBLEM)  # once, for both sweeps
    assert told["data"]["field"] == T.APP_GROUP and "'second'" in told["data"]["problem"]
    assert told["subject"].endswith("/virtualmachines/vm-00002")


def test_a_plan_vmkeeper_did_not_make_is_never_changed(world, az):
    sub, vault = world["sub"], world["dr"]["vault"]
    world["asr"].replication_recovery_plans.begin_create(RG, VAULT, "vmkeeper-app-billing", {"properties": {
        "primaryFabricId": f"{vault}/replicationFabrics/{SRC_FABRIC}",
        "recoveryFabricId": f"{vault}/replicationFabrics/asr-a2a-default-{TARGET}",
        "groups": [{"groupType": "Boot", "replicationProtectedItems": [{"id": world["dr"]["items"]["vm-00000"]}]}]}}
    ).result()
    mark = len(az.calls())
    sweep(world)
    assert writes(az, mark) == []
    assert boot_order(world) == [["vm-00000"]]
    (told,) = alerts(world, A.RECOVERY_PLAN_PROBLEM)
    assert told["data"]["field"] == "plan" and "did not make" in told["data"]["problem"]
    refused = api(world, "POST", "/api/failovers", {"action": "test_failover", "plan": "billing", "network":
                                                    world["dr"]["test_vnet"]})
    assert refused.status == 409 and refused.json()["errors"][0]["field"] == "plan"
    assert sub and writes(az, mark) == []
