"""Site Recovery enable and disable end to end (issue 21): the emulator's Event Grid → the function app's Event
Grid trigger (run by the local Functions host, as it hands events over) → a replication job on an Azurite queue →
the replication worker → Site Recovery in the emulator through the real SDK; and the sweep timer."""

from __future__ import annotations

import base64
import importlib
import json
import logging
import time
import uuid

import pytest

from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from tests.conftest import APP_USER_AGENT

SOURCE, TARGET = "westeurope", "northeurope"
WRITES = ("PUT", "POST", "PATCH", "DELETE")
ASR = "Microsoft.RecoveryServices/vaults/replicationFabrics"


def block(sub: str, **extra) -> dict:
    return {"target_region": TARGET, "target_resource_group": f"/subscriptions/{sub}/resourceGroups/rg-dr",
            "network": {"isolated": True},
            "cache_storage_accounts": {SOURCE: f"/subscriptions/{sub}/resourceGroups/rg-dr-cache/providers/"
                                               "Microsoft.Storage/storageAccounts/vmkcachewesteurope"},
            "recovery_point_retention_hours": 24, "app_consistent_frequency_hours": 4, **extra}


def policies(sub: str) -> dict:
    """gold replicates its VMs tagged vmkeeper-dr: critical; bronze doesn't replicate (no block)."""
    return {"version": 1, "default": "silver", "policies": {
        "gold": {"schedule": {"every_hours": 4}, "snapshots": {}, "replication": block(sub)},
        "silver": {"schedule": {"every_hours": 12}, "snapshots": {}, "replication": block(sub)},
        "bronze": {"schedule": {"daily_at": "02:30"}, "snapshots": {}},
    }}


@pytest.fixture
def dr(az, emu, sub, resources, azurite, monkeypatch, tmp_path):
    import function_app
    from emulator.recoveryservices.models import seed_vaults
    from shared import wiring

    vaults = seed_vaults(emu, sub, "rg-backup", [SOURCE, TARGET])
    resources.resource_groups.create_or_update("rg-dr", {"location": TARGET})
    az.settings(siterecovery={"initial_replication_seconds": 1})
    suffix = uuid.uuid4().hex[:8]
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(policies(sub)))
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "VMKEEPER_VAULTS": json.dumps(vaults),
        "VMKEEPER_POLICY_FILE": str(policy_file),
        "VMKEEPER_SUBSCRIPTIONS": sub,
        "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}",
        "VMKEEPER_REPLICATION_QUEUE": f"replication-{suffix}",
        "VMKEEPER_REPLICATION_SCHEDULE": "0 */30 * * * *",
        "VMKEEPER_PROTECT_TABLE": f"protect{suffix}",
        "VMKEEPER_LEDGER_TABLE": f"ledger{suffix}",
        "VMKEEPER_ALERTS_TABLE": f"alerts{suffix}",
        "VMKEEPER_PROTECT_RETRY_SECONDS": "1",
        "VMKEEPER_PROTECT_RETRY_MAX_SECONDS": "2",
        "VMKEEPER_REPLICATION_RETRY_SECONDS": "1",
        "VMKEEPER_REPLICATION_RETRY_MAX_SECONDS": "2",
        "VMKEEPER_ARM_ENDPOINT": az.base_url,
        "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wiring.use(wiring.Wiring(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    webhook = host.serve_event_grid("vm_events")
    az.admin("POST", "eventSubscriptions", {"endpoint": webhook, "subscriptionId": sub, "includedEventTypes": [
        "Microsoft.Resources.ResourceWriteSuccess", "Microsoft.Resources.ResourceDeleteSuccess"]})
    yield {"host": host, "vaults": vaults, "vault": vaults[TARGET], "settings": settings, "sub": sub,
           "policy_file": policy_file}
    host.close()
    wiring.use(None)


@pytest.fixture
def asr(az, sub):
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

    return az.client(SiteRecoveryManagementClient, sub, polling_interval=0)


def ledger(dr):
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    return Ledger(TableClient.from_connection_string(dr["settings"]["AzureWebJobsStorage"],
                                                     dr["settings"]["VMKEEPER_LEDGER_TABLE"]))


def row(dr, vm_id: str) -> dict | None:
    return ledger(dr).get("replication", vm_id.lower())


def alerts(dr) -> list[dict]:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(dr["settings"]["AzureWebJobsStorage"], dr["settings"]["VMKEEPER_ALERTS_TABLE"])
    try:
        return [json.loads(r["event"]) for r in table.list_entities()]
    except Exception:  # noqa: BLE001 (no table: no alert was ever raised)
        return []


def poisoned(dr) -> list[dict]:
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(dr["settings"]["AzureWebJobsStorage"],
                                               dr["settings"]["VMKEEPER_REPLICATION_QUEUE"] + "-poison")
    return [json.loads(base64.b64decode(m.content)) for m in queue.peek_messages(max_messages=32)]


def app_writes(az, since: int = 0) -> list[dict]:
    """The app's calls that change something (by their RBAC action: a Resource Graph query is a POST that reads)."""
    return [c for c in az.calls(since) if APP_USER_AGENT in (c.get("userAgent") or "") and c["method"] in WRITES
            and c.get("action") != "read"]


def create_vm(resources, compute, sub: str, name: str, tags: dict, image: dict | None = None):
    from tests.emulator.test_compute_vms import make_nic

    nic = make_nic(resources, sub, "rg-vm-00", f"{name}-nic")
    storage = {"osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}},
               "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 32}]}
    if image:
        storage["imageReference"] = image
    return compute.virtual_machines.begin_create_or_update("rg-vm-00", name, {
        "location": SOURCE, "tags": tags, "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"}, "storageProfile": storage,
            "osProfile": {"computerName": name[:15], "adminUsername": "azureuser"},
            "networkProfile": {"networkInterfaces": [{"id": nic}]}}}).result()


def run_until(az, dr, what, seconds: float = 60):
    """Run the host (events arrive from the emulator's Event Grid, jobs from the queues) until ``what()``."""
    host = dr["host"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        az.admin("GET", "health")
        host.run_until_idle(timeout=30)
        if what():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what.__doc__}; {host.invocations[-6:]}")


def item_of(asr, dr, vm_id: str):
    rg, vault = dr["vault"].split("/")[4], dr["vault"].split("/")[8]
    found = [i for i in asr.replication_protected_items.list(rg, vault)
             if str(i.properties.provider_specific_details.get("fabricObjectId") or "").lower() == vm_id.lower()]
    assert len(found) <= 1
    return found[0] if found else None


def writes_by_operation(calls: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in calls:
        out[c["operation"]] = out.get(c["operation"], 0) + 1
    return out


# --- enable --------------------------------------------------------------------------------------------------
def test_a_critical_vm_created_is_protected_with_one_of_each_object_and_a_rerun_creates_nothing(
        az, dr, asr, compute, resources, network_client, sub):
    mark = len(az.calls())
    vm = create_vm(resources, compute, sub, "vm-crit", {"vmkeeper-policy": "gold", "vmkeeper-dr": "critical"})

    def protected():
        """the critical VM's replication Protected and recorded"""
        return (row(dr, vm.id) or {}).get("outcome") == "protected"
    run_until(az, dr, protected)
    item = item_of(asr, dr, vm.id)
    assert item.name == f"vmk-vm-crit-{__import__('hashlib').sha256(vm.id.lower().encode()).hexdigest()[:8]}"
    assert item.properties.protection_state == "Protected"
    details = item.properties.provider_specific_details
    assert (details["primaryFabricLocation"], details["recoveryFabricLocation"]) == (SOURCE, TARGET)
    isolated = f"/subscriptions/{sub}/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/vmk-dr-{TARGET}"
    assert details["selectedRecoveryAzureNetworkId"].lower() == isolated.lower()
    assert len(details["protectedManagedDisks"]) == 2  # the OS disk and the data disk
    assert network_client.virtual_networks.get("rg-dr", f"vmk-dr-{TARGET}").location == TARGET

    writes = app_writes(az, mark)
    assert writes_by_operation(writes) == {
        f"{ASR}/write": 2,  # a fabric per region
        f"{ASR}/replicationProtectionContainers/write": 2,
        "Microsoft.RecoveryServices/vaults/replicationPolicies/write": 1,
        f"{ASR}/replicationProtectionContainers/replicationProtectionContainerMappings/write": 2,  # and its reverse
        f"{ASR}/replicationNetworks/replicationNetworkMappings/write": 1,
        f"{ASR}/replicationProtectionContainers/replicationProtectedItems/write": 1,
        "Microsoft.Network/virtualNetworks/write": 1,  # the isolated recovery VNet
    }, writes
    assert all(c["status"] == 202 or c["operation"].startswith("Microsoft.Network") for c in writes)
    ops = {c["operation"] for c in az.calls(mark) if APP_USER_AGENT in (c.get("userAgent") or "")}
    assert "Microsoft.RecoveryServices/replicationEligibilityResults/read" in ops  # read before anything is made
    assert "Microsoft.RecoveryServices/vaults/replicationOperationStatus/read" in ops  # waits follow ASR's operations

    # A re-run (another write event of the VM, and the sweep) creates nothing.
    mark = len(az.calls())
    event_id = str(uuid.uuid4())
    dr["host"].deliver_event("vm_events", {
        "id": event_id, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": vm.id,
        "eventTime": "2026-12-08T10:00:00Z", "dataVersion": "", "topic": f"/subscriptions/{sub}",
        "data": {"resourceUri": vm.id, "status": "Succeeded", "subscriptionId": sub,
                 "operationName": "Microsoft.Compute/virtualMachines/write"}})
    assert dr["host"].run_until_idle(timeout=30)
    assert row(dr, vm.id)["outcome"] == "already_protected" and row(dr, vm.id)["eventId"] == event_id
    assert dr["host"].fire_timer("replication_sweep") is None
    assert dr["host"].run_until_idle(timeout=30)
    assert app_writes(az, mark) == []

    # A second critical VM on the same VNet finds every infrastructure object there: only its own item is written.
    mark = len(az.calls())
    second = create_vm(resources, compute, sub, "vm-crit-2", {"vmkeeper-dr": "critical"})
    run_until(az, dr, lambda: (row(dr, second.id) or {}).get("outcome") == "protected")
    assert writes_by_operation(app_writes(az, mark)) == {
        f"{ASR}/replicationProtectionContainers/replicationProtectedItems/write": 1}


def test_critical_vms_created_together_share_one_of_each_infrastructure_object(az, dr, asr, compute, resources, sub):
    """Jobs of VMs created at once meet objects another job is still making: they wait for them, make no second."""
    import threading

    made = []

    def create(name):
        made.append(create_vm(resources, compute, sub, name, {"vmkeeper-dr": "critical"}))
    threads = [threading.Thread(target=create, args=(f"vm-pair-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dr["host"].start()  # the host's queue pump runs jobs side by side, as in Azure

    def all_protected():
        """all three Protected"""
        return all((row(dr, vm.id) or {}).get("outcome") == "protected" for vm in made)
    run_until(az, dr, all_protected, seconds=90)
    rg, vault = dr["vault"].split("/")[4], dr["vault"].split("/")[8]
    fabrics = {f.name for f in asr.replication_fabrics.list(rg, vault)}
    assert fabrics == {f"vmk-a2a-{SOURCE}", f"vmk-a2a-{TARGET}"}
    containers = {c.name for f in fabrics for c in asr.replication_protection_containers.list_by_replication_fabrics(
        rg, vault, f)}
    assert containers == {f"vmk-a2a-{SOURCE}-container", f"vmk-a2a-{TARGET}-container"}
    assert [p.name for p in asr.replication_policies.list(rg, vault)] == ["vmk-a2a-1440min-app240min-pervm"]
    assert len(list(asr.replication_protection_container_mappings.list(rg, vault))) == 2
    assert len(list(asr.replication_network_mappings.list(rg, vault))) == 1  # one source VNet
    assert len(list(asr.replication_protected_items.list(rg, vault))) == 3
    assert poisoned(dr) == []


def test_a_job_finding_objects_another_job_is_making_follows_that_jobs_operations(az, dr, asr, monkeypatch):
    """VM 1's job starts the vault's infrastructure (2 s operations); VM 2's job, a moment later, finds the fabrics
    there but not ready (its containers are refused): it follows the operations VM 1's job noted, at ASR's
    Retry-After, instead of backing off by VMKEEPER_REPLICATION_RETRY_SECONDS (a minute here). Nothing is made
    twice."""
    monkeypatch.setenv("VMKEEPER_REPLICATION_RETRY_SECONDS", "60")  # read on the service's first use, below
    monkeypatch.setenv("VMKEEPER_REPLICATION_RETRY_MAX_SECONDS", "600")
    az.settings(lro={"default_seconds": 2, "retry_after_ms": None})
    az.seed(subscriptions=[dr["sub"]], resource_groups=1, vms=2, regions=[SOURCE], vm_prefix="pair",
            tag_sets=[{"vmkeeper-dr": "critical"}])
    vms = [f"/subscriptions/{dr['sub']}/resourceGroups/rg-pair-00/providers/Microsoft.Compute/virtualMachines/pair-{i:05d}"
           for i in range(2)]
    mark, host = len(az.calls()), dr["host"]
    for vm_id in vms:  # each VM's creation event, a step of its job after it
        host.deliver_event("vm_events", {
            "id": str(uuid.uuid4()), "eventType": "Microsoft.Resources.ResourceWriteSuccess", "subject": vm_id,
            "eventTime": "2026-12-08T10:00:00Z", "dataVersion": "", "topic": f"/subscriptions/{dr['sub']}",
            "data": {"resourceUri": vm_id, "status": "Succeeded", "subscriptionId": dr["sub"],
                     "operationName": "Microsoft.Compute/virtualMachines/write"}})
        host.poll_once()
    refused = [c for c in app_writes(az, mark) if c["status"] == 404 and "replicationProtectionContainers" in c["path"]]
    assert refused, "VM 2's job was to find the fabrics being made (its containers refused)"
    began = time.monotonic()

    def both():
        """both VMs Protected"""
        return all((row(dr, v) or {}).get("outcome") == "protected" for v in vms)
    run_until(az, dr, both, seconds=45)
    assert time.monotonic() - began < 40  # 4 levels of 2 s operations and the looks: not a minute's backoff
    rg, vault = dr["vault"].split("/")[4], dr["vault"].split("/")[8]
    fabrics = [f.name for f in asr.replication_fabrics.list(rg, vault)]
    assert len(fabrics) == 2 and len(list(asr.replication_policies.list(rg, vault))) == 1
    assert sum(1 for f in fabrics for _ in asr.replication_protection_containers.list_by_replication_fabrics(rg, vault, f)) == 2
    assert len(list(asr.replication_protection_container_mappings.list(rg, vault))) == 2
    assert len(list(asr.replication_network_mappings.list(rg, vault))) == 1
    assert len(list(asr.replication_protected_items.list(rg, vault))) == 2
    assert poisoned(dr) == []


def test_a_vm_untagged_while_its_job_makes_the_infrastructure_gets_no_item(az, dr, asr, compute):
    """Steps that only make the vault's shared objects go by the VM as the job first read it; the VM is read again
    right before its item would be sent: untagged meanwhile, nothing replicates it."""
    az.settings(lro={"default_seconds": 1, "retry_after_ms": None})
    az.seed(subscriptions=[dr["sub"]], resource_groups=1, vms=1, regions=[SOURCE], vm_prefix="untag",
            tag_sets=[{"vmkeeper-dr": "critical"}])
    vm = compute.virtual_machines.get("rg-untag-00", "untag-00000")
    mark, host = len(az.calls()), dr["host"]
    assert host.fire_timer("replication_sweep") is None
    host.poll_once()  # the job's first step: eligibility, then the first level of the infrastructure
    assert [c for c in app_writes(az, mark) if c["operation"].endswith("replicationFabrics/write")]
    vm.tags = {}
    compute.virtual_machines.begin_create_or_update("rg-untag-00", vm.name, vm).result()

    def settled():
        """the VM recorded as not selected, nothing queued"""
        return (row(dr, vm.id) or {}).get("outcome") == "not_selected" and host.pending() == 0
    run_until(az, dr, settled, seconds=60)
    assert [c for c in app_writes(az, mark) if c["operation"].endswith("replicationProtectedItems/write")] == []
    assert item_of(asr, dr, vm.id) is None and poisoned(dr) == []


def test_a_vm_tagged_later_is_found_by_the_sweep_and_opted_out_or_untagged_vms_are_left_alone(az, dr, asr, compute):
    seeded = az.seed(subscriptions=[dr["sub"]], resource_groups=1, vms=3, regions=[SOURCE], vm_prefix="swp",
                     tag_sets=[{"vmkeeper-dr": "critical"}, {"vmkeeper-dr": "critical", "vmkeeper-optout": "true"},
                               {"vmkeeper-policy": "bronze", "vmkeeper-dr": "critical"}])
    vms = {v.name: v for v in compute.virtual_machines.list("rg-swp-00")}
    assert len(vms) == 3, seeded
    by_tags = {tuple(sorted((v.tags or {}).items())): v for v in vms.values()}
    critical = by_tags[(("vmkeeper-dr", "critical"),)]
    opted_out = by_tags[(("vmkeeper-dr", "critical"), ("vmkeeper-optout", "true"))]
    no_block = by_tags[(("vmkeeper-dr", "critical"), ("vmkeeper-policy", "bronze"))]
    mark = len(az.calls())
    dr["host"].fire_timer("replication_sweep")

    def protected():
        """the VM tagged critical, found by the sweep, Protected"""
        return (row(dr, critical.id) or {}).get("outcome") == "protected"
    run_until(az, dr, protected)
    assert item_of(asr, dr, opted_out.id) is None and item_of(asr, dr, no_block.id) is None
    # The opted-out VM was not even queued; the one marked critical under a policy without a block is reported.
    assert row(dr, opted_out.id) is None
    assert row(dr, no_block.id)["outcome"] == "no_replication_block"
    [alert] = [a for a in alerts(dr) if a["subject"] == no_block.id.lower()]
    assert alert["type"] == "vmkeeper.replication.failed" and "'bronze'" in alert["data"]["reason"]
    items = [c for c in app_writes(az, mark) if c["operation"].endswith("replicationProtectedItems/write")]
    assert len(items) == 1 and critical.name in items[0]["path"]


def test_an_ineligible_vm_is_reported_with_azures_reason_and_nothing_is_made(az, dr, asr, compute, resources, sub):
    mark = len(az.calls())
    vm = create_vm(resources, compute, sub, "vm-old", {"vmkeeper-policy": "gold", "vmkeeper-dr": "critical"},
                   image={"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest"})

    def reported():
        """the ineligible VM reported"""
        return (row(dr, vm.id) or {}).get("outcome") == "ineligible"
    run_until(az, dr, reported)
    detail = json.loads(row(dr, vm.id)["detail"])
    assert detail["code"] == "A2AOperatingSystemNotSupported" and "18.04" in detail["message"]
    assert "supported" in detail["recommended_action"].lower()
    [alert] = [a for a in alerts(dr) if a["subject"] == vm.id.lower()]
    assert alert["type"] == "vmkeeper.replication.ineligible"
    assert alert["data"]["code"] == "A2AOperatingSystemNotSupported"
    assert alert["data"]["recommended_action"] == detail["recommended_action"] and "18.04" in alert["data"]["reason"]
    from shared.wiring import current

    [failure] = [f for f in current().reports.data().failures if f.subject == vm.id.lower()]  # the report page's row
    assert failure.type == "vmkeeper.replication.ineligible" and detail["recommended_action"] in failure.reason
    assert [c for c in app_writes(az, mark) if c["operation"].startswith("Microsoft.RecoveryServices")] == []
    assert item_of(asr, dr, vm.id) is None
    # Reported once: the sweep looks again, finds it still ineligible, raises nothing new.
    dr["host"].fire_timer("replication_sweep")
    assert dr["host"].run_until_idle(timeout=30)
    assert len([a for a in alerts(dr) if a["subject"] == vm.id.lower()]) == 1


# --- disable ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("before", ["running", "deallocated"])
def test_deleting_a_replicated_vm_disables_replication_and_a_refusal_150144_purges_recorded(
        az, dr, asr, compute, resources, sub, caplog, before):
    vm = create_vm(resources, compute, sub, f"vm-del-{before[:4]}", {"vmkeeper-dr": "critical"})  # the default: silver

    def protected():
        """Protected"""
        return (row(dr, vm.id) or {}).get("outcome") == "protected"
    run_until(az, dr, protected)
    item = item_of(asr, dr, vm.id)
    replicas = [d.id for d in compute.disks.list_by_resource_group("rg-dr") if d.name.endswith("-ASRReplica")]
    assert len(replicas) == 2
    if before == "deallocated":
        compute.virtual_machines.begin_deallocate("rg-vm-00", vm.name).result()
    mark = len(az.calls())
    with caplog.at_level(logging.WARNING, logger="vmkeeper.replication"):
        compute.virtual_machines.begin_delete("rg-vm-00", vm.name).result()

        def gone():
            """replication of the deleted VM ended"""
            return (row(dr, vm.id) or {}).get("outcome") in ("replication_disabled", "replication_purged")
        run_until(az, dr, gone)
    writes = [(c["method"], c["operation"]) for c in app_writes(az, mark) if "replicationProtectedItems" in c["operation"]]
    # Disable first (…/remove); Site Recovery refuses, the source VM being gone (150144): purged (DELETE).
    assert writes == [("POST", f"{ASR}/replicationProtectionContainers/replicationProtectedItems/remove/action"),
                      ("DELETE", f"{ASR}/replicationProtectionContainers/replicationProtectedItems/delete")]
    recorded = row(dr, vm.id)
    assert recorded["outcome"] == "replication_purged" and recorded["action"] == "disable"
    detail = json.loads(recorded["detail"])
    assert "150144" in detail["refused"] and detail["name"] == item.name
    assert any("150144" in r.getMessage() and "purged" in r.getMessage() for r in caplog.records)
    assert item_of(asr, dr, vm.id) is None
    assert not [d for d in compute.disks.list_by_resource_group("rg-dr") if d.name.endswith("-ASRReplica")]
    assert poisoned(dr) == []


def test_a_delete_leaves_alone_an_item_vmkeeper_did_not_make(az, dr, asr, compute, resources, sub):
    """Only vmkeeper's own item of a VM is disabled: one the operator made (another name) stays."""
    from tests.emulator.test_siterecovery import enable_input

    vm = create_vm(resources, compute, sub, "vm-theirs", {"vmkeeper-policy": "bronze"})  # not replicated by vmkeeper
    run_until(az, dr, lambda: (row(dr, vm.id) or {}).get("outcome") == "not_selected")
    # The operator's own replication, by hand, under the infrastructure vmkeeper made for another VM.
    other = create_vm(resources, compute, sub, "vm-ours", {"vmkeeper-dr": "critical"})
    run_until(az, dr, lambda: (row(dr, other.id) or {}).get("outcome") == "protected")
    rg, vault = dr["vault"].split("/")[4], dr["vault"].split("/")[8]
    ours = item_of(asr, dr, other.id)
    policy_id = ours.properties.policy_id
    body = enable_input({"vault": dr["vault"], "target_rg": f"/subscriptions/{sub}/resourceGroups/rg-dr",
                         "cache": block(sub)["cache_storage_accounts"][SOURCE]}, vm)
    body["properties"]["policyId"] = policy_id
    body["properties"]["providerSpecificDetails"]["recoveryContainerId"] = (
        f"{dr['vault']}/replicationFabrics/vmk-a2a-{TARGET}/replicationProtectionContainers/vmk-a2a-{TARGET}-container")
    asr.replication_protected_items.begin_create(rg, vault, f"vmk-a2a-{SOURCE}", f"vmk-a2a-{SOURCE}-container",
                                                 "operators-own", body).result()
    mark = len(az.calls())
    compute.virtual_machines.begin_delete("rg-vm-00", vm.name).result()
    run_until(az, dr, lambda: (row(dr, vm.id) or {}).get("outcome") == "not_replicated")
    assert json.loads(row(dr, vm.id)["detail"])["left_alone"][0].lower().endswith("/operators-own")
    assert item_of(asr, dr, vm.id) is not None
    assert [c for c in app_writes(az, mark) if "replicationProtectedItems" in c["operation"]] == []


# --- a bad block ------------------------------------------------------------------------------------------------
def test_a_bad_replication_block_is_reported_naming_the_field_and_nothing_is_made(az, dr, compute, resources, sub):
    broken = policies(sub)
    broken["policies"]["gold"]["replication"]["target_region"] = "North Europe"
    dr["policy_file"].write_text(json.dumps(broken))
    mark = len(az.calls())
    vm = create_vm(resources, compute, sub, "vm-bad", {"vmkeeper-policy": "gold", "vmkeeper-dr": "critical"})
    run_until(az, dr, lambda: (row(dr, vm.id) or {}).get("outcome") == "failed")
    reason = json.loads(row(dr, vm.id)["detail"])["reason"]
    assert "policies.gold.replication.target_region: must be an Azure region name" in reason
    [message] = poisoned(dr)
    assert "policies.gold.replication.target_region" in message["reason"]
    [alert] = [a for a in alerts(dr) if a["type"] == "vmkeeper.replication.failed"]
    assert alert["subject"] == vm.id.lower() and "target_region" in alert["data"]["reason"]
    assert [c for c in app_writes(az, mark) if c["operation"].startswith("Microsoft.RecoveryServices")] == []


@pytest.fixture
def network_client(az, sub):
    from azure.mgmt.network import NetworkManagementClient

    return az.client(NetworkManagementClient, sub, polling_interval=0)


def test_two_jobs_finding_the_isolated_vnet_missing_together_write_it_once(az, dr, asr, sub):
    """Two VMs' jobs both read the isolated recovery VNet missing before either writes it (each job's read waits for
    the other's: a barrier in the app's Network client, the one part swapped). ARM's VNet PUT would write over what
    the first made: only the job holding the ledger's claim writes it, the other waits for it and uses it."""
    import threading

    from azure.core.exceptions import ResourceNotFoundError

    from shared import wiring

    vnet_name = f"vmk-dr-{TARGET}"
    barrier, met = threading.Barrier(2, timeout=20), []

    class VirtualNetworks:
        def __init__(self, real):
            self.real = real

        def get(self, rg, name, *args, **kwargs):
            try:
                return self.real.get(rg, name, *args, **kwargs)
            except ResourceNotFoundError:
                if name == vnet_name and not met:
                    barrier.wait()  # both jobs have read it missing
                    met.append(name)
                raise

        def __getattr__(self, name):
            return getattr(self.real, name)

    class Racing(wiring.Wiring):
        @property
        def arm(self):
            real = super().arm

            class Arm:
                def network(self, subscription):
                    client = real.network(subscription)
                    return type("Network", (), {"virtual_networks": VirtualNetworks(client.virtual_networks),
                                                 "__getattr__": lambda _, n: getattr(client, n)})()

                def __getattr__(self, name):
                    return getattr(real, name)
            return self._once("racing-arm", Arm)

    wiring.use(Racing(credential=StaticCredential()))
    az.seed(subscriptions=[sub], resource_groups=1, vms=2, regions=[SOURCE], vm_prefix="race",
            tag_sets=[{"vmkeeper-dr": "critical"}])
    vms = [f"/subscriptions/{sub}/resourceGroups/rg-race-00/providers/Microsoft.Compute/virtualMachines/race-{i:05d}"
           for i in range(2)]
    mark, host = len(az.calls()), dr["host"]
    host.fire_timer("replication_sweep")  # a job for each
    host.start()  # the host's queue pump runs the two jobs side by side, as in Azure

    def both():
        """both VMs Protected"""
        return all((row(dr, v) or {}).get("outcome") == "protected" for v in vms)
    run_until(az, dr, both, seconds=60)
    assert met, "the two jobs were to read the VNet missing together"
    vnet_writes = [c for c in app_writes(az, mark) if c["operation"] == "Microsoft.Network/virtualNetworks/write"]
    assert len(vnet_writes) == 1, vnet_writes  # made once: never written over
    items = [i for i in asr.replication_protected_items.list(dr["vault"].split("/")[4], dr["vault"].split("/")[8])]
    assert {i.properties.provider_specific_details["selectedRecoveryAzureNetworkId"].lower() for i in items} == {
        f"/subscriptions/{sub}/resourcegroups/rg-dr/providers/microsoft.network/virtualnetworks/{vnet_name}"}
    assert poisoned(dr) == []
