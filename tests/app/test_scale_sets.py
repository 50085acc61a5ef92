"""VMs in scale sets, end to end through the local Functions host, Azurite and the emulator. A Flexible scale set's
scale-out makes three VMs: each is enrolled in Azure Backup by its creation event, protected by the schedule
(snapshot set, restore point, their copies) and judged `met` like any VM; one is restored into the scale set (in the
fault domain asked), one is drilled (standalone). A Uniform scale set's instances, which neither Azure Backup nor
VM restore points cover, are reported `not_supported` with the reason — by compliance, `vmkeeper status` (exit 2)
and the report page — until their set is opted out."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import tags as T
from tests.app.restore_world import POLICIES, READER_PRINCIPAL, REGION, protect_once, saved_after, start
from tests.app.test_drill_safety import until
from tests.app.test_restore import alerts, api, compute, restore
from tests.emulator.test_compute_scale_sets import scale_set

FLEX, UNIFORM = "vmss-web", "vmss-batch"
POLICY = {**POLICIES["policies"]["full"], "backup_policy": "DefaultPolicy",
          "drill": {"every_days": 7, "point": "snapshot_set", "all_vms": False, "keep_hours": 1,
                    "keep_failed_hours": 0, "ready_timeout_minutes": 1}}


def build(az, emu, azurite, tmp_path, monkeypatch, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """The restore world (its VM in Azure Backup, so VMKEEPER_VAULTS names the region's vault) with a policy that
    also enrols in Azure Backup (backup now) and drills VMs tagged for it."""
    suffix = secrets.token_hex(4)
    w = start(az, emu, azurite, tmp_path, monkeypatch, vault=True, saved=saved, VMKEEPER_BACKUP_NOW="true",
              VMKEEPER_PROTECT_RETRY_SECONDS="1", VMKEEPER_PROTECT_RETRY_MAX_SECONDS="2",
              VMKEEPER_DRILL_QUEUE=f"drills-{suffix}", VMKEEPER_ALERTS_TABLE=f"alerts{suffix}",
              VMKEEPER_COMPLIANCE_SCHEDULE="0 */30 * * * *")
    (tmp_path / "policies.json").write_text(json.dumps({**POLICIES, "policies": {"full": POLICY}}))
    w["host"].ensure_queues()
    w["compute"] = compute(az, w)
    return w


def scale_out(w: dict[str, Any], az: Any) -> None:
    """A Flexible set of three VMs made by its scale-out, their creation events delivered to ``vm_events``, each VM
    enrolled (and backed up now) by auto-protect; a Uniform set of two; then one scheduled slot."""
    host, sub = w["host"], w["sub"]
    az.admin("POST", "eventSubscriptions", {"endpoint": host.serve_event_grid("vm_events"), "subscriptionId": sub,
                                            "includedEventTypes": ["Microsoft.Resources.ResourceWriteSuccess"]})
    c = w["compute"]
    c.virtual_machine_scale_sets.begin_create_or_update("rg-vm-00", FLEX, scale_set(sub, "Flexible", 3, 3)).result()
    c.virtual_machine_scale_sets.begin_create_or_update("rg-vm-00", UNIFORM, scale_set(sub, "Uniform", 2, 5)).result()
    vault = w["vault_id"].split("/")
    deadline = time.monotonic() + 90
    while True:  # each VM's creation event → its protection job → enrolled, backed up now (a Backup job)
        assert host.run_until_idle(timeout=60)
        items = [i for i in w["backup"].backup_protected_items.list(vault[8], vault[4])
                 if f";{FLEX}_" in i.name.lower() and i.properties.last_recovery_point]
        if len(items) == 3:
            break
        assert time.monotonic() < deadline, f"not every scale set VM enrolled and backed up: {[i.name for i in items]}"
        time.sleep(0.2)
    protect_once(w)


@pytest.fixture(scope="module")
def saved(_local_azure, azurite, tmp_path_factory):
    return saved_after(_local_azure, azurite, tmp_path_factory.mktemp("scale-sets"), build,
                       lambda w: scale_out(w, _local_azure[0]))


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, saved):
    w = build(az, emu, azurite, tmp_path, monkeypatch, saved=saved)
    yield w
    w["host"].close()


def members(w: dict[str, Any], name: str = FLEX) -> list:
    set_id = w["compute"].virtual_machine_scale_sets.get("rg-vm-00", name).id.lower()
    return sorted((vm for vm in w["compute"].virtual_machines.list("rg-vm-00")
                   if vm.virtual_machine_scale_set and vm.virtual_machine_scale_set.id.lower() == set_id),
                  key=lambda vm: vm.name)


def test_each_vm_of_a_flexible_scale_out_is_protected_like_any_vm(world):
    vms = members(world)
    assert len(vms) == 3 and sorted(vm.platform_fault_domain for vm in vms) == [0, 1, 2]
    evaluation = world["wiring"].compliance.evaluate(datetime.now(UTC))
    rows = {v.vm_id.lower(): v for v in evaluation.vms}
    for vm in vms:
        row = rows[vm.id.lower()]
        kinds = {k.kind: k.state for k in row.kinds}
        assert row.state == "met" and row.policy == "full", (vm.name, row.reason)
        assert kinds == {"vault": "met", "snapshot_set": "met", "restore_point": "met", "snapshot_copy": "met",
                         "restore_point_copy": "met"}, (vm.name, kinds)
    vault = world["vault_id"].split("/")
    enrolled = {i.properties.source_resource_id.lower() for i in world["backup"].backup_protected_items.list(vault[8], vault[4])}
    assert {vm.id.lower() for vm in vms} <= enrolled


def test_a_flexible_vm_restored_into_its_scale_set_joins_it_in_the_fault_domain_asked(world, az):
    source = members(world)[0]
    set_id = world["compute"].virtual_machine_scale_sets.get("rg-vm-00", FLEX).id
    entry = next(p for p in api(world, "GET", f"/api/vms/{world['sub']}/rg-vm-00/{source.name}/recovery-points").json()["value"]
                 if p["kind"] == "restore_point" and not p["copy"])
    target = {"type": "vm", "resource_group": f"/subscriptions/{world['sub']}/resourceGroups/rg-vm-00",
              "vm_name": "web-back", "subnet": world["subnet"][REGION], "virtual_machine_scale_set": set_id,
              "platform_fault_domain": 2}
    dry = api(world, "POST", "/api/restores", {"vm": source.id, "recovery_point": entry["id"], "target": target,
                                               "dry_run": True})
    assert dry.status == 200 and dry.json()["plan"]["vm"]["scale_set"] == set_id, dry.body
    done = restore(world, {"vm": source.id, "recovery_point": entry["id"], "target": target})
    assert done["state"] == "succeeded", done
    vm = world["compute"].virtual_machines.get("rg-vm-00", "web-back")
    assert vm.virtual_machine_scale_set.id.lower() == set_id.lower() and vm.platform_fault_domain == 2
    assert vm.tags[T.RESTORE] == done["id"] and len(members(world)) == 4

    # Refused before anything is written: a Uniform set, a fault domain without a set or out of range, a set outside
    # VMKEEPER_RESTORE_SCOPES.
    uniform = world["compute"].virtual_machine_scale_sets.get("rg-vm-00", UNIFORM).id
    mark = len(az.calls())
    for extra, field, status in (({"virtual_machine_scale_set": uniform}, "target.virtual_machine_scale_set", 400),
                                 ({"platform_fault_domain": 1}, "target.platform_fault_domain", 400),
                                 ({"virtual_machine_scale_set": set_id, "platform_fault_domain": 3},
                                  "target.platform_fault_domain", 400),
                                 ({"virtual_machine_scale_set": set_id.replace("rg-vm-00", "rg-elsewhere")},
                                  "target.virtual_machine_scale_set", 403)):
        body = {**target, "vm_name": "web-refused", **extra}
        body = {k: v for k, v in body.items() if k not in ("virtual_machine_scale_set", "platform_fault_domain")
                or k in extra}
        answer = api(world, "POST", "/api/restores", {"vm": source.id, "recovery_point": entry["id"], "target": body})
        assert answer.status == status and field in [e["field"] for e in answer.json()["errors"]], (extra, answer.body)
    assert not [c for c in az.calls(mark) if c["method"] in ("PUT", "PATCH", "DELETE")]


def test_a_flexible_vm_is_drilled_standalone(world, az):
    from azure.mgmt.resource.resources import ResourceManagementClient

    vm = members(world)[1]
    az.client(ResourceManagementClient, world["sub"]).tags.begin_update_at_scope(
        vm.id, {"operation": "Merge", "properties": {"tags": {T.DRILL: "true"}}}).result()
    world["host"].fire_timer("plan_drills")
    until(world, lambda: [d.result for d in world["wiring"].drills.history()] == ["passed"])  # kept keep_hours
    (drill,) = world["wiring"].drills.history()
    assert drill.vm_id.lower() == vm.id.lower() and drill.result == "passed", drill
    row = world["wiring"].drills.ledger.get("drills", drill.id)
    group = row["group"].rsplit("/", 1)[-1]
    (drilled,) = world["compute"].virtual_machines.list(group)  # the drill's VM, kept: it stands alone
    assert drilled.virtual_machine_scale_set is None and drilled.tags[T.RESTORE]
    assert len(members(world)) == 3


def test_uniform_scale_set_instances_are_reported_not_supported_until_their_set_is_opted_out(world, az):
    from azure.mgmt.resource.resources import ResourceManagementClient

    from tests.cli.cli_world import json_out, vmkeeper

    result = vmkeeper("status", "--json")
    doc = json_out(result, "status")
    assert result.exit_code == 2 and doc["counts"]["not_supported"] == 2, doc["counts"]
    rows = [v for v in doc["vms"] if v["state"] == "not_supported"]
    assert sorted(v["name"] for v in rows) == [f"{UNIFORM}_0", f"{UNIFORM}_1"]
    assert all("Uniform scale set" in v["reason"] and UNIFORM in v["reason"] for v in rows)
    assert not [v for v in doc["vms"] if v["state"] not in ("met", "not_supported")], doc["vms"]
    human = vmkeeper("status")
    assert "not supported" in human.stdout and f"{UNIFORM}_0" in human.stdout

    world["host"].fire_timer("compliance_evaluation")  # recorded, alerted once each, on the report page
    page = world["host"].http("GET", "/api/report", headers={"x-functions-key": world["host"].function_key,
                                                            "X-MS-CLIENT-PRINCIPAL": READER_PRINCIPAL})
    assert page.status == 200 and f"{UNIFORM}_1" in page.body.decode() and "not supported" in page.body.decode()
    missing = {e["subject"].rsplit("/", 1)[-1]: e["data"] for e in alerts(world)
               if e["type"] == "vmkeeper.protection.missing" and "/virtualmachinescalesets/" in e["subject"]}
    assert sorted(missing) == ["0", "1"] and all(d["state"] == "not_supported" for d in missing.values()), missing

    set_id = world["compute"].virtual_machine_scale_sets.get("rg-vm-00", UNIFORM).id
    az.client(ResourceManagementClient, world["sub"]).tags.begin_update_at_scope(
        set_id, {"operation": "Merge", "properties": {"tags": {T.OPT_OUT: "true"}}}).result()
    after = vmkeeper("status", "--json")
    counts = json_out(after, "status")["counts"]
    assert after.exit_code == 0 and counts["not_supported"] == 0 and counts["opted_out"] == 2, counts
