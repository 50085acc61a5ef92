"""Restore plans: steps in order, names from the restore id, refusals naming the field."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from shared.restore import catalogue
from shared.restore import plan as P
from shared.restore.catalogue import RecoveryPoint, RestoreDisk
from shared.restore.plan import Conflict, Facts, Plan, make
from shared.restore.request import BadRequest, FieldProblem, parse

SUB = "6d4a5a5c-2f4e-4c5e-9f5b-3c3f2d1e0a9b"
SRC = f"/subscriptions/{SUB}/resourceGroups/rg-prod"
DST = f"/subscriptions/{SUB}/resourceGroups/rg-restore"
VM = f"{SRC}/providers/Microsoft.Compute/virtualMachines/web-01"
OTHER_VM = f"{DST}/providers/Microsoft.Compute/virtualMachines/web-02"
SUBNET = f"{DST}/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/default"
STAGING = f"{DST}/providers/Microsoft.Storage/storageAccounts/vmkstaging01"
RPC = f"{SRC}/providers/Microsoft.Compute/restorePointCollections/vmk-rpc-web"
VAULT_ID = f"{SRC}/providers/Microsoft.RecoveryServices/vaults/vault-we"
VAULT_POINT = (f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;rg-prod;web-01/"
               "protectedItems/VM;iaasvmcontainerv2;rg-prod;web-01/recoveryPoints/1234567890123")
RID = "0123456789abcdef"
WHEN = datetime(2026, 11, 25, 6, tzinfo=UTC)


def disks(source: str) -> tuple[RestoreDisk, ...]:
    return (RestoreDisk(None, "web-01-os", f"{source}/os", 128, "Linux", "Premium_LRS"),
            RestoreDisk(0, "web-01-data0", f"{source}/lun0", 64, None, "Premium_LRS"),
            RestoreDisk(1, "web-01-data1", f"{source}/lun1", 32))


SET_POINT = RecoveryPoint("snapshot-set:aaaaaaaaaaaaaaaa:westeurope", catalogue.SNAPSHOT_SET, WHEN, "westeurope",
                          "CrashConsistent", True, disks=disks(f"{SRC}/providers/Microsoft.Compute/snapshots/s"))
RP_POINT = RecoveryPoint(f"{RPC}/restorePoints/rp-1", catalogue.RESTORE_POINT, WHEN, "westeurope",
                         "ApplicationConsistent", True, disks=disks(f"{RPC}/restorePoints/rp-1/diskRestorePoints/d"),
                         resource_id=f"{RPC}/restorePoints/rp-1", vm_size="Standard_D2s_v5")
VAULT = RecoveryPoint(VAULT_POINT, catalogue.VAULT, WHEN, "westeurope", "ApplicationConsistent", True,
                      disks=(RestoreDisk(None, "web-01-os", ""),), resource_id=VAULT_POINT, vm_size="Standard_D4s_v5",
                      extra={"vault_id": VAULT_ID})
POINTS = {catalogue.SNAPSHOT_SET: SET_POINT, catalogue.RESTORE_POINT: RP_POINT, catalogue.VAULT: VAULT}
DISK_KINDS = (catalogue.SNAPSHOT_SET, catalogue.RESTORE_POINT)

TARGETS = {
    "disks": {"type": "disks", "resource_group": DST},
    "vm": {"type": "vm", "resource_group": DST, "vm_name": "web-01-restored", "subnet": SUBNET},
    "os_disk": {"type": "os_disk", "vm": OTHER_VM},
}
GOOD = Facts(groups={DST.lower(): True}, subnet_region="westeurope", source_vm_size="Standard_B2s",
             target_vm={"id": OTHER_VM, "region": "westeurope", "os_disk_id": f"{DST}/providers/Microsoft.Compute/disks/old",
                        "os_disk_size": 128, "power": "running"})


def request(point: RecoveryPoint, target: dict):
    return parse({"vm": VM, "recovery_point": point.id, "target": target})


def plan_for(kind: str, ttype: str, facts: Facts = GOOD, restore_id: str = RID, point: RecoveryPoint | None = None,
             **target) -> Plan:
    point = point or POINTS[kind]
    return make(restore_id, request(point, TARGETS[ttype] | target), point, facts)


def refused(exc_type, kind: str, ttype: str, facts: Facts = GOOD, point: RecoveryPoint | None = None, **target):
    with pytest.raises(exc_type) as caught:
        plan_for(kind, ttype, facts, point=point, **target)
    return caught.value


@pytest.mark.parametrize("kind", DISK_KINDS)
def test_disks(kind):
    plan = plan_for(kind, "disks")
    assert plan.steps == (P.DISKS,) and (plan.source_kind, plan.target_type, plan.region) == (kind, "disks", "westeurope")
    assert [d["name"] for d in plan.disks] == ["web-01-os-r0123456789abcdef", "web-01-lun0-r0123456789abcdef", "web-01-lun1-r0123456789abcdef"]
    assert all(d["id"] == f"{DST}/providers/Microsoft.Compute/disks/{d['name']}" for d in plan.disks)
    assert {d["create_option"] for d in plan.disks} == {"Copy" if kind == catalogue.SNAPSHOT_SET else "Restore"}
    assert [d["source_id"] for d in plan.disks] == [d.source_id for d in POINTS[kind].disks]
    assert [d["size_gb"] for d in plan.disks] == [128, 64, 32]
    assert plan.nic is None and plan.vm is None and plan.vault is None
    assert plan.creates() == [{"type": "Microsoft.Compute/disks", "id": d["id"]} for d in plan.disks]


@pytest.mark.parametrize("kind", DISK_KINDS)
def test_a_new_vm(kind):
    plan = plan_for(kind, "vm")
    assert plan.steps == (P.DISKS, P.NIC, P.VM)
    assert [d["name"] for d in plan.disks][0] == "web-01-restored-os-r0123456789abcdef"
    assert plan.nic == {"name": "web-01-restored-nic-r0123456789abcdef", "subnet_id": SUBNET,
                        "id": f"{DST}/providers/Microsoft.Network/networkInterfaces/web-01-restored-nic-r0123456789abcdef"}
    assert plan.vm["id"] == f"{DST}/providers/Microsoft.Compute/virtualMachines/web-01-restored"
    # The size: as asked, else the point's, else the source VM's now.
    assert plan.vm["size"] == ("Standard_B2s" if kind == catalogue.SNAPSHOT_SET else "Standard_D2s_v5")
    assert plan_for(kind, "vm", vm_size="Standard_E4s_v5").vm["size"] == "Standard_E4s_v5"
    assert [c["type"] for c in plan.creates()] == ["Microsoft.Compute/disks"] * 3 + [
        "Microsoft.Network/networkInterfaces", "Microsoft.Compute/virtualMachines"]


@pytest.mark.parametrize("kind", DISK_KINDS)
def test_an_os_disk_swap(kind):
    plan = plan_for(kind, "os_disk")
    assert plan.steps == (P.DISKS, P.DEALLOCATE, P.TAG_OLD, P.SWAP, P.START)
    [disk] = plan.disks
    assert disk["lun"] is None and disk["name"] == "web-02-os-r0123456789abcdef"
    assert disk["id"] == f"{DST}/providers/Microsoft.Compute/disks/web-02-os-r0123456789abcdef"  # the target VM's group
    assert plan.vm == {"name": "web-02", "id": OTHER_VM, "old_os_disk_id": GOOD.target_vm["os_disk_id"]}
    assert plan.creates() == [{"type": "Microsoft.Compute/disks", "id": disk["id"]}]  # no VM is created


@pytest.mark.parametrize(("ttype", "recovery_type"), [("disks", "RestoreDisks"), ("vm", "AlternateLocation"),
                                                      ("original_location", "OriginalLocation")])
def test_vault_restores(ttype, recovery_type):
    target = {"disks": {"type": "disks", "resource_group": DST, "staging_storage_account": STAGING},
              "vm": {"type": "vm", "resource_group": DST, "vm_name": "web-01-restored", "subnet": SUBNET,
                     "staging_storage_account": STAGING},
              "original_location": {"type": "original_location", "staging_storage_account": STAGING}}[ttype]
    plan = make(RID, request(VAULT, target), VAULT, GOOD)
    assert plan.steps == (P.TRIGGER, P.FOLLOW) and plan.disks == ()
    assert plan.vault["recovery_type"] == recovery_type and plan.vault["point_id"] == VAULT_POINT
    assert (plan.vault["vault_id"], plan.vault["source_vm_id"], plan.vault["staging_storage_account"]) == (
        VAULT_ID, VM, STAGING)
    assert plan.vault["resource_group"] == (None if ttype == "original_location" else DST)
    if ttype == "vm":
        assert plan.vm == {"name": "web-01-restored", "size": "Standard_D4s_v5",
                           "id": f"{DST}/providers/Microsoft.Compute/virtualMachines/web-01-restored"}
        assert plan.vault["subnet_id"] == SUBNET
    else:
        assert plan.vm is None
    assert plan.creates() == ([{"type": "Microsoft.Compute/virtualMachines", "id": plan.vm["id"]}] if ttype == "vm" else [])


def test_vault_problems_from_validation_are_refusals():
    facts = dataclasses.replace(GOOD, vault_problems=(FieldProblem("target.subnet", "UserErrorSubnetNotFound: x"),))
    with pytest.raises(BadRequest) as caught:
        make(RID, request(VAULT, {"type": "original_location", "staging_storage_account": STAGING}), VAULT, facts)
    assert [p.field for p in caught.value.problems] == ["target.subnet"]


# --- names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "ttype"), [(k, t) for k in DISK_KINDS for t in TARGETS])
def test_names_are_the_same_for_the_same_restore_id_and_differ_for_another(kind, ttype):
    first, again = plan_for(kind, ttype), plan_for(kind, ttype)
    other = plan_for(kind, ttype, restore_id="fedcba9876543210")
    assert first == again and first.to_json() == again.to_json()
    ids = [c["id"] for c in first.creates()]
    other_ids = [c["id"] for c in other.creates()]
    assert len(ids) == len(other_ids)
    created_names = {i for i in ids if "/virtualMachines/" not in i}  # a new VM is named as asked
    assert created_names and not created_names & set(other_ids)


def test_disk_names_stay_valid_for_a_long_vm_name():
    name = P.disk_name("v" * 64, 63, RID)
    assert len(name) <= 80 and name.endswith("-lun63-r0123456789abcdef")


# --- refusals ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(POINTS))
def test_an_incomplete_point_is_a_conflict(kind):
    point = dataclasses.replace(POINTS[kind], complete=False, note="1 of 3 disks")
    target = TARGETS["disks"] if kind != catalogue.VAULT else {"type": "disks", "resource_group": DST,
                                                                 "staging_storage_account": STAGING}
    with pytest.raises(Conflict) as caught:
        make(RID, request(point, target), point, GOOD)
    assert caught.value.field == "recovery_point" and "1 of 3 disks" in caught.value.detail


@pytest.mark.parametrize("kind", list(POINTS))
def test_a_missing_resource_group(kind):
    facts = dataclasses.replace(GOOD, groups={DST.lower(): False})
    target = TARGETS["disks"] if kind != catalogue.VAULT else {"type": "disks", "resource_group": DST,
                                                                 "staging_storage_account": STAGING}
    with pytest.raises(BadRequest) as caught:
        make(RID, request(POINTS[kind], target), POINTS[kind], facts)
    assert [p.field for p in caught.value.problems] == ["target.resource_group"]
    assert [p.field for p in refused(BadRequest, catalogue.SNAPSHOT_SET, "disks", Facts()).problems] == [
        "target.resource_group"]  # a group never looked at is not there either


@pytest.mark.parametrize(("facts", "text"), [(dataclasses.replace(GOOD, subnet_region=None), "was not found"),
                                             (dataclasses.replace(GOOD, subnet_region="westus"), "westus")])
def test_the_subnet_must_be_there_and_in_the_points_region(facts, text):
    exc = refused(BadRequest, catalogue.RESTORE_POINT, "vm", facts)
    assert [(p.field, text in p.detail) for p in exc.problems] == [("target.subnet", True)]


def test_a_vm_name_taken_is_a_conflict():
    exc = refused(Conflict, catalogue.SNAPSHOT_SET, "vm", dataclasses.replace(GOOD, vm_name_taken=True))
    assert exc.field == "target.vm_name"


def test_an_unknown_vm_size():
    exc = refused(BadRequest, catalogue.SNAPSHOT_SET, "vm", dataclasses.replace(GOOD, source_vm_size=None))
    assert [p.field for p in exc.problems] == ["target.vm_size"]


@pytest.mark.parametrize("ttype", ["vm", "os_disk"])
def test_no_os_disk_for_a_vm_or_an_os_disk_swap(ttype):
    point = dataclasses.replace(SET_POINT, disks=SET_POINT.disks[1:])
    exc = refused(BadRequest, catalogue.SNAPSHOT_SET, ttype, point=point)
    assert "recovery_point" in [p.field for p in exc.problems]
    assert len(plan_for(catalogue.SNAPSHOT_SET, "disks", point=point).disks) == 2  # data disks alone restore fine


@pytest.mark.parametrize(("target_vm", "text"), [
    (None, "was not found"),
    ({"id": OTHER_VM, "region": "westus", "os_disk_size": 128}, "westus"),
    ({"id": OTHER_VM, "region": "westeurope", "os_disk_size": 256}, "256 GB"),
])
def test_the_os_disk_swap_target_vm(target_vm, text):
    exc = refused(BadRequest, catalogue.RESTORE_POINT, "os_disk", dataclasses.replace(GOOD, target_vm=target_vm))
    assert [(p.field, text in p.detail) for p in exc.problems] == [("target.vm", True)]


def test_every_problem_at_once():
    facts = Facts(groups={}, subnet_region="westus", source_vm_size=None)
    point = dataclasses.replace(SET_POINT, disks=SET_POINT.disks[1:])
    exc = refused(BadRequest, catalogue.SNAPSHOT_SET, "vm", facts, point=point)
    assert [p.field for p in exc.problems] == ["target.resource_group", "target.subnet", "recovery_point",
                                               "target.vm_size"]


# --- stored and read back ----------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "ttype"), [(k, t) for k in DISK_KINDS for t in TARGETS] + [(catalogue.VAULT, "vm")])
def test_a_plan_round_trips_through_json(kind, ttype):
    if kind == catalogue.VAULT:
        plan = make(RID, request(VAULT, {"type": "vm", "resource_group": DST, "vm_name": "x", "subnet": SUBNET,
                                         "staging_storage_account": STAGING}), VAULT, GOOD)
    else:
        plan = plan_for(kind, ttype)
    doc = json.loads(json.dumps(plan.to_json()))
    assert doc["creates"] == plan.creates()
    assert Plan.from_json(doc) == plan


@pytest.mark.parametrize(("target", "failed", "context", "undo"), [
    ("os_disk", P.SWAP, {"was_running": True}, (P.PUT_BACK, P.START)),
    ("os_disk", P.TAG_OLD, {"was_running": False}, (P.PUT_BACK, P.START)),
    ("os_disk", P.DEALLOCATE, {"was_running": True}, (P.PUT_BACK, P.START)),
    ("os_disk", P.DEALLOCATE, {}, ()),  # failed before it noted anything: the VM was not touched
    ("os_disk", P.DISKS, {}, ()),
    ("os_disk", P.START, {"was_running": True}, ()),  # swapped as asked: a start that fails is not undone
    ("vm", P.VM, {"was_running": True}, ()),
    ("disks", P.DISKS, {}, ()),
])
def test_what_a_failed_restore_undoes(target, failed, context, undo):
    assert P.undo_steps(target, failed, context) == undo


VMSS = f"{DST}/providers/Microsoft.Compute/virtualMachineScaleSets/web"
FLEX = {"id": VMSS, "region": "westeurope", "orchestration_mode": "Flexible", "fault_domain_count": 3}


@pytest.mark.parametrize("kind", DISK_KINDS)
def test_a_new_vm_stands_alone_unless_asked_to_join_a_flexible_scale_set(kind):
    alone = plan_for(kind, "vm")
    assert "scale_set" not in alone.vm and ("target.virtual_machine_scale_set", VMSS) not in alone.writes()
    joined = plan_for(kind, "vm", dataclasses.replace(GOOD, scale_set=FLEX), virtual_machine_scale_set=VMSS,
                      platform_fault_domain=2)
    assert joined.vm["scale_set"] == VMSS and joined.vm["platform_fault_domain"] == 2
    assert ("target.virtual_machine_scale_set", VMSS) in joined.writes()  # the allow-list must admit the set
    balanced = plan_for(kind, "vm", dataclasses.replace(GOOD, scale_set=FLEX), virtual_machine_scale_set=VMSS)
    assert "platform_fault_domain" not in balanced.vm  # the platform balances


@pytest.mark.parametrize(("found", "target", "field"), [
    (None, {"virtual_machine_scale_set": VMSS}, "target.virtual_machine_scale_set"),
    ({**FLEX, "orchestration_mode": "Uniform"}, {"virtual_machine_scale_set": VMSS}, "target.virtual_machine_scale_set"),
    ({**FLEX, "region": "northeurope"}, {"virtual_machine_scale_set": VMSS}, "target.virtual_machine_scale_set"),
    ({**FLEX, "fault_domain_count": 1}, {"virtual_machine_scale_set": VMSS, "platform_fault_domain": 0},
     "target.platform_fault_domain"),
    ({**FLEX, "fault_domain_count": 2}, {"virtual_machine_scale_set": VMSS, "platform_fault_domain": 2},
     "target.platform_fault_domain"),
])
def test_joining_a_scale_set_is_refused_as_azure_would_naming_the_field(found, target, field):
    problem = refused(BadRequest, catalogue.SNAPSHOT_SET, "vm", dataclasses.replace(GOOD, scale_set=found), **target)
    assert field in [p.field for p in problem.problems]


@pytest.mark.parametrize(("target", "field"), [
    ({"platform_fault_domain": 1}, "target.platform_fault_domain"),  # no set to be in
    ({"virtual_machine_scale_set": VMSS, "platform_fault_domain": 3}, "target.platform_fault_domain"),
    ({"virtual_machine_scale_set": VMSS, "platform_fault_domain": True}, "target.platform_fault_domain"),
    ({"virtual_machine_scale_set": VMSS.replace("virtualMachineScaleSets", "virtualMachines")},
     "target.virtual_machine_scale_set"),
])
def test_scale_set_fields_are_read_strictly(target, field):
    with pytest.raises(BadRequest) as caught:
        request(SET_POINT, TARGETS["vm"] | target)
    assert field in [p.field for p in caught.value.problems]
    with pytest.raises(BadRequest):  # a vault point's AlternateLocation takes no scale set
        request(VAULT, {"type": "vm", "resource_group": DST, "vm_name": "x", "subnet": SUBNET,
                        "staging_storage_account": STAGING, "virtual_machine_scale_set": VMSS})
