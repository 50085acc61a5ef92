"""Site Recovery health and RPO through the local Functions host: the compliance timer lists the replicated items
of the vaults VMKEEPER_VAULTS names (the real SDK against the emulator), judges each VM's replica against its
policy's RPO target, raises one alert per change, and the report page shows the replica kind.

The world: the app's identity holding only the roles infra/ deploys; one VM (westeurope) whose policy takes an hourly
snapshot set (a fresh one is arranged, so the replica alone decides the VM's state) and replicates its VMs tagged
critical, the Site Recovery vault in northeurope; replication arranged through the app (its sweep timer and worker
on the local host: tests/app/replication_arrange.py)."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient

from shared.alerts import events as A
from shared.instants import parse_instant
from shared.report.model import BREACHED, INITIAL_REPLICATION, MET, MISSING, REPLICA
from tests.app import replication_arrange as asr
from tests.app.restore_world import READER_PRINCIPAL, old_snapshot_set, start


def policies(sub: str) -> dict[str, Any]:
    """An hourly snapshot set, and replication of the VMs tagged critical (no ``rpo_minutes``: the default target)."""
    return {"version": 1, "default": "snap", "policies": {"snap": {
        "schedule": {"every_hours": 1}, "snapshots": {}, "replication": asr.policy_block(sub)}}}


APP_IDENTITY = "vmkeeper-identity"  # the bearer token of the app's credential: it holds the roles infra/ deploys


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch):
    """The app as deployed: its identity holds only infra/'s roles (tests/app/deployed_roles.py), so a read the
    role lacks is refused as Azure refuses it (and would show as a note of the evaluation)."""
    from emulator.testing import StaticCredential
    from tests.app.deployed_roles import assignments

    suffix = secrets.token_hex(4)
    w = start(az, emu, azurite, tmp_path, monkeypatch, credential=StaticCredential(APP_IDENTITY),
              VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *", VMKEEPER_ALERTS_TABLE=f"alerts{suffix}",
              **asr.app_settings(suffix))
    az.role_assignments(assignments(APP_IDENTITY, [w["sub"]], []))
    (tmp_path / "policies.json").write_text(json.dumps(policies(w["sub"])))
    asr.dr_vault(az, emu, w, monkeypatch)
    old_snapshot_set(az, w, timedelta(0), policy="snap")  # this hour's set: the VM's only kind of point is met
    w["azurite"], w["az"] = azurite, az
    yield w
    w["host"].close()


def alerts(world: dict[str, Any]) -> list[dict[str, Any]]:
    table = TableClient.from_connection_string(world["azurite"].connection_string,
                                               world["settings"]["VMKEEPER_ALERTS_TABLE"])
    rows = sorted(table.list_entities(), key=lambda r: parse_instant(r["time"]))  # the outbox's, to the microsecond
    return [json.loads(r["event"]) for r in rows]


def evaluate(world: dict[str, Any]) -> Any:
    world["host"].fire_timer("compliance_evaluation")
    evaluation = world["wiring"].compliance.recorded()
    assert evaluation.notes == []  # every vault's replicated items read, under the deployed role
    (vm,) = evaluation.vms
    return vm, {k.kind: k for k in vm.kinds}


def test_a_healthy_replica_is_met_with_the_items_rpo_and_the_report_shows_it(world, az):
    asr.tag_critical(az, world)
    item_id = asr.replicate(az, world, wait=False)
    vm, kinds = evaluate(world)  # enabled, the first full copy under way: its own state, no gap, no breach
    assert vm.state == MET and kinds[REPLICA].state == INITIAL_REPLICATION, vm.reason
    assert kinds[REPLICA].point_id.lower() == item_id.lower() and "initial replication" in vm.reason
    since = kinds[REPLICA].replication["since"]

    az.advance(asr.IR_SECONDS + 1)
    vm, kinds = evaluate(world)
    replica = kinds[REPLICA]
    a2a = asr.replicated_item(az, world).properties.provider_specific_details
    assert vm.state == MET and replica.state == MET, vm.reason
    assert replica.rpo_hours == 1  # no rpo_minutes in the replication block: the default target, 60 minutes
    assert abs(replica.age_hours * 3600 - a2a["rpoInSeconds"]) < 30  # the item's RPO (read again a moment later)
    assert replica.replication["health"] == "Normal" and replica.replication["protection_state"] == "Protected"
    assert replica.replication["errors"] == [] and replica.replication["target_region"] == asr.TARGET
    assert since and "replica RPO" in vm.reason and "target 60 min" in vm.reason
    assert alerts(world) == []  # enrolled and healthy: nothing to say

    key = {"x-functions-key": world["host"].function_key, "X-MS-CLIENT-PRINCIPAL": READER_PRINCIPAL}
    page = world["host"].http("GET", "/api/report", headers=key)
    assert page.status == 200
    html = page.body.decode()
    assert "Replica<br><small>RPO / target</small>" in html and 'data-health="Normal"' in html
    assert "/ 60 min</td>" in html and "replication health Normal" in html


def test_a_stalled_replica_is_one_unhealthy_alert_and_its_recovery_one_restored(world, az):
    asr.tag_critical(az, world)
    asr.replicate(az, world)
    vm, kinds = evaluate(world)
    assert vm.state == MET and kinds[REPLICA].state == MET, vm.reason

    asr.stall(az, world)
    az.advance(61 * 60)  # past the target: ASR says Warning, RpoThresholdExceeded
    vm, kinds = evaluate(world)
    replica = kinds[REPLICA]
    assert vm.state == BREACHED and replica.state == BREACHED, vm.reason
    assert replica.replication["health"] == "Warning" and replica.age_hours > 1
    assert [e["code"] for e in replica.replication["errors"]] == ["RpoThresholdExceeded"]
    assert "replication health Warning" in vm.reason and kinds["snapshot_set"].state == MET
    evaluate(world)  # still unhealthy: no new alert
    (unhealthy,) = alerts(world)
    assert (unhealthy["type"], unhealthy["subject"]) == (A.REPLICATION_UNHEALTHY, world["vm_id"].lower())
    assert unhealthy["data"]["replica"]["replication"]["errors"][0]["recommended_action"]
    assert unhealthy["data"]["replica"]["point_id"].lower() == world["replicated_item"].lower()

    asr.stall(az, world, stalled=False)
    az.advance(5 * 60)
    vm, kinds = evaluate(world)
    assert vm.state == MET and kinds[REPLICA].state == MET and kinds[REPLICA].replication["health"] == "Normal"
    evaluate(world)
    assert [e["type"] for e in alerts(world)] == [A.REPLICATION_UNHEALTHY, A.REPLICATION_RESTORED]


def test_a_critical_vm_without_replication_is_missing_its_replica_loudly_once(world, az):
    vm, kinds = evaluate(world)
    assert vm.state == MET and REPLICA not in kinds  # not critical, not replicated: no replica kind
    asr.tag_critical(az, world)
    vm, kinds = evaluate(world)
    assert vm.state == MISSING and vm.missing == (REPLICA,) and kinds[REPLICA].state == MISSING, vm.reason
    assert "vmkeeper-dr: critical but not replicated" in vm.reason
    evaluate(world)  # the same gap: nothing new
    (missing,) = alerts(world)
    assert (missing["type"], missing["data"]["missing"]) == (A.PROTECTION_MISSING, [REPLICA])

    asr.replicate(az, world)
    vm, kinds = evaluate(world)
    assert vm.state == MET and kinds[REPLICA].state == MET, vm.reason
    assert [e["type"] for e in alerts(world)] == [A.PROTECTION_MISSING, A.PROTECTION_RESOLVED]


def test_a_vm_created_again_under_its_name_is_not_protected_by_the_old_instances_replica(world, az):
    """ASR names no instance: deleted and created again under its name, the VM keeps its id, and Site Recovery's
    item (healthy again once a VM of that id is back) still replicates the old instance's disks. The replica kind
    counts an item only when it replicates the VM's current OS disk."""
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.compute.models import DiskCreateOptionTypes
    from azure.mgmt.network import NetworkManagementClient

    asr.tag_critical(az, world)
    asr.replicate(az, world)
    assert evaluate(world)[0].state == MET
    c = az.client(ComputeManagementClient, world["sub"], polling_interval=0)
    vm = c.virtual_machines.get("rg-vm-00", "vm-00000")
    c.virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()
    nic = az.client(NetworkManagementClient, world["sub"], polling_interval=0).network_interfaces.begin_create_or_update(
        "rg-vm-00", "vm-00000-nic-2", {"location": vm.location, "properties": {"ipConfigurations": [{
            "name": "ipconfig1", "properties": {"subnet": {"id": world["subnet"][asr.SOURCE]}}}]}}).result()
    vm.network_profile.network_interfaces = [{"id": nic.id}]
    vm.storage_profile.os_disk.managed_disk, vm.storage_profile.os_disk.name = None, "vm-00000-osdisk-2"
    for d in vm.storage_profile.data_disks:
        d.managed_disk, d.name, d.create_option = None, f"{d.name}-2", DiskCreateOptionTypes.EMPTY
    vm.tags = {**(vm.tags or {}), "vmkeeper-dr": "critical"}
    c.virtual_machines.begin_create_or_update("rg-vm-00", "vm-00000", vm).result()
    az.advance(5 * 60)
    assert asr.replicated_item(az, world).properties.replication_health == "Normal"  # ASR sees a VM of that id

    vm_row, kinds = evaluate(world)
    assert kinds[REPLICA].state == MISSING and vm_row.missing == (REPLICA,), vm_row.reason
    assert "an earlier instance" in vm_row.reason
    assert [e["type"] for e in alerts(world)] == [A.PROTECTION_MISSING]
