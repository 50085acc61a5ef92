"""Auto-protect end to end: the emulator's Event Grid → the function app's Event Grid trigger (run
by the local Functions host) → a job on an Azurite queue → the queue worker → Azure Backup in the
emulator. Exactly once, without loops, with retries through delayed messages and the poison queue."""

from __future__ import annotations

import importlib
import json
import logging
import time
import uuid

import pytest

from devtools.fleet import VMKEEPER_TAG_SETS
from devtools.functions_host import LocalFunctionsHost
from emulator.testing import StaticCredential
from tests.conftest import SHARED

REGIONS = ["westeurope", "northeurope"]
# The one source of truth for which Azure Backup policy a VM gets: its vmkeeper policy's backup_policy.
POLICIES = {"version": 1, "default": "silver", "policies": {
    "gold": {"schedule": {"every_hours": 4}, "snapshots": {}, "backup_policy": "EnhancedPolicy"},
    "silver": {"schedule": {"every_hours": 12}, "snapshots": {}, "backup_policy": "DefaultPolicy"},
    "bronze": {"schedule": {"daily_at": "02:30"}, "snapshots": {}, "backup_policy": "DefaultPolicy"},
    "scratch": {"schedule": {"daily_at": "03:00"}, "snapshots": {}},  # snapshots only: not in Azure Backup
}}


@pytest.fixture
def protect(az, emu, sub, azurite, monkeypatch, tmp_path):
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

    import function_app
    from emulator.recoveryservices.models import seed_vaults
    from shared import wiring

    vaults = seed_vaults(emu, sub, "rg-backup", REGIONS)
    suffix = uuid.uuid4().hex[:8]
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(POLICIES))
    settings = {
        "AzureWebJobsStorage": azurite.connection_string,
        "VMKEEPER_VAULTS": json.dumps(vaults),
        "VMKEEPER_POLICY_FILE": str(policy_file),
        "VMKEEPER_PROTECT_QUEUE": f"protect-{suffix}",
        "VMKEEPER_JOBS_QUEUE": f"jobs-{suffix}",
        "VMKEEPER_PROTECT_TABLE": f"protect{suffix}",
        "VMKEEPER_ALERTS_TABLE": f"alerts{suffix}",
        "VMKEEPER_PROTECT_RETRY_SECONDS": "1",
        "VMKEEPER_PROTECT_RETRY_MAX_SECONDS": "2",
        "VMKEEPER_ARM_ENDPOINT": az.base_url,
        "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
        "VMKEEPER_SUBSCRIPTIONS": sub,  # the protect sweep's scope
        "VMKEEPER_PROTECT_SCHEDULE": "0 */30 * * * *",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wiring.use(wiring.Wiring(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, azurite.connection_string, visibility_timeout=1)
    host.ensure_queues()
    webhook = host.serve_event_grid("vm_events")
    az.admin("POST", "eventSubscriptions", {"endpoint": webhook, "subscriptionId": sub, "includedEventTypes": [
        "Microsoft.Resources.ResourceWriteSuccess", "Microsoft.Resources.ResourceDeleteSuccess"]})
    backup = az.client(RecoveryServicesBackupClient, sub, polling_interval=0)
    yield {"host": host, "vaults": vaults, "backup": backup, "settings": settings, "sub": sub}
    host.close()


def protected_items(protect, vm_name: str) -> list:
    found = []
    for vault_id in protect["vaults"].values():
        rg, vault = vault_id.split("/")[4], vault_id.split("/")[8]
        found += [i for i in protect["backup"].backup_protected_items.list(vault, rg)
                  if i.name.lower().endswith(f";{vm_name.lower()}")]
    return found


def status(protect, vm) -> str:
    from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

    region = vm.location.replace(" ", "").lower()
    return protect["backup"].backup_status.get(region, BackupStatusRequest(resource_type="VM", resource_id=vm.id)).protection_status


def vm_event(vm_id: str, sub: str, event_type: str = "Microsoft.Resources.ResourceWriteSuccess", event_id: str | None = None) -> dict:
    event = json.loads((SHARED / "events/derived/vm_write_success.subscription-topic.eventgrid.derived.json").read_text())[0]
    text = json.dumps(event).replace("{subscription-id}", sub)
    event = json.loads(text)
    event["subject"] = event["data"]["resourceUri"] = event["data"]["authorization"]["scope"] = vm_id
    event["eventType"] = event_type
    if event_type.endswith("DeleteSuccess"):
        event["data"]["operationName"] = "Microsoft.Compute/virtualMachines/delete"
    event["id"] = event_id or str(uuid.uuid4())
    return event


def create_vm(az, compute, resources, sub, name: str, tags: dict | None = None):
    from azure.mgmt.compute.models import (
        HardwareProfile,
        ManagedDiskParameters,
        NetworkInterfaceReference,
        NetworkProfile,
        OSDisk,
        StorageProfile,
        VirtualMachine,
    )

    from tests.emulator.test_compute_vms import make_nic

    nic = make_nic(resources, sub, "rg-vm-00", f"{name}-nic")
    return compute.virtual_machines.begin_create_or_update("rg-vm-00", name, VirtualMachine(
        location="westeurope", tags=tags or {"vmkeeper-policy": "gold"},
        hardware_profile=HardwareProfile(vm_size="Standard_D2s_v5"),
        storage_profile=StorageProfile(os_disk=OSDisk(create_option="FromImage",
                                                      managed_disk=ManagedDiskParameters(storage_account_type="Premium_LRS"))),
        network_profile=NetworkProfile(network_interfaces=[NetworkInterfaceReference(id=nic)]),
    ), polling=False)


def wait_until_protected(az, protect, compute, name: str, seconds: float = 60) -> None:
    """Run the host until the VM's creation event has made it Protected (or time runs out)."""
    host = protect["host"]
    deadline = time.monotonic() + seconds
    vm = None
    while time.monotonic() < deadline:
        az.admin("GET", "health")
        host.run_until_idle(timeout=30)
        vm = compute.virtual_machines.get("rg-vm-00", name)
        if status(protect, vm) == "Protected":
            break
        time.sleep(0.2)
    assert status(protect, vm) == "Protected", host.invocations[-5:]


def test_a_new_vm_is_protected_from_its_creation_event(az, protect, compute, resources, sub):
    start = time.monotonic()
    create_vm(az, compute, resources, sub, "vm-fresh")
    wait_until_protected(az, protect, compute, "vm-fresh")
    items = protected_items(protect, "vm-fresh")
    assert len(items) == 1
    assert items[0].properties["policyId"].endswith("/backupPolicies/EnhancedPolicy")
    assert time.monotonic() - start < 60


def test_the_same_event_twenty_times_and_early_events_end_in_one_item(az, emu, protect, sub):
    host = protect["host"]
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    event = vm_event(vm_id, sub, event_id="dup-1")
    for _ in range(20):
        host.deliver_event("vm_events", event)
    # The worker is idempotent too: 20 jobs for the same VM, as from 20 distinct events, still make one item.
    for _ in range(20):
        host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=90)
    assert len(protected_items(protect, "vm-00000")) == 1


def test_an_event_whose_job_could_not_be_queued_is_enrolled_when_redelivered(az, protect, sub, azurite):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    host = protect["host"]
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00002"
    event = vm_event(vm_id, sub, event_id="retried-1")
    # Storage refuses the send (the queue is gone): nothing is handed on, so the function fails and
    # Event Grid delivers the same event again.
    QueueClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_QUEUE"]).delete_queue()
    with pytest.raises(ResourceNotFoundError):
        host.deliver_event("vm_events", event)
    host.ensure_queues()
    host.deliver_event("vm_events", event)  # the redelivery is not taken for a duplicate
    assert host.pending() == 1
    assert host.run_until_idle(timeout=60)
    assert len(protected_items(protect, "vm-00002")) == 1


def as_delivered(body: dict):
    """The event as the Python worker hands it to an Event Grid trigger: azure-functions' own
    converter, from the JSON the host passes (a CloudEvent when the subscription uses CloudEvents 1.0)."""
    from azure.functions.eventgrid import EventGridEventInConverter
    from azure.functions.meta import Datum

    return EventGridEventInConverter.decode(Datum(json.dumps(body), "json"), trigger_metadata={})


def cloud_event(vm_id: str, sub: str) -> dict:
    """The CloudEvents 1.0 sample of ResourceWriteSuccess (a storage account), made a VM's write."""
    event = json.loads((SHARED / "events/cloud-events-schema/resource_write_success.json").read_text())
    event = json.loads(json.dumps(event).replace("{subscription-id}", sub))
    event["source"] = f"/subscriptions/{sub}"
    event["subject"] = event["data"]["resourceUri"] = event["data"]["authorization"]["scope"] = vm_id
    event["data"]["authorization"]["action"] = event["data"]["operationName"] = "Microsoft.Compute/virtualMachines/write"
    event["data"]["resourceProvider"] = "Microsoft.Compute"
    event["id"] = str(uuid.uuid4())
    return event


@pytest.mark.parametrize("schema", ["cloudevents", "eventgrid"])
def test_the_event_trigger_takes_both_event_grid_schemas(az, protect, sub, schema):
    import inspect

    import azure.functions as func
    from azure.functions.eventgrid import EventGridEventInConverter

    import function_app

    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    event = as_delivered(cloud_event(vm_id, sub) if schema == "cloudevents" else vm_event(vm_id, sub))
    assert isinstance(event, func.CloudEvent if schema == "cloudevents" else func.EventGridEvent)
    functions = {f.get_function_name(): f for f in importlib.reload(function_app).app.get_functions()}
    handler = functions["vm_events"].get_user_function()
    # The worker accepts the function only if its declared type is one the converter produces.
    assert EventGridEventInConverter.check_input_type_annotation(inspect.signature(handler).parameters["event"].annotation)
    handler(event)
    host = protect["host"]
    assert host.pending() == 1
    assert host.run_until_idle(timeout=60)
    assert len(protected_items(protect, "vm-00000")) == 1


def test_the_policy_document_names_each_vms_azure_backup_policy(az, protect, sub, azurite):
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    az.seed(subscriptions=[sub], resource_groups=1, vms=1, regions=["westeurope"], vm_prefix="scr",
            tag_sets=[{"vmkeeper-policy": "scratch"}])
    vm = f"/subscriptions/{sub}/resourceGroups/{{rg}}/providers/Microsoft.Compute/virtualMachines/{{name}}"
    gold = vm.format(rg="rg-vm-00", name="vm-00000")  # tagged gold
    untagged = vm.format(rg="rg-vm-01", name="vm-00003")  # the document's default: silver
    scratch = vm.format(rg="rg-scr-00", name="scr-00000")  # a policy without backup_policy
    host = protect["host"]
    for vm_id in (gold, untagged, scratch):
        host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    [item] = protected_items(protect, "vm-00000")
    assert item.properties["policyId"].endswith("/backupPolicies/EnhancedPolicy")
    [item] = protected_items(protect, "vm-00003")
    assert item.properties["policyId"].endswith("/backupPolicies/DefaultPolicy")
    assert protected_items(protect, "scr-00000") == []
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    row = ledger.vm(scratch)
    assert row["outcome"] == "no_backup_policy"
    assert "'scratch' names no backup_policy" in json.loads(row["detail"])["reason"]
    assert json.loads(ledger.vm(untagged)["detail"])["vmkeeper_policy"] == "silver"


def test_waits_on_azure_backup_follow_its_retry_after_not_the_backoff(az, protect, sub, monkeypatch):
    # A backoff of half a minute: discovery and enabling are looked at again when their operations
    # say (here within a second), so the VM is protected in a few seconds all the same.
    monkeypatch.setenv("VMKEEPER_PROTECT_RETRY_SECONDS", "30")
    monkeypatch.setenv("VMKEEPER_PROTECT_RETRY_MAX_SECONDS", "60")
    host = protect["host"]
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    start = time.monotonic()
    host.deliver_event("vm_events", vm_event(vm_id, sub))  # not yet discovered by the vault: a refresh first
    assert host.run_until_idle(timeout=60)
    assert time.monotonic() - start < 15
    assert len(protected_items(protect, "vm-00000")) == 1
    assert [c for c in az.calls() if (c["operation"] or "").endswith("refreshContainers/action")]


def backup_jobs(protect, vm_name: str, region: str = "westeurope") -> list:
    vault_id = protect["vaults"][region]
    jobs = protect["backup"].backup_jobs.list(vault_id.split("/")[8], vault_id.split("/")[4], filter="operation eq 'Backup'")
    return [j for j in jobs if (j.properties.entity_friendly_name or "").lower() == vm_name.lower()]


def test_backup_now_takes_one_first_backup_once_the_vm_is_protected(az, protect, sub, monkeypatch, azurite):
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    monkeypatch.setenv("VMKEEPER_BACKUP_NOW", "true")  # read when the worker first runs (after the fixture)
    host = protect["host"]
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    [item] = protected_items(protect, "vm-00000")
    assert item.properties["protectionState"] == "Protected"
    [job] = backup_jobs(protect, "vm-00000")  # an on-demand backup, sent once enabling ended
    deadline = time.monotonic() + 20
    while job.properties.status == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.1)
        [job] = backup_jobs(protect, "vm-00000")
    assert job.properties.status == "Completed"
    container, name = item.id.split("/")[-3], item.name
    vault_id = protect["vaults"]["westeurope"]
    assert list(protect["backup"].recovery_points.list(vault_id.split("/")[8], vault_id.split("/")[4], "Azure",
                                                      container, name))  # the VM's first recovery point
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    assert json.loads(ledger.vm(vm_id)["detail"])["backup_now"] == "triggered"
    # Another event of the VM (a later write) finds it protected: no second backup.
    host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    assert len(backup_jobs(protect, "vm-00000")) == 1


def test_opted_out_vm_is_left_alone(az, protect, compute, resources, sub):
    create_vm(az, compute, resources, sub, "vm-shy", tags={"vmkeeper-optout": "true"})
    host = protect["host"]
    time.sleep(0.5)
    assert host.run_until_idle(timeout=60)
    assert protected_items(protect, "vm-shy") == []
    calls = [c for c in az.calls() if (c["operation"] or "").endswith("protectedItems/write")]
    assert calls == []


def test_a_malformed_event_is_rejected_naming_the_field_and_nothing_else_happens(az, protect, sub, caplog):
    host = protect["host"]
    event = vm_event(f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000", sub)
    del event["data"]["resourceUri"]
    del event["subject"]
    before = len(az.calls())
    with caplog.at_level(logging.ERROR, logger="vmkeeper.autoprotect"):
        host.deliver_event("vm_events", event)
    assert any("data.resourceUri" in r.getMessage() for r in caplog.records)
    assert host.pending() == 0
    assert len(az.calls()) == before


def test_deleting_a_protected_vm_stops_protection_and_keeps_its_data(az, protect, compute, sub):
    host = protect["host"]
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00002"
    host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    [item] = protected_items(protect, "vm-00002")
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-00002").result()
    time.sleep(0.5)
    assert host.run_until_idle(timeout=60)
    deadline = time.monotonic() + 20  # stopping is long-running in the vault: the job was accepted
    while time.monotonic() < deadline:
        [item] = protected_items(protect, "vm-00002")
        if item.properties["protectionState"] == "ProtectionStopped":
            break
        time.sleep(0.2)
    assert item.properties["protectionState"] == "ProtectionStopped"
    assert not [c for c in az.calls() if c["method"] == "DELETE" and "protectedItems" in c["path"]]


def test_deleting_a_vm_leaves_alone_an_item_of_the_same_name_that_protects_another_vm(az, emu, protect, compute, sub, azurite):
    from azure.data.tables import TableClient

    from emulator.recoveryservices.models import seed_protected_item
    from shared.azure.ledger import Ledger

    # The item's name holds only the group and the VM's name: the same names in another subscription
    # give the very same item name in the vault.
    other_sub = "0b9f7a7e-5c4d-4e3f-8a2b-1c0d9e8f7a6b"
    az.seed(subscriptions=[other_sub], resource_groups=1, vms=1, regions=["westeurope"])
    twin = f"/subscriptions/{other_sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    seed_protected_item(emu, protect["vaults"]["westeurope"], twin)
    deleted = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()  # never protected itself
    time.sleep(0.5)
    host = protect["host"]
    assert host.run_until_idle(timeout=60)
    [item] = protected_items(protect, "vm-00000")
    assert item.properties["sourceResourceId"].lower() == twin.lower()
    assert item.properties["protectionState"] == "Protected"
    assert not [c for c in az.calls() if (c["operation"] or "").endswith("protectedItems/write")]
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    row = ledger.vm(deleted)
    assert row["outcome"] == "other_vm"
    assert twin.lower() in json.loads(row["detail"])["reason"].lower()


def test_deleting_a_vm_no_vault_protects_is_recorded_as_not_protected(az, protect, compute, sub, azurite):
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    compute.virtual_machines.begin_delete("rg-vm-00", "vm-00000").result()
    time.sleep(0.5)
    assert protect["host"].run_until_idle(timeout=60)
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    deleted = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    assert ledger.vm(deleted)["outcome"] == "not_protected"


def test_a_region_without_a_vault_ends_in_the_poison_queue_with_its_reason(az, emu, protect, sub, azurite):
    from azure.storage.queue import QueueClient

    summary = az.seed(subscriptions=[sub], resource_groups=1, vms=1, regions=["eastus"], vm_prefix="east",
                      tag_sets=VMKEEPER_TAG_SETS)
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-east-00/providers/Microsoft.Compute/virtualMachines/east-00000"
    assert summary["vms"] == 1
    host = protect["host"]
    host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    poison = QueueClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_QUEUE"] + "-poison")
    [message] = list(poison.receive_messages())
    body = json.loads(__import__("base64").b64decode(message.content))
    assert "eastus" in body["reason"] and body["message"]["vm_id"] == vm_id.lower()
    # and one alert says so (no topic here: recorded in the outbox, which the report reads)
    from azure.data.tables import TableClient

    from shared.alerts import events as A

    outbox = TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_ALERTS_TABLE"])
    [alert] = [json.loads(r["event"]) for r in outbox.list_entities()]
    assert alert["type"] == A.PROTECTION_FAILED and alert["subject"] == vm_id.lower()
    assert "eastus" in alert["data"]["reason"] and alert["data"]["cause"] == "failed"


def test_two_hundred_vms_in_a_burst_with_ten_percent_faults(az, protect, sub, azurite):
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    from shared.azure.ledger import Ledger

    az.seed(subscriptions=[sub], resource_groups=4, vms=200, data_disks=[0, 1], regions=["westeurope"],
            vm_prefix="burst", tag_sets=[{"vmkeeper-policy": "silver"}])
    per_kind = 0.035  # three kinds: about 10% of Recovery Services calls fail
    az.faults([{"kind": kind, "operation": "Microsoft.RecoveryServices/.*", "probability": per_kind}
               for kind in ("429", "500", "503")], seed=11)
    host = protect["host"]
    vm_ids = [f"/subscriptions/{sub}/resourceGroups/rg-burst-{i % 4:02d}/providers/Microsoft.Compute/virtualMachines/burst-{i:05d}"
              for i in range(200)]
    for vm_id in vm_ids:
        host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=400)
    fired = sum(r["fired"] for r in az.admin("GET", "faults")["rules"])
    az.faults([])
    assert fired > 20  # the faults really happened
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string,
                                                       protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    outcomes = {row["vmId"]: row["outcome"] for row in ledger.vms()}
    poison = QueueClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_QUEUE"] + "-poison")
    poisoned = poison.get_queue_properties().approximate_message_count
    done = sum(1 for vm_id in vm_ids if outcomes.get(vm_id.lower()) in ("protected", "already_protected"))
    assert done + poisoned == 200, (done, poisoned)
    print(f"\n200 VMs with ~10% faults: {done} protected, {poisoned} poisoned with a reason")
    items = [i.name.lower() for vault_id in protect["vaults"].values()
             for i in protect["backup"].backup_protected_items.list(vault_id.split("/")[8], vault_id.split("/")[4])]
    assert len(items) == len(set(items))  # none twice
    assert sum(1 for i in items if ";burst-" in i) == done


def test_a_cloudevents_subscription_delivers_through_the_local_host(az, protect, compute, resources, sub):
    """Defect: the local host only ever built EventGridEvent, so no test saw a CloudEvents 1.0
    subscription crash the trigger. Now the emulator's Event Grid posts CloudEvents to the host's
    webhook, the host hands the function what azure-functions builds (a CloudEvent), and the VM is
    protected."""
    for existing in az.admin("GET", "eventSubscriptions")["value"]:
        az.admin("DELETE", f"eventSubscriptions/{existing['id']}")
    host = protect["host"]
    az.admin("POST", "eventSubscriptions", {"endpoint": host.serve_event_grid("vm_events"), "subscriptionId": sub,
                                            "schema": "CloudEventSchemaV1_0"})
    create_vm(az, compute, resources, sub, "vm-cloud")
    wait_until_protected(az, protect, compute, "vm-cloud")
    events = [i for i in host.invocations if i["function"] == "vm_events"]
    assert events and all(i["ok"] and i["event_class"] == "CloudEvent" for i in events)


def item_state(protect, vm_name: str) -> str:
    [item] = protected_items(protect, vm_name)
    return item.properties["protectionState"]


def delete_vm_and_wait_until_stopped(az, protect, compute, name: str) -> None:
    """Delete the VM; its delete event stops protection (retaining data): wait for ProtectionStopped."""
    compute.virtual_machines.begin_delete("rg-vm-00", name).result()
    time.sleep(0.5)
    assert protect["host"].run_until_idle(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and item_state(protect, name) != "ProtectionStopped":
        time.sleep(0.2)
    assert item_state(protect, name) == "ProtectionStopped"


def test_a_vm_recreated_after_its_protection_was_stopped_is_resumed_with_its_data(az, protect, compute, resources, sub,
                                                                                 azurite):
    """Defect (issue 19, 11): Azure keeps a stopped item (data retained) and lists its VM as protectable no more,
    so re-protecting the VM refreshed discovery until the job was poisoned. A ProtectionStopped item of the VM is
    resumed: a PUT of the item with the policy (Azure's documented resume), its recovery points kept."""
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    create_vm(az, compute, resources, sub, "vm-again")
    wait_until_protected(az, protect, compute, "vm-again")
    [before] = protected_items(protect, "vm-again")
    first = compute.virtual_machines.get("rg-vm-00", "vm-again")
    delete_vm_and_wait_until_stopped(az, protect, compute, "vm-again")
    second = create_vm(az, compute, resources, sub, "vm-again").result()
    assert second.vm_id != first.vm_id  # another instance of the VM, under the same ARM id
    wait_until_protected(az, protect, compute, "vm-again")
    [after] = protected_items(protect, "vm-again")
    assert after.properties["protectedItemDataId"] == before.properties["protectedItemDataId"]  # the same item, resumed
    assert after.properties["policyId"].endswith("/backupPolicies/EnhancedPolicy")
    assert not [c for c in az.calls() if c["method"] == "DELETE" and "protectedItems" in c["path"]]
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    row = ledger.vm(second.id)
    assert row["outcome"] == "protected"
    detail = json.loads(row["detail"])
    assert detail["resumed"] is True and detail["vm_instance"] == second.vm_id


def test_a_vm_created_again_while_its_old_instance_protection_stops_ends_protected(az, protect, compute, resources, sub,
                                                                                  azurite, caplog):
    """Defect (issue 19, 11): a VM deleted and created again keeps its ARM id. Stopping protection is
    long-running: the new instance's job found the item still Protected and was done, then the old instance's
    stop landed and the new VM was left unprotected, silently. The delete's job follows its stop to the end and
    protects a VM that exists again (the item resumed); a late delete event for the old instance then stops nothing."""
    from azure.data.tables import TableClient

    from emulator.recoveryservices.models import ITEM_TYPE
    from shared.azure.ledger import Ledger

    host = protect["host"]
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    create_vm(az, compute, resources, sub, "vm-race")
    wait_until_protected(az, protect, compute, "vm-race")
    [before] = protected_items(protect, "vm-race")
    vm_id = compute.virtual_machines.get("rg-vm-00", "vm-race").id

    def wait(what, seconds: float = 20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if what():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting: {what.__doc__}; {host.invocations[-5:]}")

    az.settings(lro={"per_type": {ITEM_TYPE: 600}})  # a stop runs ten emulated minutes
    mark = len(az.calls())
    host.start()  # the host pumps the queues in the background, as in Azure
    compute.virtual_machines.begin_delete("rg-vm-00", "vm-race").result()

    def stop_accepted():
        """the stop of the deleted VM's protection accepted"""
        return any(c["method"] == "PUT" and "protecteditems" in c["path"].lower() for c in az.calls(mark))
    wait(stop_accepted)
    az.settings(lro={"per_type": {ITEM_TYPE: 0.05}})  # what comes next runs fast again
    second = create_vm(az, compute, resources, sub, "vm-race").result()

    def new_instance_seen():
        """the new instance's write event handled: its item still Protected, the job done"""
        row = ledger.vm(vm_id)
        return row is not None and row["outcome"] == "already_protected"
    wait(new_instance_seen)
    az.advance(700)  # the stop lands
    assert item_state(protect, "vm-race") == "ProtectionStopped"

    def protected_again():
        """the new instance protected"""
        return item_state(protect, "vm-race") == "Protected" and (ledger.vm(vm_id) or {}).get("outcome") == "protected"
    wait(protected_again, seconds=40)
    [after] = protected_items(protect, "vm-race")
    assert after.properties["protectedItemDataId"] == before.properties["protectedItemDataId"]  # resumed, data kept
    assert after.properties["policyId"].endswith("/backupPolicies/EnhancedPolicy")
    detail = json.loads(ledger.vm(vm_id)["detail"])
    assert detail["resumed"] is True and detail["vm_instance"] == second.vm_id

    # The old instance's delete event delivered late (Event Grid does not order deliveries): nothing stops.
    writes = len(az.calls())
    with caplog.at_level(logging.INFO, logger="vmkeeper.protect"):
        host.deliver_event("vm_events", vm_event(vm_id, sub, "Microsoft.Resources.ResourceDeleteSuccess"))

        def late_delete_handled():
            """the late delete event's job done"""
            return (ledger.vm(vm_id) or {}).get("outcome") == "vm_exists"
        wait(late_delete_handled)
    assert any("older instance" in r.getMessage() and second.vm_id in r.getMessage() for r in caplog.records)
    assert not [c for c in az.calls(writes) if c["method"] == "PUT" and "protecteditems" in c["path"].lower()]
    assert item_state(protect, "vm-race") == "Protected"


def test_an_item_of_the_same_name_protecting_another_vm_is_never_written_and_the_vm_is_reported(az, emu, protect, sub,
                                                                                                azurite):
    """Create-only (issue 19): the item's name holds only the group and the VM's name, so the same names in another
    subscription name the very same item. Enabling the VM used to PUT over that item, replacing the policy its
    own VM has; now it is read first, left alone, and the VM that can't be enrolled is poisoned with an alert."""
    from azure.data.tables import TableClient

    from emulator.recoveryservices.models import seed_protected_item
    from shared.alerts import events as A

    other_sub = "0b9f7a7e-5c4d-4e3f-8a2b-1c0d9e8f7a6b"
    az.seed(subscriptions=[other_sub], resource_groups=1, vms=1, regions=["westeurope"])
    twin = f"/subscriptions/{other_sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    seed_protected_item(emu, protect["vaults"]["westeurope"], twin)  # DefaultPolicy
    ours = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"  # gold
    host = protect["host"]
    host.deliver_event("vm_events", vm_event(ours, sub))
    assert host.run_until_idle(timeout=60)
    [item] = protected_items(protect, "vm-00000")
    assert item.properties["sourceResourceId"].lower() == twin.lower()
    assert item.properties["policyId"].endswith("/backupPolicies/DefaultPolicy")  # the twin's policy stands
    assert not [c for c in az.calls() if (c["operation"] or "").endswith("protectedItems/write")]
    outbox = TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_ALERTS_TABLE"])
    [alert] = [json.loads(r["event"]) for r in outbox.list_entities()]
    assert alert["type"] == A.PROTECTION_FAILED and alert["subject"] == ours.lower()
    assert twin.lower() in alert["data"]["reason"].lower()


def test_a_vm_protected_under_another_policy_is_left_alone_and_reported(az, emu, protect, sub, azurite):
    """Create-only (issue 19): the operator chose another policy for a VM already protected: no PUT replaces it;
    the outcome names both policies."""
    from azure.data.tables import TableClient

    from emulator.recoveryservices.models import seed_protected_item
    from shared.azure.ledger import Ledger

    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"  # gold
    seed_protected_item(emu, protect["vaults"]["westeurope"], vm_id, policy="DefaultPolicy")
    host = protect["host"]
    host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    [item] = protected_items(protect, "vm-00000")
    assert item.properties["policyId"].endswith("/backupPolicies/DefaultPolicy")
    assert not [c for c in az.calls() if (c["operation"] or "").endswith("protectedItems/write")]
    ledger = Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))
    row = ledger.vm(vm_id)
    detail = json.loads(row["detail"])
    assert row["outcome"] == "already_protected"
    assert (detail["policy"], detail["document_policy"]) == ("DefaultPolicy", "EnhancedPolicy")


def test_a_vm_whose_protection_is_stopped_in_another_vault_is_poisoned_with_that_reason(az, emu, protect, sub, azurite):
    """A VM is protected by one vault only: one whose stopped item (data retained) is in another vault can't be
    enrolled in its region's vault. It used to refresh discovery until poisoned as "not yet discoverable"; now
    the job says which vault holds it."""
    from azure.mgmt.recoveryservicesbackup.models import (
        AzureIaaSComputeVMProtectedItem,
        ProtectedItemResource,
    )
    from azure.storage.queue import QueueClient

    from emulator.recoveryservices.models import seed_protected_item

    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000"
    other = protect["vaults"]["northeurope"]
    seed_protected_item(emu, other, vm_id)
    body = ProtectedItemResource(properties=AzureIaaSComputeVMProtectedItem(
        source_resource_id=vm_id, policy_id="", protection_state="ProtectionStopped"))
    protect["backup"].protected_items.begin_create_or_update(
        other.split("/")[8], other.split("/")[4], "Azure", "IaasVMContainer;iaasvmcontainerv2;rg-vm-00;vm-00000",
        "VM;iaasvmcontainerv2;rg-vm-00;vm-00000", body).result()
    host = protect["host"]
    host.deliver_event("vm_events", vm_event(vm_id, sub))
    assert host.run_until_idle(timeout=60)
    poison = QueueClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_QUEUE"] + "-poison")
    [message] = list(poison.receive_messages())
    reason = json.loads(__import__("base64").b64decode(message.content))["reason"]
    assert "stopped in another vault" in reason and other.lower() in reason.lower()
    assert not [c for c in az.calls() if (c["operation"] or "").endswith("refreshContainers/action")]


# --- the protect sweep ------------------------------------------------------------------------------------
def protect_ledger(azurite, protect):
    from azure.data.tables import TableClient

    from shared.azure.ledger import Ledger

    return Ledger(TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"]))


def enrol_writes(az, since: int = 0) -> list:
    """Azure Backup writes of an enrolment: a protected item's PUT, a containers' refresh, a backup trigger."""
    return [c for c in az.calls(since) if c["method"] in ("PUT", "POST", "PATCH", "DELETE")
            and ("protecteditems" in c["path"].lower() or c["path"].lower().endswith(("/refreshcontainers", "/backup")))]


def test_the_sweep_enrols_vms_no_event_named_and_leaves_out_opted_out_scratch_and_restored_vms(
        az, protect, compute, sub, azurite):
    host = protect["host"]
    az.seed(subscriptions=[sub], resource_groups=1, vms=1, regions=["westeurope"], vm_prefix="opt",
            tag_sets=[{"vmkeeper-optout": "true", "vmkeeper-policy": "gold"}])
    az.seed(subscriptions=[sub], resource_groups=1, vms=1, regions=["westeurope"], vm_prefix="scr",
            tag_sets=[{"vmkeeper-policy": "scratch"}])  # a policy without backup_policy
    az.seed(subscriptions=[sub], resource_groups=1, vms=1, regions=["westeurope"], vm_prefix="rst",
            tag_sets=[{"vmkeeper-restore": "r-0001", "vmkeeper-policy": "gold"}])  # a restore's VM
    vms = {vm.name: vm for vm in compute.virtual_machines.list_all()}
    left_out = {"opt-00000", "scr-00000", "rst-00000"}
    fleet = sorted(set(vms) - left_out)
    assert left_out <= set(vms) and len(fleet) >= 7, sorted(vms)  # four VMs and a Flexible set's three
    assert host.pending() == 0  # seeded, not created: no event, so no job
    assert host.run_until_idle(timeout=10)
    assert all(protected_items(protect, name) == [] for name in vms)

    host.fire_timer("protect_sweep")
    assert host.pending() == len(fleet)  # one job a VM it should enrol, none for the three left out
    assert host.run_until_idle(timeout=90)
    for name in fleet:
        [item] = protected_items(protect, name)
        want = "EnhancedPolicy" if vms[name].tags.get("vmkeeper-policy") == "gold" else "DefaultPolicy"
        assert item.properties["policyId"].endswith(f"/backupPolicies/{want}"), name
    ledger = protect_ledger(azurite, protect)
    for name in left_out:
        assert protected_items(protect, name) == [], name
        assert ledger.vm(vms[name].id) is None, name  # no job at all: nothing recorded
    rows = {r["vmId"]: r for r in ledger.vms()}
    assert {r["outcome"] for r in rows.values()} == {"protected"}
    assert all(r["eventId"].startswith("sweep:") for r in rows.values())
    assert {json.loads(r["detail"])["vm_instance"] for r in rows.values()} == {vms[n].vm_id for n in fleet}

    # Again: the ledger records every VM's instance protected under its policy, so no job is sent.
    mark = len(az.calls())
    host.fire_timer("protect_sweep")
    assert host.pending() == 0
    assert host.run_until_idle(timeout=10)
    assert enrol_writes(az, mark) == []


def test_a_sweep_job_for_a_vm_already_protected_writes_nothing(az, protect, compute, sub, azurite):
    host = protect["host"]
    host.fire_timer("protect_sweep")
    assert host.run_until_idle(timeout=90)
    ledger = protect_ledger(azurite, protect)
    enrolled = {r["vmId"] for r in ledger.vms()}
    assert enrolled and all(protected_items(protect, vm.rsplit("/", 1)[-1]) for vm in enrolled)
    assert [c for c in enrol_writes(az) if c["method"] == "PUT"]  # the first sweep's enrolments are seen so
    # The ledger lost (or never had) its rows: the sweep sends a job for each VM again; each job reads first.
    for vm_id in enrolled:
        ledger.delete("vm", vm_id)
    mark = len(az.calls())
    host.fire_timer("protect_sweep")
    assert host.pending() == len(enrolled)
    assert host.run_until_idle(timeout=60)
    assert enrol_writes(az, mark) == []  # no PUT on protectedItems, no refresh, no backup
    rows = {r["vmId"]: r for r in ledger.vms()}
    assert set(rows) == enrolled and {r["outcome"] for r in rows.values()} == {"already_protected"}
    for vm_id in enrolled:
        assert len(protected_items(protect, vm_id.rsplit("/", 1)[-1])) == 1
    # Recorded protected again (this instance, this policy): the next sweep sends nothing.
    host.fire_timer("protect_sweep")
    assert host.pending() == 0


def test_a_vm_the_sweep_cannot_enrol_is_poisoned_once_until_its_vault_mapping_changes(
        az, emu, protect, sub, azurite, monkeypatch):
    from azure.data.tables import TableClient
    from azure.storage.queue import QueueClient

    from emulator.recoveryservices.models import seed_vaults
    from shared import wiring
    from shared.alerts import events as A

    az.seed(subscriptions=[sub], resource_groups=1, vms=1, regions=["eastus"], vm_prefix="east",
            tag_sets=[{"vmkeeper-policy": "silver"}])  # no vault for eastus
    vm_id = f"/subscriptions/{sub}/resourceGroups/rg-east-00/providers/Microsoft.Compute/virtualMachines/east-00000"
    host = protect["host"]
    for _ in range(2):
        host.fire_timer("protect_sweep")
        assert host.run_until_idle(timeout=90)
    poison = QueueClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_QUEUE"] + "-poison")
    bodies = [json.loads(__import__("base64").b64decode(m.content)) for m in poison.peek_messages(max_messages=32)]
    mine = [b for b in bodies if b["message"]["vm_id"] == vm_id.lower()]
    # The second sweep holds it: the same instance, tags, vault mapping and policy document failed 30 minutes ago.
    assert len(mine) == 1 and "eastus" in mine[0]["reason"] and mine[0]["message"]["event_id"].startswith("sweep:")
    outbox = TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_ALERTS_TABLE"])
    alerts = [a for a in (json.loads(r["event"]) for r in outbox.list_entities()) if a["subject"] == vm_id.lower()]
    assert [a["type"] for a in alerts] == [A.PROTECTION_FAILED]  # never silent: alerted, and on the compliance report
    assert protect_ledger(azurite, protect).vm(vm_id)["outcome"] == "failed"

    # The operator maps a vault to eastus: the next sweep sends its job at once, and it is enrolled.
    vaults = {**protect["vaults"], **seed_vaults(emu, sub, "rg-backup", ["eastus"])}
    monkeypatch.setenv("VMKEEPER_VAULTS", json.dumps(vaults))
    wiring.use(wiring.Wiring(credential=StaticCredential()))
    host.fire_timer("protect_sweep")
    assert host.pending() == 1
    assert host.run_until_idle(timeout=90)
    protect["vaults"].update(vaults)
    [item] = protected_items(protect, "east-00000")
    assert item.properties["policyId"].endswith("/backupPolicies/DefaultPolicy")
    assert protect_ledger(azurite, protect).vm(vm_id)["outcome"] == "protected"


def test_a_vm_whose_protection_was_stopped_outside_vmkeeper_is_found_once_its_row_is_a_day_old(
        az, protect, sub, azurite):
    from datetime import UTC, datetime, timedelta

    from azure.data.tables import TableClient, UpdateMode
    from azure.mgmt.recoveryservicesbackup.models import (
        AzureIaaSComputeVMProtectedItem,
        ProtectedItemResource,
    )

    from shared.azure.ledger import row_key
    from shared.instants import format_instant

    host = protect["host"]
    host.fire_timer("protect_sweep")
    assert host.run_until_idle(timeout=90)
    ledger = protect_ledger(azurite, protect)
    row = ledger.vm(f"/subscriptions/{sub}/resourceGroups/rg-vm-00/providers/Microsoft.Compute/virtualMachines/vm-00000")
    assert row and row["outcome"] == "protected"
    vm_id, vault_id = row["vmId"], json.loads(row["detail"])["vault"]
    # An operator stops the VM's protection in the portal (data retained), not through vmkeeper.
    body = ProtectedItemResource(properties=AzureIaaSComputeVMProtectedItem(
        source_resource_id=vm_id, policy_id="", protection_state="ProtectionStopped"))
    protect["backup"].protected_items.begin_create_or_update(
        vault_id.split("/")[8], vault_id.split("/")[4], "Azure", "IaasVMContainer;iaasvmcontainerv2;rg-vm-00;vm-00000",
        "VM;iaasvmcontainerv2;rg-vm-00;vm-00000", body).result()
    assert item_state(protect, "vm-00000") == "ProtectionStopped"
    host.fire_timer("protect_sweep")
    assert host.pending() == 0  # recorded protected minutes ago: not looked at yet
    # A day later (the row's age; VMKEEPER_PROTECT_SWEEP_RECHECK_HOURS=24): the sweep sends this VM's job, no other.
    table = TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_PROTECT_TABLE"])
    table.update_entity({"PartitionKey": "vm", "RowKey": row_key(vm_id),
                         "updated": format_instant(datetime.now(UTC) - timedelta(hours=25))}, mode=UpdateMode.MERGE)
    host.fire_timer("protect_sweep")
    assert host.pending() == 1
    assert host.run_until_idle(timeout=90)
    assert item_state(protect, "vm-00000") == "Protected"  # resumed: no opt-out tag says to leave it unprotected
    assert ledger.vm(vm_id)["outcome"] == "protected"  # its row is new: the next re-check is a day from now
    # Said once: a stop may be an attacker's first move, or an operator who meant to opt the VM out.
    from shared.alerts import events as A

    outbox = TableClient.from_connection_string(azurite.connection_string, protect["settings"]["VMKEEPER_ALERTS_TABLE"])
    resumed = [a for a in (json.loads(r["event"]) for r in outbox.list_entities()) if a["type"] == A.PROTECTION_RESUMED]
    assert [(a["subject"], a["data"]["vault"]) for a in resumed] == [(vm_id.lower(), vault_id)]
