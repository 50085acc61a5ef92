"""RPO compliance through the local Functions host: the timer judges every VM from what Azure holds,
records it, raises one alert per change; GET /api/report shows it to a reader."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient

from shared.access import encode_principal
from shared.alerts import events as A
from shared.report.model import BREACHED, MET, MISSING
from tests.app.restore_world import (
    POLICIES,
    READER_PRINCIPAL,
    SECOND,
    old_snapshot_set,
    protect_once,
    protected,
    start,
)

FULL = {**POLICIES["policies"]["full"], "backup_policy": "DefaultPolicy"}


def compliance_world(az, emu, azurite, tmp_path, monkeypatch, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True, saved=saved,
              VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *", VMKEEPER_ALERTS_TABLE=f"alerts{secrets.token_hex(4)}")
    (tmp_path / "policies.json").write_text(json.dumps({**POLICIES, "policies": {"full": FULL}}))
    w["azurite"] = azurite
    return w


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch):
    """Not protected by vmkeeper yet (the vault's recovery point only)."""
    w = compliance_world(az, emu, azurite, tmp_path, monkeypatch)
    yield w
    w["host"].close()


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    """The world one scheduled slot protected, once for the module: a test starts from its own copy."""
    return protected(_local_azure, azurite, tmp_path_factory.mktemp("protected"), build=compliance_world)


@pytest.fixture
def protected_world(az, emu, azurite, tmp_path, monkeypatch, saved):
    """The world as one scheduled slot left it (a fresh set, a restore point and their copies)."""
    w = compliance_world(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    yield w
    w["host"].close()


def alerts(world: dict[str, Any]) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(world["azurite"].connection_string,
                                               world["settings"]["VMKEEPER_ALERTS_TABLE"])
    return [json.loads(r["event"]) for r in table.list_entities()]


def evaluate(world: dict[str, Any]) -> Any:
    world["host"].fire_timer("compliance_evaluation")
    return world["wiring"].compliance.recorded()


def test_a_breach_and_its_end_are_each_one_alert_and_the_rows_say_why(world, az):
    old_snapshot_set(az, world, timedelta(days=2))
    first = evaluate(world)
    (vm,) = first.vms
    kinds = {k.kind: k for k in vm.kinds}
    assert vm.state == BREACHED and vm.policy == "full"
    assert kinds["snapshot_set"].state == BREACHED and kinds["snapshot_set"].age_hours > 47
    assert kinds["vault"].state == MET  # the vault's recovery point, from its protected item
    assert kinds["restore_point"].state == kinds["snapshot_copy"].state == kinds["restore_point_copy"].state == MISSING
    assert vm.missing == ("restore_point", "snapshot_copy", "restore_point_copy")
    assert "snapshot set" in vm.reason and "RPO 2 h" in vm.reason
    evaluate(world)  # still breached and missing the same kinds: no new alert
    assert sorted(e["type"] for e in alerts(world)) == [A.PROTECTION_MISSING, A.RPO_BREACHED]

    protect_once(world)  # the slot makes a fresh set, a restore point and their copies in the second region
    after = evaluate(world)
    (vm,) = after.vms
    assert vm.state == MET, vm.reason
    assert {k.kind: k.state for k in vm.kinds} == {"vault": MET, "snapshot_set": MET, "restore_point": MET,
                                                   "snapshot_copy": MET, "restore_point_copy": MET}
    events = alerts(world)
    assert sorted(e["type"] for e in events) == [A.PROTECTION_MISSING, A.PROTECTION_RESOLVED, A.RPO_BREACHED,
                                                 A.RPO_RESTORED]
    assert {e["subject"] for e in events} == {world["vm_id"].lower()}
    assert {d.kind for d in after.points_per_day} >= {"snapshot_set", "restore_point", "snapshot_copy",
                                                      "restore_point_copy"}
    copies = {k.kind: k.point_id for k in vm.kinds}
    assert copies["snapshot_copy"].startswith("snapshot-set:") and copies["snapshot_copy"].endswith(f":{SECOND}")
    assert "/restorepointcollections/" in copies["restore_point_copy"].lower()


def test_a_fresh_snapshot_set_without_restore_points_is_missing_them_loudly_once(world, az):
    """Issue 19, defect 7: a VM with no recovery point of a kind raised nothing and read `not_protected`
    whatever else it had. Now it is `missing`, the kinds named, one alert when they go missing and one
    when none is missing any more."""
    old_snapshot_set(az, world, timedelta(0))  # this hour's set: fresh; no restore point, no copy
    (vm,) = evaluate(world).vms
    assert vm.state == MISSING, vm.reason
    assert vm.missing == ("restore_point", "snapshot_copy", "restore_point_copy")
    assert {k.kind: k.state for k in vm.kinds}["snapshot_set"] == MET
    assert "no complete restore point" in vm.reason
    evaluate(world)  # the same gap: nothing new
    (missing,) = alerts(world)
    assert (missing["type"], missing["subject"]) == (A.PROTECTION_MISSING, world["vm_id"].lower())
    assert missing["data"]["missing"] == ["restore_point", "snapshot_copy", "restore_point_copy"]

    protect_once(world)
    (vm,) = evaluate(world).vms
    assert vm.state == MET and vm.missing == ()
    assert sorted(e["type"] for e in alerts(world)) == [A.PROTECTION_MISSING, A.PROTECTION_RESOLVED]


def test_failed_snapshot_set_copies_are_not_met_by_a_restore_point_copy(world, az):
    """Issue 19, defect 8: every snapshot copy of the slot ends Failed while the restore point's copy
    succeeds; the snapshot sets' copies are judged on their own and are missing."""
    az.faults([{"kind": "lro_failed", "method": "PUT", "path": f"/snapshots/[^/]*-{SECOND}$", "probability": 1.0}])
    try:
        world["host"].fire_timer("plan_slot")
        world["host"].run_until_idle(timeout=120)  # the snapshot job fails (poisoned); the restore point's is done
    finally:
        az.faults([])
    (vm,) = evaluate(world).vms
    kinds = {k.kind: k.state for k in vm.kinds}
    assert kinds == {"vault": MET, "snapshot_set": MET, "restore_point": MET, "snapshot_copy": MISSING,
                     "restore_point_copy": MET}, vm.reason
    assert vm.state == MISSING and vm.missing == ("snapshot_copy",)
    assert [(e["type"], e["data"]["missing"]) for e in alerts(world) if e["type"] == A.PROTECTION_MISSING] == [
        (A.PROTECTION_MISSING, ["snapshot_copy"])]


def test_a_snapshot_made_by_hand_with_vmkeepers_tags_copied_counts_for_nothing(protected_world, az):
    """An operator's snapshot with every tag of a member of vmkeeper's fresh set copied onto it joins no set
    (vmkeeper's names decide): the set stays complete and met, no problem is raised."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import CreationData, Snapshot

    from shared import tags as T

    world = protected_world
    (before,) = evaluate(world).vms
    assert before.state == MET, before.reason
    c = az.client(ComputeManagementClient, world["sub"], polling_interval=0)
    member = next(s for s in c.snapshots.list_by_resource_group("rg-vm-00") if (s.tags or {}).get(T.LUN) == "None"
                  and T.COPY_OF not in s.tags)
    c.snapshots.begin_create_or_update("rg-vm-00", "before-upgrade", Snapshot(
        location=member.location, tags=dict(member.tags), incremental=True,
        creation_data=CreationData(create_option="Copy", source_resource_id=member.creation_data.source_resource_id))
    ).result()
    (after,) = evaluate(world).vms
    assert after.state == MET, after.reason
    assert [(k.kind, k.state, k.point_id) for k in after.kinds] == [(k.kind, k.state, k.point_id) for k in before.kinds]
    assert [e["type"] for e in alerts(world)] == []


def test_a_vm_created_again_under_its_name_is_not_met_by_the_old_instances_points(protected_world, az):
    """Issue 19, defect 11: deleted and created again, a VM keeps its ARM id but not its vmId; the old
    instance's fresh points (tagged with its vmId; restore points say it in their source metadata) do not
    make the new one met."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import DiskCreateOptionTypes

    world = protected_world
    (before,) = evaluate(world).vms
    assert before.state == MET, before.reason
    c = az.client(ComputeManagementClient, world["sub"], polling_interval=0)
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    c.virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()
    # Its disks and NIC went with it: the new instance's are new (from the image, empty data disks, a new NIC).
    from azure.mgmt.network import NetworkManagementClient

    nic = az.client(NetworkManagementClient, world["sub"], polling_interval=0).network_interfaces.begin_create_or_update(
        "rg-vm-00", "vm-00000-nic-2", {"location": vm.location, "properties": {"ipConfigurations": [{
            "name": "ipconfig1", "properties": {"subnet": {"id": world["subnet"][vm.location.replace(" ", "").lower()]}}}]}}
    ).result()
    vm.network_profile.network_interfaces = [{"id": nic.id}]
    vm.storage_profile.os_disk.managed_disk, vm.storage_profile.os_disk.name = None, "vm-00000-osdisk-2"
    for d in vm.storage_profile.data_disks:
        d.managed_disk, d.name, d.create_option = None, f"{d.name}-2", DiskCreateOptionTypes.EMPTY
    again = c.virtual_machines.begin_create_or_update("rg-vm-00", "vm-00000", vm).result()
    assert again.id.lower() == vm.id.lower() and again.vm_id != vm.vm_id
    (after,) = evaluate(world).vms
    kinds = {k.kind: k.state for k in after.kinds}
    assert kinds == {"vault": MET, "snapshot_set": MISSING, "restore_point": MISSING, "snapshot_copy": MISSING,
                     "restore_point_copy": MISSING}, after.reason  # the vault's item says no instance: as before


def test_the_report_page_needs_a_reader_and_shows_the_fleet(protected_world, az):
    world = protected_world
    evaluate(world)
    key = {"x-functions-key": world["host"].function_key}
    assert world["host"].http("GET", "/api/report").status == 401  # the host: no function key
    anonymous = world["host"].http("GET", "/api/report", headers=key)
    assert anonymous.status == 401 and anonymous.headers["content-type"].startswith("application/problem+json")
    nobody = encode_principal("00000000-0000-0000-0000-0000000000cc", [], name="guest@example.com")
    denied = world["host"].http("GET", "/api/report", headers={**key, "X-MS-CLIENT-PRINCIPAL": nobody})
    assert denied.status == 403 and denied.json()["errors"][0]["field"] == "X-MS-CLIENT-PRINCIPAL.roles"
    page = world["host"].http("GET", "/api/report", headers={**key, "X-MS-CLIENT-PRINCIPAL": READER_PRINCIPAL})
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assert "vm-00000" in html and world["sub"] in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_a_poisoned_job_a_breach_and_a_restore_each_reach_a_subscriber_once(world, az, monkeypatch):
    """End to end: the app publishes with the real azure-eventgrid client (Bearer) to the emulator's custom
    topic, which delivers CloudEvents to a local WebHook subscriber."""
    from azure.mgmt.eventgrid import EventGridManagementClient
    from azure.mgmt.eventgrid.models import EventSubscription, Topic, WebHookEventSubscriptionDestination
    from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

    from emulator.eventgrid.subscriber import WebHookSubscriber
    from tests.app.restore_world import OPERATOR_PRINCIPAL

    eg = az.client(EventGridManagementClient, world["sub"], polling_interval=0)
    topic = eg.topics.begin_create_or_update("rg-restore", "vmkeeper-alerts", Topic(
        location="westeurope", input_schema="CloudEventSchemaV1_0", disable_local_auth=True)).result()
    monkeypatch.setenv("VMKEEPER_ALERTS_TOPIC_ENDPOINT", topic.endpoint)  # read on the alerts' first use
    with WebHookSubscriber() as hook:
        eg.event_subscriptions.begin_create_or_update(topic.id, "ops", EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=hook.url),
            event_delivery_schema="CloudEventSchemaV1_0")).result()
        old_snapshot_set(az, world, timedelta(days=2))
        evaluate(world)  # breached

        jobs = QueueClient.from_connection_string(world["azurite"].connection_string,
                                                  world["settings"]["VMKEEPER_JOBS_QUEUE"],
                                                  message_encode_policy=BinaryBase64EncodePolicy())
        jobs.send_message(b'{"v": 1, "kind": "scheduled", "batch": "not a list"}')
        assert world["host"].run_until_idle(timeout=60)  # poisoned

        headers = {"x-functions-key": world["host"].function_key, "X-MS-CLIENT-PRINCIPAL": OPERATOR_PRINCIPAL}
        points = world["host"].http("GET", f"/api/vms/{world['sub']}/rg-vm-00/vm-00000/recovery-points",
                                    headers=headers).json()["value"]
        the_set = next(p for p in points if p["kind"] == "snapshot_set" and p["complete"])
        accepted = world["host"].http("POST", "/api/restores", headers=headers, body=json.dumps({
            "vm": world["vm_id"], "recovery_point": the_set["id"],
            "target": {"type": "disks", "resource_group": f"/subscriptions/{world['sub']}/resourceGroups/rg-restore"}}))
        assert accepted.status == 202, accepted.body
        assert world["host"].run_until_idle(timeout=120)
        evaluate(world)  # still breached: nothing new

        az.wait_for_topic_deliveries(timeout=20)
        events = hook.events
        assert sorted(e["type"] for e in events) == [A.JOB_POISONED, A.PROTECTION_MISSING, A.RESTORE_SUCCEEDED,
                                                     A.RPO_BREACHED], events  # missing: no restore point, no copies
        by_type = {e["type"]: e for e in events}
        assert by_type[A.RPO_BREACHED]["subject"] == by_type[A.RESTORE_SUCCEEDED]["subject"] == world["vm_id"].lower()
        assert by_type[A.JOB_POISONED]["subject"] == f"queue {world['settings']['VMKEEPER_JOBS_QUEUE']}"
        assert "message.batch" in by_type[A.JOB_POISONED]["data"]["reason"]
        assert by_type[A.RESTORE_SUCCEEDED]["data"]["restore_id"] == accepted.json()["id"]
        assert all(e["specversion"] == "1.0" and e["source"] == "/vmkeeper" for e in events)
        assert len({e["id"] for e in events}) == 4
        outbox = list(TableClient.from_connection_string(world["azurite"].connection_string,
                                                         world["settings"]["VMKEEPER_ALERTS_TABLE"]).list_entities())
        assert len(outbox) == 4 and all(r["sent"] for r in outbox)  # the outbox: each change once, each published
    publishes = [c for c in az.calls() if c.get("operation") == "Microsoft.EventGrid/events/send/action"]
    assert publishes and all(c["status"] == 200 and "vmkeeper/" in (c.get("userAgent") or "") for c in publishes)
