"""Recovery plans and failovers end to end: three VMs replicating with Site Recovery (tests/app/failover_world.py,
replicated by the app's own enable path), the plans' timer and the failover API on the local Functions host, the queue
worker on Azurite, the real SiteRecoveryManagementClient against the emulator. Every answer is checked against the
OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared import tags as T
from shared.alerts import events as A
from tests.app.failover_world import (
    FAILOVER_PRINCIPAL,
    IR_SECONDS,
    RESTORE_OPERATOR_PRINCIPAL,
    RESTORE_ROLES_PRINCIPAL,
    RG,
    SRC_CONTAINER,
    SRC_FABRIC,
    TARGET,
    TARGET_RG,
    TGT_FABRIC,
    VAULT,
    api,
    app_calls,
    boot_order,
    plan,
    start,
    writes,
)


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, failover_replicated):
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=failover_replicated)
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


def plan_rows(world: dict[str, Any]) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                               world["settings"]["VMKEEPER_FAILOVER_TABLE"])
    return list(table.query_entities("PartitionKey eq 'plan'"))


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
    # A VM whose tag is taken away leaves the plan.
    world["compute"].virtual_machines.begin_update("rg-vm-01", "vm-00001", {"tags": {"owner": "finance"}}).result()
    sweep(world)
    assert boot_order(world) == [["vm-00000", "vm-00002"]]
    assert [g.group_type for g in plan(world).properties.groups] == ["Shutdown", "Failover", "Boot"]


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
        "recoveryFabricId": f"{vault}/replicationFabrics/{TGT_FABRIC}",
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


def test_a_plan_fails_over_in_boot_order_test_then_cleanup_planned_commit_and_reprotect(world, az):
    sweep(world)
    target = world["compute"]
    dry = api(world, "POST", "/api/failovers", {"action": "test_failover", "plan": "billing",
                                                "network": world["dr"]["test_vnet"], "dry_run": True})
    assert dry.status == 200, dry.body
    shown = dry.json()
    assert [[v["name"] for v in g["vms"]] for g in shown["order"]] == [["vm-00000", "vm-00001"], ["vm-00002"]]
    assert (shown["operation"], shown["direction"]) == ("TestFailover", "PrimaryToRecovery")
    assert shown["input"]["properties"]["networkId"] == world["dr"]["test_vnet"]
    assert not [v for v in target.virtual_machines.list(TARGET_RG)]  # a dry run sends nothing

    az.settings(lro={"per_type": {f"Microsoft.RecoveryServices/vaults/replicationRecoveryPlans/{op}": 1.0 for op in (
        "testFailover", "plannedFailover")}})
    tested = failover(world, {"action": "test_failover", "plan": "billing", "network": world["dr"]["test_vnet"]})
    assert tested["state"] == "succeeded" and tested["percent"] == 100, tested
    assert [t["name"].split(":")[0] for t in tested["job"]["tasks"]] == ["Group 1", "Group 2"]
    assert all(t["state"] == "Succeeded" for t in tested["job"]["tasks"])
    made = {v.name: v.time_created for v in target.virtual_machines.list(TARGET_RG)}
    assert set(made) == {"vm-00000-test", "vm-00001-test", "vm-00002-test"}
    assert max(made["vm-00000-test"], made["vm-00001-test"]) < made["vm-00002-test"]  # group 2 after group 1

    cleaned = failover(world, {"action": "test_failover_cleanup", "plan": "billing"})
    assert cleaned["state"] == "succeeded"
    assert not [v for v in target.virtual_machines.list(TARGET_RG)]

    planned = failover(world, {"action": "planned_failover", "plan": "billing"})
    assert planned["state"] == "succeeded", planned
    made = {v.name: v.time_created for v in target.virtual_machines.list(TARGET_RG)}
    assert set(made) == {"vm-00000", "vm-00001", "vm-00002"}
    assert max(made["vm-00000"], made["vm-00001"]) < made["vm-00002"]
    source = world["compute"].virtual_machines.instance_view("rg-vm-00", "vm-00000")
    assert "PowerState/deallocated" in {s.code for s in source.statuses}  # planned: the source was shut down first

    assert failover(world, {"action": "commit", "plan": "billing"})["state"] == "succeeded"
    assert failover(world, {"action": "reprotect", "plan": "billing"})["state"] == "succeeded"
    az.advance(IR_SECONDS + 1)
    for name in ("vm-00000", "vm-00001", "vm-00002"):
        item = world["asr"].replication_protected_items.get(RG, VAULT, SRC_FABRIC, SRC_CONTAINER,
                                                            world["dr"]["item_names"][name])
        a2a = item.properties.provider_specific_details
        assert (item.properties.protection_state, a2a["primaryFabricLocation"]) == ("Protected", TARGET)
    told = alerts(world, A.FAILOVER_SUCCEEDED)
    assert sorted(e["data"]["action"] for e in told) == ["commit", "planned_failover", "reprotect", "test_failover",
                                                         "test_failover_cleanup"]
    runs = [i for i in world["host"].invocations if i["function"] == "failover_worker"]
    assert len(runs) > len(told)  # the longer ones waited on their job through the queue (Retry-After), not in a function
    assert tested["steps"][1]["name"] == "follow_job" and tested["steps"][1]["seconds"] >= 1
    # The sweep leaves a failed-over plan alone until its VMs are back where they began.
    mark = len(az.calls())
    world["compute"].virtual_machines.begin_update("rg-vm-00", "vm-00002", {"tags": {T.APP: "billing"}}).result()
    sweep(world)
    assert writes(az, mark) == []
    (row,) = plan_rows(world)
    assert row["outcome"] == "busy" and "failed over or in a DR operation" in row["detail"]


def test_an_unplanned_failover_without_failover_operator_is_refused_and_nothing_is_sent(world, az):
    sweep(world)
    body = {"action": "unplanned_failover", "plan": "billing"}
    mark = len(az.calls())
    for principal in (RESTORE_OPERATOR_PRINCIPAL, RESTORE_ROLES_PRINCIPAL):
        refused = api(world, "POST", "/api/failovers", body, principal=principal)
        assert refused.status == 403 and refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["errors"] == [{"field": "X-MS-CLIENT-PRINCIPAL.roles", "detail": "Failover.Operator required"}]
    dry = api(world, "POST", "/api/failovers", {**body, "dry_run": True}, principal=RESTORE_OPERATOR_PRINCIPAL)
    assert dry.status == 403
    assert app_calls(az, mark) == []  # nothing sent to Azure, not even a read
    assert world["host"].pending() == 0
    assert not [v for v in world["compute"].virtual_machines.list(TARGET_RG)]
    allowed = failover(world, body, principal=FAILOVER_PRINCIPAL)
    assert allowed["state"] == "succeeded" and allowed["operation"] == "UnplannedFailover"
    assert {v.name for v in world["compute"].virtual_machines.list(TARGET_RG)} == {"vm-00000", "vm-00001", "vm-00002"}


def test_bad_bodies_and_a_reused_idempotency_key_are_problems_naming_the_field(world, az):
    sweep(world)
    net = world["dr"]["test_vnet"]
    vm = world["vms"][0].id
    cases = [
        ({}, {"action", "plan"}),
        ({"action": "explode", "plan": "billing"}, {"action"}),
        ({"action": "test_failover", "plan": "billing"}, {"network"}),
        ({"action": "commit", "plan": "billing", "vm": vm}, {"plan"}),
        ({"action": "commit", "plan": "Bad Name!"}, {"plan"}),
        ({"action": "commit", "vm": "/subscriptions/x/vm"}, {"vm"}),
        ({"action": "planned_failover", "plan": "billing", "shut_down_source": True}, {"shut_down_source"}),
        ({"action": "test_failover", "plan": "billing", "network": net, "recovery_point": "oldest"}, {"recovery_point"}),
        ({"action": "commit", "plan": "billing", "force": True}, {"force"}),
        ([], {"body"}),
    ]
    mark = len(az.calls())
    for body, fields in cases:
        answer = api(world, "POST", "/api/failovers", body)
        assert answer.status == 400, (body, answer.body)
        assert {e["field"] for e in answer.json()["errors"]} == fields, (body, answer.json())
    assert api(world, "POST", "/api/failovers", raw=b"{not json").json()["errors"][0]["field"] == "body"
    bad_key = api(world, "POST", "/api/failovers", {"action": "commit", "plan": "billing"},
                  headers={"Idempotency-Key": "k" * 300})
    assert bad_key.status == 400 and bad_key.json()["errors"][0]["field"] == "Idempotency-Key"
    assert writes(az, mark) == []
    # The world disagrees: nothing to commit (409 naming the action); an application with no plan (400).
    commit = api(world, "POST", "/api/failovers", {"action": "commit", "plan": "billing"})
    assert commit.status == 409 and commit.json()["errors"][0]["field"] == "action"
    assert "Commit" in commit.json()["errors"][0]["detail"]
    unknown = api(world, "POST", "/api/failovers", {"action": "commit", "plan": "payroll"})
    assert unknown.status == 400 and unknown.json()["errors"][0]["field"] == "plan"
    assert writes(az, mark) == [] and world["host"].pending() == 0

    body = {"action": "test_failover", "plan": "billing", "network": net}
    first = api(world, "POST", "/api/failovers", body, headers={"Idempotency-Key": "drill-7"})
    assert first.status == 202
    again = api(world, "POST", "/api/failovers", body, headers={"Idempotency-Key": "drill-7"})
    assert again.status == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api(world, "POST", "/api/failovers", {**body, "recovery_point": "latest_processed"},
                headers={"Idempotency-Key": "drill-7"})
    assert other.status == 422 and other.json()["errors"] == [{"field": "Idempotency-Key",
                                                               "detail": "already used with another body"}]
    assert world["host"].run_until_idle(timeout=120)
    assert api(world, "GET", f"/api/failovers/{first.json()['id']}").json()["state"] == "succeeded"
    crossing = api(world, "POST", "/api/failovers", {"action": "test_failover", "vm": vm, "network": net})
    assert crossing.status == 409 and crossing.json()["errors"][0]["field"] == "action"  # cleanup pending
    assert api(world, "GET", "/api/failovers/0123456789abcdef").status == 404
    assert api(world, "GET", "/api/failovers/nope").json()["errors"][0]["field"] == "id"


def test_one_vm_fails_over_commits_reprotects_and_fails_back(world, az):
    vm = world["vms"][2].id
    net = world["dr"]["test_vnet"]
    assert failover(world, {"action": "test_failover", "vm": vm, "network": net,
                            "recovery_point": "latest_app_consistent"})["state"] == "succeeded"
    assert [v.name for v in world["compute"].virtual_machines.list(TARGET_RG)] == ["vm-00002-test"]
    assert failover(world, {"action": "test_failover_cleanup", "vm": vm})["state"] == "succeeded"
    done = failover(world, {"action": "unplanned_failover", "vm": vm, "recovery_point": "latest_processed"})
    assert done["state"] == "succeeded" and done["target"]["vm"].lower() == vm.lower()
    for action in ("commit", "reprotect"):
        assert failover(world, {"action": action, "vm": vm})["state"] == "succeeded"
    az.advance(IR_SECONDS + 1)
    refused = api(world, "POST", "/api/failovers", {"action": "planned_failover", "vm": vm})
    assert refused.status == 409 and "failback" in refused.json()["errors"][0]["detail"]
    back = failover(world, {"action": "failback", "vm": vm})
    assert (back["state"], back["direction"]) == ("succeeded", "RecoveryToPrimary"), back
    item = world["asr"].replication_protected_items.get(RG, VAULT, SRC_FABRIC, SRC_CONTAINER,
                                                        world["dr"]["item_names"]["vm-00002"])
    assert item.properties.active_location == "Primary"


def test_a_worker_dying_after_the_post_sends_nothing_twice(az, emu, azurite, tmp_path, monkeypatch,
                                                           failover_replicated):
    """The row's save right after Site Recovery accepted the action fails (the worker died there): the next delivery
    finds the job that POST started and follows it, instead of sending the action again."""
    from tests.app.restore_world import wiring_wrapping

    lost = []

    class DiesAfterThePost:
        def __init__(self, table: Any):
            self._table = table

        def __getattr__(self, name: str) -> Any:
            return getattr(self._table, name)

        def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> Any:
            if not lost and "operation_url" in (entity.get("context") or ""):
                lost.append(entity["RowKey"])
                raise ConnectionError("the worker died before saving what Site Recovery answered")
            return self._table.update_entity(entity, **kwargs)

    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=failover_replicated,
              wiring_class=wiring_wrapping("VMKEEPER_FAILOVER_TABLE", DiesAfterThePost))
    w["az"] = az
    try:
        sweep(w)
        mark = len(az.calls())
        done = failover(w, {"action": "test_failover", "plan": "billing", "network": w["dr"]["test_vnet"]})
        assert lost == [done["id"]]
        assert done["state"] == "succeeded" and done["job"]["state"] == "Succeeded", done
        posts = [c for c in writes(az, mark) if c["path"].endswith("/testFailover")]
        assert len(posts) == 1
        assert {v.name for v in w["compute"].virtual_machines.list(TARGET_RG)} == {
            "vm-00000-test", "vm-00001-test", "vm-00002-test"}
    finally:
        w["host"].close()


def test_a_failover_site_recovery_fails_ends_failed_with_its_error_and_alerts_once(world, az):
    sweep(world)
    az.faults([{"kind": "lro_failed", "operation": ".*/replicationRecoveryPlans/plannedFailover/action", "count": 1}])
    done = failover(world, {"action": "planned_failover", "plan": "billing"})
    assert done["state"] == "failed" and done["error"]["step"] == "follow_job", done
    assert "ended Failed" in done["error"]["message"] and "Injected fault" in done["error"]["message"]
    assert [s["state"] for s in done["steps"]] == ["done", "failed"]
    (told,) = alerts(world, A.FAILOVER_FAILED)
    assert told["data"]["failover_id"] == done["id"] and told["subject"].endswith("/vmkeeper-app-billing")
    world["host"].fire_timer("keep_recovery_plans")  # nothing else was raised: no poisoned job
    assert alerts(world, A.JOB_POISONED) == [] and alerts(world, A.FAILOVER_SUCCEEDED) == []
