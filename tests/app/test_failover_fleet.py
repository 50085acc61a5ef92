"""A test failover's VM is no fleet member (shared/membership.py), through the local Functions host: the world of
tests/app/failover_world.py (three VMs replicated by the app), its policy enrolling VMs in Azure Backup too (a VM
taken for a member is enrolled on its creation event), the emulator's Event Grid delivering to the app's
``vm_events``. Site Recovery's test failover makes ``vm-00002-test`` in the target group; its creation event
enrols and replicates nothing, the scheduled slot plans nothing for it, and compliance lists it as excluded with
why instead of judging it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from azure.data.tables import TableClient

from shared.azure.ledger import Ledger
from tests.app.failover_world import RESTORE_ROLES_PRINCIPAL, TARGET_RG, api, start


@pytest.fixture
def world(az, emu, azurite, tmp_path, monkeypatch, failover_replicated):
    suffix = uuid.uuid4().hex[:8]
    w = start(az, emu, azurite, tmp_path, monkeypatch, saved=failover_replicated,
              VMKEEPER_PROTECT_TABLE=f"protect{suffix}", VMKEEPER_PROTECT_RETRY_SECONDS="1",
              VMKEEPER_PROTECT_RETRY_MAX_SECONDS="1", VMKEEPER_SCHEDULE="0 0 * * * *")
    policy_file = tmp_path / "policies.json"
    doc = json.loads(policy_file.read_text())
    doc["policies"]["dr"]["backup_policy"] = "DefaultPolicy"  # the target region's vault has it: members get enrolled
    policy_file.write_text(json.dumps(doc))
    webhook = w["host"].serve_event_grid("vm_events")
    az.admin("POST", "eventSubscriptions", {"endpoint": webhook, "subscriptionId": w["sub"], "includedEventTypes": [
        "Microsoft.Resources.ResourceWriteSuccess", "Microsoft.Resources.ResourceDeleteSuccess"]})
    w["az"] = az
    yield w
    w["host"].close()


def ledger(world: dict[str, Any], table: str) -> Ledger:
    return Ledger(TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"], world["settings"][table]))


def outcome(world: dict[str, Any], vm_id: str, timeout: float = 60) -> dict[str, Any]:
    """The auto-protect job's recorded outcome for a VM (its creation event is delivered by Event Grid, a moment
    after the VM is made), and the replication job's row."""
    deadline = time.monotonic() + timeout
    while True:
        world["host"].run_until_idle(timeout=10)
        protect = ledger(world, "VMKEEPER_PROTECT_TABLE").vm(vm_id)
        replication = ledger(world, "VMKEEPER_LEDGER_TABLE").get("replication", vm_id.lower())
        if protect is not None and protect.get("outcome") and replication is not None:
            return {"protect": protect, "replication": replication}
        assert time.monotonic() < deadline, (protect, replication, world["host"].invocations[-6:])
        time.sleep(0.2)


def test_a_test_failover_vm_is_enrolled_planned_and_judged_never_but_shown_excluded_with_why(world, az):
    vm = world["vms"][2]
    answer = api(world, "POST", "/api/failovers", {"action": "test_failover", "vm": vm.id,
                                                    "network": world["dr"]["test_vnet"]})
    assert answer.status == 202, answer.body
    assert world["host"].run_until_idle(timeout=120)
    assert api(world, "GET", answer.headers["Location"]).json()["state"] == "succeeded"
    (test_vm,) = world["compute"].virtual_machines.list(TARGET_RG)
    assert test_vm.name == "vm-00002-test" and not test_vm.tags  # ASR writes no tag of vmkeeper's on it

    # Its creation event: auto-protect and replication each record it as no fleet member, with why.
    rows = outcome(world, test_vm.id)
    for row in rows.values():
        assert row["outcome"] == "not_fleet", row
        reason = json.loads(row["detail"])["reason"]
        assert "test failover VM of Site Recovery item" in reason, row
        assert world["dr"]["item_names"]["vm-00002"] in reason
    vault = world["dr"]["vault"].split("/")
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

    backup = az.client(RecoveryServicesBackupClient, world["sub"])
    assert not [i for i in backup.backup_protected_items.list(vault[8], vault[4])
                if (i.properties.source_resource_id or "").lower() == test_vm.id.lower()]  # nothing enrolled

    # The scheduled slot plans the three replicated VMs, not the test VM.
    world["host"].fire_timer("plan_slot")
    table = TableClient.from_connection_string(world["settings"]["AzureWebJobsStorage"],
                                               world["settings"]["VMKEEPER_LEDGER_TABLE"])
    planned = {r["item"].split("|")[0] for r in table.query_entities(
        "PartitionKey ge 'enqueued@' and PartitionKey lt 'enqueued@~'")}
    assert planned == {v.id.lower() for v in world["vms"]}, planned

    # Compliance judges the three, and shows the test VM as excluded with why (status reads the same evaluation).
    world["host"].fire_timer("compliance_evaluation")
    evaluation = world["wiring"].compliance.recorded()
    assert {v.vm_id.lower() for v in evaluation.vms} == {v.id.lower() for v in world["vms"]}
    (excluded,) = evaluation.excluded
    assert (excluded.vm_id.lower(), excluded.name) == (test_vm.id.lower(), "vm-00002-test")
    assert "test failover VM of Site Recovery item" in excluded.reason and "cleanup" in excluded.reason
    live = world["wiring"].compliance.evaluate(evaluation.at)  # `vmkeeper status` evaluates the same way
    assert [e.vm_id for e in live.excluded] == [excluded.vm_id]
    page = world["host"].http("GET", "/api/report", headers={"x-functions-key": world["host"].function_key,
                                                              "X-MS-CLIENT-PRINCIPAL": RESTORE_ROLES_PRINCIPAL})
    assert page.status == 200 and "Excluded, not a fleet member: vm-00002-test" in page.body.decode()


def act(world: dict[str, Any], body: dict[str, Any]) -> None:
    """A failover action through the API, run to its end."""
    answer = api(world, "POST", "/api/failovers", body)
    assert answer.status == 202, answer.body
    assert world["host"].run_until_idle(timeout=120)
    done = api(world, "GET", answer.headers["Location"]).json()
    assert done["state"] == "succeeded", done


def judged(world: dict[str, Any]) -> dict[str, Any]:
    """Compliance evaluated by its timer: each VM's row (and its kinds by name), by VM id."""
    world["host"].fire_timer("compliance_evaluation")
    return {v.vm_id.lower(): (v, {k.kind: k for k in v.kinds}) for v in world["wiring"].compliance.recorded().vms}


def test_a_vm_after_a_real_failover_is_production_protected_where_it_runs_and_its_pair_judged_on_it(world, az):
    from shared.report.model import BREACHED, MET, REPLICA
    from tests.app.failover_world import IR_SECONDS

    vm = world["vms"][2]
    act(world, {"action": "unplanned_failover", "vm": vm.id, "recovery_point": "latest_processed"})
    act(world, {"action": "commit", "vm": vm.id})
    (failed_over,) = world["compute"].virtual_machines.list(TARGET_RG)
    assert failed_over.name == "vm-00002"
    # Its creation event: a fleet member, enrolled by the policy that covers it in its new region's vault; Site
    # Recovery's own item replicates it back (reprotect): no second item.
    rows = outcome(world, failed_over.id)
    assert rows["protect"]["outcome"] == "protected", rows["protect"]
    assert rows["replication"]["outcome"] in ("not_selected", "in_target_region"), rows["replication"]
    vault = world["dr"]["vault"].split("/")
    assert len(list(world["asr"].replication_protected_items.list(vault[4], vault[8]))) == 3  # no second item

    # Failed over, not reprotected: the pair's replica is judged on the VM production runs on, the source expects none.
    vms = judged(world)
    new, new_kinds = vms[failed_over.id.lower()]
    assert new_kinds[REPLICA].state == BREACHED and "reprotect replicates it back" in new.reason, new.reason
    old, old_kinds = vms[vm.id.lower()]
    assert REPLICA not in old_kinds, old.reason  # tagged critical, yet not "missing": its item runs the other way

    act(world, {"action": "reprotect", "vm": vm.id})
    az.advance(IR_SECONDS + 1)
    vms = judged(world)
    assert vms[failed_over.id.lower()][1][REPLICA].state == MET, vms[failed_over.id.lower()][0].reason
    assert REPLICA not in vms[vm.id.lower()][1] and REPLICA not in vms[vm.id.lower()][0].missing, vms[vm.id.lower()][0].reason

    # The sweep makes no job for the source VM (its item now replicates onto it): nothing failed, nothing poisoned.
    world["host"].fire_timer("replication_sweep")
    assert world["host"].run_until_idle(timeout=60)
    row = ledger(world, "VMKEEPER_LEDGER_TABLE").get("replication", vm.id.lower())
    assert row is None or row["outcome"] != "failed", row
    assert not [i for i in world["host"].invocations if i["function"] == "replication_worker" and not i["ok"]]
